package mbus

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/kubefoundry/kubefoundry"
)

// Certificate names on the bus. The bus maps a client certificate's DNS
// name to its user (NATS verify_and_map), so the name is the identity.
const (
	// DirectorName is the DNS name in the director's client certificate.
	DirectorName    = "director.bosh-internal"
	agentNameSuffix = ".agent.bosh-internal"
)

// AgentName is the DNS name in an agent's client certificate:
// <agent-id>.agent.bosh-internal.
func AgentName(agentID string) string { return agentID + agentNameSuffix }

// certValidity is how long issued certificates are valid.
const certValidity = 5 * 365 * 24 * time.Hour

// CA issues the bus's certificates: the server's, the director's and each
// agent's. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// NewCA generates a self-signed CA (ECDSA P-256) named commonName.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mbus: generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("mbus: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("mbus: parse CA certificate: %w", err)
	}
	return &CA{cert: cert, key: key, certPEM: pemBlock("CERTIFICATE", der)}, nil
}

// LoadCA reads a CA from its PEM certificate and PEM private key (PKCS#8,
// SEC 1 EC; the key must be ECDSA). A certificate that is not a CA, or a key
// that does not match it, is refused as invalid.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	var ve kubefoundry.ValidationError
	cb, _ := pem.Decode(certPEM)
	var cert *x509.Certificate
	if cb == nil || cb.Type != "CERTIFICATE" {
		ve.Add("certPEM", "", "no PEM CERTIFICATE block")
	} else if c, err := x509.ParseCertificate(cb.Bytes); err != nil {
		ve.Add("certPEM", "", "%v", err)
	} else if !c.IsCA {
		ve.Add("certPEM", c.Subject.String(), "not a CA certificate")
	} else {
		cert = c
	}
	var key *ecdsa.PrivateKey
	kb, _ := pem.Decode(keyPEM)
	switch {
	case kb == nil:
		ve.Add("keyPEM", "", "no PEM block")
	default:
		if k, err := x509.ParseECPrivateKey(kb.Bytes); err == nil {
			key = k
		} else if k, err := x509.ParsePKCS8PrivateKey(kb.Bytes); err == nil {
			if ek, ok := k.(*ecdsa.PrivateKey); ok {
				key = ek
			} else {
				ve.Add("keyPEM", "", "key is %T, want ECDSA", k)
			}
		} else {
			ve.Add("keyPEM", "", "not an EC or PKCS#8 private key")
		}
	}
	if cert != nil && key != nil && !key.PublicKey.Equal(cert.PublicKey) {
		ve.Add("keyPEM", "", "key does not match the certificate")
	}
	if err := ve.Err(); err != nil {
		ve.Object = "mbus.CA"
		return nil, err
	}
	return &CA{cert: cert, key: key, certPEM: append([]byte(nil), certPEM...)}, nil
}

// CertPEM returns the CA certificate in PEM.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Issue makes a client certificate for the DNS name (DirectorName,
// AgentName(id)) and returns it with the CA as Credentials.
func (ca *CA) Issue(name string) (Credentials, error) {
	certPEM, keyPEM, err := ca.issue([]string{name}, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{CAPEM: ca.CertPEM(), CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// issueServer makes the bus's server certificate for the IPs and names.
func (ca *CA) issueServer(ips []net.IP, names ...string) (tls.Certificate, error) {
	certPEM, keyPEM, err := ca.issue(names, ips, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// issue makes a certificate for the DNS names (the first is also its common
// name) and IPs, with a new key.
func (ca *CA) issue(dns []string, ips []net.IP, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("mbus: generate key: %w", err)
	}
	cn := dns[0]
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dns,
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("mbus: issue certificate for %q: %w", cn, err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("mbus: marshal key: %w", err)
	}
	return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", kder), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}

// Credentials are what a client presents on the bus: the CA that signs the
// server's certificate, and the client's own certificate and key (all PEM).
// Without CertPEM the client connects without a certificate, which the
// embedded bus refuses.
type Credentials struct {
	CAPEM   []byte
	CertPEM []byte
	KeyPEM  []byte
}

// String redacts the key.
func (c Credentials) String() string {
	key := "none"
	if len(c.KeyPEM) > 0 {
		key = "[redacted]"
	}
	return fmt.Sprintf("mbus.Credentials{CA: %d bytes, Cert: %d bytes, Key: %s}", len(c.CAPEM), len(c.CertPEM), key)
}

// GoString redacts the key in %#v too.
func (c Credentials) GoString() string { return c.String() }

// tlsConfig is the client TLS configuration for c. Verification of the
// server is always on: with CAPEM against it, otherwise against the system
// roots.
func (c Credentials) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(c.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CAPEM) {
			return nil, &kubefoundry.FieldError{Field: "CAPEM", Reason: "no PEM certificate in it"}
		}
		cfg.RootCAs = pool
	}
	if len(c.CertPEM) > 0 || len(c.KeyPEM) > 0 {
		pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			return nil, &kubefoundry.FieldError{Field: "CertPEM", Reason: err.Error()}
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
