package blobstore

import (
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // the DAV layout's prefix is the first byte of the id's SHA-1
	"encoding/hex"
	"fmt"

	"github.com/kubefoundry/kubefoundry"
)

// MaxIDLength bounds a blob id.
const MaxIDLength = 128

// NewID returns a random blob id: a version 4 UUID in its usual
// 8-4-4-4-12 form, as the director names blobs.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ValidateID checks that id can name a blob: 1 to MaxIDLength characters
// of ASCII letters, digits, '-', '_' and '.', not starting with '.'. So
// no id holds a path separator, is "." or "..", or names a temporary
// file. A bad id is a *kubefoundry.FieldError (field "id").
func ValidateID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return &kubefoundry.FieldError{Field: "id", Value: truncate(id), Reason: fmt.Sprintf("want 1 to %d characters", MaxIDLength)}
	}
	if id[0] == '.' {
		return &kubefoundry.FieldError{Field: "id", Value: truncate(id), Reason: "must not start with '.'"}
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return &kubefoundry.FieldError{Field: "id", Value: truncate(id), Reason: fmt.Sprintf("character %q at %d; want letters, digits, '-', '_' or '.'", c, i)}
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Prefix is the directory a blob lives in under the DAV layout: the first
// byte of the SHA-1 of its id, in two hex digits, as bosh-davcli computes
// it. The blob's path is Prefix(id) + "/" + id.
func Prefix(id string) string {
	sum := sha1.Sum([]byte(id)) //nolint:gosec // a layout, not security
	return hex.EncodeToString(sum[:1])
}

// PrefixedID is Prefix(id) + "/" + id: the blob's path in the store, the
// object a signed URL names.
func PrefixedID(id string) string { return Prefix(id) + "/" + id }
