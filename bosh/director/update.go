package director

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

// Instance is an instance of an instance group, as the updater knows it.
type Instance struct {
	Group   string
	ID      string
	Index   int
	AZ      string
	AgentID string
	// Running says the instance runs its jobs now: it is drained and
	// stopped before it is changed. A VM just created is not.
	Running bool
}

// Name is the instance as BOSH names it: group/id (index).
func (i Instance) Name() string { return fmt.Sprintf("%s/%s (%d)", i.Group, i.ID, i.Index) }

// Change is an instance and the spec it is to have.
type Change struct {
	Instance Instance
	Spec     *agent.ApplySpec
	// Replace, when set, gives the instance a new VM: it is called once
	// the instance is stopped (at once when it is not Running) and
	// returns the new VM's agent id, which the rest of the steps and the
	// Result use. Its error fails the instance like any step's.
	Replace func(ctx context.Context) (agentID string, err error)
	// Create, when set, is called first, before BeforeStop and anything
	// else of the instance: the new VM is made ahead (vm_strategy
	// create-swap-delete), and Replace then swaps it in once the instance
	// is stopped. Its error fails the instance, which is left running as
	// it was.
	Create func(ctx context.Context) error
	// New marks an instance of a group on its initial deploy (every one
	// of its instances deployed for the first time): changes all New are
	// updated in every AZ at once with initial_deploy_az_update_strategy
	// parallel.
	New bool
	// NoStart stops after the apply: the instance gets its new spec and
	// stays stopped (an instance stopped on purpose, through a deploy).
	NoStart bool
	// BeforeStop, when set, is called before a running instance is
	// drained and stopped (a Kubernetes node drained of its pods, say); its
	// error fails the instance, which is left running as it was.
	BeforeStop func(ctx context.Context) error
	// AfterStart, when set, is called once the instance is started and
	// its post-start ran, with its agent id; its error fails the
	// instance.
	AfterStart func(ctx context.Context, agentID string) error
	// Begin, when set, is called before the instance's first step: a
	// failure of it fails the instance, which is left as it was.
	Begin func(ctx context.Context) error
	// Prepare, when set, is called once the instance is stopped and on
	// the VM it is to have (after Replace), before the apply: the
	// instance's persistent disk is made what it is to be then.
	Prepare func(ctx context.Context, agentID string) error
}

// Result is what became of one change.
type Result struct {
	Instance Instance
	Canary   bool
	// Done: the instance was updated and is running. Err says why not
	// when it was tried; neither means it was left as it was because the
	// update stopped first.
	Done bool
	Err  error
}

// UpdateError is an update that stopped: the instances that failed, and
// how many were left as they were.
type UpdateError struct {
	Group  string
	Failed []Result
	// Untouched counts the instances not tried because the update
	// stopped.
	Untouched int
}

func (e *UpdateError) Error() string {
	msg := fmt.Sprintf("updating instance group %s: %d instance(s) failed, %d left untouched", e.Group, len(e.Failed), e.Untouched)
	for _, r := range e.Failed {
		kind := ""
		if r.Canary {
			kind = " (canary)"
		}
		msg += fmt.Sprintf("; %s%s: %v", r.Instance.Name(), kind, r.Err)
	}
	return msg
}

// Unwrap returns the instances' errors.
func (e *UpdateError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, r := range e.Failed {
		out[i] = r.Err
	}
	return out
}

// Updater rolls specs out to instances through their agents, as BOSH's
// director updates an instance group.
type Updater struct {
	bus *mbus.Client
	log *zap.Logger
}

// NewUpdater returns an Updater that calls agents through bus.
func NewUpdater(bus *mbus.Client, log *zap.Logger) *Updater {
	if log == nil {
		log = zap.NewNop()
	}
	return &Updater{bus: bus, log: log}
}

// UpdateGroup updates the instances of one instance group as BOSH does:
// ordered by AZ and index, the canaries (update.canaries of them) first,
// at most that many at once, each watched for update.canary_watch_time;
// then the rest AZ by AZ, update.max_in_flight at once within an AZ, each
// watched for update.update_watch_time. An instance is updated in BOSH's
// steps: its new VM made ahead (Change.Create), drain (update, with the
// new spec) and stop when it runs, its new VM (Change.Replace), apply,
// the pre-start scripts, start, the watch until its agent reports every
// job running, the post-start scripts. A failed instance stops the update:
// no other is begun, those in flight finish, and the error is an
// *UpdateError naming each failure; a failed canary leaves every other
// instance as it was. Events go to sink (stage "Updating instance", tagged
// with the group). ctx's end stops it between steps.
func (u *Updater) UpdateGroup(ctx context.Context, changes []Change, up manifest.Update, sink EventSink) ([]Result, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	group := changes[0].Instance.Group
	for _, c := range changes {
		if c.Instance.Group != group {
			return nil, fmt.Errorf("director: UpdateGroup: instances of groups %s and %s: one group at a time", group, c.Instance.Group)
		}
		if c.Spec == nil {
			return nil, fmt.Errorf("director: UpdateGroup: %s has no spec", c.Instance.Name())
		}
	}
	order := slices.Clone(changes)
	slices.SortStableFunc(order, func(a, b Change) int {
		return cmp.Or(cmp.Compare(a.Instance.AZ, b.Instance.AZ), cmp.Compare(a.Instance.Index, b.Instance.Index))
	})
	n := len(order)
	canaries := min(up.Canaries.Of(n), n)
	inFlight := up.MaxInFlight.Of(n)
	st := newStage(sink, "Updating instance", []string{group}, n)
	results := make([]Result, n)
	for i, c := range order {
		results[i] = Result{Instance: c.Instance, Canary: i < canaries}
	}

	// On a group's initial deploy with initial_deploy_az_update_strategy
	// parallel, every AZ at once (BOSH 270.6); otherwise AZ by AZ.
	initial := up.InitialDeployAZUpdateStrategy == "parallel" && !slices.ContainsFunc(order, func(c Change) bool { return !c.New })
	// batches: the canaries, then each AZ's remaining instances.
	type batch struct {
		from, to int
		width    int
		watch    manifest.WatchTime
	}
	var batches []batch
	if canaries > 0 {
		batches = append(batches, batch{0, canaries, min(canaries, inFlight), up.CanaryWatchTime})
	}
	for i := canaries; i < n; {
		j := i
		for j < n && (initial || order[j].Instance.AZ == order[i].Instance.AZ) {
			j++
		}
		batches = append(batches, batch{i, j, inFlight, up.UpdateWatchTime})
		i = j
	}
	for _, b := range batches {
		failed := u.runBatch(ctx, order[b.from:b.to], results[b.from:b.to], b.width, b.watch, st)
		if failed {
			break
		}
	}
	var ue UpdateError
	ue.Group = group
	for _, r := range results {
		switch {
		case r.Err != nil:
			ue.Failed = append(ue.Failed, r)
		case !r.Done:
			ue.Untouched++
		}
	}
	if len(ue.Failed) > 0 || ue.Untouched > 0 {
		if len(ue.Failed) == 0 && ctx.Err() != nil {
			return results, fmt.Errorf("updating instance group %s: %d instance(s) left untouched: %w", group, ue.Untouched, ctx.Err())
		}
		return results, &ue
	}
	return results, nil
}

// runBatch updates changes, width at once, and reports whether any failed
// (or ctx ended); after a failure no new instance is begun.
func (u *Updater) runBatch(ctx context.Context, changes []Change, results []Result, width int, watch manifest.WatchTime, st *stage) bool {
	var (
		mu     sync.Mutex
		failed bool
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, max(width, 1))
	for i := range changes {
		sem <- struct{}{}
		mu.Lock()
		stop := failed || ctx.Err() != nil
		mu.Unlock()
		if stop {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			task := changes[i].Instance.Name()
			if results[i].Canary {
				task += " (canary)"
			}
			end := st.start(task)
			agentID, err := u.updateOne(ctx, changes[i], watch)
			end(err)
			mu.Lock()
			defer mu.Unlock()
			results[i].Instance.AgentID = agentID
			if err != nil {
				results[i].Err = err
				failed = true
				return
			}
			results[i].Done = true
		})
	}
	wg.Wait()
	return failed || ctx.Err() != nil
}

// updateOne takes one instance through BOSH's steps and returns its agent
// id, a new one when it was given a new VM.
func (u *Updater) updateOne(ctx context.Context, c Change, watch manifest.WatchTime) (string, error) {
	id := c.Instance.AgentID
	err := u.steps(ctx, c, &id, watch)
	return id, err
}

func (u *Updater) steps(ctx context.Context, c Change, agentID *string, watch manifest.WatchTime) error {
	id := *agentID
	step := func(what string, method string, args ...any) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := u.bus.Call(ctx, id, method, args...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if c.Create != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.Create(ctx); err != nil {
			return fmt.Errorf("new VM: %w", err)
		}
	}
	if c.Instance.Running && c.BeforeStop != nil {
		if err := c.BeforeStop(ctx); err != nil {
			return fmt.Errorf("before stop: %w", err)
		}
	}
	if c.Begin != nil {
		if err := c.Begin(ctx); err != nil {
			return err
		}
	}
	next := "keep"
	if c.Replace != nil {
		next = "delete"
	}
	if c.Instance.Running {
		env := map[string]string{"BOSH_VM_NEXT_STATE": next, "BOSH_INSTANCE_NEXT_STATE": "keep", "BOSH_DEPLOYMENT_NEXT_STATE": "keep"}
		if err := step("pre-stop", "run_script", "pre-stop", map[string]any{"env": env}); err != nil {
			return err
		}
		// A VM that goes is drained for shutdown, as BOSH's Stopper does;
		// one that stays, for the update. Once: drain scripts may take long.
		var err error
		if c.Replace != nil {
			err = step("drain", "drain", "shutdown")
		} else {
			err = step("drain", "drain", "update", c.Spec)
		}
		if err != nil {
			return err
		}
		if err := step("stop", "stop"); err != nil {
			return err
		}
		if err := step("post-stop", "run_script", "post-stop", map[string]any{}); err != nil {
			return err
		}
	}
	if c.Replace != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		newID, err := c.Replace(ctx)
		if err != nil {
			return fmt.Errorf("new VM: %w", err)
		}
		id, *agentID = newID, newID
	}
	if c.Prepare != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.Prepare(ctx, id); err != nil {
			return fmt.Errorf("persistent disk: %w", err)
		}
	}
	if err := step("apply", "apply", c.Spec); err != nil {
		return err
	}
	if c.NoStart {
		return nil
	}
	if err := step("pre-start", "run_script", "pre-start", map[string]any{}); err != nil {
		return err
	}
	if err := step("start", "start"); err != nil {
		return err
	}
	if err := u.watch(ctx, id, watch); err != nil {
		return err
	}
	if err := step("post-start", "run_script", "post-start", map[string]any{}); err != nil {
		return err
	}
	if c.AfterStart != nil {
		if err := c.AfterStart(ctx, id); err != nil {
			return fmt.Errorf("after start: %w", err)
		}
	}
	return nil
}

// watch waits for the agent to report every job running, as BOSH watches
// an updated instance: a single watch time is waited, then checked once;
// a range waits its minimum, then checks until its maximum, every ninth of
// the range or every second when that is longer (BOSH's watch_schedule).
func (u *Updater) watch(ctx context.Context, agentID string, w manifest.WatchTime) error {
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	if err := wait(w.Min()); err != nil {
		return err
	}
	deadline := time.Now().Add(w.Max() - w.Min())
	// BOSH's watch schedule: the range in steps of a ninth of it, or of
	// a second when that is longer.
	every := max(time.Second, (w.Max()-w.Min())/9)
	var last string
	for {
		state, err := u.jobState(ctx, agentID)
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		if state == agent.StateRunning {
			return nil
		}
		last = state
		if !time.Now().Before(deadline) {
			break
		}
		if err := wait(every); err != nil {
			return err
		}
	}
	return &NotRunningError{AgentID: agentID, State: last, After: w.Max()}
}

// NotRunningError is an instance whose jobs were not running within its
// watch time.
type NotRunningError struct {
	AgentID string
	State   string
	After   time.Duration
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("watch: the agent %s reports job_state %q, not running, after %s", e.AgentID, e.State, e.After)
}

func (u *Updater) jobState(ctx context.Context, agentID string) (string, error) {
	v, err := u.bus.Call(ctx, agentID, "get_state")
	if err != nil {
		return "", err
	}
	var st struct {
		JobState string `json:"job_state"`
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return "", fmt.Errorf("get_state: %w", err)
	}
	if st.JobState == "" {
		return "", errors.New("get_state: no job_state")
	}
	return st.JobState, nil
}
