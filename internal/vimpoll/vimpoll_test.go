package vimpoll_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/goleak"

	"github.com/kubefoundry/kubefoundry/internal/vimpoll"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// counting counts the calls of each SOAP method that go through it.
type counting struct {
	next soap.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *counting) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	name := methodName(req)
	c.n[name]++
	c.mu.Unlock()
	return c.next.RoundTrip(ctx, req, res)
}

func (c *counting) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

func methodName(req soap.HasFault) string {
	switch req.(type) {
	case *methods.RetrievePropertiesExBody:
		return "RetrievePropertiesEx"
	case *methods.ContinueRetrievePropertiesExBody:
		return "ContinueRetrievePropertiesEx"
	default:
		return "other"
	}
}

// vms returns the simulator's VMs and a client whose calls are counted.
func setup(t *testing.T, ctx context.Context, c *vim25.Client) (*counting, []types.ManagedObjectReference) {
	t.Helper()
	var vms []types.ManagedObjectReference
	for _, obj := range simulator.Map(ctx).All("VirtualMachine") {
		vms = append(vms, obj.Reference())
	}
	require.NotEmpty(t, vms)
	cnt := &counting{next: c.RoundTripper}
	c.RoundTripper = cnt
	return cnt, vms
}

func TestTasksWaitsForManyWithFewReads(t *testing.T) {
	old := simulator.TaskDelay.MethodDelay
	simulator.TaskDelay.MethodDelay = map[string]int{"PowerOff": 200, "PowerOn": 200, "LockHandoff": 0}
	defer func() { simulator.TaskDelay.MethodDelay = old }()

	m := simulator.VPX()
	m.Machine = 10 // per host: 3 hosts with clusters, 1 standalone
	defer m.Remove()
	require.NoError(t, m.Create())
	simulator.Test(func(ctx context.Context, c *vim25.Client) {
		cnt, vms := setup(t, ctx, c)
		require.GreaterOrEqual(t, len(vms), 20)
		vms = vms[:20]

		// Half the tasks succeed (power off a running VM), half fail
		// (power on a running VM: InvalidPowerState). Each is waited for
		// as soon as it starts, as a caller would.
		w := vimpoll.NewTasks(c)
		readsBefore := cnt.get("RetrievePropertiesEx")
		var wg sync.WaitGroup
		for i, vm := range vms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ref types.ManagedObjectReference
				if i%2 == 0 {
					res, err := methods.PowerOffVM_Task(ctx, c, &types.PowerOffVM_Task{This: vm})
					require.NoError(t, err)
					ref = res.Returnval
				} else {
					res, err := methods.PowerOnVM_Task(ctx, c, &types.PowerOnVM_Task{This: vm})
					require.NoError(t, err)
					ref = res.Returnval
				}
				info, err := w.Wait(ctx, ref)
				if i%2 == 0 {
					if assert.NoError(t, err) {
						assert.Equal(t, types.TaskInfoStateSuccess, info.State)
					}
					return
				}
				var te task.Error
				assert.ErrorAs(t, err, &te)
				assert.True(t, fault.Is(err, &types.InvalidPowerState{}), "the task's fault is visible to fault.Is: %v", err)
				if assert.NotNil(t, info) {
					assert.Equal(t, types.TaskInfoStateError, info.State)
				}
			}()
		}
		wg.Wait()
		// One read covers every pending task: 20 tasks of 200 ms each
		// (vcsim's task names are "PowerOff" and "PowerOn") are read a
		// handful of times in all, not once or more each.
		reads := cnt.get("RetrievePropertiesEx") - readsBefore
		t.Logf("%d reads for %d tasks", reads, len(vms))
		assert.Less(t, reads, len(vms))
		assert.Positive(t, reads)
	}, m)
}

func TestTasksGoneAndCancelled(t *testing.T) {
	simulator.Test(func(ctx context.Context, c *vim25.Client) {
		w := vimpoll.NewTasks(c)

		// A task the server does not have.
		_, err := w.Wait(ctx, types.ManagedObjectReference{Type: "Task", Value: "task-nowhere"})
		assert.ErrorIs(t, err, vimpoll.ErrGone)

		// A waiter whose context ends gets its error and leaves the others.
		old := simulator.TaskDelay.MethodDelay
		simulator.TaskDelay.MethodDelay = map[string]int{"PowerOff": 300, "LockHandoff": 0}
		defer func() { simulator.TaskDelay.MethodDelay = old }()
		_, vms := setup(t, ctx, c)
		res, err := methods.PowerOffVM_Task(ctx, c, &types.PowerOffVM_Task{This: vms[0]})
		require.NoError(t, err)
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		var patient atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			info, err := w.Wait(ctx, res.Returnval)
			patient.Store(err == nil && info.State == types.TaskInfoStateSuccess)
		}()
		_, err = w.Wait(short, res.Returnval)
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
		<-done
		assert.True(t, patient.Load(), "the other waiter of the same task still gets its outcome")
	})
}

func TestReadSkipsObjectsThatAreGone(t *testing.T) {
	simulator.Test(func(ctx context.Context, c *vim25.Client) {
		_, vms := setup(t, ctx, c)
		nowhere := types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-nowhere"}
		refs := append([]types.ManagedObjectReference{nowhere}, vms...)
		found, gone, err := vimpoll.Read(ctx, c, c.ServiceContent.PropertyCollector, refs, map[string][]string{"VirtualMachine": {"name"}})
		require.NoError(t, err)
		assert.Equal(t, []types.ManagedObjectReference{nowhere}, gone)
		assert.Len(t, found, len(vms))
		for _, oc := range found {
			require.Len(t, oc.PropSet, 1)
			assert.Equal(t, "name", oc.PropSet[0].Name)
		}
	})
}

// failing fails every property read while it is set, as a vCenter that
// drops its connections or restarts its property collector does.
type failing struct {
	next soap.RoundTripper
	on   atomic.Bool
	hits atomic.Int64
}

func (f *failing) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	if _, ok := req.(*methods.RetrievePropertiesExBody); ok && f.on.Load() {
		f.hits.Add(1)
		return errors.New("connection reset by peer")
	}
	return f.next.RoundTrip(ctx, req, res)
}

// A wait outlives a spell of failed reads: Tasks keeps reading for
// GiveUpAfter before it gives up, rather than after a read or two.
func TestTasksReadThroughFailures(t *testing.T) {
	old := simulator.TaskDelay.MethodDelay
	simulator.TaskDelay.MethodDelay = map[string]int{"PowerOff": 2500, "LockHandoff": 0}
	defer func() { simulator.TaskDelay.MethodDelay = old }()
	simulator.Test(func(ctx context.Context, c *vim25.Client) {
		_, vms := setup(t, ctx, c)
		f := &failing{next: c.RoundTripper}
		c.RoundTripper = f
		res, err := methods.PowerOffVM_Task(ctx, c, &types.PowerOffVM_Task{This: vms[0]})
		require.NoError(t, err)

		f.on.Store(true)
		w := vimpoll.NewTasks(c)
		done := make(chan error, 1)
		go func() { _, err := w.Wait(ctx, res.Returnval); done <- err }()
		time.Sleep(1500 * time.Millisecond)
		f.on.Store(false)
		select {
		case err := <-done:
			require.NoError(t, err, "the wait gave up after %d failed reads in 1.5 s", f.hits.Load())
		case <-time.After(30 * time.Second):
			t.Fatal("the wait did not end within 30 s of reads working again")
		}
		assert.Greater(t, f.hits.Load(), int64(2), "reads were attempted and failed during the spell")
	})
}

// Reads that never work end every wait with the read's error after
// GiveUpAfter (shortened here), instead of waiting forever.
func TestTasksGiveUp(t *testing.T) {
	defer vimpoll.SetGiveUpAfter(time.Second)()
	old := simulator.TaskDelay.MethodDelay
	simulator.TaskDelay.MethodDelay = map[string]int{"PowerOff": 4000, "LockHandoff": 0}
	defer func() { simulator.TaskDelay.MethodDelay = old }()
	simulator.Test(func(ctx context.Context, c *vim25.Client) {
		_, vms := setup(t, ctx, c)
		f := &failing{next: c.RoundTripper}
		c.RoundTripper = f
		res, err := methods.PowerOffVM_Task(ctx, c, &types.PowerOffVM_Task{This: vms[0]})
		require.NoError(t, err)
		f.on.Store(true)
		w := vimpoll.NewTasks(c)
		done := make(chan error, 1)
		start := time.Now()
		go func() { _, err := w.Wait(ctx, res.Returnval); done <- err }()
		select {
		case err := <-done:
			require.ErrorContains(t, err, "connection reset by peer")
			assert.GreaterOrEqual(t, time.Since(start), time.Second, "gave up before GiveUpAfter")
		case <-time.After(30 * time.Second):
			t.Fatal("the wait did not give up within 30 s of failing reads (GiveUpAfter is 1 s here)")
		}
		// Reads work again: a new wait sees the task (4 s) end, and the
		// simulator's task goroutine with it.
		f.on.Store(false)
		_, err = w.Wait(ctx, res.Returnval)
		require.NoError(t, err)
	})
}
