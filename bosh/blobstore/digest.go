package blobstore

import (
	"crypto/sha1" //nolint:gosec // BOSH's multi-digest still carries SHA-1 for old releases
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/kubefoundry/kubefoundry"
)

// Algorithm is a digest algorithm of BOSH's multi-digest.
type Algorithm string

// The algorithms BOSH writes, weakest first.
const (
	SHA1   Algorithm = "sha1"
	SHA256 Algorithm = "sha256"
	SHA512 Algorithm = "sha512"
)

// strength orders the algorithms; 0 is unknown.
func (a Algorithm) strength() int {
	switch a {
	case SHA1:
		return 1
	case SHA256:
		return 2
	case SHA512:
		return 3
	}
	return 0
}

// hexLen is the length of a's sum in hex.
func (a Algorithm) hexLen() int {
	switch a {
	case SHA1:
		return 2 * sha1.Size
	case SHA256:
		return 2 * sha256.Size
	case SHA512:
		return 2 * sha512.Size
	}
	return 0
}

func (a Algorithm) newHash() hash.Hash {
	switch a {
	case SHA1:
		return sha1.New() //nolint:gosec // see import
	case SHA512:
		return sha512.New()
	}
	return sha256.New()
}

// Sum is one algorithm's digest, its hex in lower case.
type Sum struct {
	Algorithm Algorithm
	Hex       string
}

// String is the sum as BOSH writes it: bare hex for SHA-1,
// "<algorithm>:<hex>" for the others.
func (s Sum) String() string {
	if s.Algorithm == SHA1 {
		return s.Hex
	}
	return string(s.Algorithm) + ":" + s.Hex
}

// Digest is a BOSH multi-digest: one or more sums of the same bytes by
// different algorithms, written "sha1hex;sha256:hex;sha512:hex" (any
// subset, in any order). The zero Digest holds no sum and verifies
// nothing. A Digest is an immutable value.
type Digest struct {
	sums []Sum
}

// ParseDigest reads a multi-digest. Each ";"-separated entry is either
// 40 hex digits (SHA-1, as BOSH writes it), or "sha1:", "sha256:" or
// "sha512:" followed by that algorithm's hex. Upper-case hex is accepted
// and written back in lower case. Every problem is reported at once in a
// *kubefoundry.ValidationError (field "digest[i]" for the i-th entry).
func ParseDigest(s string) (Digest, error) {
	var verr kubefoundry.ValidationError
	verr.Object = "blobstore.Digest"
	if strings.TrimSpace(s) == "" {
		verr.Add("digest", "", "empty; want e.g. \"sha256:<64 hex digits>\"")
		return Digest{}, verr.Err()
	}
	var d Digest
	seen := map[Algorithm]bool{}
	for i, entry := range strings.Split(s, ";") {
		field := fmt.Sprintf("digest[%d]", i)
		entry = strings.TrimSpace(entry)
		alg, hx, found := strings.Cut(entry, ":")
		if !found {
			alg, hx = string(SHA1), entry
		}
		a := Algorithm(strings.ToLower(alg))
		switch {
		case entry == "":
			verr.Add(field, "", "empty entry")
			continue
		case a.strength() == 0:
			verr.Add(field, entry, "unknown algorithm %q; want sha1, sha256 or sha512", alg)
			continue
		case seen[a]:
			verr.Add(field, entry, "a second %s sum", a)
			continue
		}
		hx = strings.ToLower(hx)
		if _, err := hex.DecodeString(hx); err != nil || len(hx) != a.hexLen() {
			verr.Add(field, entry, "want %d hex digits for %s, got %d characters", a.hexLen(), a, len(hx))
			continue
		}
		seen[a] = true
		d.sums = append(d.sums, Sum{Algorithm: a, Hex: hx})
	}
	if err := verr.Err(); err != nil {
		return Digest{}, err
	}
	return d, nil
}

// NewDigest returns a Digest of the given sums, checked as ParseDigest
// checks them.
func NewDigest(sums ...Sum) (Digest, error) {
	s := make([]string, len(sums))
	for i, x := range sums {
		s[i] = string(x.Algorithm) + ":" + x.Hex
	}
	return ParseDigest(strings.Join(s, ";"))
}

// DigestOf reads r to its end and returns its digest by each algorithm
// in algs; SHA-1 and SHA-256 when algs is empty, as BOSH records blobs.
func DigestOf(r io.Reader, algs ...Algorithm) (Digest, error) {
	h, err := newMultiHash(algs)
	if err != nil {
		return Digest{}, err
	}
	if _, err := io.Copy(h, r); err != nil {
		return Digest{}, err
	}
	return h.digest(), nil
}

// Sums returns a copy of the sums in the order they were given.
func (d Digest) Sums() []Sum { return append([]Sum(nil), d.sums...) }

// IsZero reports whether d holds no sum.
func (d Digest) IsZero() bool { return len(d.sums) == 0 }

// Strongest returns the sum by the strongest algorithm d holds, and
// false when d is zero.
func (d Digest) Strongest() (Sum, bool) {
	if len(d.sums) == 0 {
		return Sum{}, false
	}
	best := d.sums[0]
	for _, s := range d.sums[1:] {
		if s.Algorithm.strength() > best.Algorithm.strength() {
			best = s
		}
	}
	return best, true
}

// Get returns the sum by algorithm a, if d holds one.
func (d Digest) Get(a Algorithm) (Sum, bool) {
	for _, s := range d.sums {
		if s.Algorithm == a {
			return s, true
		}
	}
	return Sum{}, false
}

// String is the multi-digest in BOSH's form, the sums joined by ";".
func (d Digest) String() string {
	s := make([]string, len(d.sums))
	for i, x := range d.sums {
		s[i] = x.String()
	}
	return strings.Join(s, ";")
}

// MarshalText writes d as String does; the zero Digest is "".
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads d as ParseDigest does, except that "" is the zero
// Digest, so that what MarshalText wrote reads back. A zero Digest
// verifies nothing: Verify and Client.Download refuse it.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Digest{}
		return nil
	}
	p, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Verify reads r to its end and checks it against the strongest sum d
// holds. A mismatch is a *DigestMismatchError; a zero d is refused.
func (d Digest) Verify(r io.Reader) error {
	v, err := d.verifier()
	if err != nil {
		return err
	}
	if _, err := io.Copy(v, r); err != nil {
		return fmt.Errorf("verify digest: %w", err)
	}
	return v.check()
}

// verifier hashes what is written to it by d's strongest algorithm.
type verifier struct {
	hash.Hash
	want Sum
}

var errNoDigest = fmt.Errorf("%w: no digest to verify against", kubefoundry.ErrInvalid)

func (d Digest) verifier() (*verifier, error) {
	want, ok := d.Strongest()
	if !ok {
		return nil, errNoDigest
	}
	return &verifier{Hash: want.Algorithm.newHash(), want: want}, nil
}

func (v *verifier) check() error {
	got := Sum{Algorithm: v.want.Algorithm, Hex: hex.EncodeToString(v.Sum(nil))}
	if got.Hex != v.want.Hex {
		return &DigestMismatchError{Expected: v.want, Actual: got}
	}
	return nil
}

// DigestMismatchError says that bytes did not have the digest expected,
// naming both.
type DigestMismatchError struct {
	Expected, Actual Sum
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("digest mismatch: expected %s, got %s", qualified(e.Expected), qualified(e.Actual))
}

// qualified always names the algorithm, SHA-1 included, so that an error
// message is never ambiguous.
func qualified(s Sum) string { return string(s.Algorithm) + ":" + s.Hex }

// IsDigestMismatch reports whether err wraps a *DigestMismatchError.
func IsDigestMismatch(err error) bool {
	var m *DigestMismatchError
	return errors.As(err, &m)
}

// multiHash hashes by several algorithms at once.
type multiHash struct {
	algs   []Algorithm
	hashes []hash.Hash
	w      io.Writer
}

func newMultiHash(algs []Algorithm) (*multiHash, error) {
	if len(algs) == 0 {
		algs = []Algorithm{SHA1, SHA256}
	}
	m := &multiHash{}
	ws := make([]io.Writer, 0, len(algs))
	seen := map[Algorithm]bool{}
	for _, a := range algs {
		if a.strength() == 0 {
			return nil, &kubefoundry.FieldError{Field: "algorithm", Value: string(a), Reason: "unknown; want sha1, sha256 or sha512"}
		}
		if seen[a] {
			continue
		}
		seen[a] = true
		h := a.newHash()
		m.algs = append(m.algs, a)
		m.hashes = append(m.hashes, h)
		ws = append(ws, h)
	}
	m.w = io.MultiWriter(ws...)
	return m, nil
}

func (m *multiHash) Write(p []byte) (int, error) { return m.w.Write(p) }

func (m *multiHash) digest() Digest {
	var d Digest
	for i, a := range m.algs {
		d.sums = append(d.sums, Sum{Algorithm: a, Hex: hex.EncodeToString(m.hashes[i].Sum(nil))})
	}
	return d
}
