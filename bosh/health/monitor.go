package health

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

// Instance is an instance the monitor watches, by the agent that runs it.
type Instance struct {
	Deployment string
	Group      string
	ID         string
	Index      int
	AgentID    string
}

func (i Instance) String() string {
	return fmt.Sprintf("%s/%s/%s (%d)", i.Deployment, i.Group, i.ID, i.Index)
}

// The kinds of Alert.
const (
	// KindTimeout: no heartbeat from the instance's agent for Timeout.
	KindTimeout = "timeout"
	// KindJobState: a heartbeat says the jobs are not running.
	KindJobState = "job_state"
	// KindAgent: an alert the agent sent (a process event).
	KindAgent = "agent"
	// KindResurrected: the resurrector recreated the instance.
	KindResurrected = "resurrected"
	// KindResurrectionFailed: it tried and failed.
	KindResurrectionFailed = "resurrection_failed"
	// KindMeltdown: too many of the deployment's instances are down;
	// resurrection of the deployment is paused.
	KindMeltdown = "meltdown"
)

// BOSH's alert severities.
const (
	SeverityAlert    = 1
	SeverityCritical = 2
	SeverityError    = 3
	SeverityWarning  = 4
)

// Alert is something the monitor found.
type Alert struct {
	Kind     string
	Severity int
	Instance Instance
	Title    string
	Summary  string
	At       time.Time
}

// Resurrect recreates an instance whose agent went silent and returns it
// as it is now (its agent id may be new).
type Resurrect func(ctx context.Context, inst Instance) (Instance, error)

// MeltdownGuard is when the resurrector stops: at least Count of a
// deployment's instances timed out within Window, and at least Percent of
// its instances (an instance that times out again counts once). BOSH's defaults (minimum_down_jobs,
// percent_threshold, time_threshold): 5, 20, 10 minutes.
type MeltdownGuard struct {
	Count   int
	Percent float64
	Window  time.Duration
}

// Config configures a Monitor.
type Config struct {
	// Interval is the agents' heartbeat interval; 30s when 0.
	Interval time.Duration
	// Timeout is how long an agent may be silent before its instance
	// times out; one and a half Intervals when 0 (one missed heartbeat,
	// with half an interval for jitter), so that a silent agent is found
	// within two intervals of its last heartbeat.
	Timeout time.Duration
	// Resurrect, when set, is called for an instance that timed out,
	// unless the deployment melts down.
	Resurrect Resurrect
	// Meltdown guards resurrection; BOSH's defaults for zero fields.
	Meltdown MeltdownGuard
	// Alerts receives every alert, on one goroutine, in order.
	Alerts func(Alert)
}

// withDefaults fills in what is zero.
func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 30 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = c.Interval * 3 / 2
	}
	if c.Meltdown.Count == 0 {
		c.Meltdown.Count = 5
	}
	if c.Meltdown.Percent == 0 {
		c.Meltdown.Percent = 20
	}
	if c.Meltdown.Window == 0 {
		c.Meltdown.Window = 10 * time.Minute
	}
	return c
}

// Monitor is BOSH's health monitor with its resurrector: it follows the
// agents' heartbeats and alerts on the bus, times out an instance whose
// agent goes silent, and recreates it through Resurrect. A Monitor is
// safe for concurrent use.
type Monitor struct {
	cfg Config
	log *zap.Logger
	now func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	alerts chan Alert

	mu        sync.Mutex
	watched   map[string]*watched             // by agent id
	downs     map[string]map[string]time.Time // deployment -> instance id -> its last time-out
	dropped   int64                           // alerts dropped because the sink was behind
	meltdown  map[string]bool
	heartbeat int64 // heartbeats received
}

type watched struct {
	inst      Instance
	last      time.Time
	jobState  string
	timedOut  bool
	resurrect bool // a resurrection is running
	timer     *time.Timer
}

// Status is what the monitor knows of an instance.
type Status struct {
	Instance      Instance
	LastHeartbeat time.Time // zero until the first
	JobState      string
	TimedOut      bool
}

// Start subscribes to the agents' heartbeats and alerts through bus and
// watches the instances given with Watch until Close or ctx's end.
func Start(ctx context.Context, bus *mbus.Client, cfg Config, log *zap.Logger) (*Monitor, error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	m := &Monitor{cfg: cfg, log: log, now: time.Now, alerts: make(chan Alert, 1024),
		watched: map[string]*watched{}, downs: map[string]map[string]time.Time{}, meltdown: map[string]bool{}}
	m.ctx, m.cancel = context.WithCancel(ctx)
	if err := bus.Heartbeats(m.ctx, m.onHeartbeat); err != nil {
		m.cancel()
		return nil, err
	}
	if err := bus.Alerts(m.ctx, m.onAgentAlert); err != nil {
		m.cancel()
		return nil, err
	}
	m.wg.Add(1)
	go m.deliver()
	return m, nil
}

// Close stops watching and waits for running resurrections, whose ctx
// ends; alerts not yet delivered are dropped.
func (m *Monitor) Close() {
	m.cancel()
	m.mu.Lock()
	for _, w := range m.watched {
		w.timer.Stop()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Heartbeats is how many heartbeats the monitor has received.
func (m *Monitor) Heartbeats() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.heartbeat
}

// Watch starts watching inst: from now, its agent has Timeout to send a
// heartbeat. Watching an agent again replaces what was known of it.
func (m *Monitor) Watch(inst Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.watched[inst.AgentID]; ok {
		old.timer.Stop()
	}
	w := &watched{inst: inst}
	w.timer = time.AfterFunc(m.cfg.Timeout, func() { m.timeout(inst.AgentID, w) })
	m.watched[inst.AgentID] = w
}

// Forget stops watching the agent (its instance was deleted).
func (m *Monitor) Forget(agentID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.watched[agentID]; ok {
		w.timer.Stop()
		delete(m.watched, agentID)
	}
}

// Status reports every watched instance, by deployment, group and index.
func (m *Monitor) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.watched))
	for _, w := range m.watched {
		out = append(out, Status{Instance: w.inst, LastHeartbeat: w.last, JobState: w.jobState, TimedOut: w.timedOut})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Instance, out[j].Instance
		if a.Deployment != b.Deployment {
			return a.Deployment < b.Deployment
		}
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Index < b.Index
	})
	return out
}

// raise queues an alert for the sink. It never blocks (it runs in the
// bus's callbacks and the timers): when the sink is 1024 alerts behind,
// the alert is dropped, logged and counted (Dropped).
func (m *Monitor) raise(a Alert) {
	a.At = m.now()
	select {
	case m.alerts <- a:
	default:
		m.mu.Lock()
		m.dropped++
		m.mu.Unlock()
		m.log.Warn("health alert dropped: the sink is behind", zap.String("kind", a.Kind), zap.Stringer("instance", a.Instance))
	}
}

// Dropped is how many alerts were dropped because the sink was behind.
func (m *Monitor) Dropped() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped
}

func (m *Monitor) deliver() {
	defer m.wg.Done()
	for {
		select {
		case a := <-m.alerts:
			m.log.Info("health alert", zap.String("kind", a.Kind), zap.Stringer("instance", a.Instance), zap.String("title", a.Title))
			if m.cfg.Alerts != nil {
				m.cfg.Alerts(a)
			}
		case <-m.ctx.Done():
			return
		}
	}
}

func (m *Monitor) onHeartbeat(agentID string, hb mbus.Heartbeat) {
	m.mu.Lock()
	m.heartbeat++
	w, ok := m.watched[agentID]
	if !ok {
		m.mu.Unlock()
		return
	}
	w.last = m.now()
	w.timer.Reset(m.cfg.Timeout)
	wasDown := w.timedOut
	w.timedOut = false
	prev := w.jobState
	w.jobState = hb.JobState
	inst := w.inst
	m.mu.Unlock()
	if wasDown {
		m.log.Info("agent heard from again", zap.Stringer("instance", inst))
	}
	if hb.JobState != prev && hb.JobState == "failing" {
		m.raise(Alert{Kind: KindJobState, Severity: SeverityCritical, Instance: inst,
			Title: inst.String() + ": jobs failing", Summary: "the agent reports job_state failing"})
	}
}

func (m *Monitor) onAgentAlert(agentID string, a mbus.Alert) {
	m.mu.Lock()
	w, ok := m.watched[agentID]
	var inst Instance
	if ok {
		inst = w.inst
	} else {
		inst = Instance{AgentID: agentID}
	}
	m.mu.Unlock()
	m.raise(Alert{Kind: KindAgent, Severity: a.Severity, Instance: inst, Title: a.Title, Summary: a.Summary})
}

// timeout runs when w's agent has been silent for Timeout.
func (m *Monitor) timeout(agentID string, w *watched) {
	m.mu.Lock()
	if m.watched[agentID] != w || w.timedOut || m.ctx.Err() != nil ||
		(!w.last.IsZero() && m.now().Sub(w.last) < m.cfg.Timeout) { // a heartbeat came as the timer fired
		m.mu.Unlock()
		return
	}
	w.timedOut = true
	inst := w.inst
	silent := m.cfg.Timeout
	if !w.last.IsZero() {
		silent = m.now().Sub(w.last)
	}
	down := m.recordDownLocked(inst)
	melt := m.meltingDownLocked(inst.Deployment, down)
	wasMelting := m.meltdown[inst.Deployment]
	m.meltdown[inst.Deployment] = melt
	start := m.cfg.Resurrect != nil && !melt && !w.resurrect
	if start {
		w.resurrect = true
		m.wg.Add(1) // under mu, which Close takes before it waits
	}
	m.mu.Unlock()

	m.raise(Alert{Kind: KindTimeout, Severity: SeverityCritical, Instance: inst,
		Title: inst.String() + " has timed out", Summary: fmt.Sprintf("no heartbeat from agent %s for %s", agentID, silent.Round(time.Millisecond))})
	if melt && m.cfg.Resurrect != nil {
		if !wasMelting {
			m.raise(Alert{Kind: KindMeltdown, Severity: SeverityCritical, Instance: inst,
				Title: "deployment " + inst.Deployment + " is melting down: resurrection paused",
				Summary: fmt.Sprintf("%d instances timed out within %s, at least %d and %.0f%% of the deployment", down, m.cfg.Meltdown.Window,
					m.cfg.Meltdown.Count, m.cfg.Meltdown.Percent)})
		}
		return
	}
	if start {
		go m.resurrect(w, inst)
	}
}

func (m *Monitor) resurrect(w *watched, inst Instance) {
	defer m.wg.Done()
	now, err := m.cfg.Resurrect(m.ctx, inst)
	m.mu.Lock()
	w.resurrect = false
	forgotten := m.watched[inst.AgentID] != w // Forget (or Watch) meanwhile: the instance is not ours to bring back
	m.mu.Unlock()
	if err != nil {
		m.raise(Alert{Kind: KindResurrectionFailed, Severity: SeverityCritical, Instance: inst,
			Title: inst.String() + " was not recreated", Summary: err.Error()})
		return
	}
	if !forgotten {
		if now.AgentID != inst.AgentID {
			m.Forget(inst.AgentID)
		}
		m.Watch(now)
	}
	m.raise(Alert{Kind: KindResurrected, Severity: SeverityWarning, Instance: now, Title: inst.String() + " was recreated"})
}

// recordDownLocked notes a time-out of the instance and returns how many
// of its deployment's instances timed out within the window (an instance
// that times out again counts once, as BOSH's alert tracker counts it).
func (m *Monitor) recordDownLocked(inst Instance) int {
	now := m.now()
	downs := m.downs[inst.Deployment]
	if downs == nil {
		downs = map[string]time.Time{}
		m.downs[inst.Deployment] = downs
	}
	downs[inst.ID] = now
	n := 0
	for id, t := range downs {
		if now.Sub(t) < m.cfg.Meltdown.Window {
			n++
		} else {
			delete(downs, id)
		}
	}
	return n
}

// meltingDownLocked: at least Count down within the window and at least
// Percent of the deployment's watched instances, as BOSH's resurrector
// decides it (minimum_down_jobs, percent_threshold).
func (m *Monitor) meltingDownLocked(deployment string, down int) bool {
	total := 0
	for _, w := range m.watched {
		if w.inst.Deployment == deployment {
			total++
		}
	}
	if total == 0 || down < m.cfg.Meltdown.Count {
		return false
	}
	return float64(down)*100/float64(total) >= m.cfg.Meltdown.Percent
}
