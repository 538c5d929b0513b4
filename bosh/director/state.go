package director

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// The states the director asks of an instance (InstanceRecord.State).
const (
	StateStarted = "started"
	// StateStopped: its VM is there and its jobs are stopped.
	StateStopped = "stopped"
	// StateDetached: its VM is deleted (a hard stop); its record, its
	// addresses and its disk are kept.
	StateDetached = "detached"
)

// StateOptions are the options of Stop, Start and Restart.
type StateOptions struct {
	// Instances selects the instances as Recreate's do; every instance
	// when empty.
	Instances []string
	// Hard (Stop and Restart): delete the VMs once stopped; the instances
	// are detached, keeping their records and disks, and Start makes them
	// new VMs.
	Hard bool
	// SkipDrain stops without pre-stop and drain.
	SkipDrain bool
	Events    EventSink
}

// Stop stops instances of a deployment as bosh stop does, group by group,
// max_in_flight at once: pre-stop (BOSH_VM_NEXT_STATE keep, or delete
// when Hard), drain shutdown, stop, post-stop; with Hard the VM is then
// deleted and the instance detached. An instance already stopped (or
// detached) is left as it is, so Stop is idempotent. A failure stops the
// task once the instances in flight are done; what was stopped is
// recorded.
func (d *Director) Stop(ctx context.Context, deployment string, opts StateOptions) (Task, error) {
	return d.onInstances(ctx, "stop", deployment, opts.Instances, opts.Events, buildOptions{},
		func(ctx context.Context, m *manifest.Manifest, _ *built, chosen []*planned, sink EventSink) error {
			return d.stopInstances(ctx, m, chosen, opts, sink)
		})
}

func (d *Director) stopInstances(ctx context.Context, m *manifest.Manifest, chosen []*planned, opts StateOptions, sink EventSink) error {
	for gi := range m.InstanceGroups {
		g := &m.InstanceGroups[gi]
		var todo []*planned
		for _, p := range chosen {
			if p.group == g && p.rec.State != StateDetached && (p.rec.State != StateStopped || opts.Hard) {
				todo = append(todo, p)
			}
		}
		if len(todo) == 0 {
			continue
		}
		width := 1
		if up := m.UpdateFor(g); up != nil {
			width = up.MaxInFlight.Of(len(todo))
		}
		st := newStage(sink, "Stopping instances", []string{g.Name}, len(todo))
		var (
			mu   sync.Mutex
			errs []error
			wg   sync.WaitGroup
		)
		sem := make(chan struct{}, width)
		for _, p := range todo {
			sem <- struct{}{}
			mu.Lock()
			stop := len(errs) > 0 || ctx.Err() != nil
			mu.Unlock()
			if stop {
				<-sem
				break
			}
			wg.Go(func() {
				defer func() { <-sem }()
				end := st.start(fmt.Sprintf("%s/%s (%d)", g.Name, p.rec.ID, p.rec.Index))
				err := d.stopOne(ctx, p.rec, opts)
				end(err)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s/%s (%d): %w", g.Name, p.rec.ID, p.rec.Index, err))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// stopOne stops one instance and records it stopped (or detached).
func (d *Director) stopOne(ctx context.Context, rec InstanceRecord, opts StateOptions) error {
	if rec.VMCID != "" && rec.AgentID != "" && rec.State == StateStarted {
		vm := "keep"
		if opts.Hard {
			vm = "delete"
		}
		if err := d.stopJobs(ctx, rec.AgentID, nextState(vm, "keep", "keep"), opts.SkipDrain); err != nil {
			return err
		}
	}
	// Stopped is recorded before the VM goes: a hard stop that fails
	// there leaves an instance recorded stopped, which Start starts.
	rec.State = StateStopped
	if err := d.cfg.Store.PutInstance(rec); err != nil {
		return err
	}
	if opts.Hard && rec.VMCID != "" {
		if err := d.deleteVM(ctx, rec); err != nil {
			return err
		}
		rec.VMCID, rec.AgentID, rec.State = "", "", StateDetached
		return d.cfg.Store.PutInstance(rec)
	}
	return nil
}

// Start starts instances of a deployment as bosh start does: through
// UpdateGroup (canaries, max_in_flight), each applied its spec again,
// pre-start, start, watched until running, post-start; a detached
// instance is first given a new VM. An instance already started is left
// as it is.
func (d *Director) Start(ctx context.Context, deployment string, opts StateOptions) (Task, error) {
	return d.onInstances(ctx, "start", deployment, opts.Instances, opts.Events, buildOptions{},
		func(ctx context.Context, m *manifest.Manifest, _ *built, chosen []*planned, sink EventSink) error {
			return d.startInstances(ctx, m, chosen, sink, false)
		})
}

// startInstances starts the chosen instances, group by group; all of
// them when all, else only those not started.
func (d *Director) startInstances(ctx context.Context, m *manifest.Manifest, chosen []*planned, sink EventSink, all bool) error {
	for gi := range m.InstanceGroups {
		g := &m.InstanceGroups[gi]
		var rolls []roll
		for _, p := range chosen {
			if p.group != g || (!all && p.rec.State == StateStarted && p.rec.VMCID != "") {
				continue
			}
			rolls = append(rolls, roll{p: p, replace: p.rec.VMCID == "", create: p.rec.VMCID == "" && p.rec.Applied == nil})
		}
		if err := d.rollGroup(ctx, m, g, rolls, sink, hooks{}); err != nil {
			return err
		}
	}
	return nil
}

// Restart stops, then starts, the instances (bosh restart).
func (d *Director) Restart(ctx context.Context, deployment string, opts StateOptions) (Task, error) {
	return d.onInstances(ctx, "restart", deployment, opts.Instances, opts.Events, buildOptions{},
		func(ctx context.Context, m *manifest.Manifest, _ *built, chosen []*planned, sink EventSink) error {
			if err := d.stopInstances(ctx, m, chosen, opts, sink); err != nil {
				return err
			}
			// What stopInstances recorded, for the start.
			if err := d.refresh(chosen); err != nil {
				return err
			}
			return d.startInstances(ctx, m, chosen, sink, true)
		})
}

// refresh reads the chosen instances' records again.
func (d *Director) refresh(chosen []*planned) error {
	if len(chosen) == 0 {
		return nil
	}
	recs, err := d.cfg.Store.Instances(chosen[0].rec.Deployment)
	if err != nil {
		return err
	}
	for _, p := range chosen {
		for _, r := range recs {
			if r.ID == p.rec.ID {
				ips, boot := p.rec.IPs, p.rec.Bootstrap
				p.rec = r
				p.rec.IPs, p.rec.Bootstrap = ips, boot
			}
		}
	}
	return nil
}
