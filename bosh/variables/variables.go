package variables

import (
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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// Store holds a deployment's variables, generated or given, in a JSON
// file (mode 0600) written whole on every change. It implements
// opsfile.Vars and is safe for concurrent use.
type Store struct {
	path   string
	mu     sync.Mutex
	values map[string]any
}

// Open reads the store at path, or starts an empty one there.
func Open(path string) (*Store, error) {
	s := &Store{path: path, values: map[string]any{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &s.values); err != nil {
		return nil, fmt.Errorf("variables store %s: %w", path, err)
	}
	return s, nil
}

// String names the store and how many values it holds, never a value.
func (s *Store) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("variables.Store{%s: %d values}", s.path, len(s.values))
}

// Get returns a variable's value; a certificate, ssh, rsa or user value is
// a map of its parts (ca, certificate, private_key; public_key...).
func (s *Store) Get(name string) (any, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[name]
	return v, ok, nil
}

// Put sets a variable's value, as a caller provides it (-v, -l).
func (s *Store) Put(name string, value any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[name] = value
	return s.save()
}

func (s *Store) save() error {
	b, err := json.MarshalIndent(s.values, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".variables-*")
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
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.path)
}

// Generate makes the values of the variables the manifest declares that
// the store does not hold yet (a value there, generated or given, is
// kept), CAs before the certificates they sign, and saves them. Every
// problem is reported at once, each at its /variables/name=... path.
func (s *Store) Generate(defs []manifest.Variable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	verr := kubefoundry.ValidationError{Object: "variables"}
	pending := slices.Clone(defs)
	changed := false
	for len(pending) > 0 {
		var next []manifest.Variable
		progress := false
		for _, d := range pending {
			if _, ok := s.values[d.Name]; ok {
				progress = true
				continue
			}
			if ca := caOf(d); ca != "" {
				if _, ok := s.values[ca]; !ok && declared(defs, ca) {
					next = append(next, d) // its CA first
					continue
				}
			}
			v, err := s.generate(d)
			if err != nil {
				verr.Add("/variables/name="+d.Name, "", "%v", err)
			} else {
				s.values[d.Name] = v
				changed = true
			}
			progress = true
		}
		if !progress {
			for _, d := range next {
				verr.Add("/variables/name="+d.Name+"/options/ca", caOf(d), "the CA's chain goes in a circle")
			}
			break
		}
		pending = next
	}
	if changed {
		if err := s.save(); err != nil {
			return err
		}
	}
	return verr.Err()
}

func declared(defs []manifest.Variable, name string) bool {
	return slices.ContainsFunc(defs, func(d manifest.Variable) bool { return d.Name == name })
}

func caOf(d manifest.Variable) string {
	ca, _ := d.Options["ca"].(string)
	return ca
}

func (s *Store) generate(d manifest.Variable) (any, error) {
	switch string(d.Type) {
	case "password":
		return password(intOption(d.Options, "length", 20))
	case "user":
		pw, err := password(intOption(d.Options, "length", 20))
		if err != nil {
			return nil, err
		}
		user, _ := d.Options["username"].(string)
		if user == "" {
			if user, err = password(20); err != nil {
				return nil, err
			}
		}
		return map[string]any{"username": user, "password": pw}, nil
	case "rsa":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return map[string]any{"private_key": pemKey(key), "public_key": pemPublic(&key.PublicKey)}, nil
	case "ssh":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		pub, fp := sshPublicKey(&key.PublicKey)
		return map[string]any{"private_key": pemKey(key), "public_key": pub, "public_key_fingerprint": fp}, nil
	case "certificate":
		return s.certificate(d)
	}
	return nil, fmt.Errorf("type %q: want password, user, certificate, ssh or rsa", d.Type)
}

func intOption(o manifest.Map, key string, def int) int {
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

func (s *Store) certificate(d manifest.Variable) (any, error) {
	o := d.Options
	isCA, _ := o["is_ca"].(bool)
	cn, _ := o["common_name"].(string)
	days := intOption(o, "duration", 365)
	if days <= 0 {
		return nil, fmt.Errorf("options.duration %d: want a positive number of days", days)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"kubefoundry"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.AddDate(0, 0, days),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
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
			return nil, fmt.Errorf("options.extended_key_usage %q: want server_auth or client_auth", u)
		}
	}
	signer, signerKey := tpl, any(key)
	caPEM := ""
	if ca := caOf(d); ca != "" {
		v, ok := s.values[ca]
		if !ok {
			return nil, fmt.Errorf("options.ca %q: no such variable", ca)
		}
		caCert, caKey, err := parseCA(v)
		if err != nil {
			return nil, fmt.Errorf("options.ca %q: %w", ca, err)
		}
		signer, signerKey = caCert, caKey
		caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}))
	} else if !isCA {
		return nil, errors.New("options: a certificate needs a ca, or is_ca: true")
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, err
	}
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if caPEM == "" {
		caPEM = cert // a self-signed CA is its own
	}
	return map[string]any{"ca": caPEM, "certificate": cert, "private_key": pemKey(key)}, nil
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

// parseCA reads a certificate variable's value as a CA and its key.
func parseCA(v any) (*x509.Certificate, any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, nil, errors.New("not a certificate")
	}
	certPEM, _ := m["certificate"].(string)
	keyPEM, _ := m["private_key"].(string)
	cb, _ := pem.Decode([]byte(certPEM))
	kb, _ := pem.Decode([]byte(keyPEM))
	if cb == nil || kb == nil {
		return nil, nil, errors.New("no certificate and private key in PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !cert.IsCA {
		return nil, nil, errors.New("not a CA (is_ca)")
	}
	if key, err := x509.ParsePKCS1PrivateKey(kb.Bytes); err == nil {
		return cert, key, nil
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		if ec, eerr := x509.ParseECPrivateKey(kb.Bytes); eerr == nil {
			return cert, ec, nil
		}
		return nil, nil, err
	}
	return cert, key, nil
}
