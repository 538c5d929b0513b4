package variables

import (
	"fmt"
	"maps"
	"slices"

	"github.com/kubefoundry/kubefoundry"
)

// RotationPhase is where a CA stands in the three steps of a rotation,
// CredHub's transitional versions as BOSH operators use them:
//
//	NotRotating --RotateCA--> NewTransitional --PromoteCA--> OldTransitional --DropTransitional--> NotRotating
type RotationPhase int

// The phases of a CA rotation.
const (
	// NotRotating: the CA has one version, which signs.
	NotRotating RotationPhase = iota
	// NewTransitional: a new CA is trusted beside the old one, which
	// still signs (after RotateCA).
	NewTransitional
	// OldTransitional: the new CA signs and the old one is still trusted
	// (after PromoteCA).
	OldTransitional
)

// The phases as the store file writes them.
const (
	phaseNewTransitional = "new-transitional"
	phaseOldTransitional = "old-transitional"
)

func (p RotationPhase) String() string {
	switch p {
	case NotRotating:
		return "not rotating"
	case NewTransitional:
		return phaseNewTransitional
	case OldTransitional:
		return phaseOldTransitional
	}
	return fmt.Sprintf("RotationPhase(%d)", int(p))
}

func phaseOf(e *entry) RotationPhase {
	switch e.Rotation {
	case phaseNewTransitional:
		return NewTransitional
	case phaseOldTransitional:
		return OldTransitional
	}
	return NotRotating
}

// RotationPhase says where the CA name stands in a rotation. It fails
// as the rotation steps do when name is not a CA this store generated.
func (s *Store) RotationPhase(name string) (RotationPhase, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.caEntry(name)
	if err != nil {
		return NotRotating, err
	}
	return phaseOf(e), nil
}

// RotateCA is step 1 of a CA rotation, CredHub's regenerate with
// set_as_transitional: a new CA, generated with the options of the
// current one, is kept as a transitional version beside it. The current
// one still signs; ((name.ca)), ((name.certificate)) and the ca of every
// certificate generated with options.ca name are now both CAs, the
// active (old) one first. Deploy that, so that everything trusts both.
//
// RotateCA in phase NewTransitional does nothing. It fails, with a
// *kubefoundry.FieldError naming the variable, in phase OldTransitional
// (DropTransitional ends the previous rotation first), and when name is
// not a CA this store generated (one given with Put cannot be
// regenerated, as in CredHub); with kubefoundry.ErrNotFound when there is
// no such variable.
func (s *Store) RotateCA(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.change(func() (bool, error) {
		e, err := s.caEntry(name)
		if err != nil {
			return false, err
		}
		switch phaseOf(e) {
		case NewTransitional:
			return false, nil
		case OldTransitional:
			return false, outOfOrder(name, "the previous rotation is not finished (the old CA is still transitional): DropTransitional first")
		}
		v, err := s.generated(e.Type, e.Options)
		if err != nil {
			return false, &kubefoundry.FieldError{Field: "/variables/name=" + name, Reason: "generating the new CA: " + err.Error()}
		}
		v.Transitional = true
		e.Versions = append(e.Versions, v)
		e.Rotation = phaseNewTransitional
		return true, nil
	})
}

// PromoteCA is step 2 of a CA rotation: the new CA becomes the active
// one and the old one becomes transitional, still trusted (the ca
// bundles now have the new CA first); and, right away, every certificate
// this store generated with options.ca name is regenerated with its own
// options, signed by the new CA, and so on down every CA among them. It
// returns the names it regenerated, sorted: deploy them.
//
// Certificates given with Put are not touched. PromoteCA in phase
// OldTransitional only regenerates what is not yet signed by the active
// CA (nothing, after a PromoteCA that succeeded). It fails, with a
// *kubefoundry.FieldError naming the variable, in phase NotRotating
// (RotateCA first) or when name is not a CA this store generated; with
// kubefoundry.ErrNotFound when there is no such variable. A failure
// changes nothing.
func (s *Store) PromoteCA(name string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var regenerated []string
	err := s.change(func() (bool, error) {
		e, err := s.caEntry(name)
		if err != nil {
			return false, err
		}
		changed := false
		switch phaseOf(e) {
		case NotRotating:
			return false, outOfOrder(name, "no new CA to promote: RotateCA first")
		case NewTransitional:
			old, next := e.active(), e.transitional()
			old.Transitional, next.Transitional = true, false
			e.Rotation = phaseOldTransitional
			changed = true
		}
		if regenerated, err = s.resign(name); err != nil {
			return false, err
		}
		return changed || len(regenerated) > 0, nil
	})
	if err != nil {
		return nil, err
	}
	return regenerated, nil
}

// resign regenerates every generated certificate under the CA root
// whose active version was not signed by its CA's active version, and
// returns their names.
func (s *Store) resign(root string) ([]string, error) {
	var out []string
	seen := map[string]bool{root: true}
	queue := []string{root}
	names := slices.Sorted(maps.Keys(s.vars))
	for len(queue) > 0 {
		ca := queue[0]
		queue = queue[1:]
		caID := s.vars[ca].active().ID
		for _, n := range names {
			e := s.vars[n]
			if seen[n] || e.signerName() != ca || e.Type != "certificate" {
				continue
			}
			if e.isCA() {
				seen[n] = true
				queue = append(queue, n)
			}
			a := e.active()
			if a.SignerID == caID {
				continue
			}
			v, err := s.generated(e.Type, e.Options)
			if err != nil {
				return nil, &kubefoundry.FieldError{Field: "/variables/name=" + n, Reason: fmt.Sprintf("regenerating it with the new CA %q: %v", ca, err)}
			}
			*a = *v // the transitional version, if any, stays
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// DropTransitional is step 3 of a CA rotation: the old CA, transitional
// since PromoteCA, is removed, and the ca bundles are the new CA alone.
//
// DropTransitional in phase NotRotating does nothing. It fails, with a
// *kubefoundry.FieldError naming the variable, in phase NewTransitional
// (the transitional version is then the new CA, which has signed
// nothing: PromoteCA first), and when name is not a CA this store
// generated; with kubefoundry.ErrNotFound when there is no such variable.
func (s *Store) DropTransitional(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.change(func() (bool, error) {
		e, err := s.caEntry(name)
		if err != nil {
			return false, err
		}
		switch phaseOf(e) {
		case NotRotating:
			return false, nil
		case NewTransitional:
			return false, outOfOrder(name, "the transitional version is the new CA, which signs nothing yet: PromoteCA first")
		}
		e.Versions = []*version{e.active()}
		e.Rotation = ""
		return true, nil
	})
}

// caEntry is the entry of a CA this store generated.
func (s *Store) caEntry(name string) (*entry, error) {
	e, ok := s.vars[name]
	if !ok {
		return nil, fmt.Errorf("variable %q: %w", name, kubefoundry.ErrNotFound)
	}
	field := "/variables/name=" + name
	switch {
	case e.Origin == originPut:
		return nil, &kubefoundry.FieldError{Field: field, Reason: "its value was put, not generated: only a CA this store generated can be rotated"}
	case e.Origin == originMigrated:
		return nil, &kubefoundry.FieldError{Field: field, Reason: "read from an older store and not declared since: run Generate with the manifest that declares it first"}
	case e.Type != "certificate":
		return nil, &kubefoundry.FieldError{Field: field, Value: e.Type, Reason: "not a CA: a variable of type " + e.Type}
	case !e.isCA():
		return nil, &kubefoundry.FieldError{Field: field, Reason: "not a CA: a certificate generated without is_ca"}
	}
	return e, nil
}

func outOfOrder(name, reason string) error {
	return &kubefoundry.FieldError{Field: "/variables/name=" + name, Reason: "CA rotation out of order: " + reason}
}
