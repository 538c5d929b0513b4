package kubetest

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kwokStages are the stages every kwok of StartNode plays (kwok has none
// built in); kwok-stages.yaml says where they come from.
//
//go:embed kwok-stages.yaml
var kwokStages []byte

// NodeOptions describe a simulated worker node for StartNode.
type NodeOptions struct {
	// Name is the Node's name (required).
	Name string
	// IP is the Node's InternalIP (required): on a simulated foundation,
	// the VM's own loopback address, 127.x.y.z.
	IP string
	// PodCIDR is the range kwok gives the node's pods their IPs from,
	// unless the Node has a spec.podCIDR of its own (the controller
	// manager's nodeipam sets one with --allocate-node-cidrs). Without
	// either, kwok's default, 10.0.0.0/24, the same on every node.
	PodCIDR string
	// Labels and Taints are the Node's when it is registered, as a
	// kubelet's --node-labels and --register-with-taints.
	Labels map[string]string
	Taints []corev1.Taint
	// LeaseDuration is the node Lease's duration; kwok renews it every
	// quarter of it, as the kubelet does. Whole seconds; 40 s when zero,
	// the kubelet's default.
	LeaseDuration time.Duration
	// Kubeconfig is the file of the credentials the node registers and
	// runs with: a kubelet's are those of user system:node:<Name> in group
	// system:nodes, which the Node authorizer and NodeRestriction hold to
	// their own Node, Lease and pods. The environment's admin kubeconfig
	// when empty.
	Kubeconfig string
}

// A Node is a simulated worker node: the Node object, and a kwok process
// that plays its kubelet (sigs.k8s.io/kwok, built by `make tools`). While
// kwok runs it keeps the node's Lease renewed and the node Ready, and
// turns the pods scheduled to it Running and Ready with an IP; deleted
// pods are removed at once. Once it is stopped the Lease goes stale, and
// the controller manager's nodelifecycle controller, if it runs
// (WithControllerManagerArgs), marks the node NotReady after its
// --node-monitor-grace-period, as when a VM powers off.
type Node struct {
	opts NodeOptions
	env  *Environment
	dir  string

	mu   sync.Mutex
	proc *process
}

// StartNode registers a node as its kubelet would (it creates the Node
// unless it exists) and starts kwok for it. It does not wait for the node
// to be Ready: with a fresh Lease that takes well under a second; after a
// Stop, kwok first waits for the old Lease to expire. Environment.Stop
// stops the node's kwok; the Node object stays until then.
//
// kwok runs with --manage-single-node, its node's credentials (see
// NodeOptions.Kubeconfig) and no server: it listens on no port, and logs
// to Dir/kwok-<name>.log. The Node authorizer alone lets a node read
// neither the list of Nodes nor that of Leases, which kwok watches (each
// for its one object, but without a field selector the authorizer
// accepts); StartNode grants both to the group system:nodes once per
// environment.
func (e *Environment) StartNode(ctx context.Context, opts NodeOptions) (*Node, error) {
	if opts.Name == "" || opts.IP == "" {
		return nil, errors.New("kubetest: StartNode needs a Name and an IP")
	}
	if fi, err := os.Stat(filepath.Join(e.BinDir, "kwok")); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("%w (no kwok in %s)", ErrNoBinaries, e.BinDir)
	}
	if opts.LeaseDuration == 0 {
		opts.LeaseDuration = 40 * time.Second
	}
	if opts.LeaseDuration < time.Second {
		return nil, fmt.Errorf("kubetest: node %s: a Lease duration of %v is less than a second", opts.Name, opts.LeaseDuration)
	}
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = e.Kubeconfig
	}
	if err := e.grantKwok(ctx); err != nil {
		return nil, err
	}
	n := &Node{opts: opts, env: e, dir: filepath.Join(e.Dir, "kwok-"+opts.Name)}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// Name is the node's name.
func (n *Node) Name() string { return n.opts.Name }

// Log is the path of the file kwok's output goes to (appended to by every
// Start).
func (n *Node) Log() string { return filepath.Join(n.env.Dir, "kwok-"+n.opts.Name+".log") }

// PID is the process id of the node's kwok, 0 when it is not running.
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return 0
	}
	return n.proc.cmd.Process.Pid
}

// Start registers the node unless its Node exists, as a kubelet does when
// it starts (it leaves an existing Node's labels and taints alone; under
// NodeRestriction a node may not change its taints), and starts kwok.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		return fmt.Errorf("kubetest: node %s: kwok is running", n.opts.Name)
	}
	if err := n.register(ctx); err != nil {
		return err
	}
	config := filepath.Join(n.dir, "kwok.yaml")
	if err := os.WriteFile(config, kwokStages, 0o644); err != nil {
		return err
	}
	args := []string{
		"--kubeconfig=" + n.opts.Kubeconfig,
		"--config=" + config,
		"--manage-single-node=" + n.opts.Name,
		"--node-name=" + n.opts.Name,
		"--node-ip=" + n.opts.IP,
		"--node-lease-duration-seconds=" + strconv.Itoa(int(n.opts.LeaseDuration/time.Second)),
	}
	if n.opts.PodCIDR != "" {
		args = append(args, "--cidr="+n.opts.PodCIDR)
	}
	// kwok reads $KWOK_WORKDIR/kwok.yaml (~/.kwok by default) besides
	// --config: point it at the node's own directory, not the user's.
	p, err := n.env.startProcess("kwok "+n.opts.Name, "kwok", n.Log(), []string{"KWOK_WORKDIR=" + n.dir}, args...)
	if err != nil {
		return err
	}
	n.proc = p
	return nil
}

// Stop stops the node's kwok as its VM's agent does when the VM powers
// off: SIGTERM, then SIGKILL if it has not exited within 10 s. It returns
// how kwok exited (nil: status 0), or nil if it was not running.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return nil
	}
	p := n.proc
	n.proc = nil
	err := p.stop()
	n.env.mu.Lock()
	for i, q := range n.env.procs {
		if q == p {
			n.env.procs = append(n.env.procs[:i], n.env.procs[i+1:]...)
			break
		}
	}
	n.env.mu.Unlock()
	return err
}

func (n *Node) register(ctx context.Context) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", n.opts.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubetest: node %s: %w", n.opts.Name, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Nodes().Get(ctx, n.opts.Name, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubetest: node %s: %w", n.opts.Name, err)
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.opts.Name, Labels: n.opts.Labels},
		Spec:       corev1.NodeSpec{Taints: n.opts.Taints},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubetest: register node %s: %w", n.opts.Name, err)
	}
	return nil
}

// grantKwok lets the group system:nodes list and watch Nodes and node
// Leases, which kwok needs beyond what the Node authorizer gives a node.
func (e *Environment) grantKwok(ctx context.Context) error {
	e.kwokMu.Lock()
	defer e.kwokMu.Unlock()
	if e.kwokRBAC {
		return nil
	}
	cs, err := kubernetes.NewForConfig(rest.CopyConfig(e.Config))
	if err != nil {
		return err
	}
	const name = "kubetest:kwok-node"
	nodes := []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:nodes"}}
	read := []string{"get", "list", "watch"}
	create := func(err error) error {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("kubetest: the RBAC kwok needs: %w", err)
		}
		return nil
	}
	if err := inOrder(
		func() error {
			_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: read}},
			}, metav1.CreateOptions{})
			return create(err)
		},
		func() error {
			_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
				Subjects:   nodes,
			}, metav1.CreateOptions{})
			return create(err)
		},
		func() error {
			_, err := cs.RbacV1().Roles(corev1.NamespaceNodeLease).Create(ctx, &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: read}},
			}, metav1.CreateOptions{})
			return create(err)
		},
		func() error {
			_, err := cs.RbacV1().RoleBindings(corev1.NamespaceNodeLease).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
				Subjects:   nodes,
			}, metav1.CreateOptions{})
			return create(err)
		},
	); err != nil {
		return err
	}
	e.kwokRBAC = true
	return nil
}

func inOrder(steps ...func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}
