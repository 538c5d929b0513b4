package kube

import (
	"context"
	"errors"
	"fmt"
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
	// PodDisruptionBudget refusal and the wait for its deletion included.
	// Zero means 5 minutes.
	PodTimeout time.Duration
	// DeleteEmptyDirData allows evicting pods with emptyDir volumes, whose
	// data is lost; otherwise such pods are left and reported.
	DeleteEmptyDirData bool
	// Concurrency bounds the evictions in flight; zero means 10.
	Concurrency int
	// Progress, when set, is told of every refusal while it is retried
	// (Result Refused, Reason saying it retries) and of every pod's final
	// outcome. Calls are serialised.
	Progress func(PodOutcome)
	// Sink, when set, receives the same steps as the SDK's shared
	// kubefoundry.Event: Op "drain", Object "<namespace>/<pod>", Phase the
	// Result ("refused" with Message saying it retries, while it does),
	// Step of Steps the pods to evict that have ended, Err the error.
	Sink kubefoundry.Sink
}

// Result is what happened to one pod.
type Result string

const (
	Evicted  Result = "evicted"  // evicted and gone from the node
	Skipped  Result = "skipped"  // not to be evicted: DaemonSet or mirror pod
	Blocked  Result = "blocked"  // left on purpose: emptyDir data without DeleteEmptyDirData
	Refused  Result = "refused"  // a PodDisruptionBudget refused until PodTimeout
	TimedOut Result = "timedout" // evicted but still there at PodTimeout
	Failed   Result = "failed"   // another error
)

// PodOutcome is the drain's result for one pod.
type PodOutcome struct {
	Namespace string
	Name      string
	Result    Result
	Reason    string
	Attempts  int // eviction requests made
	Err       error
}

// DrainReport is the outcome of a drain, one entry per pod found on the node.
type DrainReport struct {
	Node     string
	Pods     []PodOutcome
	Duration time.Duration
}

// Complete reports whether every pod that had to leave has left.
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

// PDBBlock is a PodDisruptionBudget that refuses evictions now.
type PDBBlock struct {
	Namespace string
	Name      string
	Pods      []string // pods of the node it covers
	Status    policyv1.PodDisruptionBudgetStatus
}

// DrainPreflight says, before draining, which PodDisruptionBudgets would
// refuse an eviction of the node's pods now (disruptionsAllowed is zero),
// and which pods they hold: the drains that would hang, named in advance.
func (c *Client) DrainPreflight(ctx context.Context, node string) ([]PDBBlock, error) {
	pods, err := c.podsOn(ctx, node)
	if err != nil {
		return nil, err
	}
	byNS := map[string][]corev1.Pod{}
	for _, p := range pods {
		if skip, _ := skipReason(&p); skip == "" {
			byNS[p.Namespace] = append(byNS[p.Namespace], p)
		}
	}
	var blocks []PDBBlock
	for ns, nsPods := range byNS {
		pdbs, err := c.cs.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list PodDisruptionBudgets in %s: %w", ns, err)
		}
		for _, pdb := range pdbs.Items {
			if pdb.Status.DisruptionsAllowed > 0 {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || sel.Empty() {
				continue
			}
			var held []string
			for _, p := range nsPods {
				if sel.Matches(labels.Set(p.Labels)) {
					held = append(held, p.Name)
				}
			}
			if len(held) > 0 {
				blocks = append(blocks, PDBBlock{Namespace: ns, Name: pdb.Name, Pods: held, Status: pdb.Status})
			}
		}
	}
	return blocks, nil
}

// Drain cordons node and evicts its pods through the Eviction API, so that
// PodDisruptionBudgets are honoured: a refusal (429) is retried with
// backoff until PodTimeout, then reported, never waited on forever.
// DaemonSet and mirror pods are skipped. The report has one outcome per
// pod; the error is non-nil only when the drain could not be attempted.
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
		if reason, _ := skipReason(&pods[i]); reason == "" && (o.DeleteEmptyDirData || !hasEmptyDir(&pods[i])) {
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
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i := range pods {
		p := &pods[i]
		out := &report.Pods[i]
		out.Namespace, out.Name = p.Namespace, p.Name
		if reason, result := skipReason(p); reason != "" {
			out.Result, out.Reason = result, reason
			continue
		}
		if !o.DeleteEmptyDirData && hasEmptyDir(p) {
			out.Result, out.Reason = Blocked, "has emptyDir data; set DeleteEmptyDirData to evict it"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				out.Result, out.Err = Failed, ctx.Err()
				return
			}
			c.evict(ctx, p, o, out, func(po PodOutcome) { progress(po, false) })
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

// skipReason says why a pod is not evicted, if it is not.
func skipReason(p *corev1.Pod) (string, Result) {
	if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return "mirror pod (static pod of the kubelet)", Skipped
	}
	if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "DaemonSet" {
		return "DaemonSet pod " + ref.Name, Skipped
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

// evict requests the eviction until it is accepted or PodTimeout passes,
// then waits for the pod (this very pod, by UID) to be gone.
func (c *Client) evict(ctx context.Context, p *corev1.Pod, o DrainOptions, out *PodOutcome, progress func(PodOutcome)) {
	ctx, cancel := context.WithTimeout(ctx, o.PodTimeout)
	defer cancel()
	ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
	if o.GracePeriod != nil {
		ev.DeleteOptions = &metav1.DeleteOptions{GracePeriodSeconds: ptrTo(int64(o.GracePeriod.Seconds()))}
	}
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for accepted := false; !accepted; {
		out.Attempts++
		err := c.cs.PolicyV1().Evictions(p.Namespace).Evict(ctx, ev)
		switch {
		case err == nil, apierrors.IsNotFound(err):
			accepted = true
			continue
		case apierrors.IsTooManyRequests(err):
			// A PodDisruptionBudget says not now: ask again later.
			out.Result, out.Reason, out.Err = Refused, "refused by a PodDisruptionBudget until the pod timeout", err
			progress(PodOutcome{Namespace: p.Namespace, Name: p.Name, Result: Refused, Reason: "refused by a PodDisruptionBudget; retrying", Attempts: out.Attempts, Err: err})
		case apierrors.IsConflict(err):
			// The budget changed under us; ask again.
		case out.Result == Refused && (ctx.Err() != nil || deadlineError(err)):
			// The pod timeout struck during a request, or the client's
			// rate limiter saw it would before the request could go:
			// still refused, not another failure.
			return
		default:
			out.Result, out.Reason, out.Err = Failed, "", err
			return
		}
		if !backoff.Sleep(ctx) {
			if out.Result != Refused {
				out.Result, out.Err = Failed, fmt.Errorf("eviction not accepted before the pod timeout: %w", context.DeadlineExceeded)
			}
			return
		}
	}
	out.Result, out.Reason, out.Err = "", "", nil
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		got, err := c.cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && got.UID != p.UID, nil
	})
	if err != nil {
		out.Result, out.Reason, out.Err = TimedOut, "evicted but not gone by the pod timeout", err
		return
	}
	out.Result = Evicted
}

// deadlineError tells whether err is the context's deadline, including
// client-go's rate limiter refusing to wait past it (x/time/rate says
// "would exceed context deadline" without wrapping the context's error).
func deadlineError(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "would exceed context deadline")
}

func ptrTo[T any](v T) *T { return &v }
