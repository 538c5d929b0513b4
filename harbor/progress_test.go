package harbor_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/replication"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/scan"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/harbor"
	"github.com/kubefoundry/kubefoundry/harbor/simulator"
)

// journal is a sink that keeps every event, as a caller that journals
// them to resume does. onStart, if set, runs at the PhaseStarted event.
type journal struct {
	mu      sync.Mutex
	events  []kubefoundry.Event
	onStart func(kubefoundry.Event)
}

func (j *journal) Event(e kubefoundry.Event) {
	j.mu.Lock()
	j.events = append(j.events, e)
	j.mu.Unlock()
	if e.Phase == harbor.PhaseStarted && j.onStart != nil {
		j.onStart(e)
	}
}

// phases lists the events' phases, and their messages when set.
func (j *journal) phases() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, e := range j.events {
		out = append(out, strings.TrimSpace(e.Phase+" "+e.Message))
	}
	return out
}

func (j *journal) last() kubefoundry.Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.events[len(j.events)-1]
}

// requireEvents checks what every event of one call says: op, object,
// the handle (on all but events before it was known), a time.
func (j *journal) requireEvents(t *testing.T, op, object, handle string) {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	require.NotEmpty(t, j.events)
	for _, e := range j.events {
		require.Equal(t, op, e.Op, "%+v", e)
		require.Equal(t, object, e.Object, "%+v", e)
		require.Equal(t, handle, e.Handle, "%+v", e)
		require.False(t, e.Time.IsZero())
	}
}

// A replication reports its execution id before it is waited for; a
// caller that loses its wait (here: its ctx ends at once) resumes it with
// that id, and no second execution is started.
func TestReplicateReportsAndResumes(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c := b.admin(t)
		src := unique("kf-prog")
		cleanupProject(t, c, src)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: src})
		require.NoError(t, err)
		b.push(t, src, "web", "v1")
		reg := harbor.RegistrySpec{Name: unique("kf-prog"), Type: "harbor", URL: strings.Replace(b.url, "127.0.0.1", "localhost", 1),
			Username: b.user, Password: b.pw, Insecure: true}
		_, err = c.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteRegistry(context.Background(), reg.Name) })
		pol := unique("kf-prog")
		polID, err := c.EnsureReplication(ctx, harbor.ReplicationSpec{Name: pol, Direction: harbor.Push, Registry: reg.Name,
			NameFilter: src + "/**", DestNamespace: unique("kf-dst"), Override: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteReplication(context.Background(), pol) })
		executions := func() map[int64]string {
			t.Helper()
			// Listing changes nothing on the simulator, unlike reading
			// an execution by id.
			res, err := c.API().Replication.ListReplicationExecutions(ctx, replication.NewListReplicationExecutionsParams().
				WithPolicyID(&polID).WithPageSize(ptr(int64(100))))
			require.NoError(t, err)
			out := map[int64]string{}
			for _, e := range res.Payload {
				out[e.ID] = e.Status
			}
			return out
		}

		// The first call is lost as soon as Harbor has started the work.
		lost, lose := context.WithCancel(ctx)
		var statusAtStart string
		first := &journal{onStart: func(e kubefoundry.Event) {
			id, err := strconv.ParseInt(e.Handle, 10, 64)
			require.NoError(t, err)
			statusAtStart = executions()[id]
			lose()
		}}
		_, err = c.Replicate(lost, pol, harbor.WithSink(first))
		require.ErrorIs(t, err, context.Canceled)
		handle := first.events[0].Handle
		require.NotEmpty(t, handle)
		first.requireEvents(t, harbor.OpReplicate, pol, handle)
		require.Equal(t, []string{"started", "failed"}, first.phases())
		require.ErrorIs(t, first.last().Err, context.Canceled)
		require.Contains(t, first.last().Err.Error(), handle)
		if b.sim != nil {
			require.Equal(t, "InProgress", statusAtStart, "the handle is reported before the wait ends")
		}
		require.Len(t, executions(), 1)

		second := &journal{}
		exec, err := c.Replicate(ctx, pol, harbor.WithSink(second), harbor.WithExecution(handle))
		require.NoError(t, err)
		require.Equal(t, handle, strconv.FormatInt(exec.ID, 10))
		require.Equal(t, "Succeed", exec.Status)
		require.Len(t, executions(), 1, "resuming waits for the execution, it does not start another")
		second.requireEvents(t, harbor.OpReplicate, pol, handle)
		phases := second.phases()
		require.Equal(t, "started resumed", phases[0])
		require.Equal(t, "done Succeed", phases[len(phases)-1])
		require.Equal(t, 1, second.last().Step, "one task (web) ended")
		require.Equal(t, 1, second.last().Steps)
		if b.sim != nil {
			require.Equal(t, []string{"started resumed", "running InProgress", "done Succeed"}, phases)
		}

		// Without a handle a call starts a new execution.
		third := &journal{}
		exec2, err := c.Replicate(ctx, pol, harbor.WithSink(third))
		require.NoError(t, err)
		require.NotEqual(t, exec.ID, exec2.ID)
		require.Len(t, executions(), 2)
		require.Equal(t, "started", third.phases()[0])

		// A handle that is not one, or that Harbor does not know.
		for _, h := range []string{"exec-1", "0", "-4"} {
			bad := &journal{}
			_, err = c.Replicate(ctx, pol, harbor.WithExecution(h), harbor.WithSink(bad))
			var fe *harbor.FieldError
			require.ErrorAs(t, err, &fe, h)
			require.Equal(t, "execution", fe.Field)
			require.Equal(t, []string{"failed"}, bad.phases())
		}
		_, err = c.Replicate(ctx, pol, harbor.WithExecution("99999999"))
		require.ErrorIs(t, err, harbor.ErrNotFound)
		require.Len(t, executions(), 2)
	})
}

// GC reports its run's id before it is waited for and resumes by it; a
// read Harbor cannot serve for a moment does not end the wait.
func TestRunGCReportsAndResumes(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c := b.admin(t)
		history := func() []harbor.GCRun {
			t.Helper()
			runs, err := c.GCHistory(ctx, 100)
			require.NoError(t, err)
			return runs
		}
		before := len(history())

		lost, lose := context.WithCancel(ctx)
		first := &journal{onStart: func(kubefoundry.Event) { lose() }}
		_, err := c.RunGC(lost, false, harbor.WithSink(first))
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, []string{"started", "failed"}, first.phases())
		handle := first.events[0].Handle
		first.requireEvents(t, harbor.OpGC, "", handle)
		runs := history()
		require.Len(t, runs, before+1)
		require.Equal(t, handle, strconv.FormatInt(runs[0].ID, 10))
		if b.sim != nil {
			require.Equal(t, "Running", runs[0].Status, "the handle is reported before the run ends")
			b.sim.Inject(&simulator.Fault{Method: http.MethodGet, Path: regexp.MustCompile(`^/api/v2\.0/system/gc/\d+$`),
				Status: http.StatusServiceUnavailable})
		}

		second := &journal{}
		run, err := c.RunGC(ctx, false, harbor.WithExecution(handle), harbor.WithSink(second))
		require.NoError(t, err)
		require.Equal(t, handle, strconv.FormatInt(run.ID, 10))
		require.Equal(t, "Success", run.Status)
		require.Len(t, history(), before+1, "resuming does not start another run")
		second.requireEvents(t, harbor.OpGC, "", handle)
		phases := second.phases()
		require.Equal(t, "started resumed", phases[0])
		require.Equal(t, "done Success", phases[len(phases)-1])
		if b.sim != nil {
			require.Equal(t, []string{"started resumed", "running Running", "done Success"}, phases,
				"the 503 was asked again, not reported")
		}
	})
}

// A scan reports its report's id before it is waited for and resumes by
// it; a scan already running is waited for rather than refused.
func TestScanReportsAndResumes(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		b.simulatorOnly(t, "no scanner adapter (Trivy) runs in CI")
		ctx := context.Background()
		c := b.admin(t)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "apps"})
		require.NoError(t, err)
		_, err = b.sim.AddArtifact("apps", "web", "v1")
		require.NoError(t, err)
		require.NoError(t, b.sim.SetVulnerabilities("apps", "web", "v1", map[string]int64{"Low": 1}, 0))
		img := harbor.Image{Project: "apps", Repository: "web", Reference: "v1"}

		lost, lose := context.WithCancel(ctx)
		first := &journal{onStart: func(kubefoundry.Event) { lose() }}
		_, err = c.Scan(lost, img, harbor.WithSink(first))
		require.ErrorIs(t, err, context.Canceled)
		handle := first.events[0].Handle
		require.NotEmpty(t, handle)
		first.requireEvents(t, harbor.OpScan, "apps/web:v1", handle)
		sum, err := c.Vulnerabilities(ctx, img)
		require.NoError(t, err)
		require.Equal(t, "Running", sum.Status, "the handle is reported before the scan ends")

		second := &journal{}
		sum, err = c.Scan(ctx, img, harbor.WithExecution(handle), harbor.WithSink(second))
		require.NoError(t, err)
		require.Equal(t, "Success", sum.Status)
		require.Equal(t, int64(1), sum.Counts["Low"])
		second.requireEvents(t, harbor.OpScan, "apps/web:v1", handle) // the same report: no second scan
		require.Equal(t, []string{"started resumed", "done Success"}, second.phases(),
			"the simulator's scan ends on the third read of its overview: Vulnerabilities made the second")

		// Someone else's scan is running: Scan waits for it.
		_, err = c.API().Scan.ScanArtifact(ctx, scan.NewScanArtifactParams().WithProjectName("apps").
			WithRepositoryName("web").WithReference("v1"))
		require.NoError(t, err)
		theirs := &journal{}
		sum, err = c.Scan(ctx, img, harbor.WithSink(theirs))
		require.NoError(t, err)
		require.Equal(t, "Success", sum.Status)
		require.Equal(t, "started a scan was running already", theirs.phases()[0])
		require.NotEqual(t, handle, theirs.last().Handle, "their scan's report")
	})
}

// Progress is reported when it changes, once: a run read twice in the same
// state reports it once, and a step done while it runs is reported. The
// simulator's execution goes from started to done in two reads; a proxy
// answers the first reads as a run of two tasks that stays at 0 of 2 for
// two reads, then is at 1 of 2.
func TestProgressReportsEachChangeOnce(t *testing.T) {
	b := simulated(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := b.admin(t)
	_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "src"})
	require.NoError(t, err)
	b.push(t, "src", "web", "v1")
	b.push(t, "src", "api", "v1")
	_, err = c.EnsureRegistry(ctx, harbor.RegistrySpec{Name: "mirror", Type: "harbor", URL: strings.Replace(b.url, "127.0.0.1", "localhost", 1),
		Username: b.user, Password: b.pw, Insecure: true})
	require.NoError(t, err)
	_, err = c.EnsureReplication(ctx, harbor.ReplicationSpec{Name: "push", Direction: harbor.Push, Registry: "mirror",
		NameFilter: "src/**", DestNamespace: "dst", Override: true})
	require.NoError(t, err)

	p := newProxy(t, b.url)
	execution := regexp.MustCompile(`^/api/v2\.0/replication/executions/\d+$`)
	var mu sync.Mutex
	reads := 0
	p.set(nil, func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || !execution.MatchString(resp.Request.URL.Path) {
			return nil
		}
		mu.Lock()
		reads++
		n := reads
		mu.Unlock()
		succeed := map[int]int{1: 0, 2: 0, 3: 1}
		done, ok := succeed[n]
		if !ok {
			return nil // the simulator's own answer: Succeed, 2 of 2
		}
		body := fmt.Sprintf(`{"id": 1, "policy_id": 1, "status": "InProgress", "trigger": "manual", "start_time": "2024-01-01T00:00:00Z",
			"total": 2, "succeed": %d, "failed": 0, "stopped": 0, "in_progress": %d, "status_text": ""}`, done, 2-done)
		resp.Body = io.NopCloser(strings.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		resp.StatusCode = http.StatusOK
		return nil
	})
	pc := clientAt(t, p.URL, b.user, b.pw)
	j := &journal{}
	_, err = pc.Replicate(ctx, "push", harbor.WithSink(j))
	require.NoError(t, err)
	j.mu.Lock()
	defer j.mu.Unlock()
	var got []string
	for _, e := range j.events {
		got = append(got, fmt.Sprintf("%s %d/%d %s", e.Phase, e.Step, e.Steps, e.Message))
	}
	require.Equal(t, []string{"started 0/0 ", "running 0/2 InProgress", "running 1/2 InProgress", "done 2/2 Succeed"}, got)
}

// A wait that ends while Harbor cannot answer says both: the end of ctx
// and the last read's error.
func TestWaitEndedWhileHarborCannotAnswer(t *testing.T) {
	b := simulated(t)
	c := b.admin(t)
	lost, lose := context.WithCancel(context.Background())
	first := &journal{onStart: func(kubefoundry.Event) { lose() }}
	_, err := c.RunGC(lost, false, harbor.WithSink(first))
	require.ErrorIs(t, err, context.Canceled)
	handle := first.events[0].Handle

	b.sim.Inject(&simulator.Fault{Method: http.MethodGet, Path: regexp.MustCompile(`^/api/v2\.0/system/gc/\d+$`),
		Times: -1, Status: http.StatusServiceUnavailable})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.RunGC(ctx, false, harbor.WithExecution(handle))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, harbor.ErrUnavailable, "the last read's error is kept")
	require.ErrorContains(t, err, "harbor: gc: "+handle+" not ended")
}
