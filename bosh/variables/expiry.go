package variables

import (
	"maps"
	"slices"
	"time"

	"github.com/kubefoundry/kubefoundry"
)

// Expiry is one certificate version and when it stops being valid.
type Expiry struct {
	// Name is the variable.
	Name string
	// NotAfter is the end of the certificate's validity.
	NotAfter time.Time
	// CA is the variable of the CA that signed it: options.ca of a
	// generated certificate, its own name for a self-signed one, and ""
	// when the store does not know (a value put, signed elsewhere).
	CA string
	// IsCA tells CAs from the certificates they sign.
	IsCA bool
	// Transitional marks the transitional version of a CA in rotation.
	Transitional bool
}

// Expiring lists the certificates that stop being valid within the
// given time from now (those already expired too), every version of
// each (the transitional CA of a rotation as well), soonest first; as
// "tkgi certificates --expires-within" lists them. A value of type
// certificate that cannot be read is a problem at its path, reported
// after the list of the others.
func (s *Store) Expiring(within time.Duration) ([]Expiry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := time.Now().Add(within)
	verr := kubefoundry.ValidationError{Object: "variables"}
	var out []Expiry
	for _, name := range slices.Sorted(maps.Keys(s.vars)) {
		e := s.vars[name]
		for _, v := range []*version{e.active(), e.transitional()} {
			if v == nil {
				continue
			}
			c, err := leafOf(v.Value)
			if err != nil {
				if e.Type == "certificate" {
					verr.Add("/variables/name="+name, "", "%v", err)
				}
				continue
			}
			if c.NotAfter.After(limit) {
				continue
			}
			x := Expiry{Name: name, NotAfter: c.NotAfter, CA: e.signerName(), IsCA: c.IsCA, Transitional: v.Transitional}
			if x.CA == "" && c.CheckSignatureFrom(c) == nil {
				x.CA = name
			}
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, func(a, b Expiry) int { return a.NotAfter.Compare(b.NotAfter) })
	return out, verr.Err()
}
