package kube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

var (
	env    *kubetest.Environment
	envErr error
	pki    *kube.PKI
)

// TestMain starts one control plane that trusts the cluster CA of pki.
func TestMain(m *testing.M) {
	var err error
	if pki, err = kube.NewPKI("test"); err != nil {
		panic(err)
	}
	env, envErr = kubetest.Start(context.Background(), kubetest.WithClientCA(kube.CertPEM(pki.ClusterCA.Cert)))
	code := m.Run()
	if env != nil {
		env.Stop()
	}
	if code == 0 {
		// Every goroutine of the package (drains, controllers, watches)
		// ends with its context. client-go's idle connections and klog's
		// flush daemon are not ours.
		if err := goleak.Find(
			goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestPKI(t *testing.T) {
	ca := pki.ClusterCA
	assert.True(t, ca.Cert.IsCA)
	assert.Equal(t, "test-ca", ca.Cert.Subject.CommonName)
	assert.NotContains(t, ca.String(), "PRIVATE")
	assert.NotEqual(t, pki.ClusterCA.Cert.Raw, pki.EtcdCA.Cert.Raw)

	spec := kube.APIServerSANs(net.ParseIP("10.96.0.1"), "", []net.IP{net.ParseIP("192.168.10.5")}, []string{"api.c1.example.com"})
	srv, err := ca.IssueServing(spec)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, name := range []string{"kubernetes.default.svc.cluster.local", "api.c1.example.com", "192.168.10.5", "10.96.0.1", "127.0.0.1"} {
		_, err := srv.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		assert.NoError(t, err, name)
	}
	_, err = srv.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.Error(t, err, "a serving certificate is not a client certificate")

	_, err = ca.IssueServing(kube.ServingSpec{CommonName: "x"})
	assert.ErrorIs(t, err, kube.ErrInvalidCert)

	t.Run("PEM round trip", func(t *testing.T) {
		key, err := kube.KeyPEM(ca.Key)
		require.NoError(t, err)
		back, err := kube.ParseCA(kube.CertPEM(ca.Cert), key)
		require.NoError(t, err)
		assert.Equal(t, ca.Cert.Raw, back.Cert.Raw)
		_, err = kube.ParseCA([]byte("junk"), key)
		assert.ErrorIs(t, err, kube.ErrInvalidCert)
		// A certificate and its key that are not a CA's are refused.
		leaf, err := ca.IssueClient("leaf", nil, time.Hour)
		require.NoError(t, err)
		leafKey, err := kube.KeyPEM(leaf.Key)
		require.NoError(t, err)
		_, err = kube.ParseCA(kube.CertPEM(leaf.Cert), leafKey)
		assert.ErrorIs(t, err, kube.ErrInvalidCert, "a client certificate is not a CA")
	})

	t.Run("expiry report", func(t *testing.T) {
		short, err := ca.IssueClient("short", nil, 24*time.Hour)
		require.NoError(t, err)
		certs := map[string]*x509.Certificate{"ca": ca.Cert, "apiserver": srv.Cert, "short": short.Cert}
		rep := kube.ExpiryReport(certs, 30*24*time.Hour, time.Now())
		require.Len(t, rep, 1)
		assert.Equal(t, "short", rep[0].Name)
		rep = kube.ExpiryReport(certs, 400*24*time.Hour, time.Now())
		require.Len(t, rep, 2)
		assert.Equal(t, []string{"short", "apiserver"}, []string{rep[0].Name, rep[1].Name})
		// Within the horizon includes its last instant.
		now := time.Now()
		rep = kube.ExpiryReport(certs, short.Cert.NotAfter.Sub(now), now)
		require.Len(t, rep, 1, "expiring exactly at the horizon")
		assert.Equal(t, "short", rep[0].Name)
	})

	t.Run("a certificate never outlives its CA", func(t *testing.T) {
		small, err := kube.NewCA("small", time.Hour)
		require.NoError(t, err)
		kp, err := small.IssueClient("u", nil, kube.CertValidity)
		require.NoError(t, err)
		assert.False(t, kp.Cert.NotAfter.After(small.Cert.NotAfter))
	})
}

// TestKubeconfigWithKubectl: a kubeconfig with an admin certificate from
// the cluster CA works with the real kubectl against the real API server;
// one from another CA is refused.
func TestKubeconfigWithKubectl(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()

	admin, err := pki.ClusterCA.IssueClient("kf-admin", []string{"system:masters"}, time.Hour)
	require.NoError(t, err)
	cfg, err := kube.Kubeconfig("test", env.Config.Host, env.ServerCA, "kf-admin", admin)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, cfg, 0o600))
	out, err := env.Kubectl(ctx, "--kubeconfig="+path, "get", "namespaces", "-o", "name")
	require.NoError(t, err, string(out))
	assert.Contains(t, strings.Fields(string(out)), "namespace/default")

	rc, err := kube.RESTConfig(cfg)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)

	t.Run("a user without RBAC bindings is authenticated and forbidden", func(t *testing.T) {
		dev, err := pki.ClusterCA.IssueClient("dev", []string{"team-a"}, time.Hour)
		require.NoError(t, err)
		cfg, err := kube.Kubeconfig("test", env.Config.Host, env.ServerCA, "dev", dev)
		require.NoError(t, err)
		rc, err := kube.RESTConfig(cfg)
		require.NoError(t, err)
		_, err = kubernetes.NewForConfigOrDie(rc).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		assert.True(t, apierrors.IsForbidden(err), "%v", err)
	})

	t.Run("a certificate from another CA is refused", func(t *testing.T) {
		other, err := kube.NewCA("other", time.Hour)
		require.NoError(t, err)
		kp, err := other.IssueClient("kf-admin", []string{"system:masters"}, time.Hour)
		require.NoError(t, err)
		cfg, err := kube.Kubeconfig("test", env.Config.Host, env.ServerCA, "kf-admin", kp)
		require.NoError(t, err)
		rc, err := kube.RESTConfig(cfg)
		require.NoError(t, err)
		_, err = kubernetes.NewForConfigOrDie(rc).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		assert.True(t, apierrors.IsUnauthorized(err), "%v", err)
	})
}

// TestValidityMustBePositive: a zero or negative validity is refused,
// naming the certificate and the field, never turned into a default or
// into a certificate that has already expired.
func TestValidityMustBePositive(t *testing.T) {
	ca := pki.ClusterCA
	for _, d := range []time.Duration{0, -time.Hour} {
		for _, tc := range []struct {
			name, object string
			issue        func() error
		}{
			{"NewCA", `CA "zero"`, func() error { _, err := kube.NewCA("zero", d); return err }},
			{"IssueClient", `client certificate "u-zero"`, func() error { _, err := ca.IssueClient("u-zero", nil, d); return err }},
			{"IssueServing", `serving certificate "s-zero"`, func() error {
				_, err := ca.IssueServing(kube.ServingSpec{CommonName: "s-zero", DNSNames: []string{"s"}, Validity: d})
				return err
			}},
			{"StartCARotation", `CA "test-ca"`, func() error { _, err := pki.StartCARotation(d); return err }},
			{"UserKubeconfig", `client certificate "u-zero"`, func() error {
				_, err := kube.UserKubeconfig(ca, "test", "https://127.0.0.1:6443", kube.CertPEM(ca.Cert), "u-zero", nil, d)
				return err
			}},
		} {
			t.Run(fmt.Sprintf("%s %s", tc.name, d), func(t *testing.T) {
				err := tc.issue()
				require.Error(t, err)
				assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
				assert.ErrorIs(t, err, kube.ErrInvalidCert)
				var ve *kubefoundry.ValidationError
				require.ErrorAs(t, err, &ve)
				require.Len(t, ve.Problems, 1)
				assert.Equal(t, "validity", ve.Problems[0].Field)
				assert.Equal(t, d.String(), ve.Problems[0].Value)
				assert.Contains(t, err.Error(), tc.object, "the certificate is named")
			})
		}
	}

	_, err := ca.IssueServing(kube.ServingSpec{})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve, "every problem at once")
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.Equal(t, []string{"commonName", "dnsNames", "validity"}, fields)

	kp, err := ca.IssueClient("u", nil, kube.CertValidity)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(kube.CertValidity), kp.Cert.NotAfter, time.Minute, "CertValidity is the documented default")
	assert.Equal(t, kube.CertValidity, kube.APIServerSANs(nil, "", nil, nil).Validity)
	// The CA was made when the package's tests began, backdated 5 minutes.
	assert.WithinDuration(t, ca.Cert.NotBefore.Add(kube.CAValidity), ca.Cert.NotAfter, 6*time.Minute)
}

// selfSignedCA makes a CA as other tools do (openssl, cfssl): valid from
// notBefore, not backdated by kube.
func selfSignedCA(t *testing.T, cn string, notBefore, notAfter time.Time) *kube.CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &kube.CA{Cert: cert, Key: key}
}

// TestCertificateDates: a CA is backdated a few minutes for clocks a
// little behind, a certificate never starts before its CA nor ends after
// it, and an expired CA issues nothing.
func TestCertificateDates(t *testing.T) {
	now := time.Now()
	fresh, err := kube.NewCA("fresh", kube.CAValidity)
	require.NoError(t, err)
	short, err := kube.NewCA("fresh-short", time.Hour)
	require.NoError(t, err)
	// As another tool makes it: valid from this second on.
	exact := selfSignedCA(t, "exact", now.Truncate(time.Second), now.Add(time.Hour))

	for _, ca := range []*kube.CA{fresh, short, exact, pki.ClusterCA} {
		t.Run(ca.Cert.Subject.CommonName, func(t *testing.T) {
			client, err := ca.IssueClient("u", nil, kube.CertValidity)
			require.NoError(t, err)
			serving, err := ca.IssueServing(kube.ServingSpec{CommonName: "s", DNSNames: []string{"s"}, Validity: kube.CertValidity})
			require.NoError(t, err)
			for _, kp := range []*kube.KeyPair{client, serving} {
				assert.False(t, kp.Cert.NotBefore.Before(ca.Cert.NotBefore), "%s starts %s, before its CA (%s)", kp.Cert.Subject.CommonName, kp.Cert.NotBefore, ca.Cert.NotBefore)
				assert.False(t, kp.Cert.NotAfter.After(ca.Cert.NotAfter), "ends after its CA")
				assert.True(t, kp.Cert.NotBefore.Before(now.Add(-4*time.Minute)) || kp.Cert.NotBefore.Equal(ca.Cert.NotBefore),
					"backdated for clock skew as far as the CA allows: %s", kp.Cert.NotBefore)
			}
		})
	}
	for _, ca := range []*kube.CA{fresh, short} {
		assert.True(t, ca.Cert.NotBefore.Before(now.Add(-4*time.Minute)), "%s is backdated for clock skew: %s", ca, ca.Cert.NotBefore)
	}
	// A CA lasts as long as asked, from now (not from its backdated start).
	assert.WithinDuration(t, now.Add(kube.CAValidity), fresh.Cert.NotAfter, time.Minute)
	assert.WithinDuration(t, now.Add(time.Hour), short.Cert.NotAfter, time.Minute, "an hour's CA, not ten years'")

	expired := selfSignedCA(t, "expired", now.Add(-2*time.Hour), now.Add(-time.Hour))
	_, err = expired.IssueClient("u", nil, kube.CertValidity)
	assert.ErrorIs(t, err, kube.ErrInvalidCert)
	assert.ErrorContains(t, err, "CA expired expired at")
}

// TestKeyIdentifiers: CAs have a subject key identifier, and the
// certificates they issue have their own and name the CA's as their
// authority key identifier, as kubeadm's do.
func TestKeyIdentifiers(t *testing.T) {
	short, err := kube.NewCA("ids-short", time.Hour)
	require.NoError(t, err)
	for _, ca := range []*kube.CA{pki.ClusterCA, pki.EtcdCA, short} {
		require.NotEmpty(t, ca.Cert.SubjectKeyId, "%s", ca)
		client, err := ca.IssueClient("u", nil, time.Hour)
		require.NoError(t, err)
		serving, err := ca.IssueServing(kube.ServingSpec{CommonName: "s", IPs: []net.IP{net.ParseIP("10.0.0.1")}, Validity: time.Hour})
		require.NoError(t, err)
		for _, kp := range []*kube.KeyPair{client, serving} {
			assert.Len(t, kp.Cert.SubjectKeyId, 20, "%s from %s", kp, ca)
			assert.NotEqual(t, ca.Cert.SubjectKeyId, kp.Cert.SubjectKeyId)
			assert.Equal(t, ca.Cert.SubjectKeyId, kp.Cert.AuthorityKeyId, "%s from %s", kp, ca)
		}
		assert.NotEqual(t, client.Cert.SubjectKeyId, serving.Cert.SubjectKeyId, "each key its own identifier")
	}
}
