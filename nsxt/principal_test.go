package nsxt_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// pki is a CA that NSX trusts for principal identities.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "principal-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &pki{cert: cert, key: key}
}

func (p *pki) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.cert)
	return pool
}

// principal issues a client certificate for the principal identity cn,
// as PEM certificate and key.
func (p *pki) principal(t *testing.T, cn string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// asPrincipal writes body at path of the Policy API as the principal
// identity of certPEM and keyPEM, as NCP does with its certificate.
func asPrincipal(t *testing.T, sim *simulator.Server, certPEM, keyPEM, method, path string, body map[string]any) {
	t.Helper()
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	require.NoError(t, err)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	handRequestAs(t, sim, &pair, method, path, rd)
}

// kubefoundry as a principal identity (a client certificate, as NCP and
// TKGI authenticate): what it builds is its own, protected from everyone
// else. An admin's client cannot tear it down (ErrProtected, at once,
// nothing written) unless it overrides (Config.AllowOverwrite); the
// principal rebuilds with no write and tears down the rest.
func TestPrincipalIdentity(t *testing.T) {
	ctx := context.Background()
	ca := newPKI(t)
	sim, err := simulator.New(simulator.Config{ClientCAs: ca.pool()})
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	certPEM, keyPEM := ca.principal(t, "kubefoundry")
	kf, err := nsxt.New(ctx, nsxt.Config{URLs: []string{sim.URL}, ClientCert: certPEM, ClientKey: keyPEM,
		CACert: string(sim.CertificatePEM())}, nsxt.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = kf.Close(context.Background()) })

	topo := topology(sim, "c1", "a", "b")
	_, err = kf.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, "kubefoundry", sim.Object("/infra/tier-1s/kf_c1")["_create_user"])
	again, err := kf.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes, "its own objects are not protected from it")

	admin := newClient(t, sim)
	before, writes := sim.Paths(), sim.Writes()
	_, err = admin.TeardownTopology(ctx, "c1")
	require.ErrorIs(t, err, nsxt.ErrProtected)
	require.ErrorContains(t, err, "createUser=kubefoundry")
	require.Equal(t, writes+1, sim.Writes(), "refused once, not retried")
	require.Equal(t, before, sim.Paths())

	cfg := nsxt.Config{URLs: []string{sim.URL}, Username: sim.Username(), Password: sim.Password(),
		CACert: string(sim.CertificatePEM()), AllowOverwrite: true}
	takeover, err := nsxt.New(ctx, cfg, nsxt.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = takeover.Close(context.Background()) })
	_, err = takeover.TeardownNamespace(ctx, "c1", "b")
	require.NoError(t, err, "an admin who overrides")
	require.Nil(t, sim.Object("/infra/segments/kf_c1_ns_b"))

	topo.Namespaces = []string{"a"}
	again, err = kf.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes)
	_, err = kf.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	requireNothingLeft(t, sim)
}

// A port NCP made on one of the cluster's segments under its own
// principal identity is NCP's (protected, REQUIRE_OVERRIDE to
// kubefoundry), even tagged with the cluster as a CNI's port is: the
// teardown refuses with ErrInUse naming it, and writes nothing; once NCP
// has deleted it, the teardown finishes.
func TestProtectedPortKeepsItsSegment(t *testing.T) {
	ctx := context.Background()
	ca := newPKI(t)
	e := newEnv(t, simulator.Config{ClientCAs: ca.pool()})
	_, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a"))
	require.NoError(t, err)
	ncpCert, ncpKey := ca.principal(t, "ncp")
	const pod = "/infra/segments/kf_c1_ns_a/ports/pod-1"
	asPrincipal(t, e.sim, ncpCert, ncpKey, http.MethodPatch, pod, map[string]any{"resource_type": "SegmentPort",
		"tags": []any{map[string]any{"scope": nsxt.TagCluster, "tag": "c1"}}})
	writes := e.sim.Writes()

	_, err = e.c.TeardownTopology(ctx, "c1")
	require.ErrorIs(t, err, nsxt.ErrInUse)
	require.ErrorContains(t, err, pod+" (protected")
	require.Equal(t, writes, e.sim.Writes(), "nothing written")

	asPrincipal(t, e.sim, ncpCert, ncpKey, http.MethodDelete, pod, nil)
	_, err = e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	requireNothingLeft(t, e.sim)
}
