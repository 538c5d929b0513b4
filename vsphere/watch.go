package vsphere

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/internal/retry"
	"github.com/kubefoundry/kubefoundry/internal/vimpoll"
)

// watchedProps are the properties a watcher follows, by managed object type.
var watchedProps = map[string][]string{
	"Task":           {"info.state", "info.error", "info.result"},
	"VirtualMachine": {"name", "runtime.powerState", "guest.ipAddress", "guestHeartbeatStatus"},
}

const (
	// maxWaitSeconds bounds one WaitForUpdatesEx. Short, because a wait
	// left on the server by a session that expired cannot be cancelled and
	// holds a connection until it ends.
	maxWaitSeconds  = 5
	flushDelay      = 5 * time.Millisecond
	maxLazyRemovals = 256
)

// watcher follows many objects over one PropertyCollector and one ListView.
// Objects are added and removed in batches: all the refs queued while one
// ModifyListView call is in flight go in the next call, so a hundred clones
// started together cost a handful of calls, not a hundred.
//
// If the session is re-established (which destroys the collector and the
// view, both being session objects) or any call fails, the loop builds them
// again with every object still watched; the objects enter again with their
// current values, so nobody misses a change.
type watcher struct {
	c   *Client
	log *zap.Logger

	mu      sync.Mutex
	objs    map[types.ManagedObjectReference][]func(objectState) // watched objects and their subscribers
	state   map[types.ManagedObjectReference]objectState
	add     []types.ManagedObjectReference
	remove  []types.ManagedObjectReference
	view    types.ManagedObjectReference // current ListView, zero while (re)building
	gen     int                          // incremented on each rebuild
	changed chan struct{}                // wakes the flusher
	broken  chan struct{}                // closed when the flusher asks for a rebuild

	done chan struct{}

	// poll, when set, replaces the PropertyCollector watch by one
	// RetrievePropertiesEx of every followed object per interval.
	poll time.Duration
	// urgent, when set and true, quarters the poll interval: someone waits
	// for what the next read may show.
	urgent func() bool
}

// objectState is the latest known value of each watched property.
type objectState map[string]any

func (c *Client) newWatcher() *watcher {
	return &watcher{
		c:       c,
		log:     c.log.Named("watch"),
		objs:    map[types.ManagedObjectReference][]func(objectState){},
		state:   map[types.ManagedObjectReference]objectState{},
		changed: make(chan struct{}, 1),
		broken:  make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// newPoller returns a watcher that polls all its objects in one call per
// interval instead of holding a PropertyCollector filter on them.
//
// ProvisionVMs and DestroyVMs use it for their short-lived tasks: vcsim's
// PropertyCollector re-collects every object of a filter for every change
// anywhere in the inventory, so a filter over a hundred busy tasks costs
// it seconds of CPU (measured: 100 concurrent clones took 20 s instead of
// 2 s), while one batched read per interval costs it almost nothing. On a
// real vCenter both cost about the same few calls.
func (c *Client) newPoller(interval time.Duration) *watcher {
	w := c.newWatcher()
	w.poll = interval
	return w
}

// run follows updates until ctx ends, then destroys its server objects.
func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	if w.poll > 0 {
		w.pollLoop(ctx)
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.flushLoop(ctx) }()
	defer wg.Wait()

	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		pc, view, err := w.build(ctx)
		if err == nil {
			err = w.follow(ctx, pc)
		}
		w.destroy(ctx, pc, view)
		if ctx.Err() != nil {
			return
		}
		w.log.Debug("watch interrupted, rebuilding", zap.Error(err))
		if !backoff.Sleep(ctx) {
			return
		}
	}
}

// build creates a collector, a ListView of every watched object and a filter.
func (w *watcher) build(ctx context.Context) (pc, view types.ManagedObjectReference, err error) {
	w.mu.Lock()
	refs := make([]types.ManagedObjectReference, 0, len(w.objs))
	for ref := range w.objs {
		refs = append(refs, ref)
	}
	w.forget(w.remove)
	w.add, w.remove = nil, nil // the new view holds them all
	w.view = types.ManagedObjectReference{}
	w.gen++
	w.broken = make(chan struct{})
	w.mu.Unlock()

	sc := w.c.vim.ServiceContent
	pcRes, err := methods.CreatePropertyCollector(ctx, w.c.vim, &types.CreatePropertyCollector{This: sc.PropertyCollector})
	if err != nil {
		return pc, view, err
	}
	pc = pcRes.Returnval
	lvRes, err := methods.CreateListView(ctx, w.c.vim, &types.CreateListView{This: *sc.ViewManager, Obj: refs})
	if err != nil {
		return pc, view, err
	}
	view = lvRes.Returnval
	spec := types.PropertyFilterSpec{
		ObjectSet: []types.ObjectSpec{{
			Obj:       view,
			Skip:      types.NewBool(true),
			SelectSet: []types.BaseSelectionSpec{&types.TraversalSpec{Type: "ListView", Path: "view"}},
		}},
	}
	for typ, props := range watchedProps {
		spec.PropSet = append(spec.PropSet, types.PropertySpec{Type: typ, PathSet: props})
	}
	if _, err := methods.CreateFilter(ctx, w.c.vim, &types.CreateFilter{This: pc, Spec: spec, PartialUpdates: true}); err != nil {
		return pc, view, err
	}
	w.mu.Lock()
	w.view = view
	pending := len(w.add) + len(w.remove)
	w.mu.Unlock()
	if pending > 0 {
		w.kick()
	}
	return pc, view, nil
}

// forget drops the state of removed objects nobody follows any more.
// The caller holds w.mu.
func (w *watcher) forget(refs []types.ManagedObjectReference) {
	for _, ref := range refs {
		if _, ok := w.objs[ref]; !ok {
			delete(w.state, ref)
		}
	}
}

func (w *watcher) destroy(ctx context.Context, pc, view types.ManagedObjectReference) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if pc.Value != "" {
		// End a wait still running on the server before the collector goes.
		_, _ = methods.CancelWaitForUpdates(ctx, w.c.vim, &types.CancelWaitForUpdates{This: pc})
		_, _ = methods.DestroyPropertyCollector(ctx, w.c.vim, &types.DestroyPropertyCollector{This: pc})
	}
	if view.Value != "" {
		_, _ = methods.DestroyView(ctx, w.c.vim, &types.DestroyView{This: view})
	}
}

// follow calls WaitForUpdatesEx until ctx ends or a call fails.
func (w *watcher) follow(ctx context.Context, pc types.ManagedObjectReference) error {
	w.mu.Lock()
	broken := w.broken
	w.mu.Unlock()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-broken:
			cancel()
		case <-wctx.Done():
		}
	}()

	req := types.WaitForUpdatesEx{This: pc, Options: &types.WaitOptions{MaxWaitSeconds: types.NewInt32(maxWaitSeconds)}}
	for {
		res, err := methods.WaitForUpdatesEx(wctx, w.c.vim, &req)
		if err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				return errors.New("view modification failed")
			}
			return err
		}
		set := res.Returnval
		if set == nil {
			continue // MaxWaitSeconds passed without a change
		}
		req.Version = set.Version
		for _, fs := range set.FilterSet {
			w.apply(fs.ObjectSet)
		}
	}
}

// apply records changes and calls the subscribers of each changed object.
func (w *watcher) apply(updates []types.ObjectUpdate) (changed bool) {
	type call struct {
		fns []func(objectState)
		st  objectState
	}
	var calls []call
	w.mu.Lock()
	for _, u := range updates {
		if u.Kind == types.ObjectUpdateKindLeave {
			continue
		}
		old := w.state[u.Obj]
		st := old
		if st == nil || u.Kind == types.ObjectUpdateKindEnter {
			st = objectState{}
		} else {
			old = maps.Clone(old)
		}
		for _, ch := range u.ChangeSet {
			if ch.Op == types.PropertyChangeOpRemove || ch.Val == nil {
				delete(st, ch.Name)
			} else {
				st[ch.Name] = ch.Val
			}
		}
		w.state[u.Obj] = st
		if old == nil || !reflect.DeepEqual(old, st) {
			changed = true
		}
		if fns, ok := w.objs[u.Obj]; ok && len(fns) > 0 {
			snapshot := make(objectState, len(st))
			for k, v := range st {
				snapshot[k] = v
			}
			calls = append(calls, call{fns: append([]func(objectState){}, fns...), st: snapshot})
		}
	}
	w.mu.Unlock()
	for _, c := range calls {
		for _, fn := range c.fns {
			fn(c.st)
		}
	}
	return changed
}

// subscribe follows ref and calls fn with its state on every change, first
// with the current state if it is already known. The returned func stops it.
func (w *watcher) subscribe(ref types.ManagedObjectReference, fn func(objectState)) (cancel func()) {
	w.mu.Lock()
	fns, watched := w.objs[ref]
	w.objs[ref] = append(fns, fn)
	idx := len(fns)
	if !watched && !dropRef(&w.remove, ref) {
		w.add = append(w.add, ref)
	}
	var snapshot objectState
	if st, ok := w.state[ref]; ok {
		snapshot = make(objectState, len(st))
		for k, v := range st {
			snapshot[k] = v
		}
	}
	w.mu.Unlock()
	if !watched {
		w.kick()
	}
	if snapshot != nil {
		fn(snapshot)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			fns := w.objs[ref]
			if idx < len(fns) {
				fns[idx] = nil
			}
			for _, f := range fns {
				if f != nil {
					return
				}
			}
			delete(w.objs, ref) // its state goes when the removal is flushed
			if !dropRef(&w.add, ref) {
				w.remove = append(w.remove, ref)
			}
			select {
			case w.changed <- struct{}{}:
			default:
			}
		})
	}
}

func (w *watcher) kick() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// flushLoop sends queued additions and removals in one ModifyListView call
// at a time; what queues up during a call goes in the next one.
func (w *watcher) flushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
		}
		// Let the refs of goroutines starting together gather in one call.
		select {
		case <-ctx.Done():
			return
		case <-time.After(flushDelay):
		}
		w.mu.Lock()
		view, gen := w.view, w.gen
		if view.Value == "" {
			w.mu.Unlock()
			continue // a rebuild is in progress; it will kick again
		}
		// Removals wait for an addition to travel with, unless many pile
		// up: an object nobody follows costs nothing but its updates.
		if len(w.add) == 0 && len(w.remove) < maxLazyRemovals {
			w.mu.Unlock()
			continue
		}
		add, remove := w.add, w.remove
		w.add, w.remove = nil, nil
		w.mu.Unlock()
		_, err := methods.ModifyListView(ctx, w.c.vim, &types.ModifyListView{This: view, Add: add, Remove: remove})
		if err == nil {
			w.mu.Lock()
			w.forget(remove)
			w.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		w.log.Debug("modify list view failed", zap.Error(err))
		w.mu.Lock()
		if w.gen == gen {
			// Rebuild from scratch: the new view will hold every watched object.
			select {
			case <-w.broken:
			default:
				close(w.broken)
			}
		}
		w.mu.Unlock()
	}
}

// waitFor subscribes to ref and blocks until done(state) returns true or
// ctx ends. It returns the state that satisfied done.
func (w *watcher) waitFor(ctx context.Context, ref types.ManagedObjectReference, done func(objectState) bool) (objectState, error) {
	ch := make(chan objectState, 1)
	var once sync.Once
	cancel := w.subscribe(ref, func(st objectState) {
		if st[goneKey] == true || done(st) {
			once.Do(func() { ch <- st })
		}
	})
	defer cancel()
	select {
	case st := <-ch:
		if st[goneKey] == true {
			return nil, fmt.Errorf("%s %s no longer exists: %w", ref.Type, ref.Value, ErrNotFound)
		}
		return st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-w.done:
		return nil, errors.New("watch stopped")
	}
}

// waitTask waits for a task to end and returns its result or a *TaskError.
func (w *watcher) waitTask(ctx context.Context, op string, ref types.ManagedObjectReference) (types.AnyType, error) {
	st, err := w.waitFor(ctx, ref, func(st objectState) bool {
		s, _ := st["info.state"].(types.TaskInfoState)
		return s == types.TaskInfoStateSuccess || s == types.TaskInfoStateError
	})
	if err != nil {
		return nil, &TaskError{Op: op, Ref: ref, Err: err}
	}
	if st["info.state"] == types.TaskInfoStateError {
		te := &TaskError{Op: op, Ref: ref}
		var lf *types.LocalizedMethodFault
		switch v := st["info.error"].(type) {
		case types.LocalizedMethodFault:
			lf = &v
		case *types.LocalizedMethodFault:
			lf = v
		}
		if lf != nil {
			if lf.LocalizedMessage == "" && lf.Fault != nil {
				lf.LocalizedMessage = typeName(lf.Fault)
			}
			te.Fault = lf.Fault
			te.Err = task.Error{LocalizedMethodFault: lf}
		} else {
			te.Err = errors.New("task failed without a fault")
		}
		return nil, te
	}
	return st["info.result"], nil
}

// dropRef removes ref from a pending list and reports whether it was there.
func dropRef(list *[]types.ManagedObjectReference, ref types.ManagedObjectReference) bool {
	for i, r := range *list {
		if r == ref {
			*list = append((*list)[:i], (*list)[i+1:]...)
			return true
		}
	}
	return false
}

// VMEvent is the state of one VM after a change.
type VMEvent struct {
	Ref        types.ManagedObjectReference
	Name       string
	PowerState types.VirtualMachinePowerState
	IP         string
	// Heartbeat is the guest heartbeat status: green, yellow, red or gray
	// (no VMware Tools heartbeat).
	Heartbeat types.ManagedEntityStatus
}

// WatchVMs follows the power state, IP address and guest heartbeat of many
// VMs through one PropertyCollector (WaitForUpdatesEx), instead of polling
// each. It calls fn with each VM's state first and then on every change,
// one call at a time, until fn returns false (WatchVMs returns nil) or ctx
// ends (it returns ctx.Err()). A session re-established meanwhile is
// followed transparently.
func (c *Client) WatchVMs(ctx context.Context, vms []types.ManagedObjectReference, fn func(VMEvent) bool) error {
	wctx, stop := context.WithCancel(ctx)
	w := c.newWatcher()
	go w.run(wctx)
	defer func() { stop(); <-w.done }()

	events := make(chan VMEvent, 64)
	for _, ref := range vms {
		cancel := w.subscribe(ref, func(st objectState) {
			ev := VMEvent{Ref: ref}
			ev.Name, _ = st["name"].(string)
			ev.PowerState, _ = st["runtime.powerState"].(types.VirtualMachinePowerState)
			ev.IP, _ = st["guest.ipAddress"].(string)
			ev.Heartbeat, _ = st["guestHeartbeatStatus"].(types.ManagedEntityStatus)
			select {
			case events <- ev:
			case <-wctx.Done():
			}
		})
		defer cancel()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-events:
			if !fn(ev) {
				return nil
			}
		}
	}
}

// goneKey marks the state of an object that no longer exists.
const goneKey = "kubefoundry:gone"

func goneUpdate(ref types.ManagedObjectReference) types.ObjectUpdate {
	return types.ObjectUpdate{Obj: ref, Kind: types.ObjectUpdateKindEnter,
		ChangeSet: []types.PropertyChange{{Name: goneKey, Op: types.PropertyChangeOpAssign, Val: true}}}
}

// pollLoop reads every followed object in one call per interval. While
// it follows VMs only (what is left is waiting for guests to report an
// IP, which takes tens of seconds to minutes) and reads show no change,
// the interval doubles up to maxIdlePoll: a five-minute wait for IPs then
// costs a few dozen reads for all the VMs together, not one read every
// 100 ms. A change, or an object added, brings it back to the base.
func (w *watcher) pollLoop(ctx context.Context) {
	t := time.NewTimer(w.poll)
	defer t.Stop()
	idle := w.poll
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
			// A new object: wait for the tick rather than read at once, so
			// that objects started together are read together.
			idle = w.poll
			continue
		case <-t.C:
		}
		w.mu.Lock()
		refs := make([]types.ManagedObjectReference, 0, len(w.objs))
		vmsOnly := true
		for ref := range w.objs {
			refs = append(refs, ref)
			vmsOnly = vmsOnly && ref.Type == "VirtualMachine"
		}
		w.add, w.remove = nil, nil
		w.mu.Unlock()
		if len(refs) == 0 {
			t.Reset(w.poll)
			continue
		}
		updates, err := w.read(ctx, refs)
		changed := true
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Debug("poll failed", zap.Error(err))
		} else {
			changed = w.apply(updates)
		}
		next := w.poll
		switch {
		case vmsOnly && !changed:
			idle = min(2*idle, maxIdlePoll)
			next = idle
		case w.urgent != nil && w.urgent():
			next = w.poll / 4
			idle = w.poll
		default:
			idle = w.poll
		}
		t.Reset(next)
	}
}

// maxIdlePoll is the longest interval between reads of VMs whose state
// has not changed (see pollLoop).
const maxIdlePoll = 10 * time.Second

// read retrieves the followed properties of refs as Enter updates. An
// object that no longer exists is reported with an empty change set.
func (w *watcher) read(ctx context.Context, refs []types.ManagedObjectReference) ([]types.ObjectUpdate, error) {
	found, gone, err := vimpoll.Read(ctx, w.c.vim, w.c.vim.ServiceContent.PropertyCollector, refs, watchedProps)
	if err != nil {
		return nil, err
	}
	updates := make([]types.ObjectUpdate, 0, len(found)+len(gone))
	for _, oc := range found {
		u := types.ObjectUpdate{Obj: oc.Obj, Kind: types.ObjectUpdateKindEnter}
		for _, p := range oc.PropSet {
			u.ChangeSet = append(u.ChangeSet, types.PropertyChange{Name: p.Name, Op: types.PropertyChangeOpAssign, Val: p.Val})
		}
		updates = append(updates, u)
	}
	for _, ref := range gone {
		updates = append(updates, goneUpdate(ref))
	}
	return updates, nil
}
