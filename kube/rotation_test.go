package kube_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

func poolOf(t *testing.T, bundle []byte) *x509.CertPool {
	p := x509.NewCertPool()
	require.True(t, p.AppendCertsFromPEM(bundle))
	return p
}

// TestCARotationPhases checks, without a server, that at every phase a
// certificate issued then verifies against the bundle of the phase before
// (still held by some parties) and against the bundle of the phase.
func TestCARotationPhases(t *testing.T) {
	p, err := kube.NewPKI("rot")
	require.NoError(t, err)
	r, err := p.StartCARotation(kube.CAValidity)
	require.NoError(t, err)
	before := kube.CertPEM(p.ClusterCA.Cert)
	for r.Phase <= kube.Done {
		kp, err := r.Signer().IssueServing(kube.ServingSpec{CommonName: "kube-apiserver", DNSNames: []string{"kubernetes"}, Validity: kube.CertValidity})
		require.NoError(t, err)
		for name, bundle := range map[string][]byte{"previous": before, "current": r.TrustBundle()} {
			_, err := kp.Cert.Verify(x509.VerifyOptions{DNSName: "kubernetes", Roots: poolOf(t, bundle)})
			assert.NoError(t, err, "phase %s, %s bundle", r.Phase, name)
		}
		before = r.TrustBundle()
		if r.Phase == kube.Done {
			break
		}
		assert.Same(t, r.Old, p.ClusterCA, "phase %s: the PKI's cluster CA is the old one until the rotation is done", r.Phase)
		require.NoError(t, r.Advance(p))
	}
	assert.Equal(t, r.New, p.ClusterCA)
	assert.ErrorIs(t, r.Advance(p), kube.ErrRotationDone)
}

// TestCARotationOnAPIServer rotates the CA the real API server accepts
// client certificates from, phase by phase: the old admin certificate works
// until the old CA leaves the bundle, the new one from the moment the new
// CA joins it.
func TestCARotationOnAPIServer(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	p := *pki // rotate a copy; the shared server gets the original back
	t.Cleanup(func() { require.NoError(t, env.SetClientCA(kube.CertPEM(pki.ClusterCA.Cert))) })

	client := func(ca *kube.CA) kubernetes.Interface {
		kp, err := ca.IssueClient("rot-admin", []string{"system:masters"}, time.Hour)
		require.NoError(t, err)
		cfg, err := kube.Kubeconfig("test", env.Config.Host, env.ServerCA, "rot-admin", kp)
		require.NoError(t, err)
		rc, err := kube.RESTConfig(cfg)
		require.NoError(t, err)
		return kubernetes.NewForConfigOrDie(rc)
	}
	works := func(cs kubernetes.Interface) bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}
	refused := func(cs kubernetes.Interface) bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return apierrors.IsUnauthorized(err)
	}

	old := client(p.ClusterCA)
	require.True(t, works(old))
	r, err := p.StartCARotation(kube.CAValidity)
	require.NoError(t, err)
	fresh := client(r.New)
	assert.True(t, refused(fresh), "the new CA is unknown before phase 1 is rolled out")

	require.NoError(t, env.SetClientCA(r.TrustBundle())) // phase 1 reaches the API server
	require.Eventually(t, func() bool { return works(fresh) }, 60*time.Second, 250*time.Millisecond, "new CA trusted")
	assert.True(t, works(old), "old certificates still work in phase 1")

	require.NoError(t, r.Advance(&p)) // phase 2: certificates from the new CA
	assert.True(t, works(client(r.Signer())))
	assert.True(t, works(old), "old certificates still work in phase 2")

	require.NoError(t, r.Advance(&p)) // phase 3: the old CA leaves the bundle
	require.NoError(t, env.SetClientCA(r.TrustBundle()))
	require.Eventually(t, func() bool { return refused(old) }, 60*time.Second, 250*time.Millisecond, "old CA dropped")
	assert.True(t, works(fresh))
}
