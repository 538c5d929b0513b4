package director

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/blobstore"
	"github.com/kubefoundry/kubefoundry/bosh/cloudconfig"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/links"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/template"
)

// DeployOptions are a deploy's options.
type DeployOptions struct {
	// Recreate gives every instance a new VM (bosh deploy --recreate).
	Recreate bool
	// DryRun works the plan out and changes nothing: no task, no lock.
	DryRun bool
	// Events receives the task's events as they are recorded.
	Events EventSink
	// BeforeStop, when set, is called for each running instance the
	// deploy is about to drain and stop, to update, recreate or delete
	// it: what a platform does first (lifecycle drains the instance's
	// Kubernetes node). Its error fails that instance as a failed step
	// does, before anything of it changed.
	BeforeStop func(ctx context.Context, inst Instance) error
	// AfterStart, when set, is called for each instance the deploy
	// started again or for the first time, once its post-start ran: what
	// a platform checks before it moves on (lifecycle waits for the
	// instance's Kubernetes node to be Ready and uncordons it). Its error
	// fails that instance as a failed step does: the update stops there.
	AfterStart func(ctx context.Context, inst Instance) error
}

// hooks are a deploy's calls out to its caller around each instance.
type hooks struct {
	beforeStop, afterStart func(context.Context, Instance) error
}

// DeployResult is what a deploy did: its task (none for a dry run) and
// its plan.
type DeployResult struct {
	Task Task
	Plan []InstanceChange
}

// Deploy makes the deployment what the manifest says, on the latest cloud
// config, as BOSH's director deploys:
//
//   - The manifest, its releases and stemcells (uploaded before; a version
//     "latest" is the highest), its links and the cloud config give each
//     instance its AZ, addresses and rendered templates; Plan compares
//     that with what the store says each instance has, and the plan (each
//     instance's action and reasons) is returned whatever happens next.
//     A problem in any of it changes nothing, and every problem found is
//     reported at once.
//   - Instances no longer wanted (a group removed, or scaled down: the
//     highest indexes) are drained, stopped and deleted with their VMs;
//     their persistent disks are orphaned (OrphanedDisks), as BOSH's are.
//   - Then group by group in manifest order, through UpdateGroup (canaries,
//     then max_in_flight per AZ): an instance to create or recreate is
//     given a new VM through the CPI once its old one is stopped, with a
//     new agent id and bus certificate in its env, and waited for until
//     its agent answers; then every changed instance is applied, started
//     and watched. A failed instance stops the deploy: the groups after it
//     are left as they were.
//   - Where a group's update says vm_strategy: create-swap-delete and it
//     has no static IPs, a new VM is made, with new addresses, before
//     the old one is stopped, and swapped in; the old VMs are deleted
//     once the group is updated (see the package doc).
//
// Everything is recorded as it happens, before it is waited for: the
// instance before its VM is made, the VM's cid as soon as the CPI gives
// it. A deploy stopped at any point (ctx, a failure, the director's
// process ending) is converged by deploying again; no VM the store names
// is made twice or left behind.
//
// The deploy is a task on the store, with its events; the deployment is
// locked for its length (*LockedError when another task holds it).
// Several named persistent disks (persistent_disks) are not here yet, and
// a manifest that asks for them is refused.
func (d *Director) Deploy(ctx context.Context, manifestYAML []byte, opts DeployOptions) (DeployResult, error) {
	m, err := d.manifestOf(manifestYAML, true)
	if err != nil {
		return DeployResult{}, err
	}
	configs, err := d.currentConfigs(m.Name, true)
	if err != nil {
		return DeployResult{}, fmt.Errorf("deploy %s: %w", m.Name, err)
	}
	cc := configs.cc
	if err := placeAddons(m, configs.rc, d.stemcellOSOf(m)); err != nil {
		return DeployResult{}, err
	}
	if opts.DryRun {
		b, err := d.build(ctx, m, cc, deployBuild(opts, false))
		if err != nil {
			return DeployResult{}, err
		}
		return DeployResult{Plan: b.plan}, nil
	}
	var res DeployResult
	task, err := d.runTask(ctx, "deploy", m.Name, "create deployment", opts.Events, func(ctx context.Context, sink EventSink) (string, error) {
		b, err := d.build(ctx, m, cc, deployBuild(opts, true))
		if err != nil {
			return "", err
		}
		res.Plan = b.plan
		if err := d.apply(ctx, b, manifestYAML, configs.ids, sink, hooks{opts.BeforeStop, opts.AfterStart}); err != nil {
			return "", err
		}
		return fmt.Sprintf("/deployments/%s", m.Name), nil
	})
	res.Task = task
	return res, err
}

// deployBuild are a deploy's build options: with opts.Recreate, every
// instance gets a new VM; any may be swapped.
func deployBuild(opts DeployOptions, reserve bool) buildOptions {
	bo := buildOptions{swappable: func(*planned) bool { return true }, reserve: reserve}
	if opts.Recreate {
		bo.recreate = func(*planned) bool { return true }
	}
	return bo
}

// runTask runs fn as a task recorded on the store, holding deployment's
// lock, with its events stored and sent to events.
func (d *Director) runTask(ctx context.Context, kind, deployment, description string, events EventSink,
	fn func(ctx context.Context, sink EventSink) (string, error)) (Task, error) {
	return d.runTaskLocking(ctx, kind, deployment, []string{deployment}, description, events, fn)
}

// runTaskLocking is runTask holding the locks named (a deployment's, and
// orphanedDisksLock), taken in order; deployment is the task's, "" for
// one of the whole director.
func (d *Director) runTaskLocking(ctx context.Context, kind, deployment string, locks []string, description string, events EventSink,
	fn func(ctx context.Context, sink EventSink) (string, error)) (Task, error) {
	st := d.cfg.Store
	t, err := st.NewTask(kind, deployment, description)
	if err != nil {
		return Task{}, err
	}
	unlock := func(held []string) error {
		var errs []error
		for _, l := range held {
			errs = append(errs, st.Unlock(l, t.ID))
		}
		return errors.Join(errs...)
	}
	for i, l := range locks {
		if err := st.Lock(l, t.ID); err != nil {
			_ = unlock(locks[:i])
			t.State, t.Result, t.Ended = TaskError, err.Error(), time.Now()
			_ = st.PutTask(t)
			return t, err
		}
	}
	t.State = TaskProcessing
	if err := st.PutTask(t); err != nil {
		_ = unlock(locks)
		return t, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	d.mu.Lock()
	d.running[t.ID] = cancel
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.running, t.ID)
		d.mu.Unlock()
		d.allocMu.Lock()
		delete(d.reserved, deployment)
		d.allocMu.Unlock()
	}()
	sink := func(e Event) {
		if err := st.AddEvent(t.ID, e); err != nil {
			d.log.Warn("recording a task event", zap.Int64("task", t.ID), zap.Error(err))
		}
		if events != nil {
			events(e)
		}
	}
	result, err := func() (result string, err error) {
		defer func() {
			// A bug must not leave the task processing and the deployment
			// locked.
			if r := recover(); r != nil {
				d.log.Error("task panicked", zap.Int64("task", t.ID), zap.Any("panic", r), zap.Stack("stack"))
				err = fmt.Errorf("director: task %d failed: %v", t.ID, r)
			}
		}()
		return fn(ctx, sink)
	}()
	if cause := context.Cause(ctx); errors.Is(cause, ErrTaskCancelled) && err != nil {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	t.Ended = time.Now()
	switch {
	case err == nil:
		t.State, t.Result = TaskDone, result
	case ctx.Err() != nil && errors.Is(err, ctx.Err()), errors.Is(err, ErrTaskCancelled):
		t.State, t.Result = TaskCancelled, err.Error()
	default:
		t.State, t.Result = TaskError, err.Error()
	}
	if perr := st.PutTask(t); perr != nil {
		err = errors.Join(err, perr)
	}
	if uerr := unlock(locks); uerr != nil {
		err = errors.Join(err, uerr)
	}
	return t, err
}

// planned is one instance as the deploy wants it.
type planned struct {
	group    *manifest.InstanceGroup
	rec      InstanceRecord // as recorded, or new with its id
	desired  Desired
	nets     cpi.Networks
	tnets    map[string]template.Network
	ip       string // on its default network
	stemcell StemcellRecord
	props    cpi.CloudProps
	env      cpi.Env
	// diskProps are the cloud properties of its persistent disk's type.
	diskProps cpi.CloudProps
	// attach is an orphaned disk to take the place of its persistent
	// disk (AttachDisk).
	attach   *OrphanedDisk
	jobs     []agent.JobRef
	packages map[string]ReleasePackage
	files    []template.File
	// tags are the deployment's (the manifest's and its runtime
	// configs'), set on its VMs.
	tags map[string]string
	// had are the addresses the record had (network=ip), which the
	// instance keeps while it may.
	had []string
	// swap: the instance's new VM is made before its old one stops
	// (create-swap-delete), with nextIPs, new addresses, while the old VM
	// holds rec.IPs; keptNetworks are the networks it would have had
	// keeping its addresses, for the plan's reasons.
	swap         bool
	nextIPs      []string
	keptNetworks string
}

// built is a deploy worked out: every instance wanted, and the plan.
type built struct {
	m         *manifest.Manifest
	instances []*planned // by group in manifest order, then index
	records   []InstanceRecord
	plan      []InstanceChange
}

// buildOptions say what a build is for.
type buildOptions struct {
	// recreate selects the instances to get new VMs whatever changed
	// (bosh deploy --recreate, Recreate); none when nil.
	recreate func(*planned) bool
	// swappable selects the instances whose new VMs may be made before
	// their old ones stop, in the instance groups whose vm_strategy is
	// create-swap-delete; none when nil.
	swappable func(*planned) bool
	// errand names the errand instance group to build (the others are
	// left out).
	errand string
	// reserve holds the addresses the build gives out for the deployment
	// until its task ends.
	reserve bool
}

// build works the deploy out and changes nothing.
//
// Errand instance groups (lifecycle: errand) have no instances but while
// they run: build leaves them out, but for the one named by opts.errand.
//
// An instance to get a new VM in an instance group whose vm_strategy is
// create-swap-delete (and that opts.swappable selects) is to be swapped:
// its new VM gets new addresses, the old one holding its own until it is
// deleted, and every template is rendered with the new ones.
func (d *Director) build(ctx context.Context, m *manifest.Manifest, cc *cloudconfig.CloudConfig, opts buildOptions) (*built, error) {
	errand := opts.errand
	ve := &kubefoundry.ValidationError{Object: "deployment " + m.Name}
	unsupported(ve, m)
	cloudRefs(ve, m, cc)
	rels := d.resolveReleases(ve, m)
	stems := d.resolveStemcells(ve, m)
	if err := ve.Err(); err != nil {
		return nil, err
	}
	specs := map[string]*release.JobSpec{}
	jobOf := map[string]ReleaseJob{}
	specFor := func(rel, job string) (*release.JobSpec, error) {
		key := rel + "/" + job
		if s, ok := specs[key]; ok {
			return s, nil
		}
		r, ok := rels[rel]
		if !ok {
			return nil, fmt.Errorf("release %s is not in the manifest's releases: %w", rel, kubefoundry.ErrNotFound)
		}
		i := slices.IndexFunc(r.Jobs, func(j ReleaseJob) bool { return j.Name == job })
		if i < 0 {
			return nil, fmt.Errorf("release %s/%s has no job %s: %w", r.Name, r.Version, job, kubefoundry.ErrNotFound)
		}
		s, err := release.ParseJobSpec(r.Jobs[i].Spec)
		if err != nil {
			return nil, fmt.Errorf("release %s/%s job %s: %w", r.Name, r.Version, job, err)
		}
		specs[key], jobOf[key] = s, r.Jobs[i]
		return s, nil
	}
	lk, err := links.Resolve(m, specFor, nil)
	if err != nil {
		return nil, err
	}
	records, err := d.cfg.Store.Instances(m.Name)
	if err != nil {
		return nil, err
	}
	// Addresses are given out under one lock for the whole director: two
	// deployments deployed at once must not be given the same one. What a
	// task gives out is reserved until it ends (runTask), when the records
	// hold it.
	d.allocMu.Lock()
	unlock := sync.OnceFunc(d.allocMu.Unlock)
	defer unlock()
	taken, err := d.takenAddresses()
	if err != nil {
		return nil, err
	}
	for dep, addrs := range d.reserved {
		if dep != m.Name {
			maps.Copy(taken, addrs)
		}
	}
	b := &built{m: m, records: records}
	byKey := map[string]InstanceRecord{}
	for _, r := range records {
		byKey[fmt.Sprintf("%s/%d", r.Group, r.Index)] = r
	}
	byGroup := map[string][]*planned{}
	for gi := range m.InstanceGroups {
		g := &m.InstanceGroups[gi]
		if g.Lifecycle == manifest.LifecycleErrand && g.Name != errand {
			continue
		}
		where := fmt.Sprintf("/instance_groups/name=%s", g.Name)
		ps := placeGroup(m.Name, g, byKey)
		for _, p := range ps {
			p.tags = m.Tags
		}
		// Addresses, network by network: each instance keeps its own
		// unless it is swapped.
		allocate := func(why string) {
			for ni, n := range g.Networks {
				req := cloudconfig.Request{Network: n.Name, AZs: g.AZs, StaticIPs: n.StaticIPs, Taken: taken}
				for _, p := range ps {
					ip := lastIP(p.had, n.Name)
					if p.swap {
						ip = netip.Addr{}
					}
					req.Instances = append(req.Instances, cloudconfig.Instance{ID: p.rec.ID, AZ: p.rec.AZ, IP: ip})
				}
				addrs, err := cc.Allocate(req)
				if err != nil {
					ve.Add(fmt.Sprintf("%s/networks/name=%s", where, n.Name), "", "%s%v", why, err)
					continue
				}
				for i, a := range addrs {
					p := ps[i]
					if p.rec.AZ == "" {
						p.rec.AZ = a.AZ
					}
					net := networkSettings(cc.Network(n.Name), a, n, len(g.Networks))
					p.nets[n.Name] = net
					tn := template.Network{IP: net.IP, Netmask: net.Netmask, Gateway: net.Gateway, Default: net.Default}
					p.tnets[n.Name] = tn
					if a.IP.IsValid() {
						taken[a.IP] = p.rec.ID
						p.rec.IPs = append(p.rec.IPs, n.Name+"="+a.IP.String())
					}
					if ni == 0 || slices.Contains(n.Default, "gateway") {
						p.ip = net.IP
					}
				}
			}
		}
		allocate("")
		// What every instance of the group shares.
		stem, ok := stems[g.Stemcell]
		if !ok {
			continue // reported by resolveStemcells
		}
		props, vmType, err := d.vmProps(ctx, cc, g)
		if err != nil {
			ve.Add(where, "", "%v", err)
			continue
		}
		jobs, pkgs, err := groupJobs(g, rels, specFor, jobOf, stem)
		if err != nil {
			ve.Add(where+"/jobs", "", "%v", err)
			continue
		}
		envJSON, _ := json.Marshal(g.Env)
		diskSize, diskType, diskProps := 0, "", cpi.CloudProps{}
		switch {
		case g.PersistentDiskType != "":
			dt := cc.DiskType(g.PersistentDiskType)
			diskSize = dt.DiskSize
			maps.Copy(diskProps, dt.CloudProperties)
			raw, _ := json.Marshal(dt)
			diskType = string(raw)
		case g.PersistentDisk != nil:
			diskSize = *g.PersistentDisk
		}
		for _, p := range ps {
			p.diskProps = diskProps
			p.stemcell, p.jobs, p.packages = stem, jobs, pkgs
			p.props = cloudProps(cc.AZ(p.rec.AZ), props)
			p.env = cpi.Env(maps.Clone(g.Env))
			netJSON, _ := json.Marshal(p.nets)
			azJSON := []byte("{}")
			if az := cc.AZ(p.rec.AZ); az != nil && len(az.CloudProperties) > 0 {
				azJSON, _ = json.Marshal(az.CloudProperties)
			}
			p.desired = Desired{Group: g.Name, Index: p.rec.Index, AZ: p.rec.AZ, Stemcell: stem.OS + "/" + stem.Version,
				Networks: string(netJSON), VMType: vmType + " az:" + string(azJSON), Env: string(envJSON),
				Recreate: opts.recreate != nil && opts.recreate(p), DiskSize: diskSize, DiskType: diskType}
			for _, j := range jobs {
				p.desired.Jobs = append(p.desired.Jobs, releaseOfJob(g, j.Name)+"/"+j.Name+"/"+j.Version)
			}
		}
		// create-swap-delete: an instance to get a new VM gets it before
		// its old one stops, so the new one needs addresses of its own.
		if opts.swappable != nil && swapsVMs(m, g) {
			renew := false
			for _, p := range ps {
				if opts.swappable(p) && p.rec.VMCID != "" && p.rec.Applied != nil && p.rec.State != StateDetached &&
					compare(p.desired, p.rec).Action == ActionRecreate {
					p.swap, p.keptNetworks, renew = true, p.desired.Networks, true
					for _, ip := range p.had {
						if _, addr, _ := strings.Cut(ip, "="); addr != "" {
							if a, err := netip.ParseAddr(addr); err == nil {
								taken[a] = spareHolder(p.rec.ID)
							}
						}
					}
				}
			}
			if renew {
				for _, p := range ps {
					p.nets, p.tnets, p.rec.IPs, p.ip = cpi.Networks{}, map[string]template.Network{}, nil, ""
				}
				allocate("create-swap-delete gives each instance it swaps new addresses: ")
				for _, p := range ps {
					netJSON, _ := json.Marshal(p.nets)
					p.desired.Networks = string(netJSON)
					if p.swap {
						p.nextIPs, p.rec.IPs = p.rec.IPs, p.had
					}
				}
			}
		}
		byGroup[g.Name] = ps
		b.instances = append(b.instances, ps...)
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	if opts.reserve {
		mine := map[netip.Addr]string{}
		for _, p := range b.instances {
			for _, ip := range slices.Concat(p.rec.IPs, p.nextIPs) {
				_, addr, _ := strings.Cut(ip, "=")
				if a, err := netip.ParseAddr(addr); err == nil {
					mine[a] = p.rec.ID
				}
			}
		}
		d.reserved[m.Name] = mine
	}
	unlock()
	// Templates, once every instance has its addresses (links name them).
	for _, p := range b.instances {
		files, err := d.render(ctx, m, cc, lk, specFor, jobOf, rels, byGroup, p)
		if err != nil {
			ve.Add(fmt.Sprintf("/instance_groups/name=%s", p.group.Name), "", "instance %s/%s (%d): %v", p.group.Name, p.rec.ID, p.rec.Index, err)
			continue
		}
		p.files = files
		p.desired.ConfigurationHash = configurationHash(files)
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	want := make([]Desired, len(b.instances))
	for i, p := range b.instances {
		want[i] = p.desired
	}
	// The instances of errand groups not built here are not the plan's.
	var have []InstanceRecord
	for _, r := range records {
		if g := m.InstanceGroup(r.Group); g == nil || g.Lifecycle != manifest.LifecycleErrand || g.Name == errand {
			have = append(have, r)
		}
	}
	b.plan = Plan(want, have)
	// Each VM to replace is replaced create-swap-delete or delete-create,
	// and the plan says which.
	byID := map[string]*planned{}
	for _, p := range b.instances {
		byID[p.rec.ID] = p
	}
	for i, c := range b.plan {
		p := byID[c.ID]
		if p == nil || c.Action != ActionRecreate {
			continue
		}
		switch {
		case p.swap:
			// Why, but for the new addresses the swap itself gives it.
			kept := p.desired
			kept.Networks = p.keptNetworks
			b.plan[i].Reasons = append(compare(kept, p.rec).Reasons, "create-swap-delete: the new VM, with new addresses, made before the old one stops")
			b.plan[i].Swap = true
		case p.rec.VMCID != "" && opts.swappable != nil && opts.swappable(p) &&
			strategyOf(m, p.group) == manifest.VMStrategyCreateSwapDelete && !swapsVMs(m, p.group):
			b.plan[i].Reasons = append(b.plan[i].Reasons, "delete-create: create-swap-delete does not apply to an instance group with static IPs")
		}
	}
	// A hard-stopped instance stays detached through a deploy: Start gives
	// it a VM, with what the deployment then says.
	for i, c := range b.plan {
		for _, r := range have {
			if r.ID == c.ID && r.State == StateDetached && c.Action != ActionDelete {
				b.plan[i].Action, b.plan[i].Reasons, b.plan[i].DiskChanged = ActionKeep, []string{"detached: Start gives it a VM"}, false
			}
		}
	}
	return b, nil
}

// unsupported reports what the manifest asks for that this director does
// not do yet.
func unsupported(ve *kubefoundry.ValidationError, m *manifest.Manifest) {
	for _, g := range m.InstanceGroups {
		where := fmt.Sprintf("/instance_groups/name=%s", g.Name)
		if len(g.PersistentDisks) > 0 {
			ve.Add(where+"/persistent_disks", "", "several named persistent disks are not supported by this director yet: use persistent_disk or persistent_disk_type")
		}
	}
}

// cloudRefs reports the AZs, VM types, VM extensions and networks the
// manifest names and the cloud config does not have.
func cloudRefs(ve *kubefoundry.ValidationError, m *manifest.Manifest, cc *cloudconfig.CloudConfig) {
	for _, g := range m.InstanceGroups {
		where := fmt.Sprintf("/instance_groups/name=%s", g.Name)
		for _, az := range g.AZs {
			if cc.AZ(az) == nil {
				ve.Add(where+"/azs", az, "AZ %s is not in the cloud config", az)
			}
		}
		if g.PersistentDiskType != "" && cc.DiskType(g.PersistentDiskType) == nil {
			ve.Add(where+"/persistent_disk_type", g.PersistentDiskType, "disk_type %s is not in the cloud config", g.PersistentDiskType)
		}
		if g.VMType != "" && cc.VMType(g.VMType) == nil {
			ve.Add(where+"/vm_type", g.VMType, "vm_type %s is not in the cloud config", g.VMType)
		}
		for _, e := range g.VMExtensions {
			if cc.VMExtension(e) == nil {
				ve.Add(where+"/vm_extensions", e, "vm_extension %s is not in the cloud config", e)
			}
		}
		for _, n := range g.Networks {
			if cc.Network(n.Name) == nil {
				ve.Add(where+"/networks/name="+n.Name, n.Name, "network %s is not in the cloud config", n.Name)
			}
		}
	}
}

// resolveReleases finds each release of the manifest among those
// uploaded.
func (d *Director) resolveReleases(ve *kubefoundry.ValidationError, m *manifest.Manifest) map[string]ReleaseRecord {
	all, err := d.cfg.Store.Releases()
	if err != nil {
		ve.Add("/releases", "", "%v", err)
		return nil
	}
	out := map[string]ReleaseRecord{}
	for _, r := range m.Releases {
		var versions []string
		for _, have := range all {
			if have.Name == r.Name {
				versions = append(versions, have.Version)
			}
		}
		v := r.Version
		if v == "latest" {
			v = latest(versions)
		}
		i := slices.IndexFunc(all, func(have ReleaseRecord) bool { return have.Name == r.Name && have.Version == v })
		if i < 0 {
			ve.Add(fmt.Sprintf("/releases/name=%s/version", r.Name), r.Version, "release %s/%s is not uploaded (uploaded versions: %v)", r.Name, r.Version, versions)
			continue
		}
		out[r.Name] = all[i]
	}
	return out
}

// resolveStemcells finds each stemcell alias among those uploaded.
func (d *Director) resolveStemcells(ve *kubefoundry.ValidationError, m *manifest.Manifest) map[string]StemcellRecord {
	all, err := d.cfg.Store.Stemcells()
	if err != nil {
		ve.Add("/stemcells", "", "%v", err)
		return nil
	}
	out := map[string]StemcellRecord{}
	for _, s := range m.Stemcells {
		match := func(have StemcellRecord) bool {
			return (s.OS != "" && have.OS == s.OS) || (s.Name != "" && have.Name == s.Name)
		}
		var versions []string
		for _, have := range all {
			if match(have) {
				versions = append(versions, have.Version)
			}
		}
		v := s.Version
		if v == "latest" {
			v = latest(versions)
		}
		i := slices.IndexFunc(all, func(have StemcellRecord) bool { return match(have) && have.Version == v })
		if i < 0 {
			ve.Add(fmt.Sprintf("/stemcells/alias=%s", s.Alias), s.Version, "no stemcell %s%s/%s is uploaded (uploaded versions: %v)", s.OS, s.Name, s.Version, versions)
			continue
		}
		out[s.Alias] = all[i]
	}
	return out
}

// takenAddresses are the addresses every recorded instance of every
// deployment holds, by the instance's id; those of the VMs it is being
// swapped to or from, by another name (spareHolder).
func (d *Director) takenAddresses() (map[netip.Addr]string, error) {
	deps, err := d.cfg.Store.Deployments()
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]string{}
	for _, dep := range deps {
		recs, err := d.cfg.Store.Instances(dep.Name)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			for i, ips := range [][]string{r.IPs, r.NextIPs, r.OldIPs} {
				for _, ip := range ips {
					_, addr, _ := strings.Cut(ip, "=")
					if a, err := netip.ParseAddr(addr); err == nil {
						out[a] = r.ID
						if i > 0 {
							out[a] = spareHolder(r.ID)
						}
					}
				}
			}
		}
	}
	return out, nil
}

// strategyOf is how the group's VMs are replaced, as its update says.
func strategyOf(m *manifest.Manifest, g *manifest.InstanceGroup) manifest.VMStrategy {
	if up := m.UpdateFor(g); up != nil && up.VMStrategy != "" {
		return up.VMStrategy
	}
	return manifest.VMStrategyDeleteCreate
}

// swapsVMs reports whether the group's VMs are replaced
// create-swap-delete: its update says so, and it has no static IPs, which
// the old VM and the new could not both hold (BOSH's InstanceGroup
// should_create_swap_delete?).
func swapsVMs(m *manifest.Manifest, g *manifest.InstanceGroup) bool {
	return strategyOf(m, g) == manifest.VMStrategyCreateSwapDelete &&
		!slices.ContainsFunc(g.Networks, func(n manifest.Network) bool { return len(n.StaticIPs) > 0 })
}

// spareHolder names, in the addresses taken, an instance's VM that is not
// its own (made ahead, or swapped out): no instance's id, so that no
// instance is given its addresses while it is there.
func spareHolder(id string) string { return id + " (a VM being swapped)" }

// lastIP is the address had on network.
func lastIP(had []string, network string) netip.Addr {
	for _, ip := range had {
		if n, addr, ok := strings.Cut(ip, "="); ok && n == network {
			a, _ := netip.ParseAddr(addr)
			return a
		}
	}
	return netip.Addr{}
}

// placeGroup gives a group's instances their ids and AZs: a recorded
// instance keeps its id, and its AZ while the group still has it; a new
// one goes to the AZ with the fewest of the group's instances (the first
// listed on a tie), as BOSH balances them, or, when the group has static
// IPs, to the AZ of the address Allocate gives it.
func placeGroup(deployment string, g *manifest.InstanceGroup, recorded map[string]InstanceRecord) []*planned {
	count := map[string]int{}
	ps := make([]*planned, g.Instances)
	for i := range ps {
		p := &planned{group: g, nets: cpi.Networks{}, tnets: map[string]template.Network{}}
		r, ok := recorded[fmt.Sprintf("%s/%d", g.Name, i)]
		if ok {
			p.rec = r
			p.had, p.rec.IPs = r.IPs, nil
			if !slices.Contains(g.AZs, r.AZ) {
				p.rec.AZ = ""
			}
		} else {
			p.rec = InstanceRecord{Deployment: deployment, Group: g.Name, Index: i, ID: uuid.NewString(), State: StateStarted}
		}
		p.rec.Bootstrap = i == 0
		if p.rec.AZ != "" {
			count[p.rec.AZ]++
		}
		ps[i] = p
	}
	static := slices.ContainsFunc(g.Networks, func(n manifest.Network) bool { return len(n.StaticIPs) > 0 })
	for _, p := range ps {
		if p.rec.AZ != "" || len(g.AZs) == 0 || static {
			// With static IPs, an instance's AZ is its address's subnet's
			// (cloudconfig.Allocate places it).
			continue
		}
		best := g.AZs[0]
		for _, az := range g.AZs[1:] {
			if count[az] < count[best] {
				best = az
			}
		}
		p.rec.AZ = best
		count[best]++
	}
	return ps
}

// networkSettings are an instance's settings on one network, as the
// director sends them to the CPI and the agent.
func networkSettings(n *cloudconfig.Network, a cloudconfig.Address, mn manifest.Network, networks int) cpi.Network {
	out := cpi.Network{Type: string(n.Type)}
	if out.Type == "" {
		out.Type = string(cloudconfig.Manual)
	}
	if a.IP.IsValid() {
		out.IP = a.IP.String()
	}
	var props manifest.Map
	if s := a.Subnet; s != nil {
		out.Gateway, out.DNS = s.Gateway, s.DNS
		if p, err := netip.ParsePrefix(s.Range); err == nil {
			out.Netmask = netmask(p)
		}
		props = s.CloudProperties
	} else {
		out.DNS = n.DNS
		props = n.CloudProperties
	}
	if len(props) > 0 {
		out.CloudProperties = cpi.CloudProps(maps.Clone(props))
	}
	out.Default = slices.Clone(mn.Default)
	if networks == 1 && len(out.Default) == 0 {
		out.Default = []string{"dns", "gateway"}
	}
	return out
}

func netmask(p netip.Prefix) string {
	return net.IP(net.CIDRMask(p.Bits(), p.Addr().BitLen())).String()
}

// vmProps are a group's VM cloud properties (its vm_type's, or the CPI's
// for its vm_resources, with its vm_extensions' merged over them) and
// their canonical form.
func (d *Director) vmProps(ctx context.Context, cc *cloudconfig.CloudConfig, g *manifest.InstanceGroup) (cpi.CloudProps, string, error) {
	props := cpi.CloudProps{}
	canon := map[string]any{}
	switch {
	case g.VMType != "":
		vt := cc.VMType(g.VMType)
		if vt == nil {
			return nil, "", fmt.Errorf("vm_type %s is not in the cloud config", g.VMType)
		}
		maps.Copy(props, vt.CloudProperties)
		canon["vm_type"] = vt
	case g.VMResources != nil:
		p, err := d.cfg.CPI.CalculateVMCloudProperties(ctx, cpi.VMResources{CPU: g.VMResources.CPU, RAM: g.VMResources.RAM,
			EphemeralDiskSize: g.VMResources.EphemeralDiskSize})
		if err != nil {
			return nil, "", fmt.Errorf("vm_resources: calculate_vm_cloud_properties: %w", err)
		}
		maps.Copy(props, p)
		canon["vm_resources"] = g.VMResources
	}
	var exts []any
	for _, name := range g.VMExtensions {
		e := cc.VMExtension(name)
		if e == nil {
			return nil, "", fmt.Errorf("vm_extension %s is not in the cloud config", name)
		}
		maps.Copy(props, e.CloudProperties)
		exts = append(exts, e)
	}
	canon["vm_extensions"] = exts
	raw, err := json.Marshal(canon)
	return props, string(raw), err
}

// cloudProps merges the AZ's cloud properties under the VM's.
func cloudProps(az *cloudconfig.AZ, vm cpi.CloudProps) cpi.CloudProps {
	out := cpi.CloudProps{}
	if az != nil {
		maps.Copy(out, az.CloudProperties)
	}
	maps.Copy(out, vm)
	return out
}

func releaseOfJob(g *manifest.InstanceGroup, job string) string {
	if j := g.Job(job); j != nil {
		return j.Release
	}
	return ""
}

// groupJobs are a group's jobs (name and version, the job's fingerprint)
// and the compiled packages they need on the group's stemcell, with their
// dependencies.
func groupJobs(g *manifest.InstanceGroup, rels map[string]ReleaseRecord,
	specFor func(rel, job string) (*release.JobSpec, error), jobOf map[string]ReleaseJob, stem StemcellRecord) ([]agent.JobRef, map[string]ReleasePackage, error) {
	var errs []error
	var jobs []agent.JobRef
	pkgs := map[string]ReleasePackage{}
	on := stem.OS + "/" + stem.Version
	for _, j := range g.Jobs {
		spec, err := specFor(j.Release, j.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rel := rels[j.Release]
		jobs = append(jobs, agent.JobRef{Name: j.Name, Version: jobOf[j.Release+"/"+j.Name].Fingerprint})
		queue := slices.Clone(spec.Packages)
		for len(queue) > 0 {
			name := queue[0]
			queue = queue[1:]
			i := slices.IndexFunc(rel.Packages, func(p ReleasePackage) bool { return p.Name == name && p.Stemcell == on })
			if i < 0 {
				errs = append(errs, fmt.Errorf("job %s needs package %s of release %s/%s, which has no package compiled for stemcell %s "+
					"(this director does not compile packages: upload a release compiled for it)", j.Name, name, rel.Name, rel.Version, on))
				continue
			}
			p := rel.Packages[i]
			if have, ok := pkgs[name]; ok {
				if have.Version != p.Version {
					errs = append(errs, fmt.Errorf("package %s is wanted in versions %s and %s", name, have.Version, p.Version))
				}
				continue
			}
			pkgs[name] = p
			queue = append(queue, p.Dependencies...)
		}
	}
	return jobs, pkgs, errors.Join(errs...)
}

// render renders an instance's templates.
func (d *Director) render(ctx context.Context, m *manifest.Manifest, cc *cloudconfig.CloudConfig, lk *links.Links,
	specFor func(rel, job string) (*release.JobSpec, error), jobOf map[string]ReleaseJob, rels map[string]ReleaseRecord,
	byGroup map[string][]*planned, p *planned) ([]template.File, error) {
	g := p.group
	inst := template.Instance{Deployment: m.Name, Group: g.Name, ID: p.rec.ID, Index: p.rec.Index, AZ: p.rec.AZ,
		Bootstrap: p.rec.Bootstrap, Address: p.ip, IP: p.ip, Networks: p.tnets}
	azIDs := map[string]int{}
	for i, az := range cc.AZs {
		azIDs[az.Name] = i + 1
	}
	var jobs []template.Job
	for _, j := range g.Jobs {
		spec, err := specFor(j.Release, j.Name)
		if err != nil {
			return nil, err
		}
		props, err := template.Properties(spec, j.Properties, g.Properties, m.Properties)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", j.Name, err)
		}
		tl := map[string]*template.Link{}
		for name, bnd := range lk.For(g.Name, j.Name) {
			var instances []template.LinkInstance
			var provProps map[string]any
			defNet := ""
			if pr := bnd.Provider; pr != nil && (pr.Deployment == "" || pr.Deployment == m.Name) && m.InstanceGroup(pr.Group) != nil {
				pg := m.InstanceGroup(pr.Group)
				if len(pg.Networks) > 0 {
					defNet = pg.Networks[0].Name
					for _, n := range pg.Networks {
						if slices.Contains(n.Default, "gateway") {
							defNet = n.Name
						}
					}
				}
				net := cmp.Or(bnd.Network, defNet)
				for _, q := range byGroup[pr.Group] {
					instances = append(instances, template.LinkInstance{Name: pr.Group, ID: q.rec.ID, Index: q.rec.Index, AZ: q.rec.AZ,
						Address: q.nets[net].IP, Bootstrap: q.rec.Bootstrap})
				}
				if pj := pg.Job(pr.Job); pj != nil && !pr.Custom {
					ps, err := specFor(pj.Release, pj.Name)
					if err != nil {
						return nil, err
					}
					provProps, err = template.Properties(ps, pj.Properties, pg.Properties, m.Properties)
					if err != nil {
						return nil, fmt.Errorf("link %s: provider %s: %w", name, pr, err)
					}
				}
			}
			tl[name] = bnd.Link(instances, provProps, defNet, azIDs)
		}
		rj := jobOf[j.Release+"/"+j.Name]
		rel := rels[j.Release]
		jobs = append(jobs, template.Job{Spec: spec, Release: rel.Name, ReleaseVersion: rel.Version, Templates: rj.Templates,
			Properties: props, Links: tl})
	}
	return d.cfg.Renderer.Render(ctx, inst, jobs)
}

// configurationHash is the hash of an instance's rendered templates.
func configurationHash(files []template.File) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00", f.Job, f.Path, len(f.Content))
		h.Write(f.Content)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// archive is the rendered_templates_archive of an instance: a directory
// per job holding its rendered files.
func archive(files []template.File) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		mode := int64(0o644)
		if strings.HasPrefix(f.Path, "bin/") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.Job + "/" + f.Path, Mode: mode, Size: int64(len(f.Content)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// apply carries a built deploy out.
func (d *Director) apply(ctx context.Context, b *built, manifestYAML []byte, configIDs []int64, sink EventSink, h hooks) error {
	st := d.cfg.Store
	m := b.m
	dep, err := st.Deployment(m.Name)
	switch {
	case errors.Is(err, kubefoundry.ErrNotFound):
		// Recorded now so its instances can be; its manifest is recorded
		// once deployed.
		dep = Deployment{Name: m.Name, Updated: time.Now()}
		if err := st.PutDeployment(dep); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	// Instances no longer wanted go first.
	var gone []InstanceRecord
	for _, c := range b.plan {
		if c.Action != ActionDelete {
			continue
		}
		for _, r := range b.records {
			if r.ID == c.ID {
				gone = append(gone, r)
			}
		}
	}
	if len(gone) > 0 {
		stg := newStage(sink, "Deleting unneeded instances", nil, len(gone))
		for _, r := range gone {
			end := stg.start(fmt.Sprintf("%s/%s (%d)", r.Group, r.ID, r.Index))
			err := d.deleteInstance(ctx, r, false, "keep", h.beforeStop, true)
			end(err)
			if err != nil {
				return err
			}
		}
	}
	// What a swap cut short left (a VM made to swap in, or one swapped
	// out and not yet deleted) goes before anything is updated.
	var spareMu sync.Mutex
	for _, p := range b.instances {
		if err := d.dropSpareVMs(ctx, p, &spareMu); err != nil {
			return err
		}
	}
	action := map[string]string{}
	for _, c := range b.plan {
		action[fmt.Sprintf("%s/%d", c.Group, c.Index)] = c.Action
	}
	for _, batch := range batches(m) {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for _, g := range batch {
			var rolls []roll
			for _, p := range b.instances {
				if p.group != g {
					continue
				}
				act := action[fmt.Sprintf("%s/%d", g.Name, p.rec.Index)]
				if act == ActionKeep {
					continue
				}
				stopped := p.rec.State == StateStopped
				rolls = append(rolls, roll{p: p, create: act == ActionCreate, replace: act == ActionCreate || act == ActionRecreate,
					running: p.rec.VMCID != "" && p.rec.Applied != nil && !stopped, noStart: stopped})
			}
			wg.Go(func() {
				if err := d.rollGroup(ctx, m, g, rolls, sink, h); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	dep.Manifest, dep.Configs, dep.Updated = manifestYAML, configIDs, time.Now()
	dep.CloudConfig, dep.RuntimeConfig = nil, nil
	return st.PutDeployment(dep)
}

// batches are the instance groups in manifest order, those to update at
// once together: as BOSH does, adjacent groups whose update says serial:
// false are updated in parallel; every other group alone. Errand groups
// are left out.
func batches(m *manifest.Manifest) [][]*manifest.InstanceGroup {
	var out [][]*manifest.InstanceGroup
	parallel := false
	for gi := range m.InstanceGroups {
		g := &m.InstanceGroups[gi]
		if g.Lifecycle == manifest.LifecycleErrand {
			continue
		}
		serial := true
		if up := m.UpdateFor(g); up != nil && up.Serial != nil {
			serial = *up.Serial
		}
		if !serial && parallel {
			out[len(out)-1] = append(out[len(out)-1], g)
			continue
		}
		out = append(out, []*manifest.InstanceGroup{g})
		parallel = !serial
	}
	return out
}

// roll is an instance a group's update is to change: given a new VM
// (replace), first recorded (create), drained and stopped first
// (running).
type roll struct {
	p                        *planned
	create, replace, running bool
	// noStart: the instance is stopped on purpose and stays so.
	noStart bool
}

// rollGroup updates a group's instances through UpdateGroup and records
// each that it updated.
func (d *Director) rollGroup(ctx context.Context, m *manifest.Manifest, g *manifest.InstanceGroup, rolls []roll, sink EventSink,
	h hooks) error {
	if len(rolls) == 0 {
		return nil
	}
	// The group's initial deploy: every one of its instances is new.
	initial := len(rolls) == g.Instances && !slices.ContainsFunc(rolls, func(r roll) bool { return !r.create })
	st := d.cfg.Store
	var mu sync.Mutex
	// What a swap cut short left goes first: a swap begins with neither.
	for _, r := range rolls {
		if err := d.dropSpareVMs(ctx, r.p, &mu); err != nil {
			return err
		}
	}
	ps := map[string]*planned{}
	var changes []Change
	noStart := map[string]bool{}
	swaps := 0
	for _, r := range rolls {
		if r.replace && r.p.swap {
			swaps++
		}
	}
	creating := newStage(sink, "Creating missing vms", []string{g.Name}, swaps)
	for _, r := range rolls {
		noStart[r.p.rec.ID] = r.noStart
		p := r.p
		ps[p.rec.ID] = p
		if r.create {
			if err := st.PutInstance(p.rec); err != nil {
				return err
			}
		}
		spec, err := d.applySpec(ctx, m.Name, p)
		if err != nil {
			for _, c := range changes {
				_ = d.cfg.Blobs.Delete(context.WithoutCancel(ctx), c.Spec.RenderedTemplatesArchive.BlobstoreID)
			}
			return fmt.Errorf("instance %s/%s (%d): %w", g.Name, p.rec.ID, p.rec.Index, err)
		}
		c := Change{Instance: Instance{Group: g.Name, ID: p.rec.ID, Index: p.rec.Index, AZ: p.rec.AZ, AgentID: p.rec.AgentID,
			Running: r.running}, Spec: spec, NoStart: r.noStart, New: initial}
		c.Begin = func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			p.rec.Dirty = true
			return st.PutInstance(p.rec)
		}
		switch {
		case r.replace && p.swap:
			c.Create = func(ctx context.Context) error {
				end := creating.start(fmt.Sprintf("%s/%s (%d)", g.Name, p.rec.ID, p.rec.Index))
				err := d.createNextVM(ctx, m.Name, p, &mu)
				end(err)
				return err
			}
			c.Replace = func(ctx context.Context) (string, error) { return d.swapVM(ctx, p, &mu) }
		case r.replace:
			c.Replace = func(ctx context.Context) (string, error) { return d.replaceVM(ctx, m.Name, p, &mu) }
		}
		if h.beforeStop != nil {
			inst := c.Instance
			c.BeforeStop = func(ctx context.Context) error { return h.beforeStop(ctx, inst) }
		}
		if h.afterStart != nil {
			inst := c.Instance
			c.AfterStart = func(ctx context.Context, agentID string) error {
				inst.AgentID = agentID
				return h.afterStart(ctx, inst)
			}
		}
		if p.desired.DiskSize > 0 || p.rec.DiskCID != "" || p.rec.NewDiskCID != "" || p.rec.OldDiskCID != "" {
			c.Prepare = func(ctx context.Context, agentID string) error { return d.ensureDisk(ctx, p, agentID, &mu) }
		}
		changes = append(changes, c)
	}
	up := m.UpdateFor(g)
	if up == nil {
		return fmt.Errorf("instance group %s: no update block", g.Name)
	}
	results, uerr := d.updater.UpdateGroup(ctx, changes, *up, sink)
	// Each rendered templates blob is kept while an instance has it
	// applied, and no longer.
	blobOf := map[string]string{}
	for _, c := range changes {
		blobOf[c.Instance.ID] = c.Spec.RenderedTemplatesArchive.BlobstoreID
	}
	var drop []string
	for _, r := range results {
		blob := blobOf[r.Instance.ID]
		if !r.Done {
			drop = append(drop, blob)
			continue
		}
		p := ps[r.Instance.ID]
		want := p.desired
		want.Recreate = false
		state := StateStarted
		if noStart[r.Instance.ID] {
			state = StateStopped
		}
		err := d.saver(p, &mu)(func(rec *InstanceRecord) {
			if rec.TemplatesBlob != "" && rec.TemplatesBlob != blob {
				drop = append(drop, rec.TemplatesBlob)
			}
			rec.Applied, rec.AgentID, rec.SpecHash, rec.State, rec.Dirty = &want, r.Instance.AgentID, want.ConfigurationHash, state, false
			rec.TemplatesBlob = blob
		})
		if err != nil {
			uerr = errors.Join(uerr, err)
		}
	}
	if len(results) == 0 {
		// UpdateGroup refused the changes outright.
		for _, b := range blobOf {
			drop = append(drop, b)
		}
	}
	for _, b := range drop {
		if err := d.cfg.Blobs.Delete(context.WithoutCancel(ctx), b); err != nil {
			d.log.Warn("deleting a rendered templates blob", zap.String("blob", b), zap.Error(err))
		}
	}
	// The VMs swapped out go once the group is updated, as BOSH orphans
	// them and deletes them later; so do those made for swaps that did
	// not happen (a failure, or the update stopping first).
	for _, r := range rolls {
		if err := d.dropSpareVMs(ctx, r.p, &mu); err != nil {
			uerr = errors.Join(uerr, err)
		}
	}
	return uerr
}

// applySpec is the spec an instance's agent applies, with its rendered
// templates stored and every blob's URL signed.
func (d *Director) applySpec(ctx context.Context, deployment string, p *planned) (*agent.ApplySpec, error) {
	sign := func(id string) (string, error) {
		return d.cfg.Signer.Sign(d.cfg.BlobstoreURL, id, "GET", time.Now(), d.cfg.URLTTL)
	}
	spec := &agent.ApplySpec{Deployment: deployment, Job: agent.JobSpec{Name: p.group.Name, Templates: p.jobs},
		Index: p.rec.Index, ID: p.rec.ID, AZ: p.rec.AZ, Bootstrap: p.rec.Bootstrap, Networks: p.nets,
		Packages: map[string]agent.BlobRef{}, ConfigurationHash: p.desired.ConfigurationHash, PersistentDisk: p.desired.DiskSize}
	for name, pkg := range p.packages {
		digest, err := blobstore.ParseDigest(pkg.Digest)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", name, err)
		}
		u, err := sign(pkg.BlobID)
		if err != nil {
			return nil, err
		}
		spec.Packages[name] = agent.BlobRef{Name: name, Version: pkg.Version, SHA1: digest, BlobstoreID: pkg.BlobID, SignedURL: u}
	}
	tgz, err := archive(p.files)
	if err != nil {
		return nil, err
	}
	id, digest, err := d.cfg.Blobs.Put(ctx, bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("rendered templates: %w", err)
	}
	u, err := sign(id)
	if err != nil {
		return nil, err
	}
	spec.RenderedTemplatesArchive = &agent.BlobRef{SHA1: digest, BlobstoreID: id, SignedURL: u}
	return spec, nil
}

// replaceVM gives an instance a new VM: the old one (if any) deleted, a
// new agent id with its bus certificate, the VM made through the CPI and
// waited for until its agent answers. Each step is recorded before the
// next begins.
func (d *Director) replaceVM(ctx context.Context, deployment string, p *planned, mu *sync.Mutex) (string, error) {
	save := d.saver(p, mu)
	mu.Lock()
	old := p.rec
	mu.Unlock()
	if old.VMCID != "" || old.AgentID != "" {
		// The old VM, or an agent id a create_vm that failed left.
		if err := d.deleteVM(ctx, old); err != nil {
			return "", err
		}
		if err := save(func(r *InstanceRecord) { r.VMCID, r.AgentID = "", "" }); err != nil {
			return "", err
		}
	}
	agentID := uuid.NewString()
	// Recorded before the bus knows it, so that no id the bus lets in is
	// one the store does not name.
	if err := save(func(r *InstanceRecord) { r.AgentID = agentID }); err != nil {
		return "", err
	}
	var disks []string
	if old.DiskCID != "" {
		disks = []string{old.DiskCID}
	}
	err := d.createVM(ctx, deployment, p, agentID, disks,
		func(cid string) error { return save(func(r *InstanceRecord) { r.VMCID = cid }) },
		func() error { return save(func(r *InstanceRecord) { r.AgentID = "" }) })
	if err != nil {
		return "", err
	}
	return agentID, nil
}

// createNextVM makes an instance's new VM ahead of its swap
// (create-swap-delete), with its new addresses, while the old VM runs:
// recorded as the instance's next VM, each step before the next begins,
// as replaceVM records its VM.
func (d *Director) createNextVM(ctx context.Context, deployment string, p *planned, mu *sync.Mutex) error {
	save := d.saver(p, mu)
	mu.Lock()
	rec := p.rec
	mu.Unlock()
	if rec.NextVMCID != "" || rec.NextAgentID != "" || rec.OldVMCID != "" || rec.OldAgentID != "" {
		return fmt.Errorf("a VM of an earlier swap (%s%s) is still to be deleted", rec.NextVMCID, rec.OldVMCID)
	}
	agentID := uuid.NewString()
	// The agent id before the bus knows it, and the addresses before a
	// VM holds them.
	if err := save(func(r *InstanceRecord) { r.NextAgentID, r.NextIPs = agentID, p.nextIPs }); err != nil {
		return err
	}
	var disks []string
	if rec.DiskCID != "" {
		disks = []string{rec.DiskCID} // where to make it; the disk stays on the old VM until the swap
	}
	return d.createVM(ctx, deployment, p, agentID, disks,
		func(cid string) error { return save(func(r *InstanceRecord) { r.NextVMCID = cid }) },
		func() error { return save(func(r *InstanceRecord) { r.NextAgentID, r.NextIPs = "", nil }) })
}

// swapVM makes an instance's next VM its own once the instance is
// stopped: its persistent disks unmounted by the old VM's agent and
// detached from the old VM, then, in one record, the next VM the
// instance's, the old one recorded to be deleted (dropSpareVMs) with its
// addresses, and the VM's part of what was applied (AZ, stemcell,
// vm_type, networks, env) what the new VM was made with, so that a
// deploy that stops after the swap does not swap again. The disks are
// attached to the new VM by Prepare.
func (d *Director) swapVM(ctx context.Context, p *planned, mu *sync.Mutex) (string, error) {
	mu.Lock()
	rec := p.rec
	mu.Unlock()
	if rec.NextVMCID == "" || rec.NextAgentID == "" {
		return "", errors.New("swap: no new VM was made")
	}
	if rec.VMCID != "" {
		attached, err := d.cfg.CPI.GetDisks(ctx, rec.VMCID)
		if err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
			return "", fmt.Errorf("get_disks %s: %w", rec.VMCID, err)
		}
		for _, disk := range []string{rec.DiskCID, rec.NewDiskCID, rec.OldDiskCID} {
			if disk == "" || !slices.Contains(attached, disk) {
				continue
			}
			if rec.AgentID != "" {
				if _, err := d.cfg.Agents.Call(ctx, rec.AgentID, "unmount_disk", disk); err != nil {
					return "", fmt.Errorf("unmount_disk %s: %w", disk, err)
				}
			}
			if err := d.cfg.CPI.DetachDisk(ctx, rec.VMCID, disk); err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
				return "", fmt.Errorf("detach_disk %s from %s: %w", disk, rec.VMCID, err)
			}
		}
	}
	err := d.saver(p, mu)(func(r *InstanceRecord) {
		r.OldVMCID, r.OldAgentID, r.OldIPs = r.VMCID, r.AgentID, r.IPs
		r.VMCID, r.AgentID, r.IPs = r.NextVMCID, r.NextAgentID, r.NextIPs
		r.NextVMCID, r.NextAgentID, r.NextIPs = "", "", nil
		if r.Applied != nil {
			a := *r.Applied
			a.AZ, a.Stemcell, a.VMType, a.Networks, a.Env = p.desired.AZ, p.desired.Stemcell, p.desired.VMType, p.desired.Networks, p.desired.Env
			r.Applied = &a
		}
	})
	if err != nil {
		return "", err
	}
	return rec.NextAgentID, nil
}

// dropSpareVMs deletes the VMs of an instance that are not its own: one
// made for a swap that did not happen, one a swap took it off. Each is
// forgotten once deleted (one already gone is no error); its addresses
// are held until then.
func (d *Director) dropSpareVMs(ctx context.Context, p *planned, mu *sync.Mutex) error {
	save := d.saver(p, mu)
	mu.Lock()
	rec := p.rec
	mu.Unlock()
	disks := []string{rec.DiskCID, rec.NewDiskCID, rec.OldDiskCID}
	if rec.NextVMCID != "" || rec.NextAgentID != "" || len(rec.NextIPs) > 0 {
		if err := d.deleteSpareVM(ctx, rec.NextVMCID, rec.NextAgentID, disks); err != nil {
			return fmt.Errorf("instance %s/%s (%d): the VM made to swap in: %w", rec.Group, rec.ID, rec.Index, err)
		}
		if err := save(func(r *InstanceRecord) { r.NextVMCID, r.NextAgentID, r.NextIPs = "", "", nil }); err != nil {
			return err
		}
	}
	if rec.OldVMCID != "" || rec.OldAgentID != "" || len(rec.OldIPs) > 0 {
		if err := d.deleteSpareVM(ctx, rec.OldVMCID, rec.OldAgentID, disks); err != nil {
			return fmt.Errorf("instance %s/%s (%d): the VM swapped out: %w", rec.Group, rec.ID, rec.Index, err)
		}
		if err := save(func(r *InstanceRecord) { r.OldVMCID, r.OldAgentID, r.OldIPs = "", "", nil }); err != nil {
			return err
		}
	}
	return nil
}

// deleteSpareVM deletes a VM that is not its instance's own, and its
// agent's place on the bus. Of the instance's disks, only those the CPI
// says are attached to it are detached first (a disk is detached by its
// cid alone, and is on the instance's own VM otherwise).
func (d *Director) deleteSpareVM(ctx context.Context, cid, agentID string, disks []string) error {
	if cid != "" {
		attached, err := d.cfg.CPI.GetDisks(ctx, cid)
		switch {
		case errors.Is(err, kubefoundry.ErrNotFound):
			cid = "" // gone
		case err != nil:
			return fmt.Errorf("get_disks %s: %w", cid, err)
		}
		for _, disk := range disks {
			if disk == "" || cid == "" || !slices.Contains(attached, disk) {
				continue
			}
			if err := d.cfg.CPI.DetachDisk(ctx, cid, disk); err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
				return fmt.Errorf("detach_disk %s from %s: %w", disk, cid, err)
			}
		}
	}
	if cid != "" {
		if err := d.cfg.CPI.DeleteVM(ctx, cid); err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
			return fmt.Errorf("delete_vm %s: %w", cid, err)
		}
	}
	if agentID != "" {
		if err := d.cfg.Bus.RemoveAgent(agentID); err != nil {
			d.log.Warn("removing an agent from the bus", zap.String("agent", agentID), zap.Error(err))
		}
	}
	return nil
}

// saver records a change of an instance's record, under mu.
func (d *Director) saver(p *planned, mu *sync.Mutex) func(change func(r *InstanceRecord)) error {
	return func(change func(r *InstanceRecord)) error {
		mu.Lock()
		defer mu.Unlock()
		change(&p.rec)
		return d.cfg.Store.PutInstance(p.rec)
	}
}

// createVM makes a VM for an instance with agentID (already recorded):
// the agent's bus certificate in its env, create_vm, the cid recorded
// (recordCID) as soon as the CPI gives it, its metadata, and the wait for
// its agent. When create_vm fails the agent goes from the bus and forget
// drops its id from the record.
func (d *Director) createVM(ctx context.Context, deployment string, p *planned, agentID string, disks []string,
	recordCID func(cid string) error, forget func() error) error {
	creds, err := d.cfg.Bus.AddAgent(agentID)
	if err != nil {
		return fmt.Errorf("bus certificate: %w", err)
	}
	env := cpi.Env{}
	maps.Copy(env, p.env)
	boshEnv := map[string]any{}
	if b, ok := env["bosh"].(map[string]any); ok {
		maps.Copy(boshEnv, b)
	}
	boshEnv["mbus"] = map[string]any{"cert": map[string]any{"ca": string(creds.CAPEM), "certificate": string(creds.CertPEM),
		"private_key": string(creds.KeyPEM)}}
	boshEnv["group"] = deployment + "-" + p.group.Name
	boshEnv["groups"] = []string{deployment, p.group.Name, deployment + "-" + p.group.Name}
	env["bosh"] = boshEnv
	// A create_vm once begun is seen through and recorded whatever
	// becomes of ctx: cut short, the VM could be made with no record of
	// it, and leak.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.CreateVMTimeout)
	cid, _, err := d.cfg.CPI.CreateVM(cctx, agentID, p.stemcell.CID, p.props, p.nets, disks, env)
	cancel()
	if err != nil {
		// No VM: its agent id goes from the bus and the record.
		if rerr := d.cfg.Bus.RemoveAgent(agentID); rerr != nil {
			d.log.Warn("removing an agent from the bus", zap.String("agent", agentID), zap.Error(rerr))
		}
		if serr := forget(); serr != nil {
			err = errors.Join(err, serr)
		}
		return fmt.Errorf("create_vm: %w", err)
	}
	if err := recordCID(cid); err != nil {
		return err
	}
	// The deployment's tags, then what BOSH sets on every VM.
	meta := cpi.Metadata(maps.Clone(p.tags))
	if meta == nil {
		meta = cpi.Metadata{}
	}
	maps.Copy(meta, cpi.Metadata{"deployment": deployment, "job": p.group.Name, "instance_group": p.group.Name,
		"index": fmt.Sprint(p.rec.Index), "id": p.rec.ID, "name": fmt.Sprintf("%s/%s", p.group.Name, p.rec.ID)})
	if err := d.cfg.CPI.SetVMMetadata(ctx, cid, meta); err != nil {
		d.log.Warn("set_vm_metadata", zap.String("vm", cid), zap.Error(err))
	}
	if err := d.waitAgent(ctx, agentID); err != nil {
		return fmt.Errorf("VM %s: %w", cid, err)
	}
	return nil
}

// waitAgent pings a new VM's agent until it answers, for at most
// AgentWait.
func (d *Director) waitAgent(ctx context.Context, agentID string) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.AgentWait)
	defer cancel()
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, max(d.cfg.AgentPing, 5*time.Second))
		_, err := d.cfg.Agents.Call(pctx, agentID, "ping")
		pcancel()
		if err == nil {
			return nil
		}
		last = err
		t := time.NewTimer(d.cfg.AgentPing)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("the agent %s did not answer within %s: %w (last: %v)", agentID, d.cfg.AgentWait, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// deleteVM deletes an instance's VM (one already gone is no error) and
// its agent's place on the bus; its persistent disks are detached first
// and kept.
func (d *Director) deleteVM(ctx context.Context, r InstanceRecord) error {
	if r.VMCID != "" {
		for _, h := range heldDisks(r) {
			if err := d.detachDisk(ctx, r.VMCID, h.cid); err != nil {
				return err
			}
		}
		if err := d.cfg.CPI.DeleteVM(ctx, r.VMCID); err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
			return fmt.Errorf("delete_vm %s: %w", r.VMCID, err)
		}
	}
	if r.AgentID != "" {
		if err := d.cfg.Bus.RemoveAgent(r.AgentID); err != nil {
			d.log.Warn("removing an agent from the bus", zap.String("agent", r.AgentID), zap.Error(err))
		}
	}
	return nil
}

// deleteInstance drains and stops an instance whose agent answers (a
// failure to do so is an error unless force), takes each of its
// persistent disks off its VM (unmounted by the agent when it answers,
// then detached) and orphans it when keepDisks, else deletes it; then it
// deletes the VM and forgets the instance. Each disk is recorded, by the
// instance or as an orphan, until it is deleted. A disk that fails is an
// error naming it and the others go on; the VM is kept while a disk it
// could not let go is on it (deleting it would delete the disk), and the
// instance while it names a disk.
func (d *Director) deleteInstance(ctx context.Context, r InstanceRecord, force bool, deploymentNext string,
	beforeStop func(context.Context, Instance) error, keepDisks bool) error {
	name := fmt.Sprintf("%s/%s (%d)", r.Group, r.ID, r.Index)
	answers := false
	if r.VMCID != "" && r.AgentID != "" {
		pctx, cancel := context.WithTimeout(ctx, d.cfg.PingTimeout)
		_, perr := d.cfg.Agents.Call(pctx, r.AgentID, "ping")
		cancel()
		switch {
		case perr == nil:
			answers = true
			if beforeStop != nil && r.State == StateStarted {
				inst := Instance{Group: r.Group, ID: r.ID, Index: r.Index, AZ: r.AZ, AgentID: r.AgentID, Running: true}
				if err := beforeStop(ctx, inst); err != nil {
					return fmt.Errorf("%s: before stop: %w", name, err)
				}
			}
			env := nextState("delete", "delete", deploymentNext)
			if err := d.stopJobs(ctx, r.AgentID, env, false); err != nil && !force {
				return fmt.Errorf("%s: %w", name, err)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case !force:
			// A VM that is gone has nothing to drain; one that is there
			// and silent is not deleted undrained unless forced.
			has, err := d.cfg.CPI.HasVM(ctx, r.VMCID)
			if err != nil {
				return fmt.Errorf("%s: has_vm %s: %w", name, r.VMCID, err)
			}
			if has {
				return fmt.Errorf("%s: its agent does not answer (%v), so it cannot be drained: delete with Force, or recreate it first (cloud-check)", name, perr)
			}
		}
	}
	// A swap's spare VMs go first; a disk on one is detached from it,
	// never deleted with it.
	spareDisks := []string{r.DiskCID, r.NewDiskCID, r.OldDiskCID}
	for _, spare := range [][2]string{{r.NextVMCID, r.NextAgentID}, {r.OldVMCID, r.OldAgentID}} {
		if err := d.deleteSpareVM(ctx, spare[0], spare[1], spareDisks); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	var errs []error
	held := false // a disk is still on the VM
	for _, h := range heldDisks(r) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		fail := func(err error) { errs = append(errs, fmt.Errorf("%s: disk %s: %w", name, h.cid, err)) }
		if answers {
			if _, err := d.cfg.Agents.Call(ctx, r.AgentID, "unmount_disk", h.cid); err != nil && !force {
				fail(fmt.Errorf("unmount_disk: %w", err))
				held = true
				continue
			}
		}
		if err := d.detachDisk(ctx, r.VMCID, h.cid); err != nil {
			fail(err)
			held = true
			continue
		}
		next := r
		h.drop(&next)
		if keepDisks {
			if err := d.cfg.Store.ChangeDisks(DiskChange{Instance: next, Orphan: []OrphanedDisk{orphanOf(r, h, time.Now())}}); err != nil {
				fail(err)
				continue
			}
		} else {
			if err := d.cfg.CPI.DeleteDisk(ctx, h.cid); err != nil && !errors.Is(err, kubefoundry.ErrNotFound) {
				fail(fmt.Errorf("delete_disk: %w", err))
				continue
			}
			if err := d.cfg.Store.PutInstance(next); err != nil {
				fail(err)
				continue
			}
		}
		r = next
	}
	if held {
		return errors.Join(errs...)
	}
	if err := d.deleteVM(ctx, r); err != nil {
		return errors.Join(append(errs, fmt.Errorf("%s: %w", name, err))...)
	}
	if len(errs) > 0 {
		// The disks that failed stay the instance's, now without a VM.
		r.VMCID, r.AgentID = "", ""
		if err := d.cfg.Store.PutInstance(r); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if r.TemplatesBlob != "" {
		if err := d.cfg.Blobs.Delete(ctx, r.TemplatesBlob); err != nil {
			d.log.Warn("deleting a rendered templates blob", zap.String("blob", r.TemplatesBlob), zap.Error(err))
		}
	}
	return d.cfg.Store.DeleteInstance(r.Deployment, r.ID)
}

// nextState is the environment of pre-stop scripts, as BOSH sets it:
// what becomes of the VM, the instance and the deployment (keep or
// delete).
func nextState(vm, instance, deployment string) map[string]string {
	return map[string]string{"BOSH_VM_NEXT_STATE": vm, "BOSH_INSTANCE_NEXT_STATE": instance, "BOSH_DEPLOYMENT_NEXT_STATE": deployment}
}

// stopJobs takes a running instance's jobs down: pre-stop (with env, see
// nextState), drain shutdown, stop, post-stop; without the pre-stop and
// drain when skipDrain.
func (d *Director) stopJobs(ctx context.Context, agentID string, env map[string]string, skipDrain bool) error {
	type step struct {
		what   string
		method string
		args   []any
	}
	var steps []step
	if !skipDrain {
		steps = append(steps,
			step{"pre-stop", "run_script", []any{"pre-stop", map[string]any{"env": env}}},
			step{"drain", "drain", []any{"shutdown"}})
	}
	steps = append(steps, step{"stop", "stop", nil}, step{"post-stop", "run_script", []any{"post-stop", map[string]any{}}})
	for _, s := range steps {
		if _, err := d.cfg.Agents.Call(ctx, agentID, s.method, s.args...); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

// DeleteOptions are a deployment deletion's options.
type DeleteOptions struct {
	// Force goes on when an instance cannot be drained or stopped.
	Force bool
	// KeepDisks keeps the persistent disks: each is detached and
	// recorded orphaned (OrphanedDisks), to be attached again
	// (AttachDisk) or deleted (DeleteOrphanedDisk, CleanUpOrphanedDisks).
	// Without it they are deleted.
	KeepDisks bool
	Events    EventSink
}

// DeleteDeployment deletes a deployment: its instances at once (up to
// Config.MaxThreads), each drained and stopped, its persistent disks detached and deleted (or, with
// KeepDisks, orphaned), its VM deleted, and the deployment forgotten. It
// is idempotent: VMs and disks already gone are no error, and a deletion
// stopped half-way finishes when run again. One instance's or disk's
// failure does not keep the others: the error names each that failed,
// and the deployment stays recorded with them. The orphaned disks of the
// deployment, from before or from KeepDisks, stay. A deployment the store
// does not know is ErrNotFound.
func (d *Director) DeleteDeployment(ctx context.Context, name string, opts DeleteOptions) (Task, error) {
	if _, err := d.cfg.Store.Deployment(name); err != nil {
		return Task{}, err
	}
	return d.runTask(ctx, "delete_deployment", name, "delete deployment "+name, opts.Events, func(ctx context.Context, sink EventSink) (string, error) {
		recs, err := d.cfg.Store.Instances(name)
		if err != nil {
			return "", err
		}
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].Group < recs[j].Group })
		stg := newStage(sink, "Deleting instances", nil, len(recs))
		// Every instance at once, up to MaxThreads, as BOSH's director
		// deletes them; one instance's failure does not keep the others.
		errs := make([]error, len(recs))
		sem := make(chan struct{}, d.cfg.MaxThreads)
		var wg sync.WaitGroup
		// A panic in one instance's deletion is the task's, as it would be
		// were the instances deleted in the task's own goroutine: raised
		// again once the others are done.
		var pmu sync.Mutex
		var panicked any
		for i, r := range recs {
			wg.Go(func() {
				defer func() {
					if p := recover(); p != nil {
						pmu.Lock()
						panicked = cmp.Or(panicked, p)
						pmu.Unlock()
					}
				}()
				sem <- struct{}{}
				defer func() { <-sem }()
				end := stg.start(fmt.Sprintf("%s/%s (%d)", r.Group, r.ID, r.Index))
				errs[i] = d.deleteInstance(ctx, r, opts.Force, "delete", nil, opts.KeepDisks)
				end(errs[i])
			})
		}
		wg.Wait()
		if panicked != nil {
			panic(panicked)
		}
		if err := errors.Join(errs...); err != nil {
			return "", err
		}
		if err := d.cfg.Store.DeleteDeployment(name); err != nil {
			return "", err
		}
		return "/deployments/" + name, nil
	})
}
