package kube

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// Validity defaults, as kubeadm uses them.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
)

// ErrInvalidCert is wrapped by errors about certificates and keys.
var ErrInvalidCert = errors.New("invalid certificate or key")

// CA is a certificate authority. Its key never appears in String or logs.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// KeyPair is an issued certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// String names the CA without its key.
func (ca *CA) String() string {
	return fmt.Sprintf("CA{%s, expires %s}", ca.Cert.Subject.CommonName, ca.Cert.NotAfter.Format(time.RFC3339))
}

// String names the certificate without its key.
func (kp *KeyPair) String() string {
	return fmt.Sprintf("KeyPair{%s, expires %s}", kp.Cert.Subject.CommonName, kp.Cert.NotAfter.Format(time.RFC3339))
}

// NewCA creates a self-signed CA with an ECDSA P-256 key, through
// client-go's certutil as kubeadm does.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: commonName}, key)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", commonName, err)
	}
	if validity > 0 && validity != CAValidity {
		// certutil fixes ten years; re-sign with the asked validity.
		cert, err = sign(&x509.Certificate{
			Subject:               pkix.Name{CommonName: commonName},
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}, nil, key.Public(), key, validity)
		if err != nil {
			return nil, err
		}
	}
	return &CA{Cert: cert, Key: key}, nil
}

// ServingSpec describes a serving certificate.
type ServingSpec struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	Validity   time.Duration // zero means CertValidity
}

// APIServerSANs are the subject alternative names the kube-apiserver needs:
// the load balancer VIP and node IPs given, the first IP of the service
// range, loopback, and the in-cluster DNS names.
func APIServerSANs(serviceIP net.IP, clusterDomain string, ips []net.IP, dnsNames []string) ServingSpec {
	if clusterDomain == "" {
		clusterDomain = "cluster.local"
	}
	s := ServingSpec{
		CommonName: "kube-apiserver",
		DNSNames: append([]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc." + clusterDomain, "localhost"}, dnsNames...),
		IPs: append([]net.IP{net.ParseIP("127.0.0.1")}, ips...),
	}
	if serviceIP != nil {
		s.IPs = append(s.IPs, serviceIP)
	}
	return s
}

// IssueServing issues a server certificate.
func (ca *CA) IssueServing(s ServingSpec) (*KeyPair, error) {
	if s.CommonName == "" || (len(s.DNSNames) == 0 && len(s.IPs) == 0) {
		return nil, fmt.Errorf("serving certificate needs a common name and at least one SAN: %w", ErrInvalidCert)
	}
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: s.CommonName},
		DNSNames:    slices.Compact(slices.Clone(s.DNSNames)),
		IPAddresses: s.IPs,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, s.Validity)
}

// IssueClient issues a client certificate for user in groups: the
// Kubernetes API server reads the user from the common name and the groups
// from the organizations.
func (ca *CA) IssueClient(user string, groups []string, validity time.Duration) (*KeyPair, error) {
	if user == "" {
		return nil, fmt.Errorf("client certificate needs a user: %w", ErrInvalidCert)
	}
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, validity)
}

func (ca *CA) issue(tmpl *x509.Certificate, validity time.Duration) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = CertValidity
	}
	if end := ca.Cert.NotAfter; time.Now().Add(validity).After(end) {
		validity = time.Until(end) // never outlive the CA
	}
	cert, err := sign(tmpl, ca.Cert, key.Public(), ca.Key, validity)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", tmpl.Subject.CommonName, err)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// sign signs tmpl with signer; a nil parent makes it self-signed.
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-5 * time.Minute).UTC() // tolerate clock skew
	tmpl.NotAfter = now.Add(validity).UTC()
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

// PKI is the set of authorities and keys of one cluster.
type PKI struct {
	ClusterCA    *CA             // signs the API server, kubelets and users
	FrontProxyCA *CA             // signs the aggregation layer's client
	EtcdCA       *CA             // signs etcd peers, servers and clients
	ServiceKey   *rsa.PrivateKey // signs service account tokens
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
