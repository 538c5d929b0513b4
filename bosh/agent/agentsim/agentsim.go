// Package agentsim runs, in-process, the BOSH agent of every powered-on VM
// of a vCenter (in practice its simulator) that carries agent settings in
// its guestinfo, as a stemcell's agent would run on the VM itself: the
// agent starts when the VM powers on, stops when it powers off or goes,
// and starts again, on the same disk, when it powers on again. With it, a
// director driving a CPI against vcsim meets real agents over the real
// bus.
//
//	fleet, err := agentsim.Start(ctx, vs.Vim25(), agentsim.Config{Root: dir}, log)
//	defer fleet.Close()
package agentsim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/internal/retry"
)

// SettingsKey is the guestinfo key of the agent's settings, as the vSphere
// CPI writes it (vspherecpi.SettingsKey).
const SettingsKey = "guestinfo.bosh.settings"

// Config configures a Fleet.
type Config struct {
	// Root is where each VM's disk lives: a directory per VM (named by
	// its managed object id) that stands for the VM's /var/vcap.
	Root string
	// PollInterval is how often the VMs' power state and guestinfo are
	// read; 100ms when 0.
	PollInterval time.Duration
	// Agent is the template of each agent's Config; Settings and Root
	// are the VM's. Without a Mounter, persistent disks are directories
	// under Root/disks (agent.DirMounter), shared by the VMs as a
	// datastore is. ReloadSettings reads the VM's guestinfo again.
	Agent agent.Config
}

// Fleet runs the agents of a vCenter's VMs. A Fleet is safe for
// concurrent use.
type Fleet struct {
	vim *vim25.Client
	cfg Config
	log *zap.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	agents map[string]*agent.Agent // by VM managed object id
	errs   map[string]error        // why a VM's agent did not start
	// failures counts a VM's failed starts in a row; nextTry is when its
	// agent is tried again.
	failures map[string]int
	nextTry  map[string]time.Time
	vms      map[string]vmState
}

type vmState struct {
	on       bool
	settings string
	encoding string
}

// Start watches the vCenter's VMs, through one property collector filter
// on a container view of them all, until Close.
func Start(ctx context.Context, vim *vim25.Client, cfg Config, log *zap.Logger) (*Fleet, error) {
	if cfg.Root == "" {
		return nil, errors.New("agentsim: Config.Root is required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	f := &Fleet{vim: vim, cfg: cfg, log: log, done: make(chan struct{}),
		agents: map[string]*agent.Agent{}, errs: map[string]error{}, vms: map[string]vmState{},
		failures: map[string]int{}, nextTry: map[string]time.Time{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	go f.run()
	return f, nil
}

// Close stops watching and stops every agent.
func (f *Fleet) Close() {
	f.cancel()
	<-f.done
	f.mu.Lock()
	agents := f.agents
	f.agents = map[string]*agent.Agent{}
	f.mu.Unlock()
	for _, a := range agents {
		a.Close() // each within its stop timeout, without holding the lock
	}
}

// Agents are the ids of the VMs whose agents run, sorted.
func (f *Fleet) Agents() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.agents))
	for id := range f.agents {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Agent is the running agent of the VM with that managed object id.
func (f *Fleet) Agent(vm string) (*agent.Agent, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.agents[vm]
	return a, ok
}

// Err is why the agent of the VM did not start, if it did not.
func (f *Fleet) Err(vm string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errs[vm]
}

// Failures is how many times in a row the VM's agent failed to start
// (0 once it runs, or for a VM it never failed for).
func (f *Fleet) Failures(vm string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures[vm]
}

func (f *Fleet) run() {
	defer close(f.done)
	bo := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for f.ctx.Err() == nil {
		err := f.watch()
		if f.ctx.Err() != nil {
			return
		}
		f.log.Warn("watching VMs failed; watching again", zap.Error(err))
		if !bo.Sleep(f.ctx) {
			return
		}
	}
}

// watch reads the power state and guestinfo of every VM through a
// container view, every PollInterval, and starts and stops agents as they
// change. It polls rather than waits for updates: vcsim (govmomi
// v0.56.0) can deadlock a WaitForUpdatesEx on a container view against
// VMs being made at the same time (a lock-order bug fixed upstream in
// govmomi#4109, not in a release this module can take).
func (f *Fleet) watch() error {
	v, err := view.NewManager(f.vim).CreateContainerView(f.ctx, f.vim.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = v.Destroy(ctx)
	}()
	t := time.NewTicker(f.cfg.PollInterval)
	defer t.Stop()
	for {
		var vms []mo.VirtualMachine
		if err := v.Retrieve(f.ctx, []string{"VirtualMachine"}, []string{"runtime.powerState", "config.extraConfig"}, &vms); err != nil {
			return err
		}
		present := map[string]bool{}
		for _, vm := range vms {
			id := vm.Self.Value
			present[id] = true
			st := vmState{on: vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn}
			if vm.Config != nil {
				for _, o := range vm.Config.ExtraConfig {
					ov := o.GetOptionValue()
					val, _ := ov.Value.(string)
					switch ov.Key {
					case SettingsKey:
						st.settings = val
					case SettingsKey + ".encoding":
						st.encoding = val
					}
				}
			}
			f.update(id, st)
		}
		f.mu.Lock()
		var gone []string
		for id := range f.vms {
			if !present[id] {
				gone = append(gone, id)
			}
		}
		f.mu.Unlock()
		for _, id := range gone {
			f.stop(id)
			f.mu.Lock()
			delete(f.vms, id)
			delete(f.errs, id)
			delete(f.failures, id)
			delete(f.nextTry, id)
			f.mu.Unlock()
		}
		select {
		case <-f.ctx.Done():
			return f.ctx.Err()
		case <-t.C:
		}
	}
}

// update starts or stops a VM's agent as its state now says.
func (f *Fleet) update(id string, st vmState) {
	f.mu.Lock()
	f.vms[id] = st
	_, running := f.agents[id]
	f.mu.Unlock()
	switch {
	case st.on && st.settings != "" && !running:
		f.mu.Lock()
		wait := time.Now().Before(f.nextTry[id])
		f.mu.Unlock()
		if wait {
			return // it failed to start a moment ago: later, backing off
		}
		f.start(id, st)
	case !st.on && running:
		f.stop(id)
	}
}

func (f *Fleet) start(id string, st vmState) {
	settings, err := agent.DecodeGuestinfoSettings(st.settings, st.encoding)
	if err == nil {
		cfg := f.cfg.Agent
		cfg.Settings = settings
		cfg.Root = filepath.Join(f.cfg.Root, id)
		if cfg.Mounter == nil {
			cfg.Mounter = agent.DirMounter{Dir: filepath.Join(f.cfg.Root, "disks")}
		}
		ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: id}
		cfg.ReloadSettings = func(ctx context.Context) (cpi.AgentSettings, error) { return f.readSettings(ctx, ref) }
		if err = os.MkdirAll(cfg.Root, 0o755); err == nil {
			ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
			var a *agent.Agent
			a, err = agent.Start(ctx, cfg, agent.WithLogger(f.log.With(zap.String("vm", id))))
			cancel()
			if err == nil {
				f.mu.Lock()
				f.agents[id] = a
				delete(f.errs, id)
				delete(f.failures, id)
				delete(f.nextTry, id)
				f.mu.Unlock()
				f.log.Info("agent started for a powered-on VM", zap.String("vm", id), zap.String("agent", settings.AgentID))
				return
			}
		}
	}
	err = fmt.Errorf("agentsim: VM %s: %w", id, err)
	f.log.Warn("agent not started", zap.Error(err))
	f.mu.Lock()
	f.errs[id] = err
	f.failures[id]++
	// Tried again on a later poll: after 250 ms, doubling to 30 s.
	f.nextTry[id] = time.Now().Add(min(30*time.Second, 250*time.Millisecond<<min(f.failures[id]-1, 7)))
	f.mu.Unlock()
}

// readSettings reads a VM's agent settings from its guestinfo, as they
// are now.
func (f *Fleet) readSettings(ctx context.Context, ref types.ManagedObjectReference) (cpi.AgentSettings, error) {
	var vm mo.VirtualMachine
	if err := property.DefaultCollector(f.vim).RetrieveOne(ctx, ref, []string{"config.extraConfig"}, &vm); err != nil {
		return cpi.AgentSettings{}, err
	}
	var settings, encoding string
	if vm.Config != nil {
		for _, o := range vm.Config.ExtraConfig {
			ov := o.GetOptionValue()
			v, _ := ov.Value.(string)
			switch ov.Key {
			case SettingsKey:
				settings = v
			case SettingsKey + ".encoding":
				encoding = v
			}
		}
	}
	if settings == "" {
		return cpi.AgentSettings{}, fmt.Errorf("VM %s has no %s", ref.Value, SettingsKey)
	}
	return agent.DecodeGuestinfoSettings(settings, encoding)
}

func (f *Fleet) stop(id string) {
	f.mu.Lock()
	a, ok := f.agents[id]
	delete(f.agents, id)
	f.mu.Unlock()
	if ok {
		a.Close()
		f.log.Info("agent stopped: its VM is off or gone", zap.String("vm", id))
	}
}
