package variables

import (
	"bytes"
	"crypto/md5" //nolint:gosec // BOSH's ssh variables carry the MD5 fingerprint ssh-keygen -l -E md5 prints
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// The update modes of a variable, as BOSH passes them to CredHub.
const (
	modeNoOverwrite = "no-overwrite" // the default: a value there is kept
	modeConverge    = "converge"     // regenerated when its type, options or CA changed
	modeOverwrite   = "overwrite"    // regenerated on every Generate
)

// Generate makes the values of the variables the manifest declares, CAs
// before the certificates they sign, and saves them. Every problem is
// reported at once, each at its /variables/name=... path; what can be
// generated still is, and is kept.
//
// A variable the store does not hold is generated. One it holds is kept,
// unless Generate generated it (not Put) and its update_mode says
// otherwise, as BOSH asks CredHub:
//
//   - no-overwrite (or none): kept, even when the manifest's options are
//     no longer those it was generated with.
//   - converge: regenerated when its type or options differ from those it
//     was generated with, or, for a certificate, when the active version
//     of its CA is not the one that signed it (the CA was regenerated or
//     put since). CAs go first, so a CA regenerated here takes its
//     converging certificates with it.
//   - overwrite: regenerated every time.
//
// A value given with Put is never regenerated, whatever the mode: BOSH
// does not replace a value it did not generate. It is checked against
// the declared type's shape instead, and a value of the wrong shape is a
// problem at its path (and is kept). A CA in the middle of a rotation is
// not regenerated either; a converge or overwrite of one is a problem
// until DropTransitional ends the rotation.
//
// A value read from a store of the first format (which did not record
// how a value came to be) is taken as generated with the options
// declared now, when it has the declared type's shape.
func (s *Store) Generate(defs []manifest.Variable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	verr := kubefoundry.ValidationError{Object: "variables"}
	err := s.change(func() (bool, error) {
		changed := false
		done := map[string]bool{}
		pending := slices.Clone(defs)
		for len(pending) > 0 {
			var next []manifest.Variable
			progress := false
			for _, d := range pending {
				if ca := caOf(d); ca != "" && !done[ca] && declared(defs, ca) {
					next = append(next, d) // its CA first
					continue
				}
				progress = true
				done[d.Name] = true
				if s.ensure(d, &verr) {
					changed = true
				}
			}
			if !progress {
				for _, d := range next {
					verr.Add("/variables/name="+d.Name+"/options/ca", caOf(d), "the CA's chain goes in a circle")
				}
				break
			}
			pending = next
		}
		return changed, nil
	})
	if err != nil {
		return err
	}
	return verr.Err()
}

// ensure makes d's value what its update mode asks, recording problems
// in verr, and reports whether it changed the store.
func (s *Store) ensure(d manifest.Variable, verr *kubefoundry.ValidationError) bool {
	field := "/variables/name=" + d.Name
	mode := d.UpdateMode
	switch mode {
	case "", modeNoOverwrite, modeConverge, modeOverwrite:
	default:
		verr.Add(field+"/update_mode", mode, "want %s, %s or %s", modeNoOverwrite, modeConverge, modeOverwrite)
		return false
	}
	opts, err := normalize(d.Options)
	if err != nil {
		verr.Add(field+"/options", "", "%v", err)
		return false
	}
	e, ok := s.vars[d.Name]
	if !ok {
		v, err := s.generated(string(d.Type), opts)
		if err != nil {
			verr.Add(field, "", "%v", err)
			return false
		}
		s.vars[d.Name] = &entry{Type: string(d.Type), Origin: originGenerated, Options: opts, Versions: []*version{v}}
		return true
	}

	switch e.Origin {
	case originPut:
		if err := checkShape(string(d.Type), e.active().Value); err != nil {
			verr.Add(field, "", "the value put: %v", err)
		}
		if e.Type != string(d.Type) {
			e.Type = string(d.Type)
			return true
		}
		return false
	case originMigrated:
		a := e.active()
		if err := checkShape(string(d.Type), a.Value); err != nil {
			verr.Add(field, "", "the value in the store: %v", err)
			return false
		}
		e.Origin, e.Type, e.Options = originGenerated, string(d.Type), opts
		if se, ok := s.vars[caOf(d)]; ok && signs(se.active(), a) {
			a.SignerID = se.active().ID
		}
		return true
	}

	var why string
	switch mode {
	case modeOverwrite:
		why = "update_mode is overwrite"
	case modeConverge:
		why = s.stale(e, string(d.Type), opts)
	}
	if why == "" {
		return false
	}
	if e.transitional() != nil {
		verr.Add(field, "", "%s, but the CA is in the middle of a rotation (%s): end it with DropTransitional first", why, e.Rotation)
		return false
	}
	v, err := s.generated(string(d.Type), opts)
	if err != nil {
		verr.Add(field, "", "%s, and regenerating it failed: %v", why, err)
		return false
	}
	e.Type, e.Options, e.Versions = string(d.Type), opts, []*version{v}
	return true
}

// stale says why a generated value no longer matches its declaration
// under converge, or "" when it does.
func (s *Store) stale(e *entry, typ string, opts map[string]any) string {
	if e.Type != typ {
		return fmt.Sprintf("its type changed from %s to %s", e.Type, typ)
	}
	if !sameOptions(e.Options, opts) {
		return "its options changed"
	}
	if ca := e.signerName(); ca != "" && typ == string(manifest.VariableCertificate) {
		if se, ok := s.vars[ca]; ok && se.active().ID != e.active().SignerID {
			return fmt.Sprintf("its CA %q changed", ca)
		}
	}
	return ""
}

// normalize copies options into the form they are stored in (JSON's:
// numbers are float64, lists []any), so that options compare the same
// before and after a store is written and read.
func normalize(o manifest.Map) (map[string]any, error) {
	if len(o) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// sameOptions compares two sets of options by their JSON, in which map
// keys are sorted.
func sameOptions(a, b map[string]any) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	ja, erra := json.Marshal(a)
	jb, errb := json.Marshal(b)
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}

func declared(defs []manifest.Variable, name string) bool {
	return slices.ContainsFunc(defs, func(d manifest.Variable) bool { return d.Name == name })
}

func caOf(d manifest.Variable) string {
	ca, _ := d.Options["ca"].(string)
	return ca
}

// generated is a new version of a variable of type typ.
func (s *Store) generated(typ string, o map[string]any) (*version, error) {
	var (
		value    any
		signerID int64
		err      error
	)
	switch typ {
	case "password":
		value, err = password(intOption(o, "length", 20))
	case "user":
		value, err = user(o)
	case "rsa":
		var key *rsa.PrivateKey
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err == nil {
			value = map[string]any{"private_key": pemKey(key), "public_key": pemPublic(&key.PublicKey)}
		}
	case "ssh":
		var key *rsa.PrivateKey
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err == nil {
			pub, fp := sshPublicKey(&key.PublicKey)
			value = map[string]any{"private_key": pemKey(key), "public_key": pub, "public_key_fingerprint": fp}
		}
	case "certificate":
		value, signerID, err = s.certificate(o)
	default:
		err = fmt.Errorf("type %q: want password, user, certificate, ssh or rsa", typ)
	}
	if err != nil {
		return nil, err
	}
	v := s.newVersion(value)
	v.SignerID = signerID
	return v, nil
}

func user(o map[string]any) (any, error) {
	pw, err := password(intOption(o, "length", 20))
	if err != nil {
		return nil, err
	}
	name, _ := o["username"].(string)
	if name == "" {
		if name, err = password(20); err != nil {
			return nil, err
		}
	}
	return map[string]any{"username": name, "password": pw}, nil
}

func intOption(o map[string]any, key string, def int) int {
	switch v := o[key].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return def
}

const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func password(n int) (string, error) {
	if n < 8 || n > 1024 {
		return "", fmt.Errorf("options.length %d: want 8 to 1024", n)
	}
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		r, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b[i] = alphabet[r.Int64()]
	}
	return string(b), nil
}

func pemKey(key *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}

func pemPublic(pub *rsa.PublicKey) string {
	b, _ := x509.MarshalPKIXPublicKey(pub)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: b}))
}

// sshPublicKey writes pub as an authorized_keys line and its MD5
// fingerprint, as ssh-keygen does (RFC 4253's ssh-rsa wire format).
func sshPublicKey(pub *rsa.PublicKey) (string, string) {
	var wire []byte
	str := func(b []byte) {
		wire = binary.BigEndian.AppendUint32(wire, uint32(len(b)))
		wire = append(wire, b...)
	}
	mpint := func(n *big.Int) {
		b := n.Bytes()
		if len(b) > 0 && b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		str(b)
	}
	str([]byte("ssh-rsa"))
	mpint(big.NewInt(int64(pub.E)))
	mpint(pub.N)
	sum := md5.Sum(wire) //nolint:gosec
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02x", b)
	}
	return "ssh-rsa " + base64.StdEncoding.EncodeToString(wire), strings.Join(hexes, ":")
}

// certificate makes a certificate value from its options, signed by the
// active version of options.ca (whose version ID it returns) or by
// itself.
func (s *Store) certificate(o map[string]any) (map[string]any, int64, error) {
	isCA, _ := o["is_ca"].(bool)
	cn, _ := o["common_name"].(string)
	days := intOption(o, "duration", 365)
	if days <= 0 {
		return nil, 0, fmt.Errorf("options.duration %d: want a positive number of days", days)
	}
	org := "kubefoundry"
	if v, ok := o["organization"]; ok {
		if org, _ = v.(string); org == "" {
			return nil, 0, fmt.Errorf("options.organization %v: want a non-empty string", v)
		}
	}
	tpl := &x509.Certificate{
		Subject:  pkix.Name{CommonName: cn, Organization: []string{org}},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if isCA {
		tpl.IsCA, tpl.BasicConstraintsValid = true, true
		tpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	for _, n := range stringsOf(o["alternative_names"]) {
		if ip := net.ParseIP(n); ip != nil {
			tpl.IPAddresses = append(tpl.IPAddresses, ip)
		} else {
			tpl.DNSNames = append(tpl.DNSNames, n)
		}
	}
	for _, u := range stringsOf(o["extended_key_usage"]) {
		switch u {
		case "server_auth":
			tpl.ExtKeyUsage = append(tpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		case "client_auth":
			tpl.ExtKeyUsage = append(tpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		default:
			return nil, 0, fmt.Errorf("options.extended_key_usage %q: want server_auth or client_auth", u)
		}
	}
	var (
		signer    = tpl
		signerKey any
		signerID  int64
		caPEM     string
	)
	ca, _ := o["ca"].(string)
	if ca != "" {
		e, ok := s.vars[ca]
		if !ok {
			return nil, 0, fmt.Errorf("options.ca %q: no such variable", ca)
		}
		a := e.active()
		caCert, caKey, err := parseCA(a.Value)
		if err != nil {
			return nil, 0, fmt.Errorf("options.ca %q: %w", ca, err)
		}
		signer, signerKey, signerID = caCert, caKey, a.ID
		caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}))
	} else if !isCA {
		return nil, 0, errors.New("options: a certificate needs a ca, or is_ca: true")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, 0, err
	}
	if signerKey == nil {
		signerKey = key
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, 0, err
	}
	now := time.Now()
	tpl.SerialNumber = serial
	tpl.NotBefore, tpl.NotAfter = now.Add(-time.Minute), now.AddDate(0, 0, days)
	der, err := x509.CreateCertificate(rand.Reader, tpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, 0, err
	}
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if caPEM == "" {
		caPEM = cert // a self-signed CA is its own
	}
	return map[string]any{"ca": caPEM, "certificate": cert, "private_key": pemKey(key)}, signerID, nil
}

func stringsOf(v any) []string {
	var out []string
	switch l := v.(type) {
	case []any:
		for _, e := range l {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = l
	}
	return out
}
