package kube_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// cloudConfig is the part of cloud-init user data the kube-vip tests read.
type cloudConfig struct {
	WriteFiles []struct {
		Path    string `json:"path"`
		Content string `json:"content"`
	} `json:"write_files"`
	RunCmd []string `json:"runcmd"`
}

func parseCloudConfig(t *testing.T, out []byte) (cloudConfig, map[string]string) {
	t.Helper()
	var cc cloudConfig
	require.NoError(t, yaml.Unmarshal(out, &cc))
	files := map[string]string{}
	for _, f := range cc.WriteFiles {
		files[f.Path] = f.Content
	}
	return cc, files
}

// kubeVIPPod decodes a static pod manifest strictly: a field the Pod type
// does not have is an error.
func kubeVIPPod(t *testing.T, manifest string) *corev1.Pod {
	t.Helper()
	require.NotEmpty(t, manifest)
	var pod corev1.Pod
	require.NoError(t, yaml.UnmarshalStrict([]byte(manifest), &pod))
	return &pod
}

func podEnv(pod *corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		out[e.Name] = e.Value
	}
	return out
}

func hostKubeconfig(pod *corev1.Pod) string {
	return pod.Spec.Volumes[0].HostPath.Path
}

// TestKubeVIPUserData: with KubeVIP, every control-plane node runs
// kube-vip as a static pod holding the endpoint's address and the API
// servers listen on the endpoint's port; the first node of a Kubernetes
// 1.29+ cluster starts it on super-admin.conf and moves it to admin.conf
// after kubeadm init; joining control-plane nodes tell kubeadm that the
// manifests directory is not empty; workers get nothing of it.
func TestKubeVIPUserData(t *testing.T) {
	spec := bootstrapSpec
	spec.ControlPlaneEndpoint = "192.168.10.10:8443"
	spec.KubeVIP = &kube.KubeVIP{Address: "192.168.10.10", Interface: "eth0"}

	out, err := pki.InitControlPlaneUserData(spec)
	require.NoError(t, err)
	cc, files := parseCloudConfig(t, out)
	pod := kubeVIPPod(t, files["/etc/kubernetes/manifests/kube-vip.yaml"])
	assert.Equal(t, "/etc/kubernetes/super-admin.conf", hostKubeconfig(pod), "kube-vip leads during init on super-admin.conf")
	assert.Equal(t, "/etc/kubernetes/admin.conf", pod.Spec.Containers[0].VolumeMounts[0].MountPath)
	assert.Equal(t, kube.DefaultKubeVIPImage, pod.Spec.Containers[0].Image)
	e := podEnv(pod)
	assert.Equal(t, "192.168.10.10", e["address"])
	assert.Equal(t, "8443", e["port"])
	assert.Equal(t, "eth0", e["vip_interface"])
	assert.Equal(t, "true", e["cp_enable"])
	assert.True(t, pod.Spec.HostNetwork)
	after := kubeVIPPod(t, files["/etc/kubernetes/kube-vip.after-init.yaml"])
	assert.Equal(t, "/etc/kubernetes/admin.conf", hostKubeconfig(after))
	init := slices.IndexFunc(cc.RunCmd, func(c string) bool { return strings.Contains(c, "kubeadm init") })
	mv := slices.Index(cc.RunCmd, "mv -f /etc/kubernetes/kube-vip.after-init.yaml /etc/kubernetes/manifests/kube-vip.yaml")
	require.GreaterOrEqual(t, init, 0)
	assert.Greater(t, mv, init, "switched to admin.conf after init: %q", cc.RunCmd)
	assert.Contains(t, files["/run/kubeadm/kubeadm.yaml"], "bindPort: 8443")

	out, err = pki.JoinControlPlaneUserData(spec)
	require.NoError(t, err)
	cc, files = parseCloudConfig(t, out)
	pod = kubeVIPPod(t, files["/etc/kubernetes/manifests/kube-vip.yaml"])
	assert.Equal(t, "/etc/kubernetes/admin.conf", hostKubeconfig(pod), "a joining node's admin.conf works from the start")
	assert.NotContains(t, files, "/etc/kubernetes/kube-vip.after-init.yaml")
	join := files["/run/kubeadm/kubeadm-join-config.yaml"]
	assert.Contains(t, join, "DirAvailable--etc-kubernetes-manifests")
	assert.Contains(t, join, "bindPort: 8443")
	for _, c := range cc.RunCmd {
		assert.NotContains(t, c, "kube-vip")
	}

	out, err = pki.WorkerUserData(spec)
	require.NoError(t, err)
	assert.NotContains(t, string(out), "kube-vip")
	assert.NotContains(t, string(out), "DirAvailable")

	t.Run("before 1.29 admin.conf serves init too", func(t *testing.T) {
		old := spec
		old.KubernetesVersion = "v1.28.15"
		out, err := pki.InitControlPlaneUserData(old)
		require.NoError(t, err)
		_, files := parseCloudConfig(t, out)
		assert.Equal(t, "/etc/kubernetes/admin.conf", hostKubeconfig(kubeVIPPod(t, files["/etc/kubernetes/manifests/kube-vip.yaml"])))
		assert.NotContains(t, files, "/etc/kubernetes/kube-vip.after-init.yaml")
	})
	t.Run("no interface: kube-vip picks the default route's", func(t *testing.T) {
		auto := spec
		auto.KubeVIP = &kube.KubeVIP{Address: "192.168.10.10", Image: "registry.example.com/kube-vip:v0.8.7"}
		out, err := pki.JoinControlPlaneUserData(auto)
		require.NoError(t, err)
		_, files := parseCloudConfig(t, out)
		pod := kubeVIPPod(t, files["/etc/kubernetes/manifests/kube-vip.yaml"])
		assert.NotContains(t, podEnv(pod), "vip_interface")
		assert.Equal(t, "registry.example.com/kube-vip:v0.8.7", pod.Spec.Containers[0].Image)
	})
	t.Run("the endpoint must be the VIP", func(t *testing.T) {
		for _, tc := range []struct{ endpoint, address, want string }{
			{"192.168.10.11:8443", "192.168.10.10", "controlPlaneEndpoint"},
			{"api.example.com:6443", "192.168.10.10", "controlPlaneEndpoint"},
			{"192.168.10.10", "192.168.10.10", "controlPlaneEndpoint"},
			{"192.168.10.10:0", "192.168.10.10", "bad port"},
			{"vip:6443", "vip", "kubeVIP.address"},
		} {
			bad := spec
			bad.ControlPlaneEndpoint = tc.endpoint
			bad.KubeVIP = &kube.KubeVIP{Address: tc.address}
			for _, render := range []func(kube.BootstrapSpec) ([]byte, error){pki.InitControlPlaneUserData, pki.JoinControlPlaneUserData, pki.WorkerUserData} {
				_, err := render(bad)
				assert.ErrorContains(t, err, tc.want, tc.endpoint)
			}
		}
	})
}

// TestKubeVIPPodIsValid: the API server accepts kube-vip's manifests as
// Pods (server-side dry run: every field and value validated, nothing
// stored), as the kubelet's mirror pod of it will be.
func TestKubeVIPPodIsValid(t *testing.T) {
	k := kubetest.Need(t, env, envErr)
	spec := bootstrapSpec
	spec.ControlPlaneEndpoint = "192.168.10.10:8443"
	spec.KubeVIP = &kube.KubeVIP{Address: "192.168.10.10", Interface: "eth0"}
	out, err := pki.InitControlPlaneUserData(spec)
	require.NoError(t, err)
	_, files := parseCloudConfig(t, out)
	cs := kubernetes.NewForConfigOrDie(k.Config)
	for _, path := range []string{"/etc/kubernetes/manifests/kube-vip.yaml", "/etc/kubernetes/kube-vip.after-init.yaml"} {
		pod := kubeVIPPod(t, files[path])
		pod.Spec.NodeName = "cp-0" // a mirror pod is bound to its node
		_, err := cs.CoreV1().Pods("kube-system").Create(context.Background(), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		assert.NoError(t, err, path)
	}
}
