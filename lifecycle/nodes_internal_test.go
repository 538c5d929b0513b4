package lifecycle

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// A node drained for an upgrade is let back only once its new kubelet
// runs: the Lease of the kubelet stopped with the old VM, or a Ready
// condition the old kubelet left, is not enough; a Lease taken by another
// holder, or renewed since the instance started, and Ready, is. Then it is
// uncordoned and its marks dropped; a node cordoned by someone else is
// left alone.
func TestWaitKubeletThenUncordon(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	env, err := kubetest.Start(ctx)
	env = kubetest.Need(t, env, err)
	defer env.Stop()
	kc, err := kube.New(env.Config)
	require.NoError(t, err)
	cs := kc.Clientset()

	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "127.16.0.20",
		Annotations: map[string]string{annDrained: "worker/abc (0)", annHolder: "old"}}, Spec: corev1.NodeSpec{Unschedulable: true}}
	node, err = cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	require.NoError(t, err)
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
	node, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}, metav1.CreateOptions{})
	if err != nil {
		_, err = cs.CoreV1().Namespaces().Get(ctx, leaseNamespace, metav1.GetOptions{})
		require.NoError(t, err)
	}
	holder, duration := "old", int32(40)
	renewed := metav1.NewMicroTime(time.Now().Add(-20 * time.Second))
	lease, err := cs.CoordinationV1().Leases(leaseNamespace).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node.Name},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &duration, RenewTime: &renewed}}, metav1.CreateOptions{})
	require.NoError(t, err)

	started := time.Now()
	err = waitKubelet(ctx, kc, node.Name, "old", started, 3*time.Second)
	require.ErrorContains(t, err, "not renewed by a new kubelet", "the old kubelet's Lease and Ready condition")

	// The same holder renewing since the instance started (a kubelet that
	// keeps its node's name as its identity, as the real one does).
	now := metav1.NewMicroTime(time.Now())
	lease.Spec.RenewTime = &now
	lease, err = cs.CoordinationV1().Leases(leaseNamespace).Update(ctx, lease, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, waitKubelet(ctx, kc, node.Name, "old", started, 3*time.Second))

	// A new holder, but the node not Ready.
	lease.Spec.RenewTime, holder = &renewed, "new"
	lease.Spec.HolderIdentity = &holder
	_, err = cs.CoordinationV1().Leases(leaseNamespace).Update(ctx, lease, metav1.UpdateOptions{})
	require.NoError(t, err)
	node.Status.Conditions[0].Status = corev1.ConditionFalse
	node, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.ErrorContains(t, waitKubelet(ctx, kc, node.Name, "old", started, 3*time.Second), "not Ready")
	node.Status.Conditions[0].Status = corev1.ConditionTrue
	_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, waitKubelet(ctx, kc, node.Name, "old", started, 3*time.Second), "a new kubelet holds the Lease, and the node is Ready")

	require.NoError(t, uncordonDrained(ctx, kc, node.Name))
	got, err := cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.False(t, got.Spec.Unschedulable)
	assert.NotContains(t, got.Annotations, annDrained)
	assert.NotContains(t, got.Annotations, annHolder)

	// Cordoned by someone else: not lifecycle's to uncordon.
	require.NoError(t, kc.Cordon(ctx, node.Name))
	require.NoError(t, uncordonDrained(ctx, kc, node.Name))
	got, err = cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	require.NoError(t, err)
	assert.True(t, got.Spec.Unschedulable, "a node lifecycle did not drain stays cordoned")
	require.NoError(t, uncordonDrained(ctx, kc, "127.16.0.99"), "a node that is not there")
}
