package kube

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"

	"github.com/kubefoundry/kubefoundry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	"sigs.k8s.io/yaml"
)

// KubeVIP gives a cluster a control-plane load balancer that needs neither
// NSX nor any other load balancer: kube-vip runs as a static pod on every
// control-plane node, holds a virtual IP on the node network (ARP), and
// moves it to another control-plane node, by leader election through a
// Lease, when its holder fails — as Cluster API Provider vSphere's
// templates set it up.
type KubeVIP struct {
	// Address is the virtual IP. BootstrapSpec.ControlPlaneEndpoint must be
	// this address with the port the API servers then listen on.
	Address string
	// Interface carries the address, such as "eth0"; empty lets kube-vip
	// use the interface of the default route.
	Interface string
	// Image is kube-vip's image; DefaultKubeVIPImage when empty (mirror it
	// into the cluster's registry for air-gapped sites).
	Image string
}

// DefaultKubeVIPImage is the kube-vip image used when KubeVIP.Image is empty.
const DefaultKubeVIPImage = "ghcr.io/kube-vip/kube-vip:v0.8.7"

const (
	kubeVIPManifest = "/etc/kubernetes/manifests/kube-vip.yaml"
	// kubeVIPAfterInit is the manifest the first node switches to once
	// kubeadm init has finished (see kubeVIPFiles).
	kubeVIPAfterInit = "/etc/kubernetes/kube-vip.after-init.yaml"
	// kubeVIPHosts becomes the pod's /etc/hosts (see kubeVIPPod).
	kubeVIPHosts   = "/etc/kube-vip.hosts"
	adminConf      = "/etc/kubernetes/admin.conf"
	superAdminConf = "/etc/kubernetes/super-admin.conf"
)

// ifaceRe is what Linux takes as an interface name (at most 15 bytes, no
// '/', ':' or white space).
var ifaceRe = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,15}$`)

// kubeVIPPort checks the spec's kube-vip against its control-plane
// endpoint and returns the API server port.
func (s *BootstrapSpec) kubeVIPPort() (int32, error) {
	addr, err := netip.ParseAddr(s.KubeVIP.Address)
	if err != nil {
		return 0, &kubefoundry.FieldError{Field: "kubeVIP.address", Value: s.KubeVIP.Address, Reason: "not an IP address"}
	}
	if i := s.KubeVIP.Interface; i != "" && !ifaceRe.MatchString(i) {
		return 0, &kubefoundry.FieldError{Field: "kubeVIP.interface", Value: i, Reason: "not an interface name"}
	}
	host, port, err := net.SplitHostPort(s.ControlPlaneEndpoint)
	if err != nil || host != addr.String() {
		return 0, &kubefoundry.FieldError{Field: "controlPlaneEndpoint", Value: s.ControlPlaneEndpoint, Reason: "with kubeVIP it must be " + addr.String() + ":<port>"}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return 0, &kubefoundry.FieldError{Field: "controlPlaneEndpoint", Value: s.ControlPlaneEndpoint, Reason: "bad port"}
	}
	return int32(p), nil
}

// kubeVIPPod is kube-vip's static pod, reading the API through the
// kubeconfig at hostPath (mounted where kube-vip looks, admin.conf).
func (s *BootstrapSpec) kubeVIPPod(port int32, kubeconfig string) *corev1.Pod {
	image := s.KubeVIP.Image
	if image == "" {
		image = DefaultKubeVIPImage
	}
	env := []corev1.EnvVar{
		{Name: "vip_arp", Value: "true"},
		{Name: "port", Value: strconv.Itoa(int(port))},
		{Name: "vip_nodename", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "vip_cidr", Value: "32"},
		{Name: "cp_enable", Value: "true"},
		{Name: "cp_namespace", Value: "kube-system"},
		{Name: "vip_leaderelection", Value: "true"},
		{Name: "vip_leasename", Value: "plndr-cp-lock"},
		{Name: "vip_leaseduration", Value: "15"},
		{Name: "vip_renewdeadline", Value: "10"},
		{Name: "vip_retryperiod", Value: "2"},
		{Name: "address", Value: s.KubeVIP.Address},
	}
	if s.KubeVIP.Interface != "" {
		env = append(env, corev1.EnvVar{Name: "vip_interface", Value: s.KubeVIP.Interface})
	}
	// File, not FileOrCreate: the pod waits until kubeadm has written the
	// kubeconfig instead of starting with an empty one.
	fileType := corev1.HostPathFile
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "kube-vip", Namespace: "kube-system"},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			// kube-vip reaches the API server as "kubernetes:<port>", which
			// must be the local one: the VIP is not up before kube-vip is.
			// Not hostAliases: before Kubernetes 1.32 the kubelet writes
			// them only once the pod has an IP, which a host-network pod
			// on the first node gets only after the Node registers through
			// the VIP (kubernetes#119852). A hosts file of its own, as
			// Cluster API Provider vSphere mounts, works on every version.
			Containers: []corev1.Container{{
				Name:            "kube-vip",
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Args:            []string{"manager"},
				Env:             env,
				SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
					Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}}},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "kubeconfig", MountPath: adminConf},
					{Name: "hosts", MountPath: "/etc/hosts"},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "kubeconfig", VolumeSource: corev1.VolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: kubeconfig, Type: &fileType}}},
				{Name: "hosts", VolumeSource: corev1.VolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: kubeVIPHosts, Type: &fileType}}},
			},
		},
	}
}

// kubeVIPFiles are the files and the post-kubeadm commands that run
// kube-vip on a control-plane node.
//
// From Kubernetes 1.29 kubeadm init writes an admin.conf whose group is
// bound to cluster-admin only at the end of init, so kube-vip cannot take
// its Lease with it — and without the VIP, init cannot reach the API
// through the endpoint. The first node therefore starts kube-vip on
// super-admin.conf and moves it to admin.conf after init (kube-vip issue
// 684, the workaround Cluster API providers ship).
func (s *BootstrapSpec) kubeVIPFiles(port int32, init, superAdmin bool) ([]bootstrapv1.File, []string, error) {
	manifest := func(kubeconfig string) (string, error) {
		b, err := yaml.Marshal(s.kubeVIPPod(port, kubeconfig))
		return string(b), err
	}
	kubeconfig := adminConf
	if init && superAdmin {
		kubeconfig = superAdminConf
	}
	m, err := manifest(kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	files := []bootstrapv1.File{
		{Path: kubeVIPHosts, Owner: "root:root", Permissions: "0644", Content: "127.0.0.1 localhost kubernetes\n"},
		{Path: kubeVIPManifest, Owner: "root:root", Permissions: "0600", Content: m},
	}
	if kubeconfig == adminConf {
		return files, nil, nil
	}
	after, err := manifest(adminConf)
	if err != nil {
		return nil, nil, err
	}
	files = append(files, bootstrapv1.File{Path: kubeVIPAfterInit, Owner: "root:root", Permissions: "0600", Content: after})
	return files, []string{fmt.Sprintf("mv -f %s %s", kubeVIPAfterInit, kubeVIPManifest)}, nil
}
