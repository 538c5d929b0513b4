package kubetest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
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
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// TestKwokNodes runs three simulated workers, each its own kwok with a
// node's credentials, beside a control plane with a scheduler and the node
// lifecycle controller: the nodes turn Ready, a Deployment's pods run on
// them, a drain honours a PodDisruptionBudget and the evicted pods run
// elsewhere, a node whose kwok stops goes NotReady and comes back Ready,
// its pods with it, when kwok starts again. It needs kube-scheduler and
// kwok besides the control plane (`make tools`); it skips without them
// unless KUBEFOUNDRY_REQUIRE_KUBE=1.
func TestKwokNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const (
		lease = 8 * time.Second
		grace = 8 * time.Second // --node-monitor-grace-period
	)
	ca, caPEM := newCA(t)
	env, err := kubetest.Start(ctx,
		kubetest.WithClientCA(caPEM),
		kubetest.WithScheduler(),
		kubetest.WithControllerManagerArgs(
			"--controllers=nodelifecycle",
			"--node-monitor-period=1s",
			"--node-monitor-grace-period="+grace.String(),
		),
	)
	env = kubetest.Need(t, env, err)
	defer env.Stop()
	cs, err := kubernetes.NewForConfig(env.Config)
	require.NoError(t, err)

	// Three workers, each with its own loopback IP, pod range and
	// credentials, as the VMs of a node pool.
	var nodes []*kubetest.Node
	started := time.Now()
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("worker-%d", i)
		n, err := env.StartNode(ctx, kubetest.NodeOptions{
			Name:          name,
			IP:            fmt.Sprintf("127.0.1.%d", 10+i),
			PodCIDR:       fmt.Sprintf("10.244.%d.0/24", i),
			Labels:        map[string]string{"kubernetes.io/hostname": name, "kubefoundry.io/pool": "workers"},
			Taints:        []corev1.Taint{{Key: "kubefoundry.io/pool", Value: "workers", Effect: corev1.TaintEffectPreferNoSchedule}},
			LeaseDuration: lease,
			Kubeconfig:    nodeKubeconfig(t, env, ca, name),
		})
		if errors.Is(err, kubetest.ErrNoBinaries) && os.Getenv(kubetest.RequireEnv) != "1" {
			t.Skipf("%v (set %s=1 to make this a failure)", err, kubetest.RequireEnv)
		}
		require.NoError(t, err)
		nodes = append(nodes, n)
	}
	defer func() {
		if t.Failed() {
			for _, n := range nodes {
				b, _ := os.ReadFile(n.Log())
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("%s's kwok, last lines:\n%s", n.Name(), strings.Join(lines[max(0, len(lines)-15):], "\n"))
			}
		}
	}()
	for _, n := range nodes {
		waitNode(ctx, t, cs, n.Name(), corev1.ConditionTrue, 60*time.Second)
	}
	t.Logf("3 nodes Ready %v after their kwok started", time.Since(started).Round(time.Millisecond))

	t.Run("nodes as registered, with the VM's IP and a Lease", func(t *testing.T) {
		for i, n := range nodes {
			node, err := cs.CoreV1().Nodes().Get(ctx, n.Name(), metav1.GetOptions{})
			require.NoError(t, err)
			assert.Contains(t, node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("127.0.1.%d", 11+i)})
			assert.Equal(t, "workers", node.Labels["kubefoundry.io/pool"])
			assert.Contains(t, node.Spec.Taints, corev1.Taint{Key: "kubefoundry.io/pool", Value: "workers", Effect: corev1.TaintEffectPreferNoSchedule})
			l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name(), metav1.GetOptions{})
			require.NoError(t, err)
			assert.EqualValues(t, lease/time.Second, *l.Spec.LeaseDurationSeconds)
		}
	})

	ns := "kwok"
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	const replicas = 6
	labels := map[string]string{"app": "web"}
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &intstr.IntOrString{Type: intstr.Int, IntVal: replicas},
			Selector:     &metav1.LabelSelector{MatchLabels: labels},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// runningOn waits until the Deployment's pods are all Running and
	// Ready, none on a node of avoid, and returns them by node.
	runningOn := func(t *testing.T, avoid ...string) map[string][]corev1.Pod {
		t.Helper()
		var byNode map[string][]corev1.Pod
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return false, nil
			}
			byNode = map[string][]corev1.Pod{}
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !podReady(&p) || p.Status.PodIP == "" {
					return false, nil
				}
				byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
			}
			for _, a := range avoid {
				if len(byNode[a]) > 0 {
					return false, nil
				}
			}
			return len(pods.Items) == replicas, nil
		})
		require.NoError(t, err, "the Deployment's pods by node: %v", podNames(byNode))
		return byNode
	}

	var busy string // a node with pods
	t.Run("the Deployment's pods run across the nodes, with IPs of their node's range", func(t *testing.T) {
		byNode := runningOn(t)
		t.Logf("pods by node: %v", podNames(byNode))
		assert.GreaterOrEqual(t, len(byNode), 2, "the scheduler spreads the pods")
		for i, n := range nodes {
			_, cidr, err := net.ParseCIDR(fmt.Sprintf("10.244.%d.0/24", i+1))
			require.NoError(t, err)
			for _, p := range byNode[n.Name()] {
				assert.True(t, cidr.Contains(net.ParseIP(p.Status.PodIP)), "pod %s on %s has IP %s", p.Name, n.Name(), p.Status.PodIP)
				assert.Equal(t, fmt.Sprintf("127.0.1.%d", 11+i), p.Status.HostIP)
			}
			if len(byNode[n.Name()]) > 0 && busy == "" {
				busy = n.Name()
			}
		}
	})
	require.NotEmpty(t, busy)

	t.Run("kubectl drain waits for the PodDisruptionBudget; the evicted pods run elsewhere", func(t *testing.T) {
		before := runningOn(t)[busy]
		out, err := env.Kubectl(ctx, "drain", busy, "--timeout=7s")
		require.Error(t, err, "a drain while the PDB allows no disruption: %s", out)
		assert.Contains(t, string(out), "disruption budget")
		assert.ElementsMatch(t, names(before), names(runningOn(t)[busy]), "no pod was evicted")

		_, err = cs.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, "web", types.MergePatchType,
			[]byte(fmt.Sprintf(`{"spec":{"minAvailable":%d}}`, replicas-1)), metav1.PatchOptions{})
		require.NoError(t, err)
		start := time.Now()
		out, err = env.Kubectl(ctx, "drain", busy, "--timeout=90s")
		require.NoError(t, err, "%s", out)
		t.Logf("drain of %s with one disruption allowed: %v\n%s", busy, time.Since(start).Round(time.Millisecond), out)
		byNode := runningOn(t, busy)
		t.Logf("pods by node: %v", podNames(byNode))
		out, err = env.Kubectl(ctx, "uncordon", busy)
		require.NoError(t, err, "%s", out)
	})

	t.Run("a node whose kwok stops goes NotReady; started again it is Ready, its pods too", func(t *testing.T) {
		// After the drain, busy has no pods; stop another node's kwok.
		byNode := runningOn(t)
		var n *kubetest.Node
		for _, c := range nodes {
			if c.Name() != busy && len(byNode[c.Name()]) > 0 {
				n = c
			}
		}
		require.NotNil(t, n, "a node with pods: %v", podNames(byNode))
		stopped := time.Now()
		err := n.Stop()
		t.Logf("%s's kwok stopped (SIGTERM) in %v: %v", n.Name(), time.Since(stopped).Round(time.Millisecond), err)
		assert.NoError(t, err, "kwok exits with status 0 on SIGTERM")
		renewed := func() time.Time {
			l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name(), metav1.GetOptions{})
			require.NoError(t, err)
			return l.Spec.RenewTime.Time
		}
		last := renewed()
		waitNode(ctx, t, cs, n.Name(), corev1.ConditionUnknown, grace+30*time.Second)
		t.Logf("%s NotReady (Ready=Unknown) %v after its kwok stopped", n.Name(), time.Since(stopped).Round(time.Millisecond))
		assert.Equal(t, last, renewed(), "no renewal of the Lease once kwok stopped")
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name()})
			if err != nil {
				return false, nil
			}
			for _, p := range pods.Items {
				if podReady(&p) {
					return false, nil
				}
			}
			return true, nil
		})
		require.NoError(t, err, "the node lifecycle controller marks the pods of a NotReady node not ready")

		restarted := time.Now()
		require.NoError(t, n.Start(ctx))
		// kwok first waits for the Lease of its predecessor to expire; by
		// now it has.
		waitNode(ctx, t, cs, n.Name(), corev1.ConditionTrue, lease+30*time.Second)
		t.Logf("%s Ready %v after its kwok started again", n.Name(), time.Since(restarted).Round(time.Millisecond))
		assert.True(t, renewed().After(last), "the Lease is renewed again")
		byNode = runningOn(t)
		assert.NotEmpty(t, byNode[n.Name()], "the node's pods are Ready again in place")
	})
}

func names(pods []corev1.Pod) []string {
	var s []string
	for _, p := range pods {
		s = append(s, p.Name)
	}
	return s
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podNames(byNode map[string][]corev1.Pod) map[string]int {
	m := map[string]int{}
	for n, ps := range byNode {
		m[n] = len(ps)
	}
	return m
}

// waitNode waits until the node's Ready condition has status want.
func waitNode(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string, want corev1.ConditionStatus, timeout time.Duration) {
	t.Helper()
	var got corev1.ConditionStatus
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = ""
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				got = c.Status
			}
		}
		return got == want, nil
	})
	require.NoError(t, err, "node %s Ready=%q, want %q", name, got, want)
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) (testCA, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kwok-test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return testCA{cert, key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// nodeKubeconfig writes a kubeconfig for user system:node:<name> in group
// system:nodes, a kubelet's identity, and returns its path.
func nodeKubeconfig(t *testing.T, env *kubetest.Environment, ca testCA, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.ServerCA}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		ClientKeyData:         pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: name}
	cfg.CurrentContext = "kubetest"
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path
}
