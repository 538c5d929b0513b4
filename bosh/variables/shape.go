package variables

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// checkShape says what a value lacks to be a value of type typ, as BOSH
// consumes it; nil when it has the shape or typ is unknown ("" or a type
// this store does not generate, which Generate reports on its own).
func checkShape(typ string, v any) error {
	var want []string
	switch typ {
	case "password":
		if s, ok := v.(string); !ok || s == "" {
			return fmt.Errorf("a password is a non-empty string, not %s", describe(v))
		}
		return nil
	case "user":
		want = []string{"username", "password"}
	case "rsa", "ssh":
		want = []string{"private_key", "public_key"}
	case "certificate":
		want = []string{"ca", "certificate", "private_key"}
	default:
		return nil
	}
	m, ok := stringMap(v)
	if !ok {
		return fmt.Errorf("a %s value is a map of %s, not %s", typ, strings.Join(want, ", "), describe(v))
	}
	var missing []string
	for _, k := range want {
		if m[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("a %s value needs %s (strings): %s missing or empty", typ, strings.Join(want, ", "), strings.Join(missing, ", "))
	}
	switch typ {
	case "rsa", "ssh":
		if _, err := parseKey(m["private_key"]); err != nil {
			return fmt.Errorf("private_key: %w", err)
		}
	case "certificate":
		certs, err := parseCerts(m["certificate"])
		if err != nil {
			return fmt.Errorf("certificate: %w", err)
		}
		if _, err := parseCerts(m["ca"]); err != nil {
			return fmt.Errorf("ca: %w", err)
		}
		key, err := parseKey(m["private_key"])
		if err != nil {
			return fmt.Errorf("private_key: %w", err)
		}
		pub, ok := key.(crypto.Signer)
		if !ok {
			return errors.New("private_key: not a signing key")
		}
		if eq, ok := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(pub.Public()) {
			return errors.New("private_key is not the key of the certificate")
		}
	}
	return nil
}

// stringMap reads a map of strings from the forms a value comes in
// (decoded JSON or YAML, a Go map of strings); non-string entries are
// left out.
func stringMap(v any) (map[string]string, bool) {
	out := map[string]string{}
	switch m := v.(type) {
	case map[string]string:
		return m, true
	case map[string]any:
		for k, e := range m {
			if s, ok := e.(string); ok {
				out[k] = s
			}
		}
	case manifest.Map:
		for k, e := range m {
			if s, ok := e.(string); ok {
				out[k] = s
			}
		}
	default:
		return nil, false
	}
	return out, true
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		if v == "" {
			return "an empty string"
		}
		return "a string"
	}
	return fmt.Sprintf("a %T", v)
}

// parseCerts reads the certificates of a PEM text: at least one, and
// nothing but certificates.
func parseCerts(text string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a PEM block of type %q, not CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// parseKey reads a PEM private key: PKCS #1, PKCS #8 or SEC 1 (EC).
func parseKey(text string) (any, error) {
	b, _ := pem.Decode([]byte(text))
	if b == nil {
		return nil, errors.New("no PEM private key")
	}
	if key, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return key, nil
	}
	if key, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return key, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PEM block %q is not a PKCS #1, PKCS #8 or EC private key", b.Type)
	}
	return key, nil
}

// parseCA reads a certificate variable's value as a CA and its key.
func parseCA(v any) (*x509.Certificate, any, error) {
	m, ok := stringMap(v)
	if !ok {
		return nil, nil, errors.New("not a certificate")
	}
	certs, err := parseCerts(m["certificate"])
	if err != nil {
		return nil, nil, err
	}
	if !certs[0].IsCA {
		return nil, nil, errors.New("not a CA (is_ca)")
	}
	key, err := parseKey(m["private_key"])
	if err != nil {
		return nil, nil, err
	}
	return certs[0], key, nil
}

// leafOf is the (first) certificate of a certificate value.
func leafOf(v any) (*x509.Certificate, error) {
	m, ok := stringMap(v)
	if !ok {
		return nil, errors.New("not a certificate value")
	}
	certs, err := parseCerts(m["certificate"])
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// signs reports whether the certificate of version ca signed that of
// version leaf.
func signs(ca, leaf *version) bool {
	c, err1 := leafOf(ca.Value)
	l, err2 := leafOf(leaf.Value)
	return err1 == nil && err2 == nil && slices.Equal(l.RawIssuer, c.RawSubject) && l.CheckSignatureFrom(c) == nil
}
