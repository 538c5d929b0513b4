package kube_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	kubeadmtypes "sigs.k8s.io/cluster-api/bootstrap/kubeadm/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// encryptionConfiguration is the API server's EncryptionConfiguration as
// the tests read it back, strictly: a field it does not have is an error.
type encryptionConfiguration struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Resources  []struct {
		Resources []string `json:"resources"`
		Providers []struct {
			Secretbox *struct {
				Keys []struct {
					Name   string `json:"name"`
					Secret string `json:"secret"`
				} `json:"keys"`
			} `json:"secretbox"`
			Identity *struct{} `json:"identity"`
		} `json:"providers"`
	} `json:"resources"`
}

func newKey(t *testing.T, name string) kube.EncryptionKey {
	t.Helper()
	k, err := kube.NewEncryptionKey(name)
	require.NoError(t, err)
	require.Len(t, k.Secret, 32)
	return k
}

// TestEncryptionConfig: the keys in order, then identity; the secrets
// base64 as the API server reads them; secrets by default.
func TestEncryptionConfig(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "key-2.b_c")
	assert.NotEqual(t, k1.Secret, k2.Secret)

	for _, tc := range []struct {
		name      string
		resources []string
		want      []string
	}{
		{"secrets by default", nil, []string{"secrets"}},
		{"named resources", []string{"secrets", "configmaps"}, []string{"secrets", "configmaps"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := kube.EncryptionConfig(tc.resources, k2, k1)
			require.NoError(t, err)
			var cfg encryptionConfiguration
			require.NoError(t, yaml.UnmarshalStrict(out, &cfg), string(out))
			assert.Equal(t, "apiserver.config.k8s.io/v1", cfg.APIVersion)
			assert.Equal(t, "EncryptionConfiguration", cfg.Kind)
			require.Len(t, cfg.Resources, 1)
			r := cfg.Resources[0]
			assert.Equal(t, tc.want, r.Resources)
			require.Len(t, r.Providers, 2)
			box := r.Providers[0].Secretbox
			require.NotNil(t, box, "secretbox first")
			assert.Nil(t, r.Providers[0].Identity)
			require.Len(t, box.Keys, 2)
			for i, k := range []kube.EncryptionKey{k2, k1} {
				assert.Equal(t, k.Name, box.Keys[i].Name, "keys in the order given: the first encrypts")
				secret, err := base64.StdEncoding.DecodeString(box.Keys[i].Secret)
				require.NoError(t, err)
				assert.Equal(t, k.Secret, secret)
			}
			assert.Nil(t, r.Providers[1].Secretbox)
			assert.NotNil(t, r.Providers[1].Identity, "identity last, for what was stored before")
		})
	}
}

// TestEncryptionConfigValidation: every problem at once, each naming its
// field, never the secret.
func TestEncryptionConfigValidation(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	short := kube.EncryptionKey{Name: "short", Secret: []byte("0123456789abcdef")}
	for _, tc := range []struct {
		name      string
		resources []string
		keys      []kube.EncryptionKey
		want      []string
	}{
		{"no keys", nil, nil, []string{"keys: at least one key required"}},
		{"short key", nil, []kube.EncryptionKey{k1, short}, []string{"keys[1].secret: 16 bytes, want 32"}},
		{"no name", nil, []kube.EncryptionKey{k1, {Secret: k2.Secret}}, []string{"keys[1].name: required"}},
		{"duplicate name", nil, []kube.EncryptionKey{k1, k2, {Name: "k1", Secret: k2.Secret}}, []string{`keys[2].name: "k1" already names keys[0]`}},
		{"colon in a name", nil, []kube.EncryptionKey{{Name: "k:1", Secret: k1.Secret}}, []string{`keys[0].name: "k:1"`}},
		{"space in a name", nil, []kube.EncryptionKey{{Name: "k 1", Secret: k1.Secret}}, []string{`keys[0].name: "k 1"`}},
		{"resources", []string{"secrets", "Secrets", "*", "", "secrets"}, []kube.EncryptionKey{k1}, []string{
			`resources[1]: "Secrets": resource names are lower case`, `resources[2]: "*"`, "resources[3]: empty",
			`resources[4]: "secrets" already at resources[0]`}},
		{"all at once", []string{"Secrets"}, []kube.EncryptionKey{short, {Name: "short", Secret: nil}}, []string{
			"keys[0].secret: 16 bytes", "keys[1].name", "keys[1].secret: 0 bytes", "resources[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kube.EncryptionConfig(tc.resources, tc.keys...)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.ErrorContains(t, err, w)
			}
			for _, k := range tc.keys {
				if len(k.Secret) > 0 {
					assert.NotContains(t, err.Error(), base64.StdEncoding.EncodeToString(k.Secret))
				}
			}
		})
	}
	_, err := kube.NewEncryptionKey("a:b")
	assert.ErrorContains(t, err, "name")
}

// TestEncryptionKeysNeverPrinted: no fmt verb shows a key's secret, alone,
// in a slice, in EncryptionAtRest or in a BootstrapSpec, nor the secret
// half of the bootstrap token.
func TestEncryptionKeysNeverPrinted(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	spec := bootstrapSpec
	spec.Encryption = &kube.EncryptionAtRest{Keys: []kube.EncryptionKey{k2, k1}}
	values := []any{k1, &k1, []kube.EncryptionKey{k2, k1}, *spec.Encryption, spec.Encryption, spec, &spec}
	var printed []string
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			printed = append(printed, fmt.Sprintf(verb, v))
		}
	}
	printed = append(printed, k1.String(), k1.GoString(), spec.String(), spec.GoString(), fmt.Sprint(spec), fmt.Sprintln(values...))
	for _, p := range printed {
		for _, k := range []kube.EncryptionKey{k1, k2} {
			for _, secret := range []string{string(k.Secret), base64.StdEncoding.EncodeToString(k.Secret),
				base64.RawURLEncoding.EncodeToString(k.Secret), hex.EncodeToString(k.Secret), strings.ToUpper(hex.EncodeToString(k.Secret)),
				strings.Trim(fmt.Sprint(k.Secret), "[]")} {
				require.NotContains(t, p, secret)
			}
		}
		require.NotContains(t, p, "0123456789abcdef", "the token's secret")
	}
	assert.Equal(t, "EncryptionKey{k1}", k1.String())
	assert.Equal(t, "EncryptionKey{k1}", fmt.Sprintf("%x", k1))
	assert.Contains(t, spec.String(), "[k2 k1]")
	assert.Contains(t, spec.String(), "abcdef.<redacted>")
}

// clusterConfiguration is the ClusterConfiguration document of kubeadm's
// init config, read back through Cluster API's own conversion.
func clusterConfiguration(t *testing.T, kubeadmYAML string) *bootstrapv1.ClusterConfiguration {
	t.Helper()
	for doc := range strings.SplitSeq(kubeadmYAML, "---\n") {
		if strings.Contains(doc, "kind: ClusterConfiguration") {
			cc, _, err := kubeadmtypes.UnmarshalClusterConfiguration(doc)
			require.NoError(t, err)
			return cc
		}
	}
	t.Fatalf("no ClusterConfiguration in %s", kubeadmYAML)
	return nil
}

type writtenFile struct {
	Path        string `json:"path"`
	Owner       string `json:"owner"`
	Permissions string `json:"permissions"`
	Content     string `json:"content"`
}

func writtenFiles(t *testing.T, out []byte) map[string]writtenFile {
	t.Helper()
	var cc struct {
		WriteFiles []writtenFile `json:"write_files"`
	}
	require.NoError(t, yaml.Unmarshal(out, &cc))
	files := map[string]writtenFile{}
	for _, f := range cc.WriteFiles {
		files[f.Path] = f
	}
	return files
}

func apiServerArgs(cc *bootstrapv1.ClusterConfiguration) map[string]string {
	out := map[string]string{}
	for _, a := range cc.APIServer.ExtraArgs {
		out[a.Name] = *a.Value
	}
	return out
}

// TestEncryptionUserData: with Encryption, every control-plane node gets
// the configuration file (root only), the first node's kubeadm
// ClusterConfiguration (which joining nodes read from the cluster) the
// API server's flags and the read-only mount of its directory; workers
// get nothing of it; a flag set both ways is refused.
func TestEncryptionUserData(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	spec := bootstrapSpec
	spec.Encryption = &kube.EncryptionAtRest{Keys: []kube.EncryptionKey{k2, k1}, Resources: []string{"secrets", "configmaps"}}
	want, err := kube.EncryptionConfig([]string{"secrets", "configmaps"}, k2, k1)
	require.NoError(t, err)
	volume := bootstrapv1.HostPathMount{Name: "encryption-config", HostPath: "/etc/kubernetes/encryption",
		MountPath: "/etc/kubernetes/encryption", ReadOnly: new(true), PathType: corev1.HostPathDirectoryOrCreate}

	for _, tc := range []struct {
		version string
		reload  bool
	}{
		{"v1.36.3", true},
		{"v1.30.6", true}, // kubeadm v1beta3: extraArgs is a map there
		{"v1.25.16", false},
	} {
		t.Run("init "+tc.version, func(t *testing.T) {
			spec := spec
			spec.KubernetesVersion = tc.version
			out, err := pki.InitControlPlaneUserData(spec)
			require.NoError(t, err)
			files := writtenFiles(t, out)
			f := files[kube.EncryptionConfigPath]
			assert.Equal(t, "/etc/kubernetes/encryption/config.yaml", f.Path)
			assert.Equal(t, "root:root", f.Owner)
			assert.Equal(t, "0600", f.Permissions)
			assert.Equal(t, string(want), f.Content)

			cc := clusterConfiguration(t, files["/run/kubeadm/kubeadm.yaml"].Content)
			args := apiServerArgs(cc)
			assert.Equal(t, "/etc/kubernetes/encryption/config.yaml", args["encryption-provider-config"])
			if tc.reload {
				assert.Equal(t, "true", args["encryption-provider-config-automatic-reload"])
			} else {
				assert.NotContains(t, args, "encryption-provider-config-automatic-reload", "no such flag before 1.26")
			}
			assert.Equal(t, "https://login.example.com", args["oidc-issuer-url"], "the spec's own flags stay")
			assert.Equal(t, []bootstrapv1.HostPathMount{volume}, cc.APIServer.ExtraVolumes)
		})
	}

	t.Run("join", func(t *testing.T) {
		out, err := pki.JoinControlPlaneUserData(spec)
		require.NoError(t, err)
		f := writtenFiles(t, out)[kube.EncryptionConfigPath]
		assert.Equal(t, "0600", f.Permissions)
		assert.Equal(t, "root:root", f.Owner)
		assert.Equal(t, string(want), f.Content)
	})

	t.Run("worker", func(t *testing.T) {
		out, err := pki.WorkerUserData(spec)
		require.NoError(t, err)
		for _, k := range []kube.EncryptionKey{k1, k2} {
			assert.NotContains(t, string(out), base64.StdEncoding.EncodeToString(k.Secret))
		}
		assert.NotContains(t, string(out), "encryption")
	})

	t.Run("the spec's reload flag wins", func(t *testing.T) {
		spec := spec
		spec.APIServerArgs = map[string]string{"encryption-provider-config-automatic-reload": "false"}
		out, err := pki.InitControlPlaneUserData(spec)
		require.NoError(t, err)
		args := apiServerArgs(clusterConfiguration(t, writtenFiles(t, out)["/run/kubeadm/kubeadm.yaml"].Content))
		assert.Equal(t, "false", args["encryption-provider-config-automatic-reload"])
		assert.NotContains(t, bootstrapSpec.APIServerArgs, "encryption-provider-config", "the caller's map is not changed")
	})

	t.Run("without encryption, nothing of it", func(t *testing.T) {
		out, err := pki.InitControlPlaneUserData(bootstrapSpec)
		require.NoError(t, err)
		assert.NotContains(t, string(out), "encryption")
	})

	t.Run("errors name the field", func(t *testing.T) {
		both := spec
		both.APIServerArgs = map[string]string{"encryption-provider-config": "/etc/mine.yaml"}
		bad := spec
		bad.Encryption = &kube.EncryptionAtRest{Keys: []kube.EncryptionKey{k1, {Name: "k1", Secret: []byte("short")}}}
		none := spec
		none.Encryption = &kube.EncryptionAtRest{}
		for _, tc := range []struct {
			spec kube.BootstrapSpec
			want []string
		}{
			{both, []string{"bootstrap spec: apiServerArgs[encryption-provider-config]: set by encryption"}},
			{bad, []string{"encryption.keys[1].name", "encryption.keys[1].secret: 5 bytes, want 32"}},
			{none, []string{"encryption.keys: at least one key required"}},
		} {
			for _, render := range []func(kube.BootstrapSpec) ([]byte, error){pki.InitControlPlaneUserData, pki.JoinControlPlaneUserData} {
				_, err := render(tc.spec)
				for _, w := range tc.want {
					assert.ErrorContains(t, err, w)
				}
			}
			_, err := pki.WorkerUserData(tc.spec)
			assert.NoError(t, err, "workers ignore Encryption")
		}
	})
}

// TestEncryptionAtRestOnAPIServer: a real API server started with the
// rendered configuration stores Secrets encrypted under the first key
// and serves them in plain; Secrets stored before encryption stay
// readable; a second API server on the same etcd with [new, old], and
// automatic reload as the bootstrap data turns it on, reads what the
// first wrote and writes under the new key (rotation).
func TestEncryptionAtRestOnAPIServer(t *testing.T) {
	ctx := context.Background()
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	cfg1, err := kube.EncryptionConfig(nil, k1)
	require.NoError(t, err)
	first, err := kubetest.Start(ctx, kubetest.WithEncryptionConfig(cfg1))
	first = kubetest.Need(t, first, err)
	t.Cleanup(first.Stop)

	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{first.EtcdURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = etcd.Close() })
	raw := func(t *testing.T, name string) []byte {
		t.Helper()
		res, err := etcd.Get(ctx, "/registry/secrets/default/"+name)
		require.NoError(t, err)
		require.Len(t, res.Kvs, 1, name)
		return res.Kvs[0].Value
	}
	const plain = "s3cr3t-plaintext-value"
	secret := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Data: map[string][]byte{"password": []byte(plain)}}
	}
	read := func(t *testing.T, cs kubernetes.Interface, name string) string {
		t.Helper()
		s, err := cs.CoreV1().Secrets("default").Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err, name)
		return string(s.Data["password"])
	}
	encryptedUnder := func(t *testing.T, name, key string) {
		t.Helper()
		v := raw(t, name)
		assert.True(t, bytes.HasPrefix(v, []byte("k8s:enc:secretbox:v1:"+key+":")), "%s stored as %.40q", name, v)
		assert.NotContains(t, string(v), plain)
		assert.NotContains(t, string(v), base64.StdEncoding.EncodeToString([]byte(plain)))
	}

	cs1 := kubernetes.NewForConfigOrDie(first.Config)
	_, err = cs1.CoreV1().Secrets("default").Create(ctx, secret("under-k1"), metav1.CreateOptions{})
	require.NoError(t, err)
	encryptedUnder(t, "under-k1", "k1")
	assert.Equal(t, plain, read(t, cs1, "under-k1"))

	t.Run("stored before encryption stays readable", func(t *testing.T) {
		// As an API server without encryption stores it: no prefix, the
		// object as is (JSON, which the API server reads besides protobuf).
		before := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"before","namespace":"default","uid":"6f1c8a52-6b1e-4b8e-9a39-3d1f2f6b0c11","creationTimestamp":"2020-01-01T00:00:00Z"},"type":"Opaque","data":{"password":%q}}`,
			base64.StdEncoding.EncodeToString([]byte(plain)))
		_, err := etcd.Put(ctx, "/registry/secrets/default/before", before)
		require.NoError(t, err)
		assert.Equal(t, plain, read(t, cs1, "before"))
	})

	t.Run("rotation: [new, old] reads the old and writes the new", func(t *testing.T) {
		cfg2, err := kube.EncryptionConfig(nil, k2, k1)
		require.NoError(t, err)
		second, err := kubetest.Start(ctx, kubetest.WithEncryptionConfig(cfg2), kubetest.WithEtcd(first.EtcdURL),
			kubetest.WithAPIServerArgs("--encryption-provider-config-automatic-reload=true"))
		require.NoError(t, err)
		t.Cleanup(second.Stop)
		cs2 := kubernetes.NewForConfigOrDie(second.Config)
		// With automatic reload the API server checks its (reloadable)
		// providers as one: kms-providers, even without a KMS.
		healthz := func(cs *kubernetes.Clientset) string {
			b, err := cs.Discovery().RESTClient().Get().AbsPath("/healthz").Param("verbose", "true").DoRaw(ctx)
			require.NoError(t, err)
			return string(b)
		}
		assert.Contains(t, healthz(cs2), "[+]kms-providers ok", "automatic reload is on")
		assert.NotContains(t, healthz(cs1), "kms-providers")

		assert.Equal(t, plain, read(t, cs2, "under-k1"), "the old key still decrypts")
		_, err = cs2.CoreV1().Secrets("default").Create(ctx, secret("under-k2"), metav1.CreateOptions{})
		require.NoError(t, err)
		encryptedUnder(t, "under-k2", "k2")
		assert.Equal(t, plain, read(t, cs2, "under-k2"))

		// Rewriting a Secret stores it under the new key.
		s, err := cs2.CoreV1().Secrets("default").Get(ctx, "under-k1", metav1.GetOptions{})
		require.NoError(t, err)
		_, err = cs2.CoreV1().Secrets("default").Update(ctx, s, metav1.UpdateOptions{})
		require.NoError(t, err)
		encryptedUnder(t, "under-k1", "k2")
		assert.Equal(t, plain, read(t, cs2, "under-k1"))
	})
}
