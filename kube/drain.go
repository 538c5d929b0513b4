package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/retry"
)

// DrainOptions control Drain, as TKGI's update-cluster drain flags do.
type DrainOptions struct {
	// GracePeriod overrides each pod's termination grace period when set.
	GracePeriod *time.Duration
	// Timeout bounds the whole drain; zero means only ctx bounds it.
	Timeout time.Duration
	// PodTimeout bounds the eviction of one pod, retries on a
	// PodDisruptionBudget refusal and the wait for its deletion included:
	// a refused eviction is asked again, with backoff capped at 5 s, until
	// the pod timeout (the last time shortly before it) and reported
	// Refused at it. Zero means 5 minutes.
	PodTimeout time.Duration
	// DeleteEmptyDirData allows evicting pods with emptyDir volumes, whose
	// data is lost; otherwise such pods are left and reported Blocked.
	DeleteEmptyDirData bool
	// Force allows evicting pods that no controller owns (no
	// ownerReference with controller: true), as `kubectl drain --force`
	// does: nothing recreates them, so they are gone for good. Otherwise
	// such pods are left and reported Unmanaged.
	Force bool
	// Concurrency bounds the evictions in flight (a pod waiting to ask
	// again after a refusal is not in flight); zero means 10.
	Concurrency int
	// Progress, when set, is told of every refusal while it is retried
	// (Result Refused, PDB the budget, Reason naming it and saying it
	// retries) and of the final outcome of every pod it tries to evict.
	// Pods left on purpose (Skipped, Blocked, Unmanaged) are in the report
	// only. Calls are serialised.
	Progress func(PodOutcome)
	// Sink, when set, receives the same steps as the SDK's shared
	// kubefoundry.Event: Op "drain", Object "<namespace>/<pod>", Phase the
	// Result ("refused" with Message naming the budget and saying it
	// retries, while it does), Step of Steps the pods to evict that have
	// ended, Err the error.
	Sink kubefoundry.Sink
}

// Result is what happened to one pod.
type Result string

// A pod both Unmanaged and Blocked is reported Unmanaged, its Reason
// naming both.
const (
	Evicted   Result = "evicted"   // evicted and gone from the node
	Skipped   Result = "skipped"   // not to be evicted: DaemonSet or mirror pod
	Blocked   Result = "blocked"   // left on purpose: emptyDir data without DeleteEmptyDirData
	Unmanaged Result = "unmanaged" // left on purpose: no controller owns it (nothing would recreate it), without Force
	Refused   Result = "refused"   // a PodDisruptionBudget (PodOutcome.PDB) refused until PodTimeout
	TimedOut  Result = "timedout"  // evicted but still there at PodTimeout
	Failed    Result = "failed"    // another error, such as two budgets covering the pod
)

// PodOutcome is the drain's result for one pod.
type PodOutcome struct {
	Namespace string
	Name      string
	Result    Result
	Reason    string
	// PDB names the PodDisruptionBudget (of the pod's namespace) that
	// refused the eviction, when one did.
	PDB      string
	Attempts int // eviction requests made
	Err      error
}

// DrainReport is the outcome of a drain, one entry per pod found on the node.
type DrainReport struct {
	Node     string
	Pods     []PodOutcome
	Duration time.Duration
}

// Complete reports whether every pod that had to leave has left: only
// DaemonSet and mirror pods (Skipped) may stay. A pod left on purpose
// (Blocked, Unmanaged), refused, timed out or failed makes it false.
func (r *DrainReport) Complete() bool {
	for _, p := range r.Pods {
		if p.Result != Evicted && p.Result != Skipped {
			return false
		}
	}
	return true
}

// Count returns how many pods ended with result.
func (r *DrainReport) Count(result Result) int {
	n := 0
	for _, p := range r.Pods {
		if p.Result == result {
			n++
		}
	}
	return n
}

// Cordon marks a node unschedulable. It is idempotent.
func (c *Client) Cordon(ctx context.Context, node string) error {
	return c.setUnschedulable(ctx, node, true)
}

// Uncordon marks a node schedulable again. It is idempotent.
func (c *Client) Uncordon(ctx context.Context, node string) error {
	return c.setUnschedulable(ctx, node, false)
}

func (c *Client) setUnschedulable(ctx context.Context, node string, v bool) error {
	patch := fmt.Appendf(nil, `{"spec":{"unschedulable":%t}}`, v)
	if _, err := c.cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("set node %s unschedulable=%t: %w", node, v, err)
	}
	return nil
}

// PDBBlock is a PodDisruptionBudget that would refuse evictions of some
// of the node's pods now.
type PDBBlock struct {
	Namespace string
	Name      string
	// Pods are the node's pods to evict whose eviction the budget decides:
	// those it covers, less those the Eviction API evicts regardless
	// (pending, or not ready while the budget lets unhealthy pods go).
	Pods []string
	// Refuse is how many of Pods it would refuse: all of them when it
	// allows no disruption (or the disruption controller has not yet
	// processed it), len(Pods) less status.disruptionsAllowed when it
	// allows fewer. Which ones depends on the order of the evictions.
	Refuse int
	// Reason says why, in the budget's own numbers.
	Reason string
	Status policyv1.PodDisruptionBudgetStatus
}

// Preflight is what a drain with the same options would meet now.
type Preflight struct {
	Node string
	// Blocks are the PodDisruptionBudgets that would refuse some of the
	// node's pods, by namespace and name.
	Blocks []PDBBlock
	// Left are the pods the drain would leave, each as Drain would report
	// it: Unmanaged, Blocked, or Failed (more than one budget covers it,
	// which the Eviction API refuses). DaemonSet and mirror pods, which
	// are skipped, are not listed.
	Left []PodOutcome
	// Unmanaged names ("namespace/name") every pod of the node that no
	// controller owns: in Left without Force, evicted for good with it.
	Unmanaged []string
}

// Clear reports whether the drain would now evict every pod it has to: no
// budget refuses and no pod is left.
func (p *Preflight) Clear() bool { return len(p.Blocks) == 0 && len(p.Left) == 0 }

// DrainPreflight says, before draining, what a Drain of node with the
// same options would meet now, as the Eviction API decides it: the
// PodDisruptionBudgets that would refuse evictions and how many of the
// node's pods each would refuse (every budget that allows fewer
// disruptions than it has pods of the node to evict; a budget with an
// empty selector covers every pod of its namespace, one without a
// selector none), and the pods the drain would leave. The drains that
// would wait out their timeouts, named in advance. It changes nothing.
func (c *Client) DrainPreflight(ctx context.Context, node string, o DrainOptions) (*Preflight, error) {
	pods, err := c.podsOn(ctx, node)
	if err != nil {
		return nil, err
	}
	pf := &Preflight{Node: node}
	budgets := map[string][]policyv1.PodDisruptionBudget{}
	gated := map[types.NamespacedName]*PDBBlock{}
	for i := range pods {
		p := &pods[i]
		result, reason := disposition(p, &o)
		if result == Skipped {
			continue
		}
		if metav1.GetControllerOf(p) == nil {
			pf.Unmanaged = append(pf.Unmanaged, p.Namespace+"/"+p.Name)
		}
		if result != "" {
			pf.Left = append(pf.Left, PodOutcome{Namespace: p.Namespace, Name: p.Name, Result: result, Reason: reason})
			continue
		}
		if evictsRegardless(p) {
			continue
		}
		list, ok := budgets[p.Namespace]
		if !ok {
			l, err := c.cs.PolicyV1().PodDisruptionBudgets(p.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("list PodDisruptionBudgets in %s: %w", p.Namespace, err)
			}
			list = l.Items
			budgets[p.Namespace] = list
		}
		covering := coveringPDBs(p, list)
		switch {
		case len(covering) == 0:
			continue
		case len(covering) > 1:
			pf.Left = append(pf.Left, PodOutcome{Namespace: p.Namespace, Name: p.Name, Result: Failed, Reason: multiBudgetReason(covering)})
			continue
		case !podReady(p) && unhealthyEvictable(covering[0]):
			continue
		}
		b := covering[0]
		key := types.NamespacedName{Namespace: b.Namespace, Name: b.Name}
		if gated[key] == nil {
			gated[key] = &PDBBlock{Namespace: b.Namespace, Name: b.Name, Status: b.Status}
		}
		gated[key].Pods = append(gated[key].Pods, p.Name)
	}
	for _, b := range budgets {
		for i := range b {
			blk := gated[types.NamespacedName{Namespace: b[i].Namespace, Name: b[i].Name}]
			if blk == nil {
				continue
			}
			n, allowed := len(blk.Pods), int(max(b[i].Status.DisruptionsAllowed, 0))
			switch {
			case b[i].Status.ObservedGeneration < b[i].Generation:
				// The Eviction API refuses every eviction it decides until
				// the controller has caught up.
				blk.Refuse = n
				blk.Reason = "not yet processed by the disruption controller (status.observedGeneration is behind metadata.generation)"
			case allowed < n:
				blk.Refuse = n - allowed
				blk.Reason = fmt.Sprintf("allows %d disruptions (needs %d healthy pods, has %d) for %d pods of the node",
					allowed, b[i].Status.DesiredHealthy, b[i].Status.CurrentHealthy, n)
			default:
				continue
			}
			pf.Blocks = append(pf.Blocks, *blk)
		}
	}
	slices.SortFunc(pf.Blocks, func(a, b PDBBlock) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return pf, nil
}

// Drain cordons node and evicts its pods through the Eviction API, so that
// PodDisruptionBudgets are honoured: a refusal (429) is retried with
// capped backoff until PodTimeout, then reported with the budget that
// refused, never waited on forever. DaemonSet and mirror pods are
// skipped; pods no controller owns are left unless Force, pods with
// emptyDir data unless DeleteEmptyDirData, as `kubectl drain` does.
// DrainPreflight predicts what it will meet. The report has one outcome
// per pod; the error is non-nil only when the drain could not be
// attempted.
func (c *Client) Drain(ctx context.Context, node string, o DrainOptions) (*DrainReport, error) {
	start := time.Now()
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	if o.PodTimeout <= 0 {
		o.PodTimeout = 5 * time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if err := c.Cordon(ctx, node); err != nil {
		return nil, err
	}
	pods, err := c.podsOn(ctx, node)
	if err != nil {
		return nil, err
	}
	log := c.log.With(zap.String("node", node))
	report := &DrainReport{Node: node, Pods: make([]PodOutcome, len(pods))}
	var progressMu sync.Mutex
	steps, done := 0, 0
	for i := range pods {
		if result, _ := disposition(&pods[i], &o); result == "" {
			steps++
		}
	}
	progress := func(po PodOutcome, final bool) {
		if o.Progress == nil && o.Sink == nil {
			return
		}
		progressMu.Lock()
		defer progressMu.Unlock()
		if o.Progress != nil {
			o.Progress(po)
		}
		if o.Sink != nil {
			if final {
				done++
			}
			kubefoundry.Emit(o.Sink, kubefoundry.Event{Op: "drain", Object: po.Namespace + "/" + po.Name, Phase: string(po.Result),
				Step: done, Steps: steps, Message: po.Reason, Err: po.Err})
		}
	}
	sem := make(slots, o.Concurrency)
	var wg sync.WaitGroup
	for i := range pods {
		p := &pods[i]
		out := &report.Pods[i]
		out.Namespace, out.Name = p.Namespace, p.Name
		if result, reason := disposition(p, &o); result != "" {
			out.Result, out.Reason = result, reason
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.evict(ctx, p, o, sem, out, func(po PodOutcome) { progress(po, false) })
			progress(*out, true)
			log.Debug("pod drained", zap.String("pod", p.Namespace+"/"+p.Name), zap.String("result", string(out.Result)))
		}()
	}
	wg.Wait()
	report.Duration = time.Since(start)
	log.Info("drain finished", zap.Int("pods", len(pods)), zap.Int("evicted", report.Count(Evicted)),
		zap.Bool("complete", report.Complete()), zap.Duration("took", report.Duration))
	return report, nil
}

func (c *Client) podsOn(ctx context.Context, node string) ([]corev1.Pod, error) {
	list, err := c.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list pods on %s: %w", node, err)
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// disposition says what Drain does with p: evict it (an empty Result)
// or leave it, with the Result to report and why.
func disposition(p *corev1.Pod, o *DrainOptions) (Result, string) {
	if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return Skipped, "mirror pod (static pod of the kubelet)"
	}
	ref := metav1.GetControllerOf(p)
	if ref != nil && ref.Kind == "DaemonSet" {
		return Skipped, "DaemonSet pod " + ref.Name
	}
	unmanaged, emptyDir := ref == nil && !o.Force, !o.DeleteEmptyDirData && hasEmptyDir(p)
	switch {
	case unmanaged && emptyDir:
		return Unmanaged, "no controller owns it, so nothing would recreate it; set Force to evict it (it also has emptyDir data: set DeleteEmptyDirData too)"
	case unmanaged:
		return Unmanaged, "no controller owns it, so nothing would recreate it; set Force to evict it"
	case emptyDir:
		return Blocked, "has emptyDir data; set DeleteEmptyDirData to evict it"
	}
	return "", ""
}

func hasEmptyDir(p *corev1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil {
			return true
		}
	}
	return false
}

// evictsRegardless tells whether the Eviction API deletes p without
// asking its budgets: a pending pod, or one already being deleted
// (finished pods are not drained at all).
func evictsRegardless(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodPending || p.DeletionTimestamp != nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// unhealthyEvictable tells whether the Eviction API lets a pod that is not
// ready go without counting it against b: when b says AlwaysAllow, or
// (IfHealthyBudget, the default) when b has the healthy pods it needs.
func unhealthyEvictable(b policyv1.PodDisruptionBudget) bool {
	if p := b.Spec.UnhealthyPodEvictionPolicy; p != nil && *p == policyv1.AlwaysAllow {
		return true
	}
	return b.Status.CurrentHealthy >= b.Status.DesiredHealthy && b.Status.DesiredHealthy > 0
}

// coveringPDBs returns the budgets of pdbs whose selector matches p, by
// name, as the Eviction API matches them: an empty selector matches every
// pod of the namespace, a missing one none.
func coveringPDBs(p *corev1.Pod, pdbs []policyv1.PodDisruptionBudget) []policyv1.PodDisruptionBudget {
	var out []policyv1.PodDisruptionBudget
	for _, b := range pdbs {
		if b.Namespace != p.Namespace {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b policyv1.PodDisruptionBudget) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func multiBudgetReason(covering []policyv1.PodDisruptionBudget) string {
	names := make([]string, len(covering))
	for i, b := range covering {
		names[i] = b.Name
	}
	return "covered by PodDisruptionBudgets " + strings.Join(names, ", ") + ": the Eviction API evicts no pod that more than one budget covers"
}

// slots bound the evictions in flight (DrainOptions.Concurrency).
type slots chan struct{}

func (s slots) acquire(ctx context.Context) error {
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s slots) release() { <-s }

// evict requests the eviction until it is accepted or PodTimeout passes,
// then waits for the pod (this very pod, by UID) to be gone. A refusal by
// a PodDisruptionBudget is asked again after a capped backoff for as long
// as the pod timeout lasts, the last time shortly before it ends. The pod
// holds one of the slots from its first request on, except while it waits
// to ask again: pods refused until their timeouts do not hold up the
// others.
func (c *Client) evict(ctx context.Context, p *corev1.Pod, o DrainOptions, sem slots, out *PodOutcome, progress func(PodOutcome)) {
	pod := p.Namespace + "/" + p.Name
	if err := sem.acquire(ctx); err != nil {
		out.Result, out.Err = Failed, fmt.Errorf("evict pod %s: not started: %w", pod, err)
		return
	}
	held := true
	defer func() {
		if held {
			sem.release()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, o.PodTimeout)
	defer cancel()
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
	if o.GracePeriod != nil {
		ev.DeleteOptions = &metav1.DeleteOptions{GracePeriodSeconds: ptrTo(int64(o.GracePeriod.Seconds()))}
	}
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	// The last request goes this long before the pod timeout, so that it
	// can still be answered.
	reserve := min(time.Second, o.PodTimeout/10)
	for accepted := false; !accepted; {
		out.Attempts++
		err := c.cs.PolicyV1().Evictions(p.Namespace).Evict(ctx, ev)
		switch {
		case err == nil, apierrors.IsNotFound(err):
			accepted = true
			continue
		case apierrors.IsTooManyRequests(err):
			// A PodDisruptionBudget says not now: ask again later.
			pdb, detail := c.refusal(ctx, p, err, out.PDB)
			what := "a PodDisruptionBudget"
			if pdb != "" {
				what = "PodDisruptionBudget " + p.Namespace + "/" + pdb
			}
			if detail != "" {
				detail = " (" + detail + ")"
			}
			out.Result, out.PDB = Refused, pdb
			out.Reason = "refused by " + what + detail + " until the pod timeout"
			out.Err = fmt.Errorf("evict pod %s: refused by %s: %w", pod, what, err)
			progress(PodOutcome{Namespace: p.Namespace, Name: p.Name, Result: Refused, PDB: pdb,
				Reason: "refused by " + what + detail + "; retrying", Attempts: out.Attempts, Err: out.Err})
		case apierrors.IsConflict(err):
			// The budget changed under us; ask again.
		case out.Result == Refused && (ctx.Err() != nil || deadlineError(err)):
			// The pod timeout struck during a request, or the client's
			// rate limiter saw it would before the request could go:
			// still refused, not another failure.
			return
		default:
			out.Result, out.Reason, out.PDB, out.Err = Failed, "", "", fmt.Errorf("evict pod %s: %w", pod, err)
			var status apierrors.APIStatus
			if errors.As(err, &status) && status.Status().Code == http.StatusInternalServerError {
				// The Eviction API refuses, with a 500, a pod that more
				// than one budget covers: name them.
				if list, lerr := c.cs.PolicyV1().PodDisruptionBudgets(p.Namespace).List(ctx, metav1.ListOptions{}); lerr == nil {
					if covering := coveringPDBs(p, list.Items); len(covering) > 1 {
						out.Reason = multiBudgetReason(covering)
						out.Err = fmt.Errorf("evict pod %s: %s: %w", pod, out.Reason, err)
					}
				}
			}
			return
		}
		sem.release()
		held = pause(ctx, backoff.Next(), reserve) && sem.acquire(ctx) == nil
		if !held {
			if out.Result != Refused {
				out.Result, out.Err = Failed, fmt.Errorf("evict pod %s: eviction not accepted before the pod timeout: %w", pod, context.DeadlineExceeded)
			}
			return
		}
	}
	out.Result, out.Reason, out.PDB, out.Err = "", "", "", nil
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		got, err := c.cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && got.UID != p.UID, nil
	})
	if err != nil {
		out.Result, out.Reason, out.Err = TimedOut, "evicted but not gone by the pod timeout", fmt.Errorf("pod %s: %w", pod, err)
		return
	}
	out.Result = Evicted
}

// pause waits d before the next request, or less, so that a request still
// goes reserve before ctx's deadline. When none can, it waits for the
// deadline and returns false: a pod refused is refused until its timeout.
func pause(ctx context.Context, d, reserve time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)-reserve)
	}
	if d <= 0 {
		<-ctx.Done()
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// refusal names the PodDisruptionBudget behind a refused eviction of p
// and what it said. The API server names it in the 429's causes ("The
// disruption budget web needs 3 healthy pods and has 3 currently");
// failing that, known (from an earlier refusal) or else the one budget
// covering p is named.
func (c *Client) refusal(ctx context.Context, p *corev1.Pod, err error, known string) (pdb, detail string) {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil {
		for _, cause := range status.Status().Details.Causes {
			if cause.Type != policyv1.DisruptionBudgetCause {
				continue
			}
			detail = cause.Message
			if rest, ok := strings.CutPrefix(cause.Message, "The disruption budget "); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					pdb = f[0]
				}
			}
		}
	}
	if pdb != "" || known != "" {
		return cmp.Or(pdb, known), detail
	}
	list, err := c.cs.PolicyV1().PodDisruptionBudgets(p.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", detail
	}
	if covering := coveringPDBs(p, list.Items); len(covering) == 1 {
		pdb = covering[0].Name
	}
	return pdb, detail
}

// deadlineError tells whether err is the context's deadline, including
// client-go's rate limiter refusing to wait past it (x/time/rate says
// "would exceed context deadline" without wrapping the context's error).
func deadlineError(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "would exceed context deadline")
}

func ptrTo[T any](v T) *T { return &v }
