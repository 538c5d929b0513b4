package kube_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

var update = flag.Bool("update", false, "rewrite the golden files of bootstrap rendering")

var bootstrapSpec = kube.BootstrapSpec{
	ClusterName:          "c1",
	KubernetesVersion:    "v1.36.3",
	ControlPlaneEndpoint: "192.168.10.10:8443",
	CertSANs:             []string{"api.c1.example.com"},
	APIServerArgs:        map[string]string{"oidc-issuer-url": "https://login.example.com", "audit-log-maxage": "30"},
	KubeletArgs:          map[string]string{"max-pods": "100"},
	Token:                "abcdef.0123456789abcdef",
	PreKubeadmCommands:   []string{"systemctl restart containerd"},
}

// normalize replaces what differs between runs (keys, certificates and the
// CA's hash) with placeholders, so that the rest can be compared exactly.
func normalize(b []byte) []byte {
	b = regexp.MustCompile(`(?s)-----BEGIN ([A-Z ]+)-----.*?-----END [A-Z ]+-----\n?`).ReplaceAll(b, []byte("<$1>"))
	return regexp.MustCompile(`sha256:[0-9a-f]{64}`).ReplaceAll(b, []byte("sha256:<ca-hash>"))
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	got = normalize(got)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./kube -run TestBootstrap -update to create it")
	assert.Equal(t, string(want), string(got))
}

func TestBootstrapUserData(t *testing.T) {
	tests := []struct {
		name   string
		render func(kube.BootstrapSpec) ([]byte, error)
	}{
		{"init-control-plane", pki.InitControlPlaneUserData},
		{"join-control-plane", pki.JoinControlPlaneUserData},
		{"worker", pki.WorkerUserData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.render(bootstrapSpec)
			require.NoError(t, err)
			var doc map[string]any
			require.NoError(t, yaml.Unmarshal(out, &doc), "cloud-init user data is YAML")
			golden(t, tt.name, out)
		})
	}

	t.Run("the worker carries no private key", func(t *testing.T) {
		out, err := pki.WorkerUserData(bootstrapSpec)
		require.NoError(t, err)
		assert.NotContains(t, string(out), "PRIVATE KEY")
		assert.Contains(t, string(out), kube.CACertHash(pki.ClusterCA.Cert))
	})

	t.Run("a spec without its essentials names them", func(t *testing.T) {
		_, err := pki.WorkerUserData(kube.BootstrapSpec{KubernetesVersion: "v1.36.3"})
		require.Error(t, err)
		for _, f := range []string{"clusterName: required", "controlPlaneEndpoint: required", "token: required"} {
			assert.ErrorContains(t, err, f)
		}
		bad := bootstrapSpec
		bad.Token = "not-a-token"
		bad.KubernetesVersion = "one.two"
		bad.KubeVIP = &kube.KubeVIP{Address: "vip"}
		_, err = pki.WorkerUserData(bad)
		var ve *kubefoundry.ValidationError
		require.ErrorAs(t, err, &ve, "every problem at once, as the shared validation error")
		assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
		var fields []string
		for _, p := range ve.Problems {
			fields = append(fields, p.Field)
		}
		assert.ElementsMatch(t, []string{"token", "kubernetesVersion", "kubeVIP.address"}, fields)
		assert.NotContains(t, err.Error(), "not-a-token", "the token is a secret")
	})
}

// TestBootstrapTokenSecret: the token Secret authenticates the token on
// the real API server, as kubeadm join's discovery does.
func TestBootstrapTokenSecret(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	token, err := kube.NewBootstrapToken()
	require.NoError(t, err)
	assert.Regexp(t, `^[a-z0-9]{6}\.[a-z0-9]{16}$`, token)
	sec, err := kube.BootstrapTokenSecret(token, time.Hour)
	require.NoError(t, err)
	admin := kubernetes.NewForConfigOrDie(env.Config)
	_, err = admin.CoreV1().Secrets("kube-system").Create(ctx, sec, metav1.CreateOptions{})
	require.NoError(t, err)

	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = token
	var review *authv1.SelfSubjectReview
	require.Eventually(t, func() bool {
		review, err = kubernetes.NewForConfigOrDie(cfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return err == nil
	}, 10*time.Second, 200*time.Millisecond, "%v", err)
	assert.Equal(t, "system:bootstrap:"+token[:6], review.Status.UserInfo.Username)
	assert.Contains(t, review.Status.UserInfo.Groups, "system:bootstrappers:kubeadm:default-node-token")
}
