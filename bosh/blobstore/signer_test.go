package blobstore

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

const (
	vectorSecret = "mefq0umpmwevpv034m890j34m0j0-9!fijm434j99j034mjrwjmv9m304mj90;2ef32buf32gbu2i3"
	vectorID     = "0ca907f2-dde8-4413-a304-9076c9d0978b"
)

var vectorTime = time.Date(2019, 8, 26, 11, 11, 0, 0, time.UTC) // 1566817860

// TestSignKnownVector checks the signature against bosh-davcli's own
// test vector (signer/signer_test.go: secret, "fake-object-id", "get",
// 2019-08-26T11:11:00Z, 15m -> st=BxLKZK_...&ts=1566817860&e=900), and a
// URL of a real id against one computed apart:
//
//	printf 'GET0d/<id>1566817860900' | openssl dgst -sha256 -hmac <secret> -binary | base64 | tr '+/' '-_' | tr -d =
func TestSignKnownVector(t *testing.T) {
	s, err := NewSigner(vectorSecret)
	require.NoError(t, err)

	// davcli signs the object it is given; its test gives a bare name.
	assert.Equal(t, "BxLKZK_dTSLyBis1pAjdwq4aYVrJvXX6vvLpdCClGYo", s.signature("GET", "fake-object-id", "1566817860", "900"))
	require.NoError(t, s.Check("GET", "fake-object-id", "BxLKZK_dTSLyBis1pAjdwq4aYVrJvXX6vvLpdCClGYo", "1566817860", "900", vectorTime.Add(15*time.Minute)))

	got, err := s.Sign("https://blobstore.example:25250/", vectorID, "get", vectorTime, 15*time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "https://blobstore.example:25250/signed/0d/"+vectorID+"?st=0hkXhccbCnw1yJNEwKOqLssIkM8xePnAd3o-HqiB8XY&ts=1566817860&e=900", got)
	assert.NotContains(t, s.String(), vectorSecret)
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v %v %+v %#v", s, s, s, *s, *s, *s), vectorSecret)
}

func TestSignRefuses(t *testing.T) {
	s, err := NewSigner(vectorSecret)
	require.NoError(t, err)
	_, err = s.Sign("ftp://x", "../x", "DELETE", vectorTime, time.Millisecond)
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"verb", "id", "ttl", "endpoint"}, fields)

	_, err = NewSigner("short")
	assert.True(t, kubefoundry.IsInvalid(err))
	_, err = NewSigner(strings.Repeat("s", MinSecretLength-1))
	assert.True(t, kubefoundry.IsInvalid(err))
	s, err = NewSigner(strings.Repeat("s", MinSecretLength))
	require.NoError(t, err, "the shortest secret allowed")

	// The shortest life is a second.
	u, err := s.Sign("https://h", "x", "PUT", vectorTime, time.Second)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(u, "&e=1"), u)
	_, err = s.Sign("https://h", "x", "PUT", vectorTime, time.Second-time.Nanosecond)
	require.ErrorAs(t, err, &ve)
	// An endpoint with a path keeps it, as davcli's does.
	u, err = s.Sign("https://h/blobs/", "x", "GET", vectorTime, time.Minute)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(u, "https://h/blobs/signed/"+PrefixedID("x")+"?st="), u)
	for _, bad := range []string{"https://u:p@h", "https://h?x=1", "https://h#f", "h", "https://"} {
		_, err = s.Sign(bad, "x", "GET", vectorTime, time.Minute)
		var fe *kubefoundry.FieldError
		require.ErrorAs(t, err, &fe, bad)
		assert.Equal(t, "endpoint", fe.Field, bad)
		assert.NotContains(t, err.Error(), "u:p", bad)
	}
}

func TestCheck(t *testing.T) {
	s, err := NewSigner(vectorSecret)
	require.NoError(t, err)
	other, err := NewSigner(vectorSecret + "x")
	require.NoError(t, err)
	obj := PrefixedID(vectorID)
	sign := func(s *Signer, verb string) url.Values {
		u, err := s.Sign("https://h", vectorID, verb, vectorTime, time.Hour)
		require.NoError(t, err)
		pu, err := url.Parse(u)
		require.NoError(t, err)
		return pu.Query()
	}
	// signed makes the query of a signature over ts and e as given.
	signed := func(ts, e string) url.Values {
		return url.Values{"st": {s.signature("GET", obj, ts, e)}, "ts": {ts}, "e": {e}}
	}
	get, put, head := sign(s, "GET"), sign(s, "PUT"), sign(s, "HEAD")
	in := vectorTime.Add(30 * time.Minute)

	tests := []struct {
		name, verb, obj string
		q               url.Values
		at              time.Time
		why             error // nil: allowed
	}{
		{"GET", "GET", obj, get, in, nil},
		{"GET at the first second", "GET", obj, get, vectorTime, nil},
		{"GET at the last second", "GET", obj, get, vectorTime.Add(time.Hour), nil},
		{"HEAD with a GET signature", "HEAD", obj, get, in, nil},
		{"HEAD with a HEAD signature", "HEAD", obj, head, in, nil},
		{"PUT", "PUT", obj, put, in, nil},
		{"PUT with a GET signature", "PUT", obj, get, in, errBadSig},
		{"PUT with a HEAD signature", "PUT", obj, head, in, errBadSig},
		{"GET with a PUT signature", "GET", obj, put, in, errBadSig},
		{"GET with a HEAD signature", "GET", obj, head, in, errBadSig},
		{"HEAD with a PUT signature", "HEAD", obj, put, in, errBadSig},
		{"expired", "GET", obj, get, vectorTime.Add(time.Hour + time.Second), errExpired},
		{"signed a minute ahead", "GET", obj, get, vectorTime.Add(-time.Minute), nil},
		{"signed more than a minute ahead", "GET", obj, get, vectorTime.Add(-time.Minute - time.Second), errNotYet},
		{"signed in the future", "GET", obj, get, vectorTime.Add(-time.Hour), errNotYet},
		{"another blob", "GET", PrefixedID("other"), get, in, errBadSig},
		{"another secret", "GET", obj, sign(other, "GET"), in, errBadSig},
		{"unsigned", "GET", obj, url.Values{}, in, errUnsigned},
		{"no st", "GET", obj, with(get, "st", ""), in, errUnsigned},
		{"no ts", "GET", obj, with(get, "ts", ""), in, errUnsigned},
		{"no e", "GET", obj, with(get, "e", ""), in, errUnsigned},
		{"tampered signature", "GET", obj, with(get, "st", "A"+get.Get("st")[1:]), in, errBadSig},
		{"padded signature", "GET", obj, with(get, "st", get.Get("st")+"="), in, errBadSig},
		{"longer life", "GET", obj, with(get, "e", "36000"), in.Add(2 * time.Hour), errBadSig},
		{"later start", "GET", obj, with(get, "ts", "1566817861"), in, errBadSig},
		{"ts spelt otherwise", "GET", obj, with(get, "ts", "01566817860"), in, errBadForm},
		{"e spelt otherwise", "GET", obj, with(get, "e", "+3600"), in, errBadForm},
		{"ts not a number", "GET", obj, with(get, "ts", "x"), in, errBadForm},
		{"e not a number", "GET", obj, with(get, "e", "x"), in, errBadForm},
		{"e zero, signed", "GET", obj, signed("1566817860", "0"), in, errBadForm},
		{"e negative, signed", "GET", obj, signed("1566817860", "-1"), in, errBadForm},
		{"e one, at its second", "GET", obj, signed("1566817860", "1"), vectorTime.Add(time.Second), nil},
		{"e one, a second later", "GET", obj, signed("1566817860", "1"), vectorTime.Add(2 * time.Second), errExpired},
		{"ts zero, signed", "GET", obj, signed("0", "9999999999"), in, errBadForm},
		{"ts one, signed", "GET", obj, signed("1", "9999999999"), in, nil},
		{"signature not base64", "GET", obj, with(get, "st", "!!!"), in, errBadSig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Check(tc.verb, tc.obj, tc.q.Get("st"), tc.q.Get("ts"), tc.q.Get("e"), tc.at)
			if tc.why == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, kubefoundry.ErrForbidden)
			assert.ErrorIs(t, err, tc.why, "the reason logged")
		})
	}
}

// A ts far in the past must not wrap around now - ts into a URL that
// never expires, even when it is signed.
func TestCheckNegativeTS(t *testing.T) {
	s, err := NewSigner(vectorSecret)
	require.NoError(t, err)
	for _, ts := range []int64{math.MinInt64, -1} {
		obj, tss, e := PrefixedID(vectorID), strconv.FormatInt(ts, 10), "900"
		err := s.Check("GET", obj, s.signature("GET", obj, tss, e), tss, e, vectorTime)
		assert.ErrorIs(t, err, kubefoundry.ErrForbidden, ts)
		assert.ErrorIs(t, err, errBadForm, ts)
	}
}

func with(q url.Values, k, v string) url.Values {
	c := url.Values{}
	for key, vs := range q {
		c[key] = append([]string(nil), vs...)
	}
	c.Set(k, v)
	return c
}
