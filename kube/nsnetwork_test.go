package kube_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// recordingNetworks stands in for the NSX-T provider that lifecycle wires
// in; it hands out a /24 per namespace and can fail on demand.
type recordingNetworks struct {
	mu      sync.Mutex
	nets    map[string]string
	next    int
	failFor map[string]int // namespace -> Ensure calls left to fail
	ensures map[string]int
	deletes map[string]int
}

func newRecordingNetworks() *recordingNetworks {
	return &recordingNetworks{nets: map[string]string{}, failFor: map[string]int{}, ensures: map[string]int{}, deletes: map[string]int{}}
}

func (r *recordingNetworks) EnsureNamespaceNetwork(_ context.Context, ns string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ensures[ns]++
	if r.failFor[ns] > 0 {
		r.failFor[ns]--
		return "", errors.New("ip block exhausted")
	}
	if n, ok := r.nets[ns]; ok {
		return n, nil
	}
	r.nets[ns] = fmt.Sprintf("10.200.%d.0/24", r.next)
	r.next++
	return r.nets[ns], nil
}

func (r *recordingNetworks) DeleteNamespaceNetwork(_ context.Context, ns string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deletes[ns]++
	delete(r.nets, ns)
	return nil
}

func (r *recordingNetworks) count(m map[string]int, ns string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return m[ns]
}

func TestNamespaceNetworkController(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config, kube.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	cs := c.Clientset()
	nets := newRecordingNetworks()
	nets.failFor["nsnet-flaky"] = 2

	start := func() (stop func()) {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.NewNamespaceNetworkController(nets).Run(cctx, 2) }()
		return func() { cancel(); require.NoError(t, <-done) }
	}
	annotation := func(ns, key string) string {
		got, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return got.Annotations[key]
	}
	create := func(ns string) {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	gone := func(ns string) bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}

	stop := start()
	create("nsnet-a")
	create("nsnet-flaky")
	require.Eventually(t, func() bool { return annotation("nsnet-a", kube.NetworkStatusAnnotation) == "Ready" }, 15*time.Second, 50*time.Millisecond)
	assert.Regexp(t, `^10\.200\.\d+\.0/24$`, annotation("nsnet-a", kube.NetworkAnnotation))

	require.Eventually(t, func() bool { return annotation("nsnet-flaky", kube.NetworkStatusAnnotation) == "Ready" }, 15*time.Second, 50*time.Millisecond,
		"retried with backoff after two failures")
	// two failures, the success, and the repeats its own updates trigger (Ensure is idempotent)
	assert.GreaterOrEqual(t, nets.count(nets.ensures, "nsnet-flaky"), 3)
	assert.Zero(t, nets.count(nets.ensures, "kube-system"), "system namespaces are skipped")

	require.NoError(t, cs.CoreV1().Namespaces().Delete(ctx, "nsnet-a", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return gone("nsnet-a") }, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, 1, nets.count(nets.deletes, "nsnet-a"))

	t.Run("a namespace deleted while the controller is down is cleaned up after it restarts", func(t *testing.T) {
		stop()
		require.NoError(t, cs.CoreV1().Namespaces().Delete(ctx, "nsnet-flaky", metav1.DeleteOptions{}))
		time.Sleep(time.Second)
		assert.False(t, gone("nsnet-flaky"), "the finalizer holds it")
		stop = start()
		defer stop()
		require.Eventually(t, func() bool { return gone("nsnet-flaky") }, 30*time.Second, 100*time.Millisecond)
		assert.Equal(t, 1, nets.count(nets.deletes, "nsnet-flaky"))
	})
}
