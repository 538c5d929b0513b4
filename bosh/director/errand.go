package director

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// ErrandOptions are an errand run's options.
type ErrandOptions struct {
	// KeepAlive keeps an errand group's VMs after the run (bosh
	// run-errand --keep-alive); by default they are deleted.
	KeepAlive bool
	Events    EventSink
}

// ErrandResult is what an errand did on one instance.
type ErrandResult struct {
	Instance string // group/id (index)
	agent.ErrandResult
}

// ErrandError is an errand that ran and failed on some instances: a
// non-zero exit code is a result, and the run's error says which.
type ErrandError struct {
	Errand string
	Failed []ErrandResult
}

func (e *ErrandError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, r := range e.Failed {
		parts[i] = fmt.Sprintf("%s exited %d", r.Instance, r.ExitCode)
	}
	return fmt.Sprintf("errand %s failed: %s", e.Errand, strings.Join(parts, "; "))
}

// RunErrand runs an errand of a deployment as bosh run-errand does, with
// what the deployment was last deployed with. name is either an errand
// instance group (lifecycle: errand), whose instances are given VMs for
// the run (canaries and max_in_flight as an update), each runs its
// errand job's bin/run, and the VMs are deleted afterwards unless
// KeepAlive; or a job of service instance groups, which runs on every
// instance that has it. The results are in instance order; an errand that
// exits non-zero on any instance is an *ErrandError besides them.
func (d *Director) RunErrand(ctx context.Context, deployment, name string, opts ErrandOptions) ([]ErrandResult, Task, error) {
	m, cc, err := d.recorded(deployment)
	if err != nil {
		return nil, Task{}, err
	}
	var results []ErrandResult
	task, err := d.runTask(ctx, "run_errand", deployment, "run errand "+name, opts.Events, func(ctx context.Context, sink EventSink) (string, error) {
		g := m.InstanceGroup(name)
		errandGroup := g != nil && g.Lifecycle == manifest.LifecycleErrand
		only := ""
		if errandGroup {
			only = name
		}
		b, err := d.build(ctx, m, cc, buildOptions{errand: only, reserve: true})
		if err != nil {
			return "", err
		}
		var on []*planned
		var job string
		if errandGroup {
			for _, p := range b.instances {
				if p.group == g {
					on = append(on, p)
				}
			}
			if len(on) == 0 {
				return "", fmt.Errorf("errand %s has no instances: %w", name, kubefoundry.ErrInvalid)
			}
			var rolls []roll
			for _, p := range on {
				rolls = append(rolls, roll{p: p, create: p.rec.VMCID == "" && p.rec.Applied == nil, replace: p.rec.VMCID == "",
					running: false})
			}
			if err := d.rollGroup(ctx, m, g, rolls, sink, hooks{}); err != nil {
				return "", err
			}
			if err := d.refresh(on); err != nil {
				return "", err
			}
		} else {
			job = name
			for _, p := range b.instances {
				if p.group.Job(name) != nil && p.rec.VMCID != "" {
					on = append(on, p)
				}
			}
			if len(on) == 0 {
				return "", fmt.Errorf("no errand %s: no errand instance group and no instance with a job of that name: %w", name, kubefoundry.ErrNotFound)
			}
		}
		results, err = d.runErrand(ctx, on, job, sink)
		if errandGroup && !opts.KeepAlive {
			// The VMs go, whatever the errand did; the instances are kept
			// (their ids and addresses) for the next run.
			for _, p := range on {
				if p.rec.VMCID == "" {
					continue
				}
				if derr := d.deleteVM(context.WithoutCancel(ctx), p.rec); derr != nil {
					err = errors.Join(err, derr)
					continue
				}
				rec := p.rec
				rec.VMCID, rec.AgentID, rec.State = "", "", StateDetached
				if perr := d.cfg.Store.PutInstance(rec); perr != nil {
					err = errors.Join(err, perr)
				}
			}
		}
		if err != nil {
			return "", err
		}
		var ee ErrandError
		ee.Errand = name
		for _, r := range results {
			if r.ExitCode != 0 {
				ee.Failed = append(ee.Failed, r)
			}
		}
		if len(ee.Failed) > 0 {
			return "", &ee
		}
		return fmt.Sprintf("errand %s: %d instance(s), exit 0", name, len(results)), nil
	})
	return results, task, err
}

// runErrand runs run_errand on the instances, all at once.
func (d *Director) runErrand(ctx context.Context, on []*planned, job string, sink EventSink) ([]ErrandResult, error) {
	st := newStage(sink, "Running errand", nil, len(on))
	results := make([]ErrandResult, len(on))
	errs := make([]error, len(on))
	var wg sync.WaitGroup
	for i, p := range on {
		name := fmt.Sprintf("%s/%s (%d)", p.group.Name, p.rec.ID, p.rec.Index)
		wg.Go(func() {
			end := st.start(name)
			var args []any
			if job != "" {
				args = append(args, job)
			}
			v, err := d.cfg.Agents.Call(ctx, p.rec.AgentID, "run_errand", args...)
			var r agent.ErrandResult
			if err == nil {
				err = json.Unmarshal(v, &r)
			}
			if err == nil && r.ExitCode != 0 {
				end(fmt.Errorf("exit code %d", r.ExitCode))
			} else {
				end(err)
			}
			results[i] = ErrandResult{Instance: name, ErrandResult: r}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", name, err)
				d.log.Warn("errand", zap.String("instance", name), zap.Error(err))
			}
		})
	}
	wg.Wait()
	return results, errors.Join(slices.DeleteFunc(errs, func(e error) bool { return e == nil })...)
}
