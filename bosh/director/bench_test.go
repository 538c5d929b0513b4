package director_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agenttest"
	"github.com/kubefoundry/kubefoundry/bosh/director"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// BenchmarkRollingUpdate rolls a new configuration out to 100 running
// instances (in-process agents on the embedded bus) with canaries 1 and
// max_in_flight 10, each instance's pre-start taking a fixed 300ms and
// its watch waiting 400ms, time enough to find it running at the first
// check. It reports the wall time over the ideal schedule, 1 + ceil(99/10)
// rounds each as long as the canary took alone (target <= 1.1), and the
// messages the bus carried per instance (requests, answers and get_task
// polls; the agents' heartbeats are hourly here).
func BenchmarkRollingUpdate(b *testing.B) {
	const n, inFlight = 100, 10
	const delay = 300 * time.Millisecond
	w := agenttest.Start(b)
	w.AgentHeartbeat = time.Hour
	var insts []director.Instance
	for i := range n {
		id := fmt.Sprintf("bench-%d", i)
		w.StartAgent(b, w.Settings(b, id), b.TempDir())
		insts = append(insts, director.Instance{Group: "web", ID: fmt.Sprintf("i%d", i), Index: i, AZ: "z1", AgentID: id})
	}
	pkg := w.Blob(b, "app", "1", agenttest.TGZ(b, map[string]agenttest.File{"bin/app": {Mode: 0o755, Body: "#!/bin/sh\nwhile :; do sleep 0.2; done\n"}}))
	changes := func(hash string) []director.Change {
		rendered := w.Blob(b, "", "", agenttest.TGZ(b, map[string]agenttest.File{
			"app/config/bpm.yml": {Mode: 0o644, Body: "processes:\n- name: app\n  executable: /var/vcap/packages/app/bin/app\n  env: {HASH: " + hash + "}\n"},
			"app/bin/pre-start":  {Mode: 0o755, Body: fmt.Sprintf("#!/bin/sh\nsleep %.3f\n", delay.Seconds())},
		}))
		out := make([]director.Change, n)
		for i, inst := range insts {
			out[i] = director.Change{Instance: inst, Spec: &agent.ApplySpec{Deployment: "d", Job: agent.JobSpec{Name: "web", Templates: []agent.JobRef{{Name: "app", Version: "1"}}},
				Index: inst.Index, ID: inst.ID, AZ: inst.AZ, ConfigurationHash: hash,
				Packages: map[string]agent.BlobRef{"app": pkg}, RenderedTemplatesArchive: &rendered}}
		}
		return out
	}
	u := director.NewUpdater(w.Director, nil)
	up := manifest.Update{Canaries: manifest.CanaryCount(1), MaxInFlight: manifest.MaxInFlightCount(inFlight),
		CanaryWatchTime: manifest.WatchRange(400*time.Millisecond, 30*time.Second), UpdateWatchTime: manifest.WatchRange(400*time.Millisecond, 30*time.Second)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	_, err := u.UpdateGroup(ctx, changes("v0"), up, nil) // the first deploy, not measured
	require.NoError(b, err)
	for i := range insts {
		insts[i].Running = true
	}

	var ratio float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch := changes(fmt.Sprintf("v%d", i+1))
		var mu sync.Mutex
		began := map[int]time.Time{}
		took := map[int]time.Duration{}
		sink := func(e director.Event) {
			mu.Lock()
			defer mu.Unlock()
			if e.State == director.EventStarted {
				began[e.Index] = time.Now()
				return
			}
			took[e.Index] = time.Since(began[e.Index])
		}
		stats0, err := w.Bus.Stats()
		require.NoError(b, err)
		start := time.Now()
		_, err = u.UpdateGroup(ctx, ch, up, sink)
		require.NoError(b, err)
		wall := time.Since(start)
		stats1, err := w.Bus.Stats()
		require.NoError(b, err)
		ideal := time.Duration(1+(n-1+inFlight-1)/inFlight) * took[1]
		ratio = wall.Seconds() / ideal.Seconds()
		b.ReportMetric(took[1].Seconds(), "s/instance-alone")
		b.ReportMetric(wall.Seconds(), "s/rollout")
		b.ReportMetric(float64(stats1.InMsgs-stats0.InMsgs)/n, "msgs/instance")
	}
	b.ReportMetric(ratio, "wall/ideal")
}
