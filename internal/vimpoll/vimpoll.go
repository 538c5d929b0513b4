// Package vimpoll reads many vSphere managed objects in one call, and waits
// for many tasks on one shared, batched poll, for the SDK's packages that
// run many short vSphere tasks at once (vsphere's clones, csi's CNS
// operations).
//
// A PropertyCollector filter per task costs four or five calls a task
// (create the collector, the filter, wait, destroy); one read of every
// pending task per interval costs one call for all of them.
package vimpoll

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// ErrGone is wrapped when an object waited for no longer exists.
var ErrGone = errors.New("object no longer exists")

// Read retrieves the properties props names for each object type of refs
// in one RetrievePropertiesEx (and its continuations). The collector
// refuses a whole read for one object that no longer exists; Read reads the
// others again without it and returns the missing ones in gone.
func Read(ctx context.Context, rt soap.RoundTripper, pc types.ManagedObjectReference,
	refs []types.ManagedObjectReference, props map[string][]string) (found []types.ObjectContent, gone []types.ManagedObjectReference, err error) {
	rest := slices.Clone(refs)
	for len(rest) > 0 {
		spec := types.PropertyFilterSpec{}
		kinds := map[string]bool{}
		for _, ref := range rest {
			spec.ObjectSet = append(spec.ObjectSet, types.ObjectSpec{Obj: ref})
			if !kinds[ref.Type] {
				kinds[ref.Type] = true
				spec.PropSet = append(spec.PropSet, types.PropertySpec{Type: ref.Type, PathSet: props[ref.Type]})
			}
		}
		found, err = mo.RetrievePropertiesEx(ctx, rt, types.RetrievePropertiesEx{This: pc, SpecSet: []types.PropertyFilterSpec{spec}})
		if err == nil {
			return found, gone, nil
		}
		var missing *types.ManagedObjectNotFound
		if _, ok := fault.As(err, &missing); !ok {
			return nil, gone, err
		}
		// Compare Type and Value only: the fault's reference may carry a
		// ServerGUID ours does not.
		same := func(r types.ManagedObjectReference) bool {
			return r.Type == missing.Obj.Type && r.Value == missing.Obj.Value
		}
		before := len(rest)
		for _, r := range rest {
			if same(r) {
				gone = append(gone, r)
			}
		}
		rest = slices.DeleteFunc(rest, same)
		if len(rest) == before {
			return nil, gone, err // not one of ours: do not loop
		}
	}
	return nil, gone, nil
}

// Interval bounds for Tasks: a task is read again after a quarter of the
// time it has been waited for, so that noticing its end takes at most a
// quarter more than the task itself, within these bounds.
const (
	MinInterval = 20 * time.Millisecond
	MaxInterval = 2 * time.Second
	// GiveUpAfter of nothing but failed reads ends every wait with the
	// last error.
	GiveUpAfter = time.Minute
)

// giveUpAfter is GiveUpAfter, shortened by tests.
var giveUpAfter = GiveUpAfter

// Tasks waits for many vSphere tasks with one read of every pending task
// per interval. The reading goroutine runs only while someone waits, so a
// Tasks needs no closing. A Tasks is safe for concurrent use.
type Tasks struct {
	vim *vim25.Client

	mu      sync.Mutex
	waiting map[types.ManagedObjectReference][]*waiter
	running bool
	wake    chan struct{}
}

type waiter struct {
	since time.Time
	done  chan outcome // buffered, receives once
}

type outcome struct {
	info *types.TaskInfo
	err  error
}

// NewTasks returns a Tasks that reads through vim.
func NewTasks(vim *vim25.Client) *Tasks {
	return &Tasks{vim: vim, waiting: map[types.ManagedObjectReference][]*waiter{}, wake: make(chan struct{}, 1)}
}

// Wait blocks until the task ends and returns its info. A task that ended
// in error returns its info and a task.Error carrying the fault (so
// govmomi's fault.Is sees it); a task that no longer exists is ErrGone.
func (t *Tasks) Wait(ctx context.Context, ref types.ManagedObjectReference) (*types.TaskInfo, error) {
	w := &waiter{since: time.Now(), done: make(chan outcome, 1)}
	ref = key(ref)
	t.mu.Lock()
	t.waiting[ref] = append(t.waiting[ref], w)
	if !t.running {
		t.running = true
		go t.loop()
	} else {
		select {
		case t.wake <- struct{}{}: // a young task may want a shorter interval
		default:
		}
	}
	t.mu.Unlock()

	select {
	case o := <-w.done:
		return o.info, o.err
	case <-ctx.Done():
		t.drop(ref, w)
		return nil, ctx.Err()
	}
}

func (t *Tasks) drop(ref types.ManagedObjectReference, w *waiter) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ws := slices.DeleteFunc(t.waiting[ref], func(x *waiter) bool { return x == w })
	if len(ws) == 0 {
		delete(t.waiting, ref)
	} else {
		t.waiting[ref] = ws
	}
}

// next returns the pending tasks and the interval to the read after one
// made at now, or ok false (and marks the loop stopped) when nobody waits.
func (t *Tasks) next(now time.Time) (refs []types.ManagedObjectReference, interval time.Duration, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.waiting) == 0 {
		t.running = false
		return nil, 0, false
	}
	youngest := time.Duration(-1)
	for ref, ws := range t.waiting {
		refs = append(refs, ref)
		for _, w := range ws {
			if age := now.Sub(w.since); youngest < 0 || age < youngest {
				youngest = age
			}
		}
	}
	return refs, min(max(youngest/4, MinInterval), MaxInterval), true
}

func (t *Tasks) loop() {
	// The first read is MinInterval after the first wait began, so that
	// tasks started together are read together; each later one a quarter
	// of the youngest waiter's age after the read before it, or sooner,
	// MinInterval after a newcomer arrived.
	due := time.Now().Add(MinInterval)
	var failingSince time.Time
	timer := time.NewTimer(MinInterval)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-t.wake:
			if soon := time.Now().Add(MinInterval); soon.Before(due) {
				due = soon
			}
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			continue
		}
		refs, _, ok := t.next(time.Now())
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		found, gone, err := Read(ctx, t.vim, t.vim.ServiceContent.PropertyCollector, refs, map[string][]string{"Task": {"info"}})
		cancel()
		now := time.Now()
		switch {
		case err == nil:
			failingSince = time.Time{}
			t.finish(found, gone)
		case failingSince.IsZero():
			failingSince = now
		case now.Sub(failingSince) >= giveUpAfter:
			t.finishAll(fmt.Errorf("read tasks: %w", err))
			failingSince = time.Time{}
		}
		_, interval, ok := t.next(now)
		if !ok {
			return
		}
		due = now.Add(interval)
		timer.Reset(interval)
	}
}

func (t *Tasks) finish(found []types.ObjectContent, gone []types.ManagedObjectReference) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, oc := range found {
		for _, p := range oc.PropSet {
			info, ok := p.Val.(types.TaskInfo)
			if !ok || (info.State != types.TaskInfoStateSuccess && info.State != types.TaskInfoStateError) {
				continue
			}
			o := outcome{info: &info}
			if info.State == types.TaskInfoStateError {
				lf := info.Error
				if lf == nil {
					lf = &types.LocalizedMethodFault{LocalizedMessage: "task failed without a fault"}
				}
				o.err = task.Error{LocalizedMethodFault: lf, Description: info.Description}
			}
			t.send(key(oc.Obj), o)
		}
	}
	for _, ref := range gone {
		t.send(key(ref), outcome{err: fmt.Errorf("task %s: %w", ref.Value, ErrGone)})
	}
}

func (t *Tasks) finishAll(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ref := range t.waiting {
		t.send(ref, outcome{err: err})
	}
}

// send delivers o to every waiter of ref. The caller holds t.mu.
func (t *Tasks) send(ref types.ManagedObjectReference, o outcome) {
	for _, w := range t.waiting[ref] {
		w.done <- o
	}
	delete(t.waiting, ref)
}

// key is a reference without its ServerGUID, which one answer may carry
// and another not.
func key(ref types.ManagedObjectReference) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: ref.Type, Value: ref.Value}
}
