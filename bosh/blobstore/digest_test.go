package blobstore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

// Known vectors of "abc" (FIPS 180-2), computed apart with sha*sum.
const (
	abcSHA1   = "a9993e364706816aba3e25717850c26c9cd0d89d"
	abcSHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	abcSHA512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
	zeroSHA1  = "0000000000000000000000000000000000000000"
	zero256   = "0000000000000000000000000000000000000000000000000000000000000000"
)

func TestParseDigest(t *testing.T) {
	valid := []struct{ in, out string }{
		{abcSHA1, abcSHA1},
		{"sha1:" + abcSHA1, abcSHA1},
		{"sha256:" + abcSHA256, "sha256:" + abcSHA256},
		{"SHA256:" + strings.ToUpper(abcSHA256), "sha256:" + abcSHA256},
		{"sha512:" + abcSHA512, "sha512:" + abcSHA512},
		{abcSHA1 + ";sha256:" + abcSHA256, abcSHA1 + ";sha256:" + abcSHA256},
		{"sha256:" + abcSHA256 + ";" + abcSHA1 + ";sha512:" + abcSHA512, "sha256:" + abcSHA256 + ";" + abcSHA1 + ";sha512:" + abcSHA512},
	}
	for _, tc := range valid {
		t.Run(tc.in, func(t *testing.T) {
			d, err := ParseDigest(tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.out, d.String())
			again, err := ParseDigest(d.String())
			require.NoError(t, err)
			assert.Equal(t, d, again)
		})
	}

	invalid := []struct {
		name, in string
		fields   []string
	}{
		{"empty", "", []string{"digest"}},
		{"unknown algorithm", "md5:" + abcSHA1, []string{"digest[0]"}},
		{"short sha1", abcSHA1[:39], []string{"digest[0]"}},
		{"sha1 hex as sha256", "sha256:" + abcSHA1, []string{"digest[0]"}},
		{"not hex", "sha256:" + strings.Repeat("g", 64), []string{"digest[0]"}},
		{"empty entry", abcSHA1 + ";", []string{"digest[1]"}},
		{"duplicate", abcSHA1 + ";sha1:" + abcSHA1, []string{"digest[1]"}},
		{"every problem at once", "md5:x;sha256:12;" + abcSHA1, []string{"digest[0]", "digest[1]"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDigest(tc.in)
			require.Error(t, err)
			assert.True(t, kubefoundry.IsInvalid(err))
			var ve *kubefoundry.ValidationError
			require.ErrorAs(t, err, &ve)
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.Field)
			}
			assert.Equal(t, tc.fields, got)
		})
	}
}

func TestDigestOfKnownVectors(t *testing.T) {
	d, err := DigestOf(strings.NewReader("abc"), SHA1, SHA256, SHA512)
	require.NoError(t, err)
	assert.Equal(t, abcSHA1+";sha256:"+abcSHA256+";sha512:"+abcSHA512, d.String())

	d, err = DigestOf(strings.NewReader("abc"))
	require.NoError(t, err)
	assert.Equal(t, abcSHA1+";sha256:"+abcSHA256, d.String(), "SHA-1 and SHA-256 by default")

	_, err = DigestOf(strings.NewReader("abc"), "md5")
	assert.True(t, kubefoundry.IsInvalid(err))
}

func TestDigestVerify(t *testing.T) {
	tests := []struct {
		name     string
		digest   string
		mismatch bool
	}{
		{"sha1", abcSHA1, false},
		{"sha256", "sha256:" + abcSHA256, false},
		{"sha512", "sha512:" + abcSHA512, false},
		{"all three", abcSHA1 + ";sha256:" + abcSHA256 + ";sha512:" + abcSHA512, false},
		// The strongest algorithm decides: a wrong weaker sum is not read,
		// a wrong stronger sum is.
		{"good sha256, wrong sha1", zeroSHA1 + ";sha256:" + abcSHA256, false},
		{"good sha1, wrong sha256", abcSHA1 + ";sha256:" + zero256, true},
		{"wrong sha1", zeroSHA1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDigest(tc.digest)
			require.NoError(t, err)
			err = d.Verify(strings.NewReader("abc"))
			if !tc.mismatch {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, IsDigestMismatch(err))
			var m *DigestMismatchError
			require.ErrorAs(t, err, &m)
			want, _ := d.Strongest()
			assert.Equal(t, want, m.Expected)
			assert.Contains(t, err.Error(), want.Hex, "names the expected digest")
			assert.Contains(t, err.Error(), m.Actual.Hex, "names the actual digest")
			assert.Contains(t, []string{abcSHA1, abcSHA256}, m.Actual.Hex)
		})
	}

	err := Digest{}.Verify(strings.NewReader("abc"))
	assert.True(t, kubefoundry.IsInvalid(err), "a zero digest verifies nothing")
	assert.True(t, Digest{}.IsZero())
	_, ok := Digest{}.Strongest()
	assert.False(t, ok)
	d, err := ParseDigest(abcSHA1)
	require.NoError(t, err)
	assert.False(t, d.IsZero())
}

func TestDigestText(t *testing.T) {
	var d Digest
	require.NoError(t, d.UnmarshalText([]byte("sha256:"+abcSHA256)))
	b, err := d.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "sha256:"+abcSHA256, string(b))
	assert.Error(t, d.UnmarshalText([]byte("nope")))
	assert.Equal(t, "sha256:"+abcSHA256, d.String(), "a failed unmarshal leaves d as it was")

	// In JSON, as a release's or a package spec's digest travels; the
	// zero Digest reads back as itself.
	type spec struct {
		Digest Digest `json:"digest"`
	}
	for _, in := range []spec{{Digest: d}, {}} {
		b, err := json.Marshal(in)
		require.NoError(t, err)
		var out spec
		require.NoError(t, json.Unmarshal(b, &out), string(b))
		assert.Equal(t, in, out)
	}
	var out spec
	require.Error(t, json.Unmarshal([]byte(`{"digest":"md5:00"}`), &out))

	_, err = NewDigest(Sum{Algorithm: SHA1, Hex: abcSHA1}, Sum{Algorithm: "md4", Hex: "00"})
	assert.True(t, errors.Is(err, kubefoundry.ErrInvalid))
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{abcSHA1, "sha256:" + abcSHA256, abcSHA1 + ";sha512:" + abcSHA512, "", ";", "sha1:", ":x", "sha256:" + abcSHA1} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			if !kubefoundry.IsInvalid(err) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := ParseDigest(d.String())
		if err != nil || again.String() != d.String() {
			t.Fatalf("%q -> %q does not read back: %v", s, d.String(), err)
		}
	})
}
