package variables

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
)

// Store holds a deployment's variables, generated or given, in a JSON
// file (mode 0600) written whole on every change. It implements
// opsfile.Vars and is safe for concurrent use.
type Store struct {
	path string // names the store in errors: its file, or its Backend
	be   Backend
	mu   sync.Mutex
	// vars and nextID are the file's content; see fileFormat.
	vars   map[string]*entry
	nextID int64
}

// formatVersion is the store file's format. Format 1 (the first store)
// was a bare object of name -> value and is migrated when read.
const formatVersion = 2

// formatKey marks a store file of format 2 and later. "$" cannot appear in
// a BOSH variable name, so no format-1 store has this key.
const formatKey = "$format"

// fileFormat is the store file.
type fileFormat struct {
	Format    int               `json:"$format"`
	NextID    int64             `json:"next_id"`
	Variables map[string]*entry `json:"variables"`
}

// How a variable's value came to be.
const (
	originGenerated = "generated" // by Generate or a rotation: may be regenerated
	originPut       = "put"       // given with Put: never regenerated
	originMigrated  = "migrated"  // read from a format-1 store; adopted by the next Generate that declares it
)

// entry is one variable: its versions and how they came to be.
type entry struct {
	// Type is the declared type ("certificate"...), "" while unknown (a
	// value put or migrated before any Generate declared it).
	Type   string `json:"type,omitempty"`
	Origin string `json:"origin"`
	// Options are the options the value was generated with; a
	// regeneration (converge, a CA rotation) uses them, and converge
	// compares them with the manifest's.
	Options map[string]any `json:"options,omitempty"`
	// Versions holds the active version and, during a CA rotation, one
	// transitional version. Older versions are not kept.
	Versions []*version `json:"versions"`
	// Rotation is the CA's RotationPhase while a transitional version is
	// there: "new-transitional" or "old-transitional".
	Rotation string `json:"rotation,omitempty"`
}

// version is one value of a variable.
type version struct {
	// ID orders versions store-wide: a larger ID is newer.
	ID    int64 `json:"id"`
	Value any   `json:"value"`
	// Transitional marks the CA version that is trusted but does not sign.
	Transitional bool      `json:"transitional,omitempty"`
	Created      time.Time `json:"created"`
	// SignerID is the version of options.ca that signed a generated
	// certificate, so converge can tell the CA has changed since.
	SignerID int64 `json:"signer_id,omitempty"`
}

func (e *entry) active() *version {
	for _, v := range e.Versions {
		if !v.Transitional {
			return v
		}
	}
	return nil
}

func (e *entry) transitional() *version {
	for _, v := range e.Versions {
		if v.Transitional {
			return v
		}
	}
	return nil
}

// isCA reports whether e is a certificate generated with is_ca.
func (e *entry) isCA() bool {
	isCA, _ := e.Options["is_ca"].(bool)
	return e.Origin == originGenerated && e.Type == "certificate" && isCA
}

// signerName is the CA variable a generated certificate is signed by.
func (e *entry) signerName() string {
	if e.Origin != originGenerated {
		return ""
	}
	ca, _ := e.Options["ca"].(string)
	return ca
}

// check reports what is wrong with an entry read from a file.
func (e *entry) check() error {
	if e == nil {
		return errors.New("no entry")
	}
	switch e.Origin {
	case originGenerated, originPut, originMigrated:
	default:
		return fmt.Errorf("origin %q: want generated, put or migrated", e.Origin)
	}
	active, transitional := 0, 0
	for _, v := range e.Versions {
		if v == nil {
			return errors.New("a version is null")
		}
		if v.Transitional {
			transitional++
		} else {
			active++
		}
	}
	if active != 1 || transitional > 1 {
		return fmt.Errorf("%d active and %d transitional versions: want one active and at most one transitional", active, transitional)
	}
	switch {
	case transitional == 1 && e.Rotation != phaseNewTransitional && e.Rotation != phaseOldTransitional:
		return fmt.Errorf("rotation %q with a transitional version: want %s or %s", e.Rotation, phaseNewTransitional, phaseOldTransitional)
	case transitional == 0 && e.Rotation != "":
		return fmt.Errorf("rotation %q without a transitional version", e.Rotation)
	}
	return nil
}

func (e *entry) clone() *entry {
	c := *e
	c.Versions = make([]*version, len(e.Versions))
	for i, v := range e.Versions {
		vc := *v
		c.Versions[i] = &vc
	}
	return &c
}

// Backend keeps a store's content, written whole on every change: a file
// (Open), or anything else that holds bytes (OpenBackend), such as the
// BOSH director's state. What it keeps is secret.
type Backend interface {
	// Load returns what Save last wrote, nil when there is nothing yet.
	Load() ([]byte, error)
	// Save replaces the content; it is all or nothing.
	Save(content []byte) error
	// String names the backend in errors.
	String() string
}

// Open reads the store at path, or starts an empty one there. A store
// written before versions were kept (a bare object of name -> value) is
// read as one version per variable and written in the current format by
// the next change.
func Open(path string) (*Store, error) { return OpenBackend(fileBackend(path)) }

// OpenBackend reads the store be keeps, or starts an empty one there,
// as Open does with a file.
func OpenBackend(be Backend) (*Store, error) {
	path := be.String()
	s := &Store{path: path, be: be, vars: map[string]*entry{}, nextID: 1}
	b, err := be.Load()
	switch {
	case err != nil:
		return nil, fmt.Errorf("variables store %s: %w", path, err)
	case b == nil:
		return s, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("variables store %s: %w", path, err)
	}
	if _, ok := top[formatKey]; !ok {
		return s, s.migrate(top)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("variables store %s: %w", path, err)
	}
	if f.Format != formatVersion {
		return nil, fmt.Errorf("variables store %s: format %d: want %d: %w", path, f.Format, formatVersion, kubefoundry.ErrInvalid)
	}
	verr := kubefoundry.ValidationError{Object: "variables store " + path}
	maxID := int64(0)
	for name, e := range f.Variables {
		if err := e.check(); err != nil {
			verr.Add("/variables/name="+name, "", "%v", err)
			continue
		}
		for _, v := range e.Versions {
			maxID = max(maxID, v.ID)
		}
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	if f.Variables != nil {
		s.vars = f.Variables
	}
	s.nextID = max(f.NextID, maxID+1)
	return s, nil
}

// migrate reads a format-1 store: every value becomes the one version of
// a variable of unknown type and origin.
func (s *Store) migrate(top map[string]json.RawMessage) error {
	for _, name := range slices.Sorted(maps.Keys(top)) {
		var v any
		if err := json.Unmarshal(top[name], &v); err != nil {
			return fmt.Errorf("variables store %s: %s: %w", s.path, name, err)
		}
		s.vars[name] = &entry{Origin: originMigrated, Versions: []*version{s.newVersion(v)}}
	}
	return nil
}

func (s *Store) newVersion(value any) *version {
	v := &version{ID: s.nextID, Value: value, Created: time.Now().UTC().Truncate(time.Second)}
	s.nextID++
	return v
}

// String names the store and how many values it holds, never a value.
func (s *Store) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("variables.Store{%s: %d values}", s.path, len(s.vars))
}

// Get returns a variable's value; a certificate, ssh, rsa or user value is
// a map of its parts (ca, certificate, private_key; public_key...).
//
// For a generated certificate, ca is the PEM bundle of every version of
// the CA that signs it: the active version first, then the transitional
// one during a rotation, in CredHub's order (credhub.certificates.
// concatenate_cas). A generated CA's own certificate is that bundle too,
// so that ((ca.certificate)) used as a trust store follows a rotation;
// its first block is always the one private_key belongs to. A value
// given with Put is returned as given.
func (s *Store) Get(name string) (any, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.vars[name]
	if !ok {
		return nil, false, nil
	}
	return s.value(e), true, nil
}

// value is what Get returns for e.
func (s *Store) value(e *entry) any {
	v := e.active().Value
	m, ok := v.(map[string]any)
	if !ok || e.Origin != originGenerated || e.Type != "certificate" {
		return v
	}
	out := maps.Clone(m)
	if e.isCA() {
		out["certificate"] = bundle(e)
	}
	if ca := e.signerName(); ca != "" {
		if se, ok := s.vars[ca]; ok {
			if b := bundle(se); b != "" {
				out["ca"] = b
			}
		}
	} else if e.isCA() {
		out["ca"] = out["certificate"]
	}
	return out
}

// bundle is the certificates of e's versions, active first, as one PEM
// text; "" when e holds no certificate.
func bundle(e *entry) string {
	var b strings.Builder
	for _, v := range []*version{e.active(), e.transitional()} {
		if v == nil {
			continue
		}
		m, _ := v.Value.(map[string]any)
		c, _ := m["certificate"].(string)
		if c == "" {
			continue
		}
		b.WriteString(c)
		if !strings.HasSuffix(c, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Put sets a variable's value, as a caller provides it (-v, -l). A value
// put is never regenerated: not by Generate, even with update_mode
// converge, nor by a CA rotation; it replaces every version the variable
// had, so it also ends a rotation of that name.
//
// When the store knows the variable's type (Generate declared it, or a
// value of it was put before), the value must have that type's shape (see
// the package documentation); otherwise a *kubefoundry.FieldError at
// /variables/name=... says what is missing and nothing is changed.
func (s *Store) Put(name string, value any) error {
	if name == "" {
		return &kubefoundry.FieldError{Field: "/variables/name", Reason: "a variable needs a name"}
	}
	value, err := plain(value)
	if err != nil {
		return &kubefoundry.FieldError{Field: "/variables/name=" + name, Reason: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	typ := ""
	if e, ok := s.vars[name]; ok {
		typ = e.Type
		if err := checkShape(typ, value); err != nil {
			return &kubefoundry.FieldError{Field: "/variables/name=" + name, Reason: err.Error()}
		}
	}
	return s.change(func() (bool, error) {
		s.vars[name] = &entry{Type: typ, Origin: originPut, Versions: []*version{s.newVersion(value)}}
		return true, nil
	})
}

// plain turns a YAML node into the plain value it holds, so that it is
// stored as the value rather than as a node.
func plain(v any) (any, error) {
	var n *yaml.Node
	switch x := v.(type) {
	case *yaml.Node:
		n = x
	case yaml.Node:
		n = &x
	default:
		return v, nil
	}
	if n == nil {
		return nil, nil
	}
	var out any
	if err := n.Decode(&out); err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	return out, nil
}

// change runs f, under s.mu, and saves the store when f reports a
// change. When f reports none, or the store cannot be written, the store
// is as it was before f, whatever f did to it.
func (s *Store) change(f func() (bool, error)) error {
	vars, nextID := make(map[string]*entry, len(s.vars)), s.nextID
	for k, e := range s.vars {
		vars[k] = e.clone()
	}
	changed, err := f()
	if changed {
		if serr := s.save(); serr != nil {
			changed, err = false, serr
		}
	}
	if !changed {
		s.vars, s.nextID = vars, nextID
	}
	return err
}

func (s *Store) save() error {
	b, err := json.MarshalIndent(fileFormat{Format: formatVersion, NextID: s.nextID, Variables: s.vars}, "", "  ")
	if err != nil {
		return fmt.Errorf("variables store %s: %w", s.path, err)
	}
	return s.be.Save(b)
}

// fileBackend is a store in a file of mode 0600, replaced whole (written
// to a temporary file, synced, renamed) on every change.
type fileBackend string

func (f fileBackend) String() string { return string(f) }

func (f fileBackend) Load() ([]byte, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func (f fileBackend) Save(b []byte) error {
	path := string(f)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".variables-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
