package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Annotations and finalizer of the namespace network controller.
const (
	NetworkFinalizer        = "kubefoundry.io/network"
	NetworkAnnotation       = "kubefoundry.io/network"        // what the provider reported, such as the subnet
	NetworkStatusAnnotation = "kubefoundry.io/network-status" // "Ready" or "Error: ..."
)

// NetworkProvider makes and removes the network of a namespace (NCP's
// role: kube/nsxtnet implements it with nsxt). Both calls must be idempotent:
// the controller repeats them after errors, resyncs and restarts.
type NetworkProvider interface {
	EnsureNamespaceNetwork(ctx context.Context, namespace string) (string, error)
	DeleteNamespaceNetwork(ctx context.Context, namespace string) error
}

// NamespaceNetworkController gives every namespace a network through a
// NetworkProvider. A finalizer keeps a deleted namespace until its network
// is gone, so that nothing leaks even if the controller was down when the
// namespace was deleted.
type NamespaceNetworkController struct {
	c        *Client
	provider NetworkProvider
	log      *zap.Logger
	skip     func(*corev1.Namespace) bool
	resync   time.Duration
}

// NetworkControllerOption adjusts a NamespaceNetworkController.
type NetworkControllerOption func(*NamespaceNetworkController)

// WithSkip leaves the namespaces for which skip is true alone. By default
// kube-system, kube-public and kube-node-lease are skipped.
func WithSkip(skip func(*corev1.Namespace) bool) NetworkControllerOption {
	return func(n *NamespaceNetworkController) { n.skip = skip }
}

// WithResync sets how often every namespace is checked again even without
// a change; the default is 10 minutes.
func WithResync(d time.Duration) NetworkControllerOption {
	return func(n *NamespaceNetworkController) { n.resync = d }
}

// NewNamespaceNetworkController returns a controller; Run starts it.
func (c *Client) NewNamespaceNetworkController(p NetworkProvider, opts ...NetworkControllerOption) *NamespaceNetworkController {
	n := &NamespaceNetworkController{c: c, provider: p, log: c.log.Named("nsnetwork"), resync: 10 * time.Minute,
		skip: func(ns *corev1.Namespace) bool {
			return slices.Contains([]string{"kube-system", "kube-public", "kube-node-lease"}, ns.Name)
		}}
	for _, o := range opts {
		o(n)
	}
	return n
}

// Run processes namespaces with workers goroutines until ctx ends. Failed
// namespaces are retried with per-item exponential backoff.
//
// What client-go's informer logs (a watch refused or cut) goes to the
// Client's logger, not through klog.
func (n *NamespaceNetworkController) Run(ctx context.Context, workers int) error {
	ctx = klog.NewContext(ctx, zapr.NewLogger(n.log))
	factory := informers.NewSharedInformerFactory(n.c.cs, n.resync)
	inf := factory.Core().V1().Namespaces()
	lister := inf.Lister()
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 2*time.Minute),
			&workqueue.TypedBucketRateLimiter[string]{Limiter: newLimiter(20, 100)},
		),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespace-network"})
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	factory.StartWithContext(ctx)
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		queue.ShutDown()
		return ctx.Err()
	}
	n.log.Info("started", zap.Int("workers", workers))

	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.next(ctx, queue, lister) {
			}
		}()
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	return nil
}

func (n *NamespaceNetworkController) next(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string], lister listersv1.NamespaceLister) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	if err := n.sync(ctx, key, lister); err != nil {
		if ctx.Err() == nil {
			n.log.Warn("namespace network failed; retrying", zap.String("namespace", key), zap.Error(err),
				zap.Int("retries", queue.NumRequeues(key)))
			queue.AddRateLimited(key)
		}
		return true
	}
	queue.Forget(key)
	return true
}

func (n *NamespaceNetworkController) sync(ctx context.Context, name string, lister listersv1.NamespaceLister) error {
	ns, err := lister.Get(name)
	if apierrors.IsNotFound(err) {
		return nil // gone; our finalizer would have held it had it been ours
	}
	if err != nil {
		return err
	}
	if n.skip != nil && n.skip(ns) {
		return nil
	}
	if ns.DeletionTimestamp != nil {
		if !slices.Contains(ns.Finalizers, NetworkFinalizer) {
			return nil
		}
		if err := n.provider.DeleteNamespaceNetwork(ctx, name); err != nil {
			return fmt.Errorf("delete network of %s: %w", name, err)
		}
		n.log.Info("network deleted", zap.String("namespace", name))
		return n.update(ctx, name, func(ns *corev1.Namespace) {
			ns.Finalizers = slices.DeleteFunc(ns.Finalizers, func(f string) bool { return f == NetworkFinalizer })
		})
	}
	if !slices.Contains(ns.Finalizers, NetworkFinalizer) {
		// The finalizer first: from now on a delete waits for the network.
		if err := n.update(ctx, name, func(ns *corev1.Namespace) { ns.Finalizers = append(ns.Finalizers, NetworkFinalizer) }); err != nil {
			return err
		}
	}
	info, perr := n.provider.EnsureNamespaceNetwork(ctx, name)
	status := "Ready"
	if perr != nil {
		status = "Error: " + perr.Error()
	}
	if ns.Annotations[NetworkStatusAnnotation] != status || (perr == nil && ns.Annotations[NetworkAnnotation] != info) {
		if err := n.update(ctx, name, func(ns *corev1.Namespace) {
			if ns.Annotations == nil {
				ns.Annotations = map[string]string{}
			}
			ns.Annotations[NetworkStatusAnnotation] = status
			if perr == nil {
				ns.Annotations[NetworkAnnotation] = info
			}
		}); err != nil {
			return errors.Join(perr, err)
		}
	}
	if perr != nil {
		return fmt.Errorf("network of %s: %w", name, perr)
	}
	return nil
}

// update reads the namespace afresh and writes mutate's change, retrying
// on conflicts with other writers.
func (n *NamespaceNetworkController) update(ctx context.Context, name string, mutate func(*corev1.Namespace)) error {
	return wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Steps: 6}, func(ctx context.Context) (bool, error) {
		ns, err := n.c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		mutate(ns)
		_, err = n.c.cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
}
