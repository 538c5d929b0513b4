package health_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agenttest"
	"github.com/kubefoundry/kubefoundry/bosh/health"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const interval = 100 * time.Millisecond

type deployment struct {
	w      *agenttest.World
	agents []*agent.Agent
	insts  []health.Instance
}

func newDeployment(t *testing.T, n int) *deployment {
	t.Helper()
	d := &deployment{w: agenttest.Start(t)}
	for i := range n {
		id := fmt.Sprintf("hm-agent-%d", i)
		d.agents = append(d.agents, d.w.StartAgent(t, d.w.Settings(t, id), t.TempDir()))
		d.insts = append(d.insts, health.Instance{Deployment: "cf", Group: "router", ID: fmt.Sprintf("r%d", i), Index: i, AgentID: id})
	}
	return d
}

// alerts collects a monitor's alerts.
type alerts struct {
	ch chan health.Alert
}

func newAlerts() *alerts { return &alerts{ch: make(chan health.Alert, 100)} }

func (a *alerts) sink(al health.Alert) { a.ch <- al }

// next waits up to a minute for the next alert of kind for inst's agent
// (any agent when inst is empty), skipping others.
func (a *alerts) next(t *testing.T, kind, agentID string) health.Alert {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case al := <-a.ch:
			if al.Kind == kind && (agentID == "" || al.Instance.AgentID == agentID) {
				return al
			}
		case <-deadline:
			t.Fatalf("no %s alert for %q in a minute", kind, agentID)
		}
	}
}

// none checks that no alert of kind comes within d.
func (a *alerts) none(t *testing.T, kind string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case al := <-a.ch:
			assert.NotEqual(t, kind, al.Kind, "unexpected %+v", al)
		case <-deadline:
			return
		}
	}
}

func start(t *testing.T, d *deployment, cfg health.Config) *health.Monitor {
	t.Helper()
	cfg.Interval = interval
	// Ten intervals: a loaded machine may delay a heartbeat well past one.
	cfg.Timeout = 10 * interval
	m, err := health.Start(t.Context(), d.w.Director, cfg, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(m.Close)
	for _, i := range d.insts {
		m.Watch(i)
	}
	return m
}

func TestASilentAgentTimesOut(t *testing.T) {
	d := newDeployment(t, 2)
	al := newAlerts()
	m := start(t, d, health.Config{Alerts: al.sink})
	deadline := time.Now().Add(time.Minute)
	for m.Heartbeats() < 4 {
		require.True(t, time.Now().Before(deadline), "no heartbeats in a minute")
		time.Sleep(10 * time.Millisecond)
	}

	d.agents[1].Close()
	a := al.next(t, health.KindTimeout, "hm-agent-1")
	assert.Equal(t, d.insts[1], a.Instance)
	assert.Equal(t, health.SeverityCritical, a.Severity)
	assert.Contains(t, a.Title, "cf/router/r1 (1) has timed out")
	assert.Contains(t, a.Summary, "no heartbeat from agent hm-agent-1")

	st := m.Status()
	require.Len(t, st, 2)
	assert.False(t, st[0].TimedOut, "the other is heard from")
	assert.Equal(t, "running", st[0].JobState)
	assert.True(t, st[1].TimedOut)
	al.none(t, health.KindTimeout, 15*interval) // the live one stays live, the dead one is not alerted twice

	// Heard from again: no longer timed out.
	d.w.StartAgent(t, d.w.Settings(t, "hm-agent-1"), t.TempDir())
	deadline = time.Now().Add(time.Minute)
	for m.Status()[1].TimedOut {
		require.True(t, time.Now().Before(deadline), "still timed out a minute after the agent came back")
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAWatchedAgentThatNeverSpeaksTimesOut(t *testing.T) {
	d := newDeployment(t, 0)
	al := newAlerts()
	m := start(t, d, health.Config{Alerts: al.sink})
	m.Watch(health.Instance{Deployment: "cf", Group: "g", ID: "x", AgentID: "never"})
	al.next(t, health.KindTimeout, "never")
	m.Forget("never")
	assert.Empty(t, m.Status())
}

func TestTheResurrectorRecreatesASilentInstance(t *testing.T) {
	d := newDeployment(t, 2)
	al := newAlerts()
	var mu sync.Mutex
	var asked []health.Instance
	resurrect := func(_ context.Context, inst health.Instance) (health.Instance, error) {
		mu.Lock()
		asked = append(asked, inst)
		mu.Unlock()
		// The new VM's agent has a new id.
		inst.AgentID += "-new"
		d.w.StartAgent(t, d.w.Settings(t, inst.AgentID), t.TempDir())
		return inst, nil
	}
	m := start(t, d, health.Config{Alerts: al.sink, Resurrect: resurrect})
	d.agents[0].Close()
	al.next(t, health.KindTimeout, "hm-agent-0")
	r := al.next(t, health.KindResurrected, "hm-agent-0-new")
	assert.Equal(t, "r0", r.Instance.ID)
	mu.Lock()
	assert.Equal(t, []health.Instance{d.insts[0]}, asked)
	mu.Unlock()

	deadline := time.Now().Add(time.Minute)
	for {
		st := m.Status()
		require.Len(t, st, 2)
		if st[0].Instance.AgentID == "hm-agent-0-new" && !st[0].LastHeartbeat.IsZero() {
			break
		}
		require.True(t, time.Now().Before(deadline), "the recreated instance is not heard from: %+v", st)
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMeltdownPausesResurrection(t *testing.T) {
	d := newDeployment(t, 4)
	al := newAlerts()
	var mu sync.Mutex
	calls := 0
	resurrect := func(context.Context, health.Instance) (health.Instance, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return health.Instance{}, errors.New("the IaaS is down")
	}
	// At least 2 down and at least 20%: 2 of 4 melts down.
	start(t, d, health.Config{Alerts: al.sink, Resurrect: resurrect, Meltdown: health.MeltdownGuard{Count: 2, Percent: 20, Window: time.Minute}})

	d.agents[0].Close()
	al.next(t, health.KindTimeout, "hm-agent-0")
	f := al.next(t, health.KindResurrectionFailed, "hm-agent-0")
	assert.Contains(t, f.Summary, "the IaaS is down")

	d.agents[1].Close()
	d.agents[2].Close()
	// Both time out, in either order; the second melts the deployment down.
	timedOut := map[string]bool{}
	var m health.Alert
	deadline := time.After(time.Minute)
	for len(timedOut) < 2 || m.Kind == "" {
		select {
		case a := <-al.ch:
			switch a.Kind {
			case health.KindTimeout:
				timedOut[a.Instance.AgentID] = true
			case health.KindMeltdown:
				require.Empty(t, m.Kind, "one meltdown alert")
				m = a
			}
		case <-deadline:
			t.Fatalf("after a minute: timed out %v, meltdown %+v", timedOut, m)
		}
	}
	assert.Equal(t, map[string]bool{"hm-agent-1": true, "hm-agent-2": true}, timedOut)
	assert.Contains(t, m.Title, "deployment cf is melting down: resurrection paused")
	assert.Contains(t, m.Summary, "2 instances timed out")
	assert.Contains(t, m.Summary, "at least 2 and 20% of the deployment")
	al.none(t, health.KindMeltdown, 15*interval)
	mu.Lock()
	assert.Equal(t, 1, calls, "only the first, before the meltdown, was resurrected")
	mu.Unlock()
}

// TestJobStateAlertAndStatusOrder: a heartbeat whose job_state turns
// failing is one alert, not one per heartbeat; Status is ordered by
// deployment, group and index.
func TestJobStateAlertAndStatusOrder(t *testing.T) {
	d := newDeployment(t, 0)
	al := newAlerts()
	m := start(t, d, health.Config{Alerts: al.sink})
	creds, err := d.w.Bus.AddAgent("hb-1")
	require.NoError(t, err)
	srv, err := mbus.StartServer(t.Context(), mbus.ServerConfig{URL: d.w.Bus.URL(), AgentID: "hb-1", Credentials: creds}, mbus.Methods{})
	require.NoError(t, err)
	defer srv.Close()
	for _, i := range []health.Instance{
		{Deployment: "b", Group: "a", Index: 0, AgentID: "x-4"},
		{Deployment: "a", Group: "z", Index: 1, AgentID: "x-3"},
		{Deployment: "a", Group: "z", Index: 0, AgentID: "hb-1"},
		{Deployment: "a", Group: "b", Index: 5, AgentID: "x-1"},
	} {
		m.Watch(i)
	}
	var order []string
	for _, s := range m.Status() {
		order = append(order, s.Instance.AgentID)
	}
	assert.Equal(t, []string{"x-1", "hb-1", "x-3", "x-4"}, order)

	for _, state := range []string{"running", "failing", "failing", "failing", "running", "failing"} {
		require.NoError(t, srv.PublishHeartbeat(t.Context(), mbus.Heartbeat{JobState: state}))
	}
	a := al.next(t, health.KindJobState, "hb-1")
	assert.Contains(t, a.Title, "jobs failing")
	al.next(t, health.KindJobState, "hb-1") // after running again
	al.none(t, health.KindJobState, 5*interval)

	require.NoError(t, srv.PublishAlert(t.Context(), mbus.Alert{ID: "1", Severity: health.SeverityError, Title: "nginx (10.0.0.10) - pid failed", Summary: "restarted"}))
	a = al.next(t, health.KindAgent, "hb-1")
	assert.Equal(t, health.SeverityError, a.Severity)
	assert.Equal(t, "nginx (10.0.0.10) - pid failed", a.Title)
	assert.Equal(t, "a", a.Instance.Deployment, "the agent's instance")
}

// TestMeltdownCountsOnlyTheWindowAndThePercent: time-outs older than the
// window are not counted, and Count down is not a meltdown while it is
// less than Percent of the deployment.
func TestMeltdownCountsOnlyTheWindowAndThePercent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		guard health.MeltdownGuard
		wait  time.Duration // between the two time-outs
	}{
		{"the first time-out left the window", health.MeltdownGuard{Count: 2, Percent: 20, Window: 500 * time.Millisecond}, 2 * time.Second},
		{"2 of 4 down is not 60%", health.MeltdownGuard{Count: 2, Percent: 60, Window: time.Minute}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDeployment(t, 4)
			al := newAlerts()
			var mu sync.Mutex
			calls := 0
			resurrect := func(context.Context, health.Instance) (health.Instance, error) {
				mu.Lock()
				calls++
				mu.Unlock()
				return health.Instance{}, errors.New("no")
			}
			start(t, d, health.Config{Alerts: al.sink, Resurrect: resurrect, Meltdown: tc.guard})
			d.agents[0].Close()
			al.next(t, health.KindResurrectionFailed, "hm-agent-0")
			time.Sleep(tc.wait)
			d.agents[1].Close()
			al.next(t, health.KindResurrectionFailed, "hm-agent-1")
			mu.Lock()
			assert.Equal(t, 2, calls, "both resurrected: no meltdown")
			mu.Unlock()
		})
	}
}

// TestAResurrectionAfterForgetDoesNotBringTheInstanceBack: the instance
// was deleted (Forget) while it was being recreated.
func TestAResurrectionAfterForgetDoesNotBringTheInstanceBack(t *testing.T) {
	d := newDeployment(t, 1)
	al := newAlerts()
	release := make(chan struct{})
	resurrect := func(ctx context.Context, inst health.Instance) (health.Instance, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return inst, nil
	}
	m := start(t, d, health.Config{Alerts: al.sink, Resurrect: resurrect})
	d.agents[0].Close()
	al.next(t, health.KindTimeout, "hm-agent-0")
	m.Forget("hm-agent-0")
	close(release)
	al.next(t, health.KindResurrected, "hm-agent-0")
	assert.Empty(t, m.Status(), "forgotten, it stays forgotten")
}
