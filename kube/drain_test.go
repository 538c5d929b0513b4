package kube_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// fixture creates a Node object (there is no kubelet) and ready pods bound
// to it, as a kubelet would report them.
type fixture struct {
	t    testing.TB
	cs   kubernetes.Interface
	node string
	ns   string
}

func newFixture(t testing.TB, cs kubernetes.Interface, name string) *fixture {
	ctx := context.Background()
	_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	return &fixture{t: t, cs: cs, node: name, ns: name}
}

func (f *fixture) pod(name string, lbls map[string]string, mutate ...func(*corev1.Pod)) {
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns, Labels: lbls},
		Spec: corev1.PodSpec{
			NodeName:   f.node,
			Containers: []corev1.Container{{Name: "c", Image: "registry.local/app:1"}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	p, err := f.cs.CoreV1().Pods(f.ns).Create(ctx, p, metav1.CreateOptions{})
	require.NoError(f.t, err)
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	_, err = f.cs.CoreV1().Pods(f.ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	require.NoError(f.t, err)
}

func (f *fixture) pdb(name string, minAvailable int, lbls map[string]string) {
	ctx := context.Background()
	_, err := f.cs.PolicyV1().PodDisruptionBudgets(f.ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &intstr.IntOrString{Type: intstr.Int, IntVal: int32(minAvailable)},
			Selector:     &metav1.LabelSelector{MatchLabels: lbls},
		},
	}, metav1.CreateOptions{})
	require.NoError(f.t, err)
}

// settled waits until the disruption controller has computed every PDB.
func (f *fixture) settled() {
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := f.cs.PolicyV1().PodDisruptionBudgets(f.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if p.Status.ObservedGeneration != p.Generation || p.Status.ExpectedPods == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	require.NoError(f.t, err)
}

func TestDrain(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config, kube.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	f := newFixture(t, c.Clientset(), "drain-1")

	web, db := map[string]string{"app": "web"}, map[string]string{"app": "db"}
	for i := range 20 {
		f.pod(fmt.Sprintf("web-%d", i), web)
	}
	for i := range 3 {
		f.pod(fmt.Sprintf("db-%d", i), db)
	}
	ds, err := c.Clientset().AppsV1().DaemonSets(f.ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: f.ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/agent:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	f.pod("ds-agent", map[string]string{"app": "agent"}, func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr(true)}}
	})
	f.pod("static-etcd", nil, func(p *corev1.Pod) { p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"} })
	f.pod("cache", nil, func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	})
	f.pdb("web", 10, web) // 10 of 20 may go
	f.pdb("db", 3, db)    // none may go
	f.settled()

	blocks, err := c.DrainPreflight(ctx, f.node)
	require.NoError(t, err)
	require.Len(t, blocks, 1, "only the db budget refuses now")
	assert.Equal(t, "db", blocks[0].Name)
	assert.ElementsMatch(t, []string{"db-0", "db-1", "db-2"}, blocks[0].Pods)

	// Once every db pod has been refused (429), the db budget is relaxed,
	// as an operator would, and they are evicted.
	refusedDB := map[string]bool{}
	relaxed := make(chan struct{})
	progress := func(po kube.PodOutcome) {
		if po.Result != kube.Refused || !strings.HasPrefix(po.Name, "db-") || len(refusedDB) == 3 {
			return
		}
		if refusedDB[po.Name] = true; len(refusedDB) == 3 {
			go func() {
				defer close(relaxed)
				patch := []byte(`{"spec":{"minAvailable":0}}`)
				_, err := c.Clientset().PolicyV1().PodDisruptionBudgets(f.ns).Patch(ctx, "db", types.MergePatchType, patch, metav1.PatchOptions{})
				assert.NoError(t, err)
			}()
		}
	}
	grace := time.Duration(0)
	// The pod timeout leaves the controller-manager ample time to see the
	// relaxed budget on a loaded machine; the refused web pods wait it out.
	var events []kubefoundry.Event
	sink := kubefoundry.SinkFunc(func(e kubefoundry.Event) { events = append(events, e) }) // serialised by Drain
	rep, err := c.Drain(ctx, f.node, kube.DrainOptions{GracePeriod: &grace, PodTimeout: 20 * time.Second, Progress: progress, Sink: sink})
	require.NoError(t, err)
	select {
	case <-relaxed:
	case <-time.After(time.Minute):
		t.Fatalf("the db budget was never relaxed: Drain reported %d of the 3 db pods refused (refusals: %v)", len(refusedDB), refusedDB)
	}

	// The shared progress events: 23 pods to evict (26 less a DaemonSet
	// pod, a mirror pod and an emptyDir pod), each ending once, the db
	// pods' refusals reported while they are retried.
	require.NotEmpty(t, events)
	last := events[len(events)-1]
	assert.Equal(t, 23, last.Steps)
	assert.Equal(t, 23, last.Step, "every pod to evict ended")
	retried := 0
	for _, e := range events {
		assert.Equal(t, "drain", e.Op)
		if e.Phase == string(kube.Refused) && strings.HasPrefix(e.Object, f.ns+"/db-") && strings.Contains(e.Message, "retrying") {
			retried++
		}
	}
	assert.GreaterOrEqual(t, retried, 3, "each db pod's refusal is reported while it is retried")

	node, err := c.Clientset().CoreV1().Nodes().Get(ctx, f.node, metav1.GetOptions{})
	require.NoError(t, err)
	assert.True(t, node.Spec.Unschedulable, "cordoned")

	byName := map[string]kube.PodOutcome{}
	for _, p := range rep.Pods {
		byName[p.Name] = p
	}
	require.Len(t, byName, 26)
	assert.Equal(t, kube.Skipped, byName["ds-agent"].Result)
	assert.Equal(t, kube.Skipped, byName["static-etcd"].Result)
	assert.Equal(t, kube.Blocked, byName["cache"].Result)
	for i := range 3 {
		o := byName[fmt.Sprintf("db-%d", i)]
		assert.Equal(t, kube.Evicted, o.Result, "%+v", o)
		assert.Greater(t, o.Attempts, 1, "refused before the budget was relaxed")
	}
	// The web budget allows 10 evictions; without a controller to replace
	// the pods, the other 10 are refused until the pod timeout.
	assert.Equal(t, 10+3, rep.Count(kube.Evicted), "%+v", rep.Pods)
	assert.Equal(t, 10, rep.Count(kube.Refused), "%+v", rep.Pods)
	assert.False(t, rep.Complete())

	require.NoError(t, c.Uncordon(ctx, f.node))
}

func ptr[T any](v T) *T { return &v }

// BenchmarkDrain drains a node of 50 pods covered by PodDisruptionBudgets
// that allow them all to go, on the real API server, and reports evictions
// per second (each counted once the pod is gone).
func BenchmarkDrain(b *testing.B) {
	env := kubetest.Need(b, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(b, err)
	var rate float64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		f := newFixture(b, c.Clientset(), fmt.Sprintf("bench-drain-%d", i))
		for j := range 50 {
			app := map[string]string{"app": fmt.Sprintf("app-%d", j%5)}
			f.pod(fmt.Sprintf("p-%d", j), app)
			if j < 5 {
				f.pdb(fmt.Sprintf("pdb-%d", j), 0, app)
			}
		}
		f.settled()
		b.StartTimer()
		grace := time.Duration(0)
		rep, err := c.Drain(ctx, f.node, kube.DrainOptions{GracePeriod: &grace, PodTimeout: time.Minute})
		require.NoError(b, err)
		require.Equal(b, 50, rep.Count(kube.Evicted))
		rate = 50 / rep.Duration.Seconds()
	}
	b.ReportMetric(rate, "evictions/s")
}
