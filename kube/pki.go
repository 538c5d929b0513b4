package kube

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"time"

	"github.com/kubefoundry/kubefoundry"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// Validities as kubeadm chooses them. Every validity this package takes
// must be positive; zero or less is refused (a *kubefoundry.ValidationError
// that also wraps ErrInvalidCert), never turned into a default or into a
// certificate that has already expired: pass these for kubeadm's.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
)

// certBackdate is how long before it is made a CA's validity starts, as
// kubeadm's CertificateBackdate: a node whose clock is a little behind
// still accepts it. Certificates start then too, but never before their
// CA.
const certBackdate = 5 * time.Minute

// ErrInvalidCert is wrapped by errors about certificates and keys.
var ErrInvalidCert = errors.New("invalid certificate or key")

// CA is a certificate authority. Its key never appears in its String,
// any fmt verb or its JSON (json.Marshal, and so slog's JSON handler,
// zap.Reflect and a journal), which show the certificate only. The key
// leaves a CA only through KeyPEM(ca.Key), for the store that keeps it
// encrypted at rest; ParseCA reads the two PEMs back.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// KeyPair is an issued certificate with its private key. As a CA's, its
// key never appears in its String, any fmt verb or its JSON; KeyPEM is
// the way out.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// String names the CA without its key.
func (ca CA) String() string { return "CA" + certString(ca.Cert) }

// GoString is String: %#v must not print the key either.
func (ca CA) GoString() string { return ca.String() }

// Format prints String whatever the verb.
func (ca CA) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, ca.String()) }

// MarshalJSON writes the CA's certificate, in PEM, and "[redacted]" for
// its key.
func (ca CA) MarshalJSON() ([]byte, error) { return json.Marshal(newCertJSON(ca.Cert, ca.Key)) }

// String names the certificate without its key.
func (kp KeyPair) String() string { return "KeyPair" + certString(kp.Cert) }

// GoString is String: %#v must not print the key either.
func (kp KeyPair) GoString() string { return kp.String() }

// Format prints String whatever the verb.
func (kp KeyPair) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, kp.String()) }

// MarshalJSON writes the certificate, in PEM, and "[redacted]" for its
// key.
func (kp KeyPair) MarshalJSON() ([]byte, error) { return json.Marshal(newCertJSON(kp.Cert, kp.Key)) }

func certString(c *x509.Certificate) string {
	if c == nil {
		return "{}"
	}
	return fmt.Sprintf("{%s, expires %s}", c.Subject.CommonName, c.NotAfter.Format(time.RFC3339))
}

// certJSON is a certificate and its key as CA and KeyPair marshal them.
type certJSON struct {
	CommonName  string    `json:"commonName,omitempty"`
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	Certificate string    `json:"certificate,omitempty"` // PEM
	Key         string    `json:"key,omitempty"`         // redacted
}

func newCertJSON(c *x509.Certificate, key crypto.Signer) certJSON {
	var j certJSON
	if c != nil {
		j = certJSON{CommonName: c.Subject.CommonName, NotBefore: c.NotBefore, NotAfter: c.NotAfter, Certificate: string(CertPEM(c))}
	}
	if key != nil {
		j.Key = redacted
	}
	return j
}

// NewCA creates a self-signed CA with an ECDSA P-256 key, through
// client-go's certutil as kubeadm does, valid from a few minutes ago (for
// clocks a little behind) for validity, which must be positive (CAValidity
// is kubeadm's ten years). Its certificate has a subject key identifier,
// which the certificates it issues name as their authority key
// identifier.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if err := checkValidity(fmt.Sprintf("CA %q", commonName), validity, "CAValidity is kubeadm's ten years"); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var cert *x509.Certificate
	if validity == CAValidity {
		cert, err = certutil.NewSelfSignedCACert(certutil.Config{CommonName: commonName, NotBefore: now.Add(-certBackdate)}, key)
	} else {
		// certutil fixes ten years.
		cert, err = sign(&x509.Certificate{
			Subject:               pkix.Name{CommonName: commonName},
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}, nil, key.Public(), key, now.Add(-certBackdate), now.Add(validity))
	}
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", commonName, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// checkValidity refuses a validity that is not positive, as a problem of
// the field "validity" of object.
func checkValidity(object string, validity time.Duration, hint string) error {
	if validity > 0 {
		return nil
	}
	v := &kubefoundry.ValidationError{Object: object}
	v.Add("validity", validity.String(), "must be positive (%s)", hint)
	return &invalidCertError{v}
}

// invalidCertError is a *kubefoundry.ValidationError about a certificate;
// it wraps ErrInvalidCert too.
type invalidCertError struct{ v *kubefoundry.ValidationError }

func (e *invalidCertError) Error() string   { return e.v.Error() }
func (e *invalidCertError) Unwrap() []error { return []error{e.v, ErrInvalidCert} }

// ServingSpec describes a serving certificate.
type ServingSpec struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	// Validity must be positive; CertValidity is kubeadm's year, which
	// APIServerSANs sets.
	Validity time.Duration
}

// APIServerSANs are the subject alternative names the kube-apiserver needs:
// the load balancer VIP and node IPs given, the first IP of the service
// range, loopback, and the in-cluster DNS names; Validity is CertValidity.
func APIServerSANs(serviceIP net.IP, clusterDomain string, ips []net.IP, dnsNames []string) ServingSpec {
	if clusterDomain == "" {
		clusterDomain = "cluster.local"
	}
	s := ServingSpec{
		CommonName: "kube-apiserver",
		DNSNames: append([]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc." + clusterDomain, "localhost"}, dnsNames...),
		IPs:      append([]net.IP{net.ParseIP("127.0.0.1")}, ips...),
		Validity: CertValidity,
	}
	if serviceIP != nil {
		s.IPs = append(s.IPs, serviceIP)
	}
	return s
}

// IssueServing issues a server certificate. A spec without a common
// name, without a subject alternative name or without a positive validity
// is refused, every problem at once.
func (ca *CA) IssueServing(s ServingSpec) (*KeyPair, error) {
	v := &kubefoundry.ValidationError{Object: fmt.Sprintf("serving certificate %q", s.CommonName)}
	if s.CommonName == "" {
		v.Object = "serving certificate"
		v.Add("commonName", "", "required")
	}
	if len(s.DNSNames) == 0 && len(s.IPs) == 0 {
		v.Add("dnsNames", "", "at least one DNS name or IP address required")
	}
	if s.Validity <= 0 {
		v.Add("validity", s.Validity.String(), "must be positive (CertValidity is kubeadm's year)")
	}
	if v.Err() != nil {
		return nil, &invalidCertError{v}
	}
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: s.CommonName},
		DNSNames:    slices.Compact(slices.Clone(s.DNSNames)),
		IPAddresses: s.IPs,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, s.Validity)
}

// IssueClient issues a client certificate for user in groups, valid for
// validity, which must be positive (CertValidity is kubeadm's year): the
// Kubernetes API server reads the user from the common name and the groups
// from the organizations.
func (ca *CA) IssueClient(user string, groups []string, validity time.Duration) (*KeyPair, error) {
	if user == "" {
		return nil, fmt.Errorf("client certificate needs a user: %w", ErrInvalidCert)
	}
	if err := checkValidity(fmt.Sprintf("client certificate %q", user), validity, "CertValidity is kubeadm's year"); err != nil {
		return nil, err
	}
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, validity)
}

// issue signs tmpl for a new key, valid from a few minutes ago (for
// clocks a little behind) but never before the CA, until validity from
// now but never after the CA. A CA that has expired issues nothing.
func (ca *CA) issue(tmpl *x509.Certificate, validity time.Duration) (*KeyPair, error) {
	now := time.Now()
	if !now.Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("issue %s: CA %s expired at %s: %w", tmpl.Subject.CommonName, ca.Cert.Subject.CommonName,
			ca.Cert.NotAfter.Format(time.RFC3339), ErrInvalidCert)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-certBackdate)
	if notBefore.Before(ca.Cert.NotBefore) {
		notBefore = ca.Cert.NotBefore
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if tmpl.SubjectKeyId, err = keyID(key.Public()); err != nil {
		return nil, fmt.Errorf("issue %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := sign(tmpl, ca.Cert, key.Public(), ca.Key, notBefore, notAfter)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", tmpl.Subject.CommonName, err)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// keyID is a subject key identifier of pub: the SHA-256 of its bits,
// truncated to 160 bits (RFC 7093, section 2, method 1), as Go makes the
// identifiers of CAs. (x509.CreateCertificate makes none for a leaf.)
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm        pkix.AlgorithmIdentifier
		SubjectPublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki.SubjectPublicKey.Bytes)
	return sum[:20], nil
}

// sign signs tmpl, valid from notBefore until notAfter, with signer; a
// nil parent makes it self-signed. x509.CreateCertificate gives a CA a
// subject key identifier, and a certificate with a parent that has one
// that identifier as its authority key identifier.
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = notBefore.UTC()
	tmpl.NotAfter = notAfter.UTC()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// CertPEM encodes a certificate.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certutil.CertificateBlockType, Bytes: c.Raw})
}

// KeyPEM encodes a private key. The result is a secret.
func KeyPEM(k crypto.Signer) ([]byte, error) {
	return keyutil.MarshalPrivateKeyToPEM(k)
}

// ParseCA reads a CA from PEM certificate and key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCert, err)
	}
	k, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCert, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !certs[0].IsCA {
		return nil, fmt.Errorf("%w: not a CA certificate and signing key", ErrInvalidCert)
	}
	return &CA{Cert: certs[0], Key: signer}, nil
}

// PKI is the set of authorities and keys of one cluster. No key appears
// in its JSON; KeyPEM is the way out for each.
type PKI struct {
	ClusterCA    *CA             // signs the API server, kubelets and users
	FrontProxyCA *CA             // signs the aggregation layer's client
	EtcdCA       *CA             // signs etcd peers, servers and clients
	ServiceKey   *rsa.PrivateKey // signs service account tokens
}

// MarshalJSON writes the authorities as CA.MarshalJSON does, and
// "[redacted]" for the service-account key.
func (p PKI) MarshalJSON() ([]byte, error) {
	var serviceKey string
	if p.ServiceKey != nil {
		serviceKey = redacted
	}
	return json.Marshal(struct {
		ClusterCA    *CA    `json:"clusterCA"`
		FrontProxyCA *CA    `json:"frontProxyCA"`
		EtcdCA       *CA    `json:"etcdCA"`
		ServiceKey   string `json:"serviceKey,omitempty"`
	}{p.ClusterCA, p.FrontProxyCA, p.EtcdCA, serviceKey})
}

// NewPKI creates a cluster's authorities and service-account key.
func NewPKI(cluster string) (*PKI, error) {
	p := &PKI{}
	var err error
	if p.ClusterCA, err = NewCA(cluster+"-ca", CAValidity); err != nil {
		return nil, err
	}
	if p.FrontProxyCA, err = NewCA(cluster+"-front-proxy-ca", CAValidity); err != nil {
		return nil, err
	}
	if p.EtcdCA, err = NewCA(cluster+"-etcd-ca", CAValidity); err != nil {
		return nil, err
	}
	if p.ServiceKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	return p, nil
}

// Expiring is one certificate that ends within the asked horizon.
type Expiring struct {
	Name     string
	NotAfter time.Time
	Left     time.Duration // negative once expired
}

// ExpiryReport lists the certificates of certs that expire within horizon,
// soonest first, as TKGI's `certificates --expiring-within` does.
func ExpiryReport(certs map[string]*x509.Certificate, horizon time.Duration, now time.Time) []Expiring {
	var out []Expiring
	for name, c := range certs {
		if left := c.NotAfter.Sub(now); left <= horizon {
			out = append(out, Expiring{Name: name, NotAfter: c.NotAfter, Left: left})
		}
	}
	slices.SortFunc(out, func(a, b Expiring) int { return a.NotAfter.Compare(b.NotAfter) })
	return out
}
