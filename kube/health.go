package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubefoundry/kubefoundry"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// WaitReady waits until the API server answers /readyz with ok. A
// refusal of the credentials (401, wrapping kubefoundry.ErrUnauthorized)
// or of the permission (403, kubefoundry.ErrForbidden) ends the wait at
// once: waiting does not change them. On timeout the error names the
// last thing the server answered, or why it could not be reached.
func (c *Client) WaitReady(ctx context.Context, timeout time.Duration) error {
	var last error // the last answer or failure to connect, never our own deadline
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := c.cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsUnauthorized(err):
			return false, fmt.Errorf("API server %s refused the credentials: %w: %w", c.cfg.Host, kubefoundry.ErrUnauthorized, err)
		case apierrors.IsForbidden(err):
			return false, fmt.Errorf("API server %s forbids reading /readyz: %w: %w", c.cfg.Host, kubefoundry.ErrForbidden, err)
		case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
			strings.Contains(err.Error(), "rate limiter Wait"):
			// The deadline of the wait, not the server: client-go's rate
			// limiter refuses to wait past it.
		default:
			last = err
		}
		return false, nil
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kubefoundry.ErrUnauthorized), errors.Is(err, kubefoundry.ErrForbidden):
		return err
	case last == nil:
		return fmt.Errorf("API server %s not ready after %s: %w (no answer)", c.cfg.Host, timeout, err)
	}
	return fmt.Errorf("API server %s not ready after %s: %w (last: %v)", c.cfg.Host, timeout, err, last)
}

// NotReadyError names the nodes that did not become Ready in time.
type NotReadyError struct {
	Nodes   []string          // not Ready, sorted
	Reasons map[string]string // node -> why (condition message or "not found")
}

func (e *NotReadyError) Error() string {
	parts := make([]string, len(e.Nodes))
	for i, n := range e.Nodes {
		parts[i] = n + ": " + e.Reasons[n]
	}
	return "nodes not ready: " + strings.Join(parts, "; ")
}

// WaitNodesReady waits until every named node exists and is Ready. On
// timeout it returns a *NotReadyError naming the laggards and why.
func (c *Client) WaitNodesReady(ctx context.Context, names []string, timeout time.Duration) error {
	var reasons map[string]string // of the last round that read every node
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		round := map[string]string{}
		for _, n := range names {
			node, err := c.cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				round[n] = "not registered"
			case err != nil && !isAPIStatus(err):
				return false, nil // no answer (deadline, rate limit, network): keep the last full round
			case err != nil:
				round[n] = err.Error()
			default:
				if ok, why := nodeReady(node); !ok {
					round[n] = why
				}
			}
		}
		reasons = round
		return len(round) == 0, nil
	})
	if err == nil {
		return nil
	}
	nre := &NotReadyError{Reasons: map[string]string{}}
	for n, r := range reasons {
		nre.Nodes = append(nre.Nodes, n)
		nre.Reasons[n] = r
	}
	slices.Sort(nre.Nodes)
	if len(nre.Nodes) == 0 {
		return err
	}
	return nre
}

func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				return true, ""
			}
			return false, fmt.Sprintf("Ready=%s %s %s", c.Status, c.Reason, c.Message)
		}
	}
	return false, "no Ready condition yet"
}

// HealthReport is a cluster's health as the API server sees it.
type HealthReport struct {
	API        APIHealth
	Nodes      []NodeHealth
	SystemPods []PodHealth // kube-system
	// Etcd lists the members when the Client was given WithEtcd and etcd
	// answered; EtcdErr says why not otherwise.
	Etcd    []EtcdMember
	EtcdErr string
}

// APIHealth is the API server's own verdict, check by check.
type APIHealth struct {
	Ready  bool
	Checks map[string]bool // from /readyz?verbose, such as "etcd" and "etcd-readiness"
	Err    string
}

// NodeHealth is one node.
type NodeHealth struct {
	Name          string
	Ready         bool
	Unschedulable bool
	Conditions    map[corev1.NodeConditionType]corev1.ConditionStatus
}

// PodHealth is one system pod.
type PodHealth struct {
	Namespace, Name string
	Phase           corev1.PodPhase
	Ready           bool
}

// Healthy reports whether the API, every node and every system pod is well.
func (r *HealthReport) Healthy() bool {
	if !r.API.Ready {
		return false
	}
	for _, n := range r.Nodes {
		if !n.Ready {
			return false
		}
	}
	for _, p := range r.SystemPods {
		if !p.Ready {
			return false
		}
	}
	for _, m := range r.Etcd {
		if !m.Healthy {
			return false
		}
	}
	return true
}

// Health reads the API server's readiness checks (etcd among them), the
// nodes and their conditions, and the kube-system pods.
func (c *Client) Health(ctx context.Context) (*HealthReport, error) {
	r := &HealthReport{API: APIHealth{Checks: map[string]bool{}}}
	raw, err := c.cs.Discovery().RESTClient().Get().AbsPath("/readyz").Param("verbose", "true").DoRaw(ctx)
	if err != nil {
		r.API.Err = err.Error()
		if len(raw) == 0 {
			return r, nil // the API is down: nothing else can be read
		}
	}
	for _, line := range strings.Split(string(raw), "\n") {
		// "[+]etcd ok" or "[-]etcd failed: reason withheld"
		if len(line) > 3 && line[0] == '[' && line[2] == ']' {
			name, _, _ := strings.Cut(line[3:], " ")
			r.API.Checks[name] = line[1] == '+'
		}
	}
	r.API.Ready = err == nil
	nodes, err := c.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		ready, _ := nodeReady(n)
		nh := NodeHealth{Name: n.Name, Ready: ready, Unschedulable: n.Spec.Unschedulable, Conditions: map[corev1.NodeConditionType]corev1.ConditionStatus{}}
		for _, c := range n.Status.Conditions {
			nh.Conditions[c.Type] = c.Status
		}
		r.Nodes = append(r.Nodes, nh)
	}
	pods, err := c.cs.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list system pods: %w", err)
	}
	for _, p := range pods.Items {
		ph := PodHealth{Namespace: p.Namespace, Name: p.Name, Phase: p.Status.Phase}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				ph.Ready = c.Status == corev1.ConditionTrue
			}
		}
		r.SystemPods = append(r.SystemPods, ph)
	}
	if len(c.etcdEndpoints) > 0 {
		if r.Etcd, err = c.EtcdMembers(ctx); err != nil {
			r.EtcdErr = err.Error()
		}
	}
	return r, nil
}

// isAPIStatus reports whether err is an answer of the API server, as
// opposed to a request that did not get one.
func isAPIStatus(err error) bool {
	var st apierrors.APIStatus
	return errors.As(err, &st)
}
