package director

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cloudconfig"
	"github.com/kubefoundry/kubefoundry/bosh/health"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// RecreateOptions are a recreate's options.
type RecreateOptions struct {
	// Instances selects what to recreate: "group", "group/id" or
	// "group/index"; every instance when empty.
	Instances []string
	// SkipDrain deletes the old VMs without pre-stop, drain and stop: for
	// VMs that are gone or whose agents are dead (the resurrector's case).
	SkipDrain bool
	Events    EventSink
}

// Recreate gives instances of a deployment new VMs, as bosh recreate
// does: with what the deployment was last deployed with (its manifest
// and cloud config as recorded), group by group through UpdateGroup
// (canaries, max_in_flight), each instance stopped unless SkipDrain, its
// VM deleted, a new one made and the same spec applied and started. It is
// a task holding the deployment's lock. A selector that matches no
// instance is an error naming it, before anything changes.
//
// In an instance group whose vm_strategy is create-swap-delete (and that
// has no static IPs) the new VM is made before the old one stops, with
// new addresses, unless SkipDrain (the old VM is gone or dead: the
// resurrector's and cloud-check's case), and the other instances whose
// templates name those addresses through links are updated in their
// group's turn, as a deploy would.
func (d *Director) Recreate(ctx context.Context, deployment string, opts RecreateOptions) (Task, error) {
	chosen := func(p *planned) bool { return chosenBy(opts.Instances, p) }
	bo := buildOptions{recreate: chosen, swappable: func(p *planned) bool { return !opts.SkipDrain && chosen(p) }}
	return d.onInstances(ctx, "recreate", deployment, opts.Instances, opts.Events, bo,
		func(ctx context.Context, m *manifest.Manifest, b *built, chosen []*planned, sink EventSink) error {
			updates := linkUpdates(b)
			for gi := range m.InstanceGroups {
				g := &m.InstanceGroups[gi]
				var rolls []roll
				for _, p := range b.instances {
					switch {
					case p.group != g:
					case slices.Contains(chosen, p):
						rolls = append(rolls, roll{p: p, create: p.rec.VMCID == "" && p.rec.Applied == nil, replace: true,
							running: !opts.SkipDrain && p.rec.VMCID != "" && p.rec.Applied != nil && p.rec.State == StateStarted,
							noStart: p.rec.State == StateStopped})
					case updates[p]:
						rolls = append(rolls, roll{p: p, running: p.rec.State == StateStarted, noStart: p.rec.State == StateStopped})
					}
				}
				if err := d.rollGroup(ctx, m, g, rolls, sink, hooks{}); err != nil {
					return err
				}
			}
			return nil
		})
}

// linkUpdates are the instances to update because an instance swapped
// (create-swap-delete) changes its addresses: those not swapped whose
// templates, which name the instances linked to by address, change. None
// when no instance is swapped.
func linkUpdates(b *built) map[*planned]bool {
	if !slices.ContainsFunc(b.instances, func(p *planned) bool { return p.swap }) {
		return nil
	}
	out := map[*planned]bool{}
	for _, p := range b.instances {
		a := p.rec.Applied
		if !p.swap && a != nil && p.rec.VMCID != "" && p.rec.State != StateDetached && a.ConfigurationHash != p.desired.ConfigurationHash {
			out[p] = true
		}
	}
	return out
}

// onInstances runs fn as a task of kind on the instances of a deployment
// the selectors choose (selectInstances), with what the deployment was
// last deployed with, holding the deployment's lock; bo are the build's
// options (it reserves the addresses it gives out).
func (d *Director) onInstances(ctx context.Context, kind, deployment string, selectors []string, events EventSink, bo buildOptions,
	fn func(ctx context.Context, m *manifest.Manifest, b *built, chosen []*planned, sink EventSink) error) (Task, error) {
	m, cc, err := d.recorded(deployment)
	if err != nil {
		return Task{}, err
	}
	bo.reserve = true
	return d.runTask(ctx, kind, deployment, kind+" "+strings.Join(selectors, ", "), events,
		func(ctx context.Context, sink EventSink) (string, error) {
			b, err := d.build(ctx, m, cc, bo)
			if err != nil {
				return "", err
			}
			chosen, err := selectInstances(b, selectors)
			if err != nil {
				return "", err
			}
			if err := fn(ctx, m, b, chosen, sink); err != nil {
				return "", err
			}
			return "/deployments/" + deployment, nil
		})
}

// recorded is what a deployment was last deployed with: its manifest and
// cloud config.
func (d *Director) recorded(deployment string) (*manifest.Manifest, *cloudconfig.CloudConfig, error) {
	dep, err := d.cfg.Store.Deployment(deployment)
	if err != nil {
		return nil, nil, err
	}
	if len(dep.Manifest) == 0 {
		return nil, nil, fmt.Errorf("deployment %s was never deployed: %w", deployment, kubefoundry.ErrInvalid)
	}
	m, err := d.manifestOf(dep.Manifest, false)
	if err != nil {
		return nil, nil, fmt.Errorf("deployment %s: its recorded manifest: %w", deployment, err)
	}
	configs, err := d.recordedConfigs(dep)
	if err != nil {
		return nil, nil, fmt.Errorf("deployment %s: %w", deployment, err)
	}
	if err := placeAddons(m, configs.rc, d.stemcellOSOf(m)); err != nil {
		return nil, nil, err
	}
	return m, configs.cc, nil
}

// chosenBy reports whether the selectors name p: every instance when there
// are none.
func chosenBy(selectors []string, p *planned) bool {
	return len(selectors) == 0 || slices.ContainsFunc(selectors, func(sel string) bool { return selected(sel, p) })
}

// selected reports whether a selector ("group", "group/id" or
// "group/index") names p.
func selected(sel string, p *planned) bool {
	group, which, _ := strings.Cut(sel, "/")
	return p.group.Name == group && (which == "" || which == p.rec.ID || which == strconv.Itoa(p.rec.Index))
}

// selectInstances picks the instances the selectors name, every one when
// there are none; a selector that matches nothing is an error.
func selectInstances(b *built, selectors []string) ([]*planned, error) {
	if len(selectors) == 0 {
		return b.instances, nil
	}
	var out []*planned
	var ve kubefoundry.ValidationError
	ve.Object = "instances"
	for _, sel := range selectors {
		found := false
		for _, p := range b.instances {
			if !selected(sel, p) {
				continue
			}
			found = true
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		if !found {
			ve.Add(sel, "", "no such instance in the deployment")
		}
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Resurrector is the health monitor's Resurrect for this director: an
// instance whose agent went silent is recreated without drain (its VM
// is presumably gone or dead) with what its deployment was last deployed
// with, and returned with its new agent id.
func (d *Director) Resurrector() health.Resurrect {
	return func(ctx context.Context, inst health.Instance) (health.Instance, error) {
		if _, err := d.Recreate(ctx, inst.Deployment, RecreateOptions{Instances: []string{inst.Group + "/" + inst.ID}, SkipDrain: true}); err != nil {
			return inst, err
		}
		r, err := findInstance(d.cfg.Store, inst.Deployment, inst.ID)
		if err != nil {
			return inst, fmt.Errorf("instance %s after its recreation: %w", inst, err)
		}
		inst.AgentID = r.AgentID
		return inst, nil
	}
}

// Watch gives the monitor every instance of every deployment that has
// an agent, for it to follow.
func (d *Director) Watch(m *health.Monitor) error {
	deps, err := d.cfg.Store.Deployments()
	if err != nil {
		return err
	}
	for _, dep := range deps {
		recs, err := d.cfg.Store.Instances(dep.Name)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.AgentID != "" && r.VMCID != "" {
				m.Watch(health.Instance{Deployment: r.Deployment, Group: r.Group, ID: r.ID, Index: r.Index, AgentID: r.AgentID})
			}
		}
	}
	return nil
}
