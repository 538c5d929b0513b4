package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
)

// Operation is what a task does to its cluster.
type Operation string

// The operations.
const (
	OpCreate  Operation = "create"
	OpResize  Operation = "resize"
	OpUpgrade Operation = "upgrade"
	OpDelete  Operation = "delete"
)

// TaskState is where a task stands.
type TaskState string

// A task's states. A task recorded running whose process ended (killed,
// or a Manager closed under it) is running still: Resume runs it again.
const (
	TaskRunning TaskState = "running"
	TaskDone    TaskState = "done"
	TaskFailed  TaskState = "failed"
)

// Request is an operation to run as a task: Spec for a create, Workers
// for a resize (as Resize takes them).
type Request struct {
	Op      Operation      `json:"op"`
	Cluster string         `json:"cluster"`
	Spec    *ClusterSpec   `json:"spec,omitempty"`
	Workers map[string]int `json:"workers,omitempty"`
}

// Task is an operation on a cluster, as the Store keeps it; its events
// are its journal (Manager.Events).
type Task struct {
	ID int64 `json:"id"`
	Request
	State TaskState `json:"state"`
	// Error is why it failed.
	Error string `json:"error,omitempty"`
	// Runs counts the times it was run: more than once when a process
	// that ran it ended first and Resume ran it again.
	Runs    int       `json:"runs"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
}

// BusyError is an operation refused because another task is changing the
// cluster. It wraps kubefoundry.ErrConflict.
type BusyError struct {
	Cluster string
	// Task is the running task.
	Task int64
	Op   Operation
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("cluster %s: task %d (%s) is running", e.Cluster, e.Task, e.Op)
}

func (e *BusyError) Unwrap() error { return kubefoundry.ErrConflict }

// runner runs a Manager's tasks: one per cluster at a time; those Start
// and Resume begin run in the background until they end or Close.
type runner struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	busy   map[string]Task
	done   map[int64]chan struct{}
	stop   map[int64]context.CancelCauseFunc
	// canceled are tasks Cancel stopped before they began to run.
	canceled map[int64]bool
	// closed: Close was called; no task begins.
	closed bool
}

// ErrClosed is an operation asked of a Manager after Close.
var ErrClosed = errors.New("lifecycle: the Manager is closed")

func newRunner(parent context.Context) *runner {
	ctx, cancel := context.WithCancel(parent)
	return &runner{ctx: ctx, cancel: cancel, busy: map[string]Task{}, done: map[int64]chan struct{}{},
		stop: map[int64]context.CancelCauseFunc{}, canceled: map[int64]bool{}}
}

// claim makes a recorded task its cluster's running one, or says which
// task is.
func (r *runner) claim(t Task) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if o, ok := r.busy[t.Cluster]; ok {
		return &BusyError{Cluster: t.Cluster, Task: o.ID, Op: o.Op}
	}
	r.busy[t.Cluster] = t
	r.done[t.ID] = make(chan struct{})
	return nil
}

func (r *runner) release(t Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.busy, t.Cluster)
	delete(r.stop, t.ID)
	delete(r.canceled, t.ID)
	if ch, ok := r.done[t.ID]; ok {
		close(ch)
		delete(r.done, t.ID)
	}
}

// check refuses, before a task is recorded, what is wrong with a request
// on its face.
func (m *Manager) check(req *Request) error {
	if err := kubefoundry.ClusterID(req.Cluster).Validate(); err != nil {
		return err
	}
	switch req.Op {
	case OpCreate:
		if req.Spec == nil {
			return &kubefoundry.ValidationError{Object: "create " + req.Cluster, Problems: []kubefoundry.FieldError{{Field: "spec", Reason: "required"}}}
		}
		spec := m.withDefaults(*req.Spec)
		if string(spec.Name) != req.Cluster {
			return &kubefoundry.ValidationError{Object: "create " + req.Cluster, Problems: []kubefoundry.FieldError{{
				Field: "spec.name", Value: string(spec.Name), Reason: "is not the request's cluster " + req.Cluster}}}
		}
		if err := m.validate(spec); err != nil {
			return err
		}
		req.Spec = &spec
	case OpResize:
		if len(req.Workers) == 0 {
			return &kubefoundry.ValidationError{Object: "resize " + req.Cluster, Problems: []kubefoundry.FieldError{{Field: "workers", Reason: "required"}}}
		}
	case OpUpgrade, OpDelete:
	default:
		return &kubefoundry.ValidationError{Object: "task", Problems: []kubefoundry.FieldError{{Field: "op", Value: string(req.Op),
			Reason: "one of create, resize, upgrade, delete"}}}
	}
	return nil
}

// begin records a new task for req and makes it its cluster's running
// one. The cluster is claimed before the task is recorded, so that two
// requests for one cluster never both record a task.
func (m *Manager) begin(req Request) (Task, error) {
	if err := m.check(&req); err != nil {
		return Task{}, err
	}
	r := m.tasks
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Task{}, ErrClosed
	}
	if o, ok := r.busy[req.Cluster]; ok {
		r.mu.Unlock()
		return Task{}, &BusyError{Cluster: req.Cluster, Task: o.ID, Op: o.Op}
	}
	r.busy[req.Cluster] = Task{Request: req}
	r.mu.Unlock()
	t, err := m.cfg.Store.PutTask(Task{Request: req, State: TaskRunning, Runs: 1, Started: time.Now().UTC()})
	r.mu.Lock()
	if err != nil {
		delete(r.busy, req.Cluster)
		r.mu.Unlock()
		return Task{}, err
	}
	r.busy[req.Cluster] = t
	r.done[t.ID] = make(chan struct{})
	r.mu.Unlock()
	// What a process that ended left running on the cluster is overtaken:
	// this task makes the cluster what it is to be now.
	if err := m.supersede(req.Cluster, t.ID); err != nil {
		m.log.Warn("tasks superseded", zap.String("cluster", req.Cluster), zap.Error(err))
	}
	return t, nil
}

// supersede ends, failed, every task the Store has running on cluster
// but by: a process that ran them ended first, and a newer task on the
// cluster (by) overtook them, so they are not to be resumed. One Manager
// uses a Store at a time, so a task running there that this Manager does
// not run is such a task.
func (m *Manager) supersede(cluster string, by int64) error {
	all, err := m.cfg.Store.Tasks()
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range all {
		if o.Cluster != cluster || o.State != TaskRunning || o.ID == by {
			continue
		}
		m.tasks.mu.Lock()
		_, ours := m.tasks.done[o.ID]
		m.tasks.mu.Unlock()
		if ours {
			continue
		}
		o.State, o.Ended = TaskFailed, time.Now().UTC()
		o.Error = fmt.Sprintf("superseded by task %d: the process that ran it ended first", by)
		errs = append(errs, m.cfg.Store.AddEvent(o.ID, kubefoundry.Event{Time: o.Ended, Op: "task", Object: fmt.Sprint(o.ID),
			Phase: string(TaskFailed), Err: errors.New(o.Error), Message: fmt.Sprintf("%s cluster %s", o.Op, o.Cluster)}))
		_, err := m.cfg.Store.PutTask(o)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// run runs a task to its end and records how it ended; a task whose
// Manager closed under it stays running, for Resume.
func (m *Manager) run(ctx context.Context, t Task, background bool) (*Cluster, error) {
	defer m.tasks.release(t)
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	m.tasks.mu.Lock()
	m.tasks.stop[t.ID] = stop
	if m.tasks.canceled[t.ID] {
		stop(ErrCanceled)
	}
	m.tasks.mu.Unlock()
	op := *m
	journal := kubefoundry.SinkFunc(func(e kubefoundry.Event) {
		if err := m.cfg.Store.AddEvent(t.ID, e); err != nil {
			m.log.Warn("task journal", zap.Int64("task", t.ID), zap.Error(err))
		}
		kubefoundry.Emit(m.cfg.Events, e)
	})
	op.cfg.Events = journal
	phase := "started"
	if t.Runs > 1 {
		phase = "resumed"
	}
	kubefoundry.Emit(journal, kubefoundry.Event{Op: "task", Object: fmt.Sprint(t.ID), Phase: phase,
		Message: fmt.Sprintf("%s cluster %s", t.Op, t.Cluster)})
	var c *Cluster
	var err error
	switch t.Op {
	case OpCreate:
		c, err = op.create(ctx, *t.Spec)
	case OpResize:
		c, err = op.resize(ctx, t.Cluster, t.Workers)
	case OpUpgrade:
		c, err = op.upgrade(ctx, t.Cluster)
	case OpDelete:
		err = op.remove(ctx, t.Cluster)
	}
	if err != nil && background && m.tasks.ctx.Err() != nil && !errors.Is(context.Cause(ctx), ErrCanceled) {
		// The Manager closed under it, or its Context ended (whatever the
		// error the interrupted step gave): the task is left running, to
		// be resumed, as a process killed there leaves it.
		return c, err
	}
	if err != nil && errors.Is(context.Cause(ctx), ErrCanceled) {
		err = fmt.Errorf("%w: %w", ErrCanceled, err)
	}
	t.State, t.Ended = TaskDone, time.Now().UTC()
	if err != nil {
		t.State, t.Error = TaskFailed, err.Error()
	}
	kubefoundry.Emit(journal, kubefoundry.Event{Op: "task", Object: fmt.Sprint(t.ID), Phase: string(t.State), Err: err,
		Message: fmt.Sprintf("%s cluster %s", t.Op, t.Cluster)})
	if _, perr := m.cfg.Store.PutTask(t); perr != nil {
		// The Store keeps it running: Resume would run it again.
		m.log.Error("task end not recorded", zap.Int64("task", t.ID), zap.String("state", string(t.State)), zap.Error(perr))
		err = errors.Join(err, perr)
	}
	return c, err
}

// do runs req as a task in the caller's goroutine.
func (m *Manager) do(ctx context.Context, req Request) (*Cluster, error) {
	t, err := m.begin(req)
	if err != nil {
		return nil, err
	}
	return m.run(ctx, t, false)
}

// Create builds a cluster from spec: its network (nsxt.BuildTopology: a
// tier-1, node segment and subnet, SNAT, and a load balancer whose API
// virtual server fronts the control plane), its cloud config (a named
// one: its AZs, VM types, disk type and node network), the Kubernetes
// release (built from the Foundation's binaries, once) and the stemcell,
// then its BOSH deployment (control-plane instances on static IPs running
// etcd and the control plane, a group per worker pool), and waits until
// its API answers through the load balancer and every node is Ready.
// Running it again converges: every step is idempotent.
//
// It runs as a task in the caller's goroutine (Start runs one in the
// background): recorded with its journal, and refused with a *BusyError
// while another task changes the cluster. An invalid spec is refused
// before any task is recorded.
func (m *Manager) Create(ctx context.Context, spec ClusterSpec) (*Cluster, error) {
	return m.do(ctx, Request{Op: OpCreate, Cluster: string(spec.Name), Spec: &spec})
}

// Resize sets the number of workers: of the default pool (spec.Workers)
// for a cluster without node pools, of each named pool otherwise. New
// workers are created and Ready before it returns; a worker removed is
// drained first (kube.Drain: evictions through the API, so that
// PodDisruptionBudgets hold, pods without a controller evicted too), its
// VM deleted, and its Node removed. It converges as Create does, and
// runs again after a failure.
//
// It runs as a task in the caller's goroutine, as Create does.
func (m *Manager) Resize(ctx context.Context, name string, workers map[string]int) (*Cluster, error) {
	return m.do(ctx, Request{Op: OpResize, Cluster: name, Workers: workers})
}

// Upgrade moves a cluster to the Foundation's stemcell and Kubernetes
// release, as `tkgi upgrade-cluster` does once the platform has a new
// version: the stemcell is uploaded and the release built for it (the
// same release is compiled against the new stemcell when only that
// changed), then the deployment is rolled: the control plane one member
// at a time (the others keep etcd's quorum and the API answering), then
// each worker pool, a canary first. Before the director stops a node's
// VM, the node is drained (a preflight names the PodDisruptionBudgets
// that refuse now; kube.Drain evicts through the API, so every budget
// holds, and a drain that leaves pods fails that node, left running as it
// was); once the VM runs again, the next waits until the node is Ready
// and schedulable. The cluster's spec takes the Foundation's Kubernetes
// version; a downgrade, or a skip of a minor version, is refused before
// anything changes. Running it again converges: an upgrade stopped
// half-way goes on where it stopped, and one already done changes
// nothing. Resize and Create keep a cluster on what it runs.
//
// It runs as a task in the caller's goroutine, as Create does.
func (m *Manager) Upgrade(ctx context.Context, name string) (*Cluster, error) {
	return m.do(ctx, Request{Op: OpUpgrade, Cluster: name})
}

// Delete removes everything the cluster owns, in reverse: its BOSH
// deployment (VMs and disks), its network, its cloud config. It is
// idempotent: what is gone already is no error, and a deletion stopped
// half-way finishes when run again.
//
// It runs as a task in the caller's goroutine, as Create does.
func (m *Manager) Delete(ctx context.Context, name string) error {
	_, err := m.do(ctx, Request{Op: OpDelete, Cluster: name})
	return err
}

// Start runs req as a task in the background and returns it at once,
// recorded running: Wait waits for its end, Events reads its journal.
// What is wrong with the request on its face (an invalid spec, an
// unknown operation) is refused before any task is recorded; another
// task running on the cluster is a *BusyError. The task runs until it
// ends or the Manager is closed, which leaves it running in the Store
// for Resume.
func (m *Manager) Start(req Request) (Task, error) {
	t, err := m.begin(req)
	if err != nil {
		return Task{}, err
	}
	m.tasks.wg.Go(func() { _, _ = m.run(m.tasks.ctx, t, true) })
	return t, nil
}

// Resume runs again, in the background, every task the Store has running
// that this Manager does not: those of a process that ended before they
// did. Each operation converges, so it finishes what the first run began
// (steps already done are found done) and its journal goes on. It
// returns the tasks resumed.
func (m *Manager) Resume() ([]Task, error) {
	all, err := m.cfg.Store.Tasks()
	if err != nil {
		return nil, err
	}
	// The newest running task of each cluster is resumed; older ones are
	// superseded by it.
	newest := map[string]int64{}
	for _, t := range all {
		if t.State == TaskRunning {
			newest[t.Cluster] = t.ID
		}
	}
	var out []Task
	for _, t := range all {
		if t.State != TaskRunning || newest[t.Cluster] != t.ID {
			continue
		}
		t.Runs++
		switch err := m.tasks.claim(t); {
		case errors.Is(err, ErrClosed):
			return out, err
		case err != nil:
			continue // this Manager runs it, or a newer one on the cluster
		}
		// It may have ended since the Store was read.
		if cur, err := m.cfg.Store.Task(t.ID); err != nil || cur.State != TaskRunning {
			m.tasks.release(t)
			continue
		}
		if err := m.supersede(t.Cluster, t.ID); err != nil {
			m.log.Warn("tasks superseded", zap.String("cluster", t.Cluster), zap.Error(err))
		}
		if _, err := m.cfg.Store.PutTask(t); err != nil {
			m.tasks.release(t)
			return out, err
		}
		m.log.Info("task resumed", zap.Int64("task", t.ID), zap.String("cluster", t.Cluster), zap.String("op", string(t.Op)))
		m.tasks.wg.Go(func() { _, _ = m.run(m.tasks.ctx, t, true) })
		out = append(out, t)
	}
	return out, nil
}

// ErrCanceled is the error of a task Cancel stopped.
var ErrCanceled = errors.New("task canceled")

// Cancel stops a task this Manager runs: its operation stops at its next
// step, and the task ends failed, its error wrapping ErrCanceled; what
// it did stays done, and the cluster is as a failed operation leaves it
// (its next operation converges; Delete removes it). A task that is not
// running here is ErrNotFound (one another process runs is not this
// Manager's to stop).
func (m *Manager) Cancel(id int64) error {
	m.tasks.mu.Lock()
	defer m.tasks.mu.Unlock()
	if _, ok := m.tasks.done[id]; !ok {
		return fmt.Errorf("task %d is not running here: %w", id, kubefoundry.ErrNotFound)
	}
	if stop, ok := m.tasks.stop[id]; ok {
		stop(ErrCanceled)
	} else {
		m.tasks.canceled[id] = true
	}
	return nil
}

// Task reads a task.
func (m *Manager) Task(id int64) (Task, error) { return m.cfg.Store.Task(id) }

// Tasks are every task, oldest first.
func (m *Manager) Tasks() ([]Task, error) { return m.cfg.Store.Tasks() }

// Events are a task's journal from index from on (0 for all of it): its
// start, its stages and every step within them, its end.
func (m *Manager) Events(id int64, from int) ([]kubefoundry.Event, error) {
	return m.cfg.Store.Events(id, from)
}

// Wait waits until a task this Manager runs has ended, or ctx has, and
// returns it as recorded. A task it does not run is returned as recorded
// at once: ended, or running but abandoned by a process that ended (one
// Manager uses a Store at a time), for Resume to run again.
func (m *Manager) Wait(ctx context.Context, id int64) (Task, error) {
	m.tasks.mu.Lock()
	ch, ours := m.tasks.done[id]
	m.tasks.mu.Unlock()
	if ours {
		select {
		case <-ch:
		case <-ctx.Done():
			return Task{}, ctx.Err()
		}
	}
	return m.cfg.Store.Task(id)
}

// Close stops the tasks running in the background and waits for them to
// return; each stays running in the Store, for a Manager's Resume. It
// does not close the Store.
func (m *Manager) Close() error {
	m.tasks.mu.Lock()
	m.tasks.closed = true
	m.tasks.mu.Unlock()
	m.tasks.cancel()
	m.tasks.wg.Wait()
	return nil
}
