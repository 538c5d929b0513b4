package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/kube"
)

// annDrained marks a Node lifecycle drained before its instance was
// stopped, naming the instance: the node is made schedulable again once
// the instance runs, by the same operation or, when that stopped first,
// by the next one that converges the cluster.
const annDrained = "kubefoundry.io/drained-for"

// annHolder keeps who held the node's Lease when it was drained: the
// kubelet that was stopped with the VM.
const annHolder = "kubefoundry.io/drained-lease-holder"

// leaseNamespace is where the kubelets keep their nodes' Leases.
const leaseNamespace = "kube-node-lease"

// DrainError is a node whose drain left pods on it: the instance was not
// stopped, and the node was made schedulable again.
type DrainError struct {
	Node     string
	Instance string
	// Pods are the pods that did not leave, with why.
	Pods []kube.PodOutcome
}

func (e *DrainError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "drain node %s (%s): %d pods did not leave:", e.Node, e.Instance, len(e.Pods))
	for _, p := range e.Pods {
		fmt.Fprintf(&b, " %s/%s %s", p.Namespace, p.Name, p.Result)
		if p.Reason != "" {
			fmt.Fprintf(&b, " (%s)", p.Reason)
		}
		b.WriteString(";")
	}
	return strings.TrimSuffix(b.String(), ";")
}

// nodeClient is an instance's node name (its address) and a client of
// its cluster; no client when the instance has no address.
func (m *Manager) nodeClient(name string, rec *ClusterRecord, inst director.Instance) (string, *kube.Client, error) {
	ip, err := m.instanceIP(rec, inst.ID)
	if err != nil || ip == "" {
		return "", nil, err
	}
	kc, err := m.client(name, &Cluster{APIAddress: rec.APIAddress, APIPort: rec.APIPort})
	return ip, kc, err
}

// instanceIP is an instance's address as the director has it; "" when
// it has none.
func (m *Manager) instanceIP(rec *ClusterRecord, id string) (string, error) {
	recs, err := m.cfg.Director.Instances(rec.Deployment)
	if err != nil {
		return "", err
	}
	for _, r := range recs {
		if r.ID == id && len(r.IPs) > 0 {
			_, ip, _ := strings.Cut(r.IPs[0], "=")
			return ip, nil
		}
	}
	return "", nil
}

// drain drains the Kubernetes node of an instance the director is about
// to stop, to update, recreate or delete it: first a preflight, which
// reports the PodDisruptionBudgets that would refuse now (the drain
// retries while they do: pods evicted from the previous node may still be
// starting elsewhere); then kube.Drain, evictions through the API so that
// every budget holds. The node is marked drained before it is cordoned.
// A drain that leaves pods is a *DrainError: the node is made schedulable
// again and the instance is left running as it was. An instance whose
// node Kubernetes does not know (its kubelet never registered) has
// nothing to drain.
func (m *Manager) drain(ctx context.Context, name string, rec *ClusterRecord, inst director.Instance) error {
	ip, kc, err := m.nodeClient(name, rec, inst)
	if err != nil || kc == nil {
		return err
	}
	if _, err := kc.Clientset().CoreV1().Nodes().Get(ctx, ip, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return nil
	}
	opts := kube.DrainOptions{Force: true, DeleteEmptyDirData: true, PodTimeout: m.cfg.DrainTimeout, Sink: m.cfg.Events}
	pf, err := kc.DrainPreflight(ctx, ip, opts)
	if err != nil {
		return fmt.Errorf("drain node %s (%s): preflight: %w", ip, inst.Name(), err)
	}
	for _, b := range pf.Blocks {
		kubefoundry.Emit(m.cfg.Events, kubefoundry.Event{Op: "drain", Object: b.Namespace + "/" + b.Name, Phase: "waiting",
			Message: fmt.Sprintf("node %s: the budget would refuse %d of %d pods now (%s); the drain retries", ip, b.Refuse, len(b.Pods), b.Reason)})
		m.log.Info("drain preflight: a budget refuses now", zap.String("node", ip), zap.String("pdb", b.Namespace+"/"+b.Name),
			zap.String("reason", b.Reason))
	}
	holder := ""
	if l, err := kc.Clientset().CoordinationV1().Leases(leaseNamespace).Get(ctx, ip, metav1.GetOptions{}); err == nil && l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if err := markDrained(ctx, kc, ip, inst.Name(), holder); err != nil {
		return err
	}
	rep, err := kc.Drain(ctx, ip, opts)
	if err == nil && !rep.Complete() {
		de := &DrainError{Node: ip, Instance: inst.Name()}
		for _, p := range rep.Pods {
			if p.Result != kube.Evicted && p.Result != kube.Skipped {
				de.Pods = append(de.Pods, p)
			}
		}
		err = de
	}
	if err != nil {
		// The instance stays as it was: so does its node.
		if uerr := uncordonDrained(context.WithoutCancel(ctx), kc, ip); uerr != nil {
			m.log.Warn("node left cordoned after a failed drain", zap.String("node", ip), zap.Error(uerr))
		}
		var de *DrainError
		if errors.As(err, &de) {
			return err
		}
		return fmt.Errorf("drain node %s (%s): %w", ip, inst.Name(), err)
	}
	m.log.Info("node drained", zap.String("node", ip), zap.String("instance", inst.Name()), zap.Int("pods", len(rep.Pods)),
		zap.Duration("took", rep.Duration))
	return nil
}

// rejoin is called once the director started an instance again: when its
// node was drained for it, rejoin waits for the node's new kubelet (its
// Lease held by another holder than the one stopped, or renewed since the
// instance started: a Ready condition may still be the old kubelet's) and
// for the node to be Ready, then makes it schedulable, before the
// director moves on to the next instance, so that the pods of the next
// node drained have somewhere to go. A new instance's node is waited for
// with the rest, at the end.
func (m *Manager) rejoin(ctx context.Context, name string, rec *ClusterRecord, inst director.Instance) error {
	ip, kc, err := m.nodeClient(name, rec, inst)
	if err != nil || kc == nil {
		return err
	}
	started := time.Now().Add(-time.Second)
	n, err := kc.Clientset().CoreV1().Nodes().Get(ctx, ip, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("node %s (%s): %w", ip, inst.Name(), err)
	case n.Annotations[annDrained] == "":
		return nil
	}
	if err := waitKubelet(ctx, kc, ip, n.Annotations[annHolder], started, 5*time.Minute); err != nil {
		return fmt.Errorf("node %s (%s) after its update: %w", ip, inst.Name(), err)
	}
	if err := uncordonDrained(ctx, kc, ip); err != nil {
		return err
	}
	m.log.Info("node back", zap.String("node", ip), zap.String("instance", inst.Name()))
	return nil
}

// waitKubelet waits, up to timeout, until node's kubelet is a new one
// (its Lease held by another holder than old, or renewed since started)
// and the node is Ready.
func waitKubelet(ctx context.Context, kc *kube.Client, node, old string, started time.Time, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		l, err := kc.Clientset().CoordinationV1().Leases(leaseNamespace).Get(ctx, node, metav1.GetOptions{})
		if over(ctx, err) {
			// The wait is over: what it waited for is what it last saw.
			return false, nil
		}
		if err != nil {
			last = "its Lease: " + err.Error()
			return false, nil
		}
		holder := ""
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		if holder == old && (l.Spec.RenewTime == nil || l.Spec.RenewTime.Time.Before(started)) {
			last = "its Lease is not renewed by a new kubelet yet"
			return false, nil
		}
		n, err := kc.Clientset().CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if over(ctx, err) {
			return false, nil
		}
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if !nodeReady(n) {
			last = "not Ready"
			return false, nil
		}
		return true, nil
	})
	if err != nil && last != "" {
		return fmt.Errorf("%s: %w", last, err)
	}
	return err
}

// over says the wait is over, so that err says nothing of the node: ctx
// ended, or ends within the poll's second (the client's rate limiter
// refuses at once a call whose wait would outlast it).
func over(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return err != nil && ok && time.Until(d) < time.Second
}

// markDrained annotates a node as drained for an instance, with the
// holder of its Lease then.
func markDrained(ctx context.Context, kc *kube.Client, node, inst, holder string) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q,%q:%q}}}`, annDrained, inst, annHolder, holder)
	if _, err := kc.Clientset().CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("mark node %s drained: %w", node, err)
	}
	return nil
}

// uncordonDrained makes a node lifecycle drained schedulable again and
// drops its mark; a node without the mark (cordoned by someone else) or
// not there is left alone.
func uncordonDrained(ctx context.Context, kc *kube.Client, node string) error {
	n, err := kc.Clientset().CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	if _, ok := n.Annotations[annDrained]; !ok {
		return nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:null,%q:null}},"spec":{"unschedulable":false}}`, annDrained, annHolder)
	if _, err := kc.Clientset().CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("uncordon node %s: %w", node, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
