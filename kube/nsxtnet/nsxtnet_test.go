package nsxtnet_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
	"github.com/kubefoundry/kubefoundry/kube/nsxtnet"
	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

var (
	env    *kubetest.Environment
	envErr error
)

func TestMain(m *testing.M) {
	env, envErr = kubetest.Start(context.Background())
	code := m.Run()
	if env != nil {
		env.Stop()
	}
	os.Exit(code)
}

func newNSX(t *testing.T, cfg simulator.Config, opts ...nsxt.Option) (*simulator.Server, *nsxt.Client, nsxt.Topology) {
	sim, err := simulator.New(cfg)
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	c, err := nsxt.New(context.Background(), nsxt.Config{URLs: []string{sim.URL}, Username: sim.Username(),
		Password: sim.Password(), CACert: string(sim.CertificatePEM())}, append([]nsxt.Option{nsxt.WithLogger(zaptest.NewLogger(t))}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	inv := sim.Inventory()
	topo := nsxt.Topology{ClusterID: "c1", Tier0Path: "/infra/tier-0s/" + inv.Tier0, EdgeClusterPath: inv.EdgeClusterPath(),
		TransportZonePath: inv.TransportZonePath(), NodeIPBlockPath: "/infra/ip-blocks/" + inv.NodeBlock.ID,
		PodIPBlockPaths:            []string{"/infra/ip-blocks/" + inv.PodBlock.ID},
		FloatingIPPoolPaths:        []string{"/infra/ip-pools/" + inv.FloatingPool},
		NamespacesManagedElsewhere: true}
	_, err = c.BuildTopology(context.Background(), topo)
	require.NoError(t, err)
	return sim, c, topo
}

// The namespace controller of kube, with NSX behind it: a namespace
// created in a real API server gets an NSX segment and subnet; deleting it
// removes them before the namespace goes. NSX deletes asynchronously: made
// again before NSX purges the old network, the namespace waits (the
// Client returns ErrPendingDelete at once, the controller tries again with
// its backoff) and gets its network once NSX has purged.
func TestNamespacesGetNSXNetworks(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	sim, c, topo := newNSX(t, simulator.Config{PurgeAfter: time.Hour}, nsxt.WithPurgeWait(time.Millisecond, 0))
	kc, err := kube.New(env.Config, kube.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	cs := kc.Clientset()

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- kc.NewNamespaceNetworkController(&nsxtnet.Provider{Client: c, Topology: topo}).Run(cctx, 2)
	}()
	defer func() { cancel(); require.NoError(t, <-done) }()

	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
		return err == nil && ns.Annotations[kube.NetworkStatusAnnotation] == "Ready"
	}, 20*time.Second, 50*time.Millisecond)
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`^172\.2[4-7]\.\d+\.0/24$`), ns.Annotations[kube.NetworkAnnotation])
	seg := sim.Object("/infra/segments/kf_c1_ns_shop")
	require.NotNil(t, seg)
	require.Equal(t, "/infra/tier-1s/kf_c1", seg["connectivity_path"])

	require.NoError(t, cs.CoreV1().Namespaces().Delete(ctx, "shop", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 30*time.Second, 100*time.Millisecond)
	require.Nil(t, sim.Object("/infra/segments/kf_c1_ns_shop"), "the network went before the namespace")
	for _, p := range sim.Paths() {
		require.NotContains(t, p, "_ns_shop")
	}

	require.Contains(t, sim.Marked(), "/infra/segments/kf_c1_ns_shop", "NSX has not purged it")
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	const patch = "PATCH /policy/api/v1/infra"
	before := sim.Requests()[patch]
	require.Eventually(t, func() bool { return sim.Requests()[patch] >= before+2 }, 20*time.Second, 50*time.Millisecond,
		"the controller tries again")
	require.Contains(t, sim.Marked(), "/infra/segments/kf_c1_ns_shop")
	require.Nil(t, sim.Object("/infra/segments/kf_c1_ns_shop"), "refused while NSX has not purged")
	require.Eventually(t, func() bool {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
		return err == nil && strings.Contains(ns.Annotations[kube.NetworkStatusAnnotation], "pending delete")
	}, 20*time.Second, 50*time.Millisecond, "the namespace says why")
	sim.Purge()
	require.Eventually(t, func() bool {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
		return err == nil && ns.Annotations[kube.NetworkStatusAnnotation] == "Ready"
	}, 30*time.Second, 50*time.Millisecond)
	require.NotNil(t, sim.Object("/infra/segments/kf_c1_ns_shop"))
}

func TestNetworkPolicyConversion(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port, named := intstr.FromInt32(5432), intstr.FromString("http")
	end := int32(5440)
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"api", "worker"}}}}},
					{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "ops"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port, EndPort: &end}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp}},
			}},
		},
	}
	got, err := nsxtnet.NetworkPolicy("c1", np)
	require.NoError(t, err)
	require.Equal(t, nsxt.NetworkPolicy{
		ClusterID: "c1", Namespace: "shop", Name: "db",
		PodSelector: nsxt.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		PolicyTypes: []string{"Ingress", "Egress"},
		Ingress: []nsxt.PolicyRule{{
			Peers: []nsxt.Peer{
				{PodSelector: &nsxt.LabelSelector{MatchExpressions: []nsxt.SelectorRequirement{{Key: "tier", Operator: "In", Values: []string{"api", "worker"}}}}},
				{NamespaceSelector: &nsxt.LabelSelector{MatchLabels: map[string]string{"team": "ops"}}},
			},
			Ports: []nsxt.PolicyPort{{Protocol: "TCP", Port: 5432, EndPort: 5440}},
		}},
		Egress: []nsxt.PolicyRule{{
			Peers: []nsxt.Peer{{IPBlock: &nsxt.IPBlock{CIDR: "10.0.0.0/8"}}},
			Ports: []nsxt.PolicyPort{{Protocol: "UDP"}},
		}},
	}, got)

	// What the conversion gives, nsxt enforces.
	sim, c, _ := newNSX(t, simulator.Config{})
	_, writes, err := c.ApplyNetworkPolicy(context.Background(), got)
	require.NoError(t, err)
	require.Equal(t, 1, writes)
	require.NotNil(t, sim.Object("/infra/domains/default/security-policies/kf_c1_np_shop_db/rules/out-0"))

	// A named port reaches nsxt, which names the field it cannot express.
	np.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Port: &named}}
	got, err = nsxtnet.NetworkPolicy("c1", np)
	require.NoError(t, err)
	_, err = got.Translate()
	var fe *nsxt.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "NetworkPolicy.Ingress[0].Ports[0].Port", fe.Field)
}
