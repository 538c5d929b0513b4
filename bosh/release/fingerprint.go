package release

import (
	"crypto/sha1" //nolint:gosec // BOSH's fingerprints and release.MF digests are SHA-1 unless made with --sha2
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"slices"
	"strings"
)

// Algorithm is the digest algorithm of a release's fingerprints and
// tarball digests: SHA-1, BOSH's default, or SHA-256 (bosh create-release
// --sha2).
type Algorithm int

// The algorithms.
const (
	SHA1 Algorithm = iota
	SHA256
)

func (a Algorithm) String() string {
	if a == SHA256 {
		return "sha256"
	}
	return "sha1"
}

func (a Algorithm) new() hash.Hash {
	if a == SHA256 {
		return sha256.New()
	}
	return sha1.New() //nolint:gosec
}

// format writes a sum as BOSH does: hex for SHA-1, "sha256:" and hex for
// SHA-256.
func (a Algorithm) format(sum []byte) string {
	if a == SHA256 {
		return "sha256:" + hex.EncodeToString(sum)
	}
	return hex.EncodeToString(sum)
}

// Digest is the digest of data in BOSH's form for the algorithm: 40 hex
// digits for SHA-1, "sha256:" and 64 hex digits for SHA-256.
func (a Algorithm) Digest(data []byte) string {
	h := a.new()
	h.Write(data)
	return a.format(h.Sum(nil))
}

func (a Algorithm) digestReader(r io.Reader) (string, error) {
	h := a.new()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return a.format(h.Sum(nil)), nil
}

// The modes a fingerprint records for a file: git's, from the executable
// bit alone, so that a checkout's umask does not change fingerprints.
const (
	ModeRegular    = "100644"
	ModeExecutable = "100755"
)

// FingerprintEntry is one file as a fingerprint counts it.
type FingerprintEntry struct {
	// Path is the file's path in the job or package tarball (job.MF for a
	// job's spec, templates/<src> for a template, packaging, a package
	// file's path under src/ or blobs/); a license file's base name.
	Path string
	// Digest is the file's digest in BOSH's form for the algorithm.
	Digest string
	// Mode is ModeRegular or ModeExecutable, or "" where the mode does
	// not count: a package's packaging script and the license's files.
	Mode string
}

// Fingerprint computes a job's, package's or license's fingerprint as
// bosh-cli (v7) does. The entries are sorted by Path (byte order); the
// string hashed is
//
//	"v2" + Path₁ + Digest₁ + Mode₁ + Path₂ + Digest₂ + Mode₂ + … + strings.Join(sorted(extra), ",")
//
// and the fingerprint is its digest with the algorithm, in hex without
// a "sha256:" prefix. extra is a package's dependencies (names) and empty
// for jobs and the license. With SHA-256 each Digest is "sha256:<hex>",
// as bosh create-release --sha2 computes it.
//
// What each kind counts:
//
//	job      job.MF (the spec's bytes), monit, properties_schema.json when present, templates/<src> for each template; with modes
//	package  packaging without a mode; each file the spec's globs select, with its path under src/ or blobs/ and its mode; dependencies as extra
//	license  LICENSE* and NOTICE* by base name, without modes
func Fingerprint(alg Algorithm, entries []FingerprintEntry, extra []string) string {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b FingerprintEntry) int { return strings.Compare(a.Path, b.Path) })
	var b strings.Builder
	b.WriteString("v2")
	for _, e := range sorted {
		b.WriteString(e.Path)
		b.WriteString(e.Digest)
		b.WriteString(e.Mode)
	}
	if len(extra) > 0 {
		x := slices.Clone(extra)
		slices.Sort(x)
		b.WriteString(strings.Join(x, ","))
	}
	return strings.TrimPrefix(alg.Digest([]byte(b.String())), "sha256:")
}
