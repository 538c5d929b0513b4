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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// bounded returns a context that ends after d, so that a test's calls end
// with a deadline error instead of hanging.
func bounded(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fixture creates a Node object (there is no kubelet) and ready pods bound
// to it, as a kubelet would report them. Its pods are owned by a
// StatefulSet of their namespace (no StatefulSet controller runs, so
// nothing recreates or deletes them) unless made unowned.
type fixture struct {
	t     testing.TB
	cs    kubernetes.Interface
	node  string
	ns    string
	owner metav1.OwnerReference
}

func newFixture(t testing.TB, cs kubernetes.Interface, name string) *fixture {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
	f := &fixture{t: t, cs: cs, node: name}
	return f.in(name)
}

// in returns the fixture for the same node with pods and budgets in
// namespace ns, which it creates with the StatefulSet owning its pods.
func (f *fixture) in(ns string) *fixture {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := f.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(f.t, err)
	lbls := map[string]string{"owner": "workload"}
	sts, err := f.cs.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "workload", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.local/app:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(f.t, err)
	return &fixture{t: f.t, cs: f.cs, node: f.node, ns: ns,
		owner: metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: ptr(true)}}
}

// pod creates a running, ready pod unless mutate gives it a status phase,
// in which case the status is mutate's.
func (f *fixture) pod(name string, lbls map[string]string, mutate ...func(*corev1.Pod)) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns, Labels: lbls, OwnerReferences: []metav1.OwnerReference{f.owner}},
		Spec: corev1.PodSpec{
			NodeName:   f.node,
			Containers: []corev1.Container{{Name: "c", Image: "registry.local/app:1"}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	status := p.Status
	if status.Phase == "" {
		status.Phase = corev1.PodRunning
		status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	p, err := f.cs.CoreV1().Pods(f.ns).Create(ctx, p, metav1.CreateOptions{})
	require.NoError(f.t, err)
	p.Status = status
	_, err = f.cs.CoreV1().Pods(f.ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	require.NoError(f.t, err)
}

// unowned makes a pod that no controller owns.
func unowned(p *corev1.Pod) { p.OwnerReferences = nil }

func withEmptyDir(p *corev1.Pod) {
	p.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
}

func (f *fixture) pdb(name string, minAvailable int, lbls map[string]string) {
	f.pdbSelecting(name, minAvailable, &metav1.LabelSelector{MatchLabels: lbls})
}

// pdbSelecting creates a budget with selector as it is: {} selects every
// pod of the namespace, nil none.
func (f *fixture) pdbSelecting(name string, minAvailable int, selector *metav1.LabelSelector) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := f.cs.PolicyV1().PodDisruptionBudgets(f.ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &intstr.IntOrString{Type: intstr.Int, IntVal: int32(minAvailable)},
			Selector:     selector,
		},
	}, metav1.CreateOptions{})
	require.NoError(f.t, err)
}

// settled waits until the disruption controller has computed every PDB of
// the namespace over all the pods it selects.
func (f *fixture) settled() {
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pdbs, err := f.cs.PolicyV1().PodDisruptionBudgets(f.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pods, err := f.cs.CoreV1().Pods(f.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, b := range pdbs.Items {
			sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
			if err != nil {
				return false, err
			}
			n, ready := 0, 0
			for _, p := range pods.Items {
				if sel.Matches(labels.Set(p.Labels)) {
					n++
					for _, c := range p.Status.Conditions {
						if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
							ready++
						}
					}
				}
			}
			if b.Status.ObservedGeneration != b.Generation || int(b.Status.ExpectedPods) != n || int(b.Status.CurrentHealthy) != ready {
				return false, nil
			}
		}
		return true, nil
	})
	require.NoError(f.t, err, "the disruption controller did not compute the budgets of %s", f.ns)
}

func TestDrain(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	t.Parallel() // its own node and namespaces; it mostly waits out pod timeouts
	ctx := bounded(t, 3*time.Minute)
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
	f.pod("cache", nil, withEmptyDir)
	f.pdb("web", 10, web) // 10 of 20 may go
	f.pdb("db", 3, db)    // none may go
	f.settled()

	grace := time.Duration(0)
	opts := kube.DrainOptions{GracePeriod: &grace, PodTimeout: 20 * time.Second}
	pf, err := c.DrainPreflight(ctx, f.node, opts)
	require.NoError(t, err)
	require.Len(t, pf.Blocks, 2, "%+v", pf.Blocks)
	assert.Equal(t, "db", pf.Blocks[0].Name)
	assert.ElementsMatch(t, []string{"db-0", "db-1", "db-2"}, pf.Blocks[0].Pods)
	assert.Equal(t, 3, pf.Blocks[0].Refuse, "db allows no disruption")
	assert.Equal(t, "web", pf.Blocks[1].Name)
	assert.Len(t, pf.Blocks[1].Pods, 20)
	assert.Equal(t, 10, pf.Blocks[1].Refuse, "web allows 10 disruptions of its 20 pods")
	require.Len(t, pf.Left, 1)
	assert.Equal(t, kube.PodOutcome{Namespace: f.ns, Name: "cache", Result: kube.Blocked, Reason: "has emptyDir data; set DeleteEmptyDirData to evict it"}, pf.Left[0])
	assert.Empty(t, pf.Unmanaged)
	assert.False(t, pf.Clear())

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
	// The pod timeout leaves the controller-manager ample time to see the
	// relaxed budget on a loaded machine; the refused web pods wait it out.
	var events []kubefoundry.Event
	sink := kubefoundry.SinkFunc(func(e kubefoundry.Event) { events = append(events, e) }) // serialised by Drain
	opts.Progress, opts.Sink = progress, sink
	rep, err := c.Drain(ctx, f.node, opts)
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
			assert.Contains(t, e.Message, "PodDisruptionBudget "+f.ns+"/db", "the refusal names its budget")
			assert.ErrorContains(t, e.Err, "PodDisruptionBudget "+f.ns+"/db")
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
	for _, o := range rep.Pods {
		if o.Result == kube.Refused {
			assert.Equal(t, "web", o.PDB, "%+v", o)
			assert.Contains(t, o.Reason, "PodDisruptionBudget "+f.ns+"/web")
		}
	}
	assert.False(t, rep.Complete())

	require.NoError(t, c.Uncordon(ctx, f.node))
}

// TestDrainUnmanaged: a pod no controller owns is left and reported
// Unmanaged (nothing would bring it back), by the preflight too, unless
// Force is set, as `kubectl drain` leaves it unless --force.
func TestDrainUnmanaged(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := bounded(t, 2*time.Minute)
	c, err := kube.New(env.Config, kube.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	f := newFixture(t, c.Clientset(), "drain-unmanaged")
	f.pod("app-0", map[string]string{"app": "a"})
	f.pod("lone", nil, unowned)
	f.pod("lone-cache", nil, unowned, withEmptyDir)
	f.pod("cache", nil, withEmptyDir)

	const (
		unmanaged = "no controller owns it, so nothing would recreate it; set Force to evict it"
		both      = unmanaged + " (it also has emptyDir data: set DeleteEmptyDirData too)"
		emptyDir  = "has emptyDir data; set DeleteEmptyDirData to evict it"
	)
	grace := time.Duration(0)
	opts := kube.DrainOptions{GracePeriod: &grace, PodTimeout: 30 * time.Second}
	pf, err := c.DrainPreflight(ctx, f.node, opts)
	require.NoError(t, err)
	assert.Empty(t, pf.Blocks)
	assert.ElementsMatch(t, []string{f.ns + "/lone", f.ns + "/lone-cache"}, pf.Unmanaged)
	assert.ElementsMatch(t, []kube.PodOutcome{
		{Namespace: f.ns, Name: "lone", Result: kube.Unmanaged, Reason: unmanaged},
		{Namespace: f.ns, Name: "lone-cache", Result: kube.Unmanaged, Reason: both},
		{Namespace: f.ns, Name: "cache", Result: kube.Blocked, Reason: emptyDir},
	}, pf.Left)

	rep, err := c.Drain(ctx, f.node, opts)
	require.NoError(t, err)
	got := map[string]kube.PodOutcome{}
	for _, o := range rep.Pods {
		got[o.Name] = o
	}
	assert.Equal(t, kube.Evicted, got["app-0"].Result, "%+v", got["app-0"])
	assert.Equal(t, kube.Unmanaged, got["lone"].Result, "%+v", got["lone"])
	assert.Equal(t, unmanaged, got["lone"].Reason)
	assert.Equal(t, kube.Unmanaged, got["lone-cache"].Result, "%+v", got["lone-cache"])
	assert.Equal(t, both, got["lone-cache"].Reason)
	assert.Equal(t, kube.Blocked, got["cache"].Result, "%+v", got["cache"])
	assert.Equal(t, 2, rep.Count(kube.Unmanaged))
	assert.False(t, rep.Complete(), "a pod left is not a complete drain")
	_, err = c.Clientset().CoreV1().Pods(f.ns).Get(ctx, "lone", metav1.GetOptions{})
	require.NoError(t, err, "the unmanaged pod is still there")

	// With Force, the unmanaged pod goes; emptyDir data still needs its
	// own consent.
	opts.Force = true
	pf, err = c.DrainPreflight(ctx, f.node, opts)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{f.ns + "/lone", f.ns + "/lone-cache"}, pf.Unmanaged, "listed still: evicted for good")
	assert.ElementsMatch(t, []kube.PodOutcome{
		{Namespace: f.ns, Name: "lone-cache", Result: kube.Blocked, Reason: emptyDir},
		{Namespace: f.ns, Name: "cache", Result: kube.Blocked, Reason: emptyDir},
	}, pf.Left)
	rep, err = c.Drain(ctx, f.node, opts)
	require.NoError(t, err)
	got = map[string]kube.PodOutcome{}
	for _, o := range rep.Pods {
		got[o.Name] = o
	}
	assert.Equal(t, kube.Evicted, got["lone"].Result, "%+v", got["lone"])
	assert.Equal(t, kube.Blocked, got["lone-cache"].Result, "%+v", got["lone-cache"])
	assert.Equal(t, kube.Blocked, got["cache"].Result, "%+v", got["cache"])
}

// TestDrainPreflightPredicts runs the preflight and then the drain, with
// the same options, on the same cluster: every budget the preflight says
// would refuse refuses as many of the pods it named, no other refuses,
// and the pods it says are left are left, as it says.
func TestDrainPreflightPredicts(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	t.Parallel() // its own node and namespaces; it mostly waits out pod timeouts
	ctx := bounded(t, 2*time.Minute)
	c, err := kube.New(env.Config, kube.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	f := newFixture(t, c.Clientset(), "drain-predict")
	web, db := map[string]string{"app": "web"}, map[string]string{"app": "db"}
	for i := range 5 {
		f.pod(fmt.Sprintf("web-%d", i), web)
	}
	// Not ready: the Eviction API lets it go without asking web, which
	// has the healthy pods it needs.
	f.pod("web-starting", web, func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	})
	f.pod("db-0", db)
	f.pod("db-1", db)
	// Pending: evicted without asking any budget, even one that lets no
	// unhealthy pod go (db has fewer healthy pods than it needs).
	f.pod("db-pending", db, func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending })
	f.pod("free-0", map[string]string{"app": "free"})
	f.pod("free-1", map[string]string{"app": "free"})
	f.pod("idle", map[string]string{"app": "idle"})
	f.pod("pair", map[string]string{"app": "pair"})
	f.pod("lone", map[string]string{"app": "lone"}, unowned)
	f.pod("cache", map[string]string{"app": "cache"}, withEmptyDir)
	f.pdb("web", 3, web)                                 // 5 ready: 2 may go, 3 are refused
	f.pdb("db", 3, db)                                   // 2 of 3 ready: none may go, though the pending one goes regardless
	f.pdb("free", 0, map[string]string{"app": "free"})   // all may go
	f.pdbSelecting("nothing", 1, nil)                    // no selector: covers no pod
	f.pdb("pair-a", 0, map[string]string{"app": "pair"}) // two budgets on one pod:
	f.pdb("pair-b", 0, map[string]string{"app": "pair"}) // the Eviction API refuses it
	f.settled()
	all := f.in("drain-predict-all")
	all.pod("a-0", map[string]string{"app": "a"})
	all.pod("a-1", map[string]string{"app": "a"})
	all.pod("b-0", map[string]string{"app": "b"})
	all.pdbSelecting("everything", 2, &metav1.LabelSelector{}) // selects all 3: 1 may go, 2 are refused
	all.settled()

	grace := time.Duration(0)
	opts := kube.DrainOptions{GracePeriod: &grace, PodTimeout: 4 * time.Second}
	pf, err := c.DrainPreflight(ctx, f.node, opts)
	require.NoError(t, err)
	type block struct {
		ns, name string
		pods     []string
		refuse   int
	}
	var blocks []block
	for _, b := range pf.Blocks {
		blocks = append(blocks, block{b.Namespace, b.Name, b.Pods, b.Refuse})
		assert.NotEmpty(t, b.Reason, "%+v", b)
	}
	require.Equal(t, []block{
		{f.ns, "db", []string{"db-0", "db-1"}, 2},
		{f.ns, "web", []string{"web-0", "web-1", "web-2", "web-3", "web-4"}, 3},
		{all.ns, "everything", []string{"a-0", "a-1", "b-0"}, 2},
	}, blocks)
	pairReason := "covered by PodDisruptionBudgets pair-a, pair-b: the Eviction API evicts no pod that more than one budget covers"
	require.ElementsMatch(t, []kube.PodOutcome{
		{Namespace: f.ns, Name: "lone", Result: kube.Unmanaged, Reason: "no controller owns it, so nothing would recreate it; set Force to evict it"},
		{Namespace: f.ns, Name: "cache", Result: kube.Blocked, Reason: "has emptyDir data; set DeleteEmptyDirData to evict it"},
		{Namespace: f.ns, Name: "pair", Result: kube.Failed, Reason: pairReason},
	}, pf.Left)
	assert.Equal(t, []string{f.ns + "/lone"}, pf.Unmanaged)

	rep, err := c.Drain(ctx, f.node, opts)
	require.NoError(t, err)
	refused := map[string][]string{} // "namespace/budget" -> pods it refused
	var left []kube.PodOutcome
	for _, o := range rep.Pods {
		switch o.Result {
		case kube.Refused:
			refused[o.Namespace+"/"+o.PDB] = append(refused[o.Namespace+"/"+o.PDB], o.Name)
		case kube.Evicted:
		default:
			left = append(left, kube.PodOutcome{Namespace: o.Namespace, Name: o.Name, Result: o.Result, Reason: o.Reason})
		}
	}
	for _, b := range pf.Blocks {
		got := refused[b.Namespace+"/"+b.Name]
		assert.Len(t, got, b.Refuse, "budget %s/%s refused %v", b.Namespace, b.Name, got)
		assert.Subset(t, b.Pods, got, "budget %s/%s refused pods the preflight did not name", b.Namespace, b.Name)
		delete(refused, b.Namespace+"/"+b.Name)
	}
	assert.Empty(t, refused, "budgets the preflight did not predict refused pods")
	assert.ElementsMatch(t, pf.Left, left, "the pods left are those the preflight named, as it named them")
	for _, o := range rep.Pods {
		if o.Name == "pair" {
			assert.ErrorContains(t, o.Err, "pair-a, pair-b")
		}
	}
}

// TestDrainRefusal: a pod refused by its budget is reported with the
// budget's name (outcome, error and events) and is asked again until its
// pod timeout, not given up before it.
func TestDrainRefusal(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	t.Parallel() // its own node and namespaces; it mostly waits out pod timeouts
	ctx := bounded(t, 2*time.Minute)
	c, err := kube.New(env.Config, kube.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	f := newFixture(t, c.Clientset(), "drain-refusal")
	f.pod("guarded", map[string]string{"app": "guarded"})
	f.pdb("guard", 1, map[string]string{"app": "guarded"})
	f.settled()

	var events []kubefoundry.Event
	sink := kubefoundry.SinkFunc(func(e kubefoundry.Event) { events = append(events, e) }) // serialised by Drain
	grace := time.Duration(0)
	const podTimeout = 6 * time.Second
	rep, err := c.Drain(ctx, f.node, kube.DrainOptions{GracePeriod: &grace, PodTimeout: podTimeout, Sink: sink})
	require.NoError(t, err)
	require.Len(t, rep.Pods, 1)
	o := rep.Pods[0]
	require.Equal(t, kube.Refused, o.Result, "%+v", o)
	assert.Equal(t, "guard", o.PDB)
	assert.Contains(t, o.Reason, "PodDisruptionBudget "+f.ns+"/guard")
	assert.ErrorContains(t, o.Err, "evict pod "+f.ns+"/guarded: refused by PodDisruptionBudget "+f.ns+"/guard")
	assert.True(t, apierrors.IsTooManyRequests(o.Err), "the server's 429 is wrapped: %v", o.Err)
	// What the real API server says: its message names no budget, a cause
	// of type DisruptionBudget does.
	var status *apierrors.StatusError
	require.ErrorAs(t, o.Err, &status)
	t.Logf("the API server's refusal: %q, details %+v", status.ErrStatus.Message, status.ErrStatus.Details)
	require.NotNil(t, status.ErrStatus.Details)
	require.NotEmpty(t, status.ErrStatus.Details.Causes)
	assert.Equal(t, policyv1.DisruptionBudgetCause, status.ErrStatus.Details.Causes[0].Type)
	assert.Contains(t, status.ErrStatus.Details.Causes[0].Message, "guard")

	require.NotEmpty(t, events)
	for _, e := range events {
		assert.Equal(t, string(kube.Refused), e.Phase)
		assert.Contains(t, e.Message, "PodDisruptionBudget "+f.ns+"/guard", "%+v", e)
		assert.ErrorContains(t, e.Err, "PodDisruptionBudget "+f.ns+"/guard")
	}
	assert.Greater(t, o.Attempts, 1)
	// A lower bound, not a speed: the refusal is final only at the pod
	// timeout (the drain used to give up at about half of it).
	assert.GreaterOrEqual(t, rep.Duration, podTimeout, "refused before the pod timeout: %+v", o)
}

// TestDrainRefusedPodsLeaveTheirSlot: with one eviction in flight at a
// time, pods refused until their pod timeout do not hold up the others
// while they wait to ask again. Four refused pods holding the one slot
// for their 3 s each would leave the last, and any pod after them, no
// time in the drain's 8 s.
func TestDrainRefusedPodsLeaveTheirSlot(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	t.Parallel() // its own node and namespaces; it mostly waits out pod timeouts
	ctx := bounded(t, 2*time.Minute)
	c, err := kube.New(env.Config, kube.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	f := newFixture(t, c.Clientset(), "drain-slots")
	guarded := map[string]string{"app": "guarded"}
	for i := range 4 {
		f.pod(fmt.Sprintf("guarded-%d", i), guarded)
	}
	for i := range 3 {
		f.pod(fmt.Sprintf("free-%d", i), map[string]string{"app": "free"})
	}
	f.pdb("guard", 4, guarded)
	f.settled()

	grace := time.Duration(0)
	rep, err := c.Drain(ctx, f.node, kube.DrainOptions{GracePeriod: &grace, Concurrency: 1, PodTimeout: 3 * time.Second, Timeout: 8 * time.Second})
	require.NoError(t, err)
	for _, o := range rep.Pods {
		want := kube.Evicted
		if strings.HasPrefix(o.Name, "guarded-") {
			want = kube.Refused
		}
		assert.Equal(t, want, o.Result, "%+v", o)
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkDrain drains a node of 50 pods covered by PodDisruptionBudgets
// that allow them all to go, on the real API server, and reports evictions
// per second (each counted once the pod is gone).
func BenchmarkDrain(b *testing.B) {
	env := kubetest.Need(b, env, envErr)
	ctx := bounded(b, 10*time.Minute)
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
