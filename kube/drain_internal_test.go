package kube

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/flowcontrol"
)

// TestDeadlineError: a pod refused by its budget whose timeout strikes
// while client-go's rate limiter holds the retry stays "refused"; the
// limiter's error is recognised as the deadline, and API errors are not.
func TestDeadlineError(t *testing.T) {
	limiter := flowcontrol.NewTokenBucketRateLimiter(0.001, 1)
	limiter.Accept() // the one token
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := limiter.Wait(ctx)
	require.Error(t, err, "the next token is far past the deadline")
	require.NotErrorIs(t, err, context.DeadlineExceeded, "x/time/rate refuses at once, without the context's error: %v", err)
	wrapped := fmt.Errorf("client rate limiter Wait returned an error: %w", err) // as client-go's request.go says it
	assert.True(t, deadlineError(wrapped), "%v", wrapped)
	assert.True(t, deadlineError(fmt.Errorf("post: %w", context.DeadlineExceeded)))
	assert.False(t, deadlineError(apierrors.NewTooManyRequests("budget", 1)))
	assert.False(t, deadlineError(apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p", errors.New("no"))))
}

func TestDisposition(t *testing.T) {
	owner := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1", UID: "u1", Controller: ptrTo(true)}}
	daemon := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: "u2", Controller: ptrTo(true)}}
	notController := []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "u3"}}
	emptyDir := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	tests := []struct {
		name    string
		owners  []metav1.OwnerReference
		volumes []corev1.Volume
		mirror  bool
		o       DrainOptions
		want    Result
	}{
		{name: "owned", owners: owner, want: ""},
		{name: "unowned", want: Unmanaged},
		{name: "owned, but by no controller", owners: notController, want: Unmanaged},
		{name: "unowned with Force", o: DrainOptions{Force: true}, want: ""},
		{name: "emptyDir", owners: owner, volumes: emptyDir, want: Blocked},
		{name: "emptyDir allowed", owners: owner, volumes: emptyDir, o: DrainOptions{DeleteEmptyDirData: true}, want: ""},
		{name: "unowned with emptyDir", volumes: emptyDir, want: Unmanaged},
		{name: "unowned with emptyDir, Force", volumes: emptyDir, o: DrainOptions{Force: true}, want: Blocked},
		{name: "unowned with emptyDir, both allowed", volumes: emptyDir, o: DrainOptions{Force: true, DeleteEmptyDirData: true}, want: ""},
		{name: "DaemonSet pod", owners: daemon, volumes: emptyDir, want: Skipped},
		{name: "mirror pod", mirror: true, want: Skipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", OwnerReferences: tt.owners}, Spec: corev1.PodSpec{Volumes: tt.volumes}}
			if tt.mirror {
				p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"}
			}
			got, reason := disposition(p, &tt.o)
			assert.Equal(t, tt.want, got, reason)
			assert.Equal(t, got == "", reason == "", "a pod left has a reason, one evicted none: %q", reason)
		})
	}
}

// TestPause: a retry is shortened to go before the deadline rather than
// dropped, and once none fits the pause lasts until the deadline.
func TestPause(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	assert.True(t, pause(ctx, time.Hour, 100*time.Millisecond), "a delay past the deadline is shortened, not the end of the retries")
	assert.False(t, pause(ctx, time.Hour, 100*time.Millisecond), "no request fits before the deadline")
	assert.Error(t, ctx.Err(), "the pause lasted until the deadline")
}

// TestRefusal: the budget behind a 429 is the one the server's cause
// names; without such a cause, the one budget covering the pod.
func TestRefusal(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns", Labels: map[string]string{"app": "web"}}}
	budget := func(name string, sel *metav1.LabelSelector) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: policyv1.PodDisruptionBudgetSpec{Selector: sel}}
	}
	c := &Client{cs: fake.NewClientset(
		budget("web", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}),
		budget("db", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}),
		budget("none", nil),
	)}
	withCause := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	withCause.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}}
	bare := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	tests := []struct {
		name, known, wantPDB, wantDetail string
		err                              error
	}{
		{name: "named by the server", err: fmt.Errorf("wrapped: %w", withCause), wantPDB: "web-pdb", wantDetail: "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"},
		{name: "known from an earlier refusal", err: bare, known: "earlier", wantPDB: "earlier"},
		{name: "the one covering the pod", err: bare, wantPDB: "web"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pdb, detail := c.refusal(ctx, pod, tt.err, tt.known)
			assert.Equal(t, tt.wantPDB, pdb)
			assert.Equal(t, tt.wantDetail, detail)
		})
	}
}
