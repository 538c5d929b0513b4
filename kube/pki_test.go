package kube_test

import (
	"context"
	"crypto/x509"
	"fmt"
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
	})

	t.Run("a certificate never outlives its CA", func(t *testing.T) {
		small, err := kube.NewCA("small", time.Hour)
		require.NoError(t, err)
		kp, err := small.IssueClient("u", nil, 0)
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
