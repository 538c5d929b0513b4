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

// checkKubeVIPPod checks what every kube-vip pod must have: ARP with
// leader election on the control-plane Lease, the node's name, the local
// API server reachable as "kubernetes" through a hosts file of its own,
// and host paths that must exist (type File).
func checkKubeVIPPod(t *testing.T, pod *corev1.Pod, port string) {
	t.Helper()
	assert.Equal(t, map[string]string{
		"vip_arp": "true", "port": port, "vip_nodename": "", "vip_cidr": "32", "cp_enable": "true",
		"cp_namespace": "kube-system", "vip_leaderelection": "true", "vip_leasename": "plndr-cp-lock",
		"vip_leaseduration": "15", "vip_renewdeadline": "10", "vip_retryperiod": "2",
		"address": "192.168.10.10", "vip_interface": "eth0",
	}, podEnv(pod))
	c := pod.Spec.Containers[0]
	for _, e := range c.Env {
		if e.Name == "vip_nodename" {
			require.NotNil(t, e.ValueFrom)
			assert.Equal(t, "spec.nodeName", e.ValueFrom.FieldRef.FieldPath)
		}
	}
	assert.Equal(t, []string{"manager"}, c.Args)
	assert.ElementsMatch(t, []corev1.Capability{"NET_ADMIN", "NET_RAW"}, c.SecurityContext.Capabilities.Add)
	assert.True(t, pod.Spec.HostNetwork)
	assert.Empty(t, pod.Spec.HostAliases, "hostAliases reach a host-network pod too late before 1.32")
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	assert.Equal(t, map[string]string{"kubeconfig": "/etc/kubernetes/admin.conf", "hosts": "/etc/hosts"}, mounts)
	for _, v := range pod.Spec.Volumes {
		require.NotNil(t, v.HostPath, v.Name)
		assert.Equal(t, corev1.HostPathFile, *v.HostPath.Type, v.Name)
		if v.Name == "hosts" {
			assert.Equal(t, "/etc/kube-vip.hosts", v.HostPath.Path)
		}
	}
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
	spec.PostKubeadmCommands = []string{"echo joined"}
	const hosts = "127.0.0.1 localhost kubernetes\n"

	out, err := pki.InitControlPlaneUserData(spec)
	require.NoError(t, err)
	cc, files := parseCloudConfig(t, out)
	pod := kubeVIPPod(t, files["/etc/kubernetes/manifests/kube-vip.yaml"])
	checkKubeVIPPod(t, pod, "8443")
	assert.Equal(t, "/etc/kubernetes/super-admin.conf", hostKubeconfig(pod), "kube-vip leads during init on super-admin.conf")
	assert.Equal(t, kube.DefaultKubeVIPImage, pod.Spec.Containers[0].Image)
	assert.Equal(t, hosts, files["/etc/kube-vip.hosts"])
	after := kubeVIPPod(t, files["/etc/kubernetes/kube-vip.after-init.yaml"])
	checkKubeVIPPod(t, after, "8443")
	assert.Equal(t, "/etc/kubernetes/admin.conf", hostKubeconfig(after))
	init := slices.IndexFunc(cc.RunCmd, func(c string) bool { return strings.Contains(c, "kubeadm init") })
	mv := slices.Index(cc.RunCmd, "mv -f /etc/kubernetes/kube-vip.after-init.yaml /etc/kubernetes/manifests/kube-vip.yaml")
	user := slices.Index(cc.RunCmd, "echo joined")
	require.GreaterOrEqual(t, init, 0)
	assert.True(t, init < mv && mv < user, "switched to admin.conf after init, before the caller's commands: %q", cc.RunCmd)
	assert.Contains(t, files["/run/kubeadm/kubeadm.yaml"], "bindPort: 8443")

	out, err = pki.JoinControlPlaneUserData(spec)
	require.NoError(t, err)
	cc, files = parseCloudConfig(t, out)
	pod = kubeVIPPod(t, files["/etc/kubernetes/manifests/kube-vip.yaml"])
	checkKubeVIPPod(t, pod, "8443")
	assert.Equal(t, "/etc/kubernetes/admin.conf", hostKubeconfig(pod), "a joining node's admin.conf works from the start")
	assert.Equal(t, hosts, files["/etc/kube-vip.hosts"])
	assert.NotContains(t, files, "/etc/kubernetes/kube-vip.after-init.yaml")
	assert.Contains(t, files["/run/kubeadm/kubeadm-join-config.yaml"], "bindPort: 8443")
	for _, c := range cc.RunCmd {
		assert.NotContains(t, c, "kube-vip")
	}

	out, err = pki.WorkerUserData(spec)
	require.NoError(t, err)
	assert.NotContains(t, string(out), "kube-vip")

	t.Run("super-admin.conf from 1.29, pre-releases included", func(t *testing.T) {
		for version, want := range map[string]string{
			"v1.28.15": "/etc/kubernetes/admin.conf", "v1.29.0-rc.1": "/etc/kubernetes/super-admin.conf",
			"v1.29.0": "/etc/kubernetes/super-admin.conf", "v1.31.4": "/etc/kubernetes/super-admin.conf",
		} {
			v := spec
			v.KubernetesVersion = version
			out, err := pki.InitControlPlaneUserData(v)
			require.NoError(t, err, version)
			_, files := parseCloudConfig(t, out)
			assert.Equal(t, want, hostKubeconfig(kubeVIPPod(t, files["/etc/kubernetes/manifests/kube-vip.yaml"])), version)
			_, moved := files["/etc/kubernetes/kube-vip.after-init.yaml"]
			assert.Equal(t, want != "/etc/kubernetes/admin.conf", moved, version)
		}
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
			{"192.168.10.10:6443", "192.168.10.10", "kubeVIP.interface"}, // with Interface below
		} {
			bad := spec
			bad.ControlPlaneEndpoint = tc.endpoint
			bad.KubeVIP = &kube.KubeVIP{Address: tc.address}
			if tc.want == "kubeVIP.interface" {
				bad.KubeVIP.Interface = "eth0; reboot"
			}
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
