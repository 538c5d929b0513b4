package blobstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kubefoundry/kubefoundry"
)

// MinSecretLength is the shortest signing secret NewSigner accepts.
const MinSecretLength = 16

// Signer makes and checks the signed URLs of BOSH's DAV blobstore, as
// bosh-davcli's signer makes them and the director's nginx
// (ngx_http_hmac_secure_link_module, secure_link_hmac_message
// "$request_method$object_id$arg_ts$arg_e") checks them:
//
//	<endpoint>/signed/<prefix>/<id>?st=<signature>&ts=<unix time>&e=<seconds>
//
// where signature is the unpadded URL-safe base64 of HMAC-SHA256(secret,
// VERB + "<prefix>/<id>" + ts + e), ts and e in decimal, and the URL is
// good while now <= ts + e. A Signer is safe for concurrent use.
type Signer struct {
	secret []byte
}

// NewSigner returns a Signer with secret, which must be at least
// MinSecretLength bytes.
func NewSigner(secret string) (*Signer, error) {
	if len(secret) < MinSecretLength {
		return nil, &kubefoundry.FieldError{Field: "secret", Reason: fmt.Sprintf("want at least %d bytes, got %d", MinSecretLength, len(secret))}
	}
	return &Signer{secret: []byte(secret)}, nil
}

// String redacts the secret.
func (s Signer) String() string { return "blobstore.Signer{secret: REDACTED}" }

// GoString redacts the secret from %#v too.
func (s Signer) GoString() string { return s.String() }

// signable reports whether a URL may be signed for verb: GET (which HEAD
// may also use) and HEAD for reading, PUT for uploading.
func signable(verb string) bool { return verb == "GET" || verb == "HEAD" || verb == "PUT" }

// Sign returns the URL under endpoint (the blobstore's base URL,
// "https://10.0.0.6:25250") that allows verb ("GET", "HEAD" or "PUT", in
// any case) on blob id from now for ttl, rounded down to whole seconds
// (at least one).
func (s *Signer) Sign(endpoint, id, verb string, now time.Time, ttl time.Duration) (string, error) {
	var verr kubefoundry.ValidationError
	verr.Object = "blobstore signed URL"
	verb = strings.ToUpper(verb)
	if !signable(verb) {
		verr.Add("verb", verb, "want GET, HEAD or PUT")
	}
	if err := ValidateID(id); err != nil {
		verr.Merge("", err)
	}
	e := int64(ttl / time.Second)
	if e < 1 {
		verr.Add("ttl", ttl.String(), "want at least 1s")
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		verr.Add("endpoint", redactURL(endpoint), "want an absolute http(s) URL without credentials, query or fragment")
	}
	if err := verr.Err(); err != nil {
		return "", err
	}
	obj := PrefixedID(id)
	ts := now.Unix()
	return fmt.Sprintf("%s/signed/%s?st=%s&ts=%d&e=%d", strings.TrimSuffix(endpoint, "/"), obj,
		s.signature(verb, obj, strconv.FormatInt(ts, 10), strconv.FormatInt(e, 10)), ts, e), nil
}

func (s *Signer) signature(verb, obj, ts, e string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(verb, obj, ts, e))
}

// mac is HMAC-SHA256(secret, verb + obj + ts + e), nginx's
// "$request_method$object_id$arg_ts$arg_e".
func (s *Signer) mac(verb, obj, ts, e string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(verb + obj + ts + e))
	return m.Sum(nil)
}

// The reasons Check refuses a request. The server logs them and answers
// every one the same way.
var (
	errUnsigned = errors.New("no signature")
	errBadSig   = errors.New("signature does not match")
	errExpired  = errors.New("expired")
	errNotYet   = errors.New("signed in the future")
	errBadForm  = errors.New("malformed ts or e")
)

// Check reports whether the signature st with ts and e allows verb on
// the object "<prefix>/<id>" at now. HEAD is allowed by a GET signature
// too (nginx wants a HEAD signature; bosh-davcli signs only GET and
// PUT). Check is stricter than nginx where nginx is lax: e must be at
// least 1 (nginx reads 0 as "forever"), ts and e must be spelt as
// FormatInt spells them, and ts (at least 1, as for nginx) may not be
// more than a minute ahead of now. The error says why not, for logs; it wraps
// kubefoundry.ErrForbidden.
func (s *Signer) Check(verb, obj, st, ts, e string, now time.Time) error {
	err := s.check(verb, obj, st, ts, e, now)
	if err != nil {
		return fmt.Errorf("%w: %w", kubefoundry.ErrForbidden, err)
	}
	return nil
}

func (s *Signer) check(verb, obj, st, ts, e string, now time.Time) error {
	if st == "" || ts == "" || e == "" {
		return errUnsigned
	}
	tsN, err1 := strconv.ParseInt(ts, 10, 64)
	eN, err2 := strconv.ParseInt(e, 10, 64)
	// The canonical spelling only: the signature covers the text, and a
	// second spelling of the same number must not pass as another URL.
	// ts is at least 1, as nginx wants it; a negative one could also
	// overflow now - ts below.
	if err1 != nil || err2 != nil || tsN < 1 || eN < 1 || strconv.FormatInt(tsN, 10) != ts || strconv.FormatInt(eN, 10) != e {
		return errBadForm
	}
	got, err := base64.RawURLEncoding.DecodeString(st)
	if err != nil {
		return errBadSig
	}
	ok := hmac.Equal(got, s.mac(verb, obj, ts, e))
	if verb == http.MethodHead {
		ok = ok || hmac.Equal(got, s.mac(http.MethodGet, obj, ts, e))
	}
	if !ok {
		return errBadSig
	}
	switch n := now.Unix(); {
	case tsN > n+maxClockSkew:
		return errNotYet
	case n-tsN > eN:
		return errExpired
	}
	return nil
}

// maxClockSkew is how far in the future a signature's ts may be, for a
// director whose clock runs ahead of the server's.
const maxClockSkew = 60
