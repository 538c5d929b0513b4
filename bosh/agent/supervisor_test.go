package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// script writes an executable shell script under the layout, at a path
// given as a release gives it (/var/vcap/...), and returns that path.
func script(t *testing.T, l Layout, vcapPath, body string) string {
	t.Helper()
	p := l.Path(vcapPath)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	return vcapPath
}

func fastSupervisor(t *testing.T, l Layout) *Supervisor {
	t.Helper()
	s := NewSupervisor(l, SupervisorConfig{StopTimeout: 2 * time.Second, StableAfter: 100 * time.Millisecond,
		RestartInitial: 20 * time.Millisecond, RestartMax: 100 * time.Millisecond}, zaptest.NewLogger(t))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, s.StopAll(ctx))
	})
	return s
}

// eventually polls cond every 20ms for up to a minute, failing with msg.
func eventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: "+msg, args...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func status(s *Supervisor, job, name string) ProcessStatus {
	for _, p := range s.Status() {
		if p.Job == job && p.Name == name {
			return p
		}
	}
	return ProcessStatus{}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return ""
	}
	require.NoError(t, err)
	return string(b)
}

func TestSupervisorRunsAndStops(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	s := fastSupervisor(t, l)
	marks := l.Path("/var/vcap/data/sys/run/web/marks")
	exe := script(t, l, "/var/vcap/jobs/web/bin/web", `
echo "started $1 $GREETING in $(pwd) with $(ulimit -n) files"
echo "to stderr" >&2
trap 'echo term >> `+marks+`; exit 0' TERM
while :; do sleep 0.05; done`)
	p := Process{Name: "web", Executable: exe, Args: []string{"/var/vcap/jobs/web/config/web.yml"},
		Env: map[string]string{"GREETING": "hello"}, Limits: Limits{OpenFiles: 321}}
	require.NoError(t, s.Start(t.Context(), "web", []Process{p}))
	eventually(t, func() bool { return status(s, "web", "web").State == StateRunning }, "web is not running: %+v", s.Status())
	st := status(s, "web", "web")
	assert.NotZero(t, st.PID)
	assert.Equal(t, StateRunning, JobState(s.Status()))

	logs := l.LogDir("web")
	eventually(t, func() bool { return strings.Contains(readFile(t, filepath.Join(logs, "web.stdout.log")), "files") }, "no output in the log")
	out := readFile(t, filepath.Join(logs, "web.stdout.log"))
	assert.Contains(t, out, "started "+l.Path("/var/vcap/jobs/web/config/web.yml")+" hello in "+l.JobLink("web"),
		"args mapped into the layout, env passed, started in the job's directory")
	assert.Contains(t, out, "with 321 files", "open_files applied")
	assert.Contains(t, readFile(t, filepath.Join(logs, "web.stderr.log")), "to stderr")

	require.NoError(t, s.Stop(t.Context(), "web"))
	assert.Equal(t, "term\n", readFile(t, marks), "stopped with TERM, which it handled")
	assert.Empty(t, s.Status())
	assert.Error(t, syscall.Kill(st.PID, 0), "the process is gone")
}

// TestSupervisorStopsAllAtOnce: StopAll signals every job at once, as
// monit's stop all does: job a, which on TERM waits for job b to have
// been signalled too before it exits, exits by itself; stopped one job
// after the other (a first, by name), a would wait for b until it is
// killed.
func TestSupervisorStopsAllAtOnce(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	s := fastSupervisor(t, l)
	bTermed, aSaw := l.Path("/var/vcap/data/b-termed"), l.Path("/var/vcap/data/a-saw-b")
	require.NoError(t, os.MkdirAll(filepath.Dir(bTermed), 0o755))
	a := script(t, l, "/var/vcap/jobs/a/bin/a", `
trap 'for i in $(seq 1 40); do [ -e `+bTermed+` ] && { touch `+aSaw+`; exit 0; }; sleep 0.1; done; exit 1' TERM
while :; do sleep 0.05; done`)
	b := script(t, l, "/var/vcap/jobs/b/bin/b", `
trap 'touch `+bTermed+`; exit 0' TERM
while :; do sleep 0.05; done`)
	require.NoError(t, s.Start(t.Context(), "a", []Process{{Name: "a", Executable: a}}))
	require.NoError(t, s.Start(t.Context(), "b", []Process{{Name: "b", Executable: b}}))
	eventually(t, func() bool { return JobState(s.Status()) == StateRunning }, "a and b are not running: %+v", s.Status())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.StopAll(ctx))
	assert.FileExists(t, bTermed)
	assert.FileExists(t, aSaw, "a was still running, and saw b signalled: both were stopped at once")
	assert.Empty(t, s.Status())
}

func TestSupervisorRestartsWhatExits(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	s := fastSupervisor(t, l)
	count := l.Path("/var/vcap/data/count")
	require.NoError(t, os.MkdirAll(filepath.Dir(count), 0o755))
	// Exits at once the first three times, then stays up.
	exe := script(t, l, "/var/vcap/jobs/w/bin/w", `
echo x >> `+count+`
[ $(wc -l < `+count+`) -le 3 ] && exit 3
while :; do sleep 0.05; done`)
	require.NoError(t, s.Start(t.Context(), "w", []Process{{Name: "w", Executable: exe}}))
	eventually(t, func() bool { return status(s, "w", "w").State == StateRunning }, "w never settles: %+v", s.Status())
	st := status(s, "w", "w")
	assert.Equal(t, 3, st.Restarts)
	assert.Equal(t, "exit status 3", st.LastExit)
}

func TestSupervisorReportsFailing(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	s := fastSupervisor(t, l)
	exe := script(t, l, "/var/vcap/jobs/w/bin/w", `exit 1`)
	require.NoError(t, s.Start(t.Context(), "w", []Process{
		{Name: "dies", Executable: exe},
		{Name: "missing", Executable: "/var/vcap/jobs/w/bin/nothing-here"},
	}))
	eventually(t, func() bool {
		return status(s, "w", "dies").Restarts >= 2 && status(s, "w", "missing").State == StateFailing
	}, "not failing: %+v", s.Status())
	assert.Equal(t, StateFailing, JobState(s.Status()))
	assert.Contains(t, status(s, "w", "missing").LastExit, "no such file")
}

func TestSupervisorKillsWhatIgnoresTheSignal(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	s := NewSupervisor(l, SupervisorConfig{StopTimeout: 300 * time.Millisecond, StableAfter: 50 * time.Millisecond}, zaptest.NewLogger(t))
	pidFile := l.Path("/var/vcap/data/child.pid")
	require.NoError(t, os.MkdirAll(filepath.Dir(pidFile), 0o755))
	// It ignores TERM, and so does the child it starts in its group.
	exe := script(t, l, "/var/vcap/jobs/w/bin/w", `
trap '' TERM
sh -c 'trap "" TERM; while :; do sleep 0.05; done' &
echo $! > `+pidFile+`
while :; do sleep 0.05; done`)
	require.NoError(t, s.Start(t.Context(), "w", []Process{{Name: "w", Executable: exe, ShutdownSignal: "TERM"}}))
	eventually(t, func() bool { return status(s, "w", "w").State == StateRunning && readFile(t, pidFile) != "" }, "not running")
	child, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, s.Stop(ctx, "w"))
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "waited for the stop timeout before killing")
	eventually(t, func() bool { return syscall.Kill(child, 0) != nil }, "the child in the process's group is still there")
}

func TestSupervisorPreStartHook(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	s := fastSupervisor(t, l)
	exe := script(t, l, "/var/vcap/jobs/w/bin/w", `while :; do sleep 0.05; done`)
	ok := script(t, l, "/var/vcap/jobs/w/bin/ok", `echo hook ran`)
	bad := script(t, l, "/var/vcap/jobs/w/bin/bad", `echo no database >&2; exit 7`)

	err := s.Start(t.Context(), "w", []Process{{Name: "a", Executable: exe, Hooks: Hooks{PreStart: ok}}, {Name: "b", Executable: exe, Hooks: Hooks{PreStart: bad}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "job w: process b: pre_start hook /var/vcap/jobs/w/bin/bad: exit status 7")
	assert.Empty(t, s.Status(), "nothing of the job runs")
	assert.Contains(t, readFile(t, filepath.Join(l.LogDir("w"), "b.stderr.log")), "no database")

	require.NoError(t, s.Start(t.Context(), "w", []Process{{Name: "a", Executable: exe, Hooks: Hooks{PreStart: ok}}}))
	assert.Contains(t, readFile(t, filepath.Join(l.LogDir("w"), "a.stdout.log")), "hook ran")
	eventually(t, func() bool { return JobState(s.Status()) == StateRunning }, "not running")
	require.NoError(t, s.Start(t.Context(), "w", []Process{{Name: "a", Executable: exe}}), "starting a running job again")
	assert.Len(t, s.Status(), 1, "a running job is left as it is")
}

func TestJobState(t *testing.T) {
	for _, tc := range []struct {
		states []string
		want   string
	}{
		{nil, StateRunning},
		{[]string{StateRunning, StateRunning}, StateRunning},
		{[]string{StateRunning, StateStarting}, StateStarting},
		{[]string{StateStarting, StateFailing}, StateFailing},
		{[]string{StateRunning, StateStopped}, StateFailing},
	} {
		var ps []ProcessStatus
		for _, s := range tc.states {
			ps = append(ps, ProcessStatus{State: s})
		}
		assert.Equal(t, tc.want, JobState(ps), "%v", tc.states)
	}
}

func TestParseBPM(t *testing.T) {
	c, err := ParseBPM([]byte(`---
processes:
- name: kube-apiserver
  executable: /var/vcap/packages/kubernetes/bin/kube-apiserver
  args: [--config, /var/vcap/jobs/kube-apiserver/config/config.yml]
  env: {GOMAXPROCS: "2"}
  hooks: {pre_start: /var/vcap/jobs/kube-apiserver/bin/pre-start}
  limits: {memory: 4G, open_files: 65536, processes: 1000}
  shutdown_signal: INT
  ephemeral_disk: true
  persistent_disk: false
  additional_volumes: [{path: /var/vcap/store/etcd, writable: true}]
  capabilities: [NET_BIND_SERVICE]
  unsafe: {privileged: false}
`))
	require.NoError(t, err)
	require.Len(t, c.Processes, 1)
	p := c.Processes[0]
	assert.Equal(t, "kube-apiserver", p.Name)
	assert.Equal(t, []string{"--config", "/var/vcap/jobs/kube-apiserver/config/config.yml"}, p.Args)
	assert.Equal(t, uint64(65536), p.Limits.OpenFiles)
	assert.Equal(t, "INT", p.ShutdownSignal)
	n, err := parseMemory(p.Limits.Memory)
	require.NoError(t, err)
	assert.Equal(t, uint64(4<<30), n)

	_, err = ParseBPM([]byte(`
processes:
- name: Web
  executable: bin/web
  shutdown_signal: HUP
  limits: {memory: lots}
  hooks: {pre_start: relative}
- name: Web
  executable: /bin/true
`))
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"processes[0].name", "processes[0].executable", "processes[0].shutdown_signal",
		"processes[0].limits.memory", "processes[0].hooks.pre_start", "processes[1].name"}, fields)

	_, err = ParseBPM([]byte("processes:\n- name: a\n  executable: /a\n  exectuable: /b\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exectuable", "an unknown key is named")
	_, err = ParseBPM(nil)
	assert.ErrorContains(t, err, "processes")
}

func TestLayoutPath(t *testing.T) {
	l := Layout{Root: "/sandbox/vm-1"}
	assert.Equal(t, "/sandbox/vm-1/jobs/web/bin/run", l.Path("/var/vcap/jobs/web/bin/run"))
	assert.Equal(t, "/sandbox/vm-1", l.Path("/var/vcap"))
	assert.Equal(t, "/var/vcapx/a", l.Path("/var/vcapx/a"))
	assert.Equal(t, "--flag", l.Path("--flag"))
	assert.Equal(t, "/usr/bin/env", l.Path("/usr/bin/env"))
}

func TestSupervisorDefaults(t *testing.T) {
	s := NewSupervisor(Layout{Root: t.TempDir()}, SupervisorConfig{}, nil)
	assert.Equal(t, SupervisorConfig{StopTimeout: 20 * time.Second, StableAfter: time.Second, RestartInitial: time.Second, RestartMax: 30 * time.Second}, s.cfg,
		"bpm's and monit's defaults")
	s = NewSupervisor(Layout{Root: t.TempDir()}, SupervisorConfig{StopTimeout: 1, StableAfter: 2, RestartInitial: 3, RestartMax: 4}, nil)
	assert.Equal(t, SupervisorConfig{StopTimeout: 1, StableAfter: 2, RestartInitial: 3, RestartMax: 4}, s.cfg, "what is given is kept")
}

// TestSupervisorSignalsTheWholeGroup: the shutdown signal goes to the
// process group, so a child the process started ends with it rather than
// being left behind, long before the stop timeout.
func TestSupervisorSignalsTheWholeGroup(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	s := NewSupervisor(l, SupervisorConfig{StopTimeout: time.Minute, StableAfter: 50 * time.Millisecond}, zaptest.NewLogger(t))
	pidFile := l.Path("/var/vcap/data/child.pid")
	require.NoError(t, os.MkdirAll(filepath.Dir(pidFile), 0o755))
	exe := script(t, l, "/var/vcap/jobs/w/bin/w", `sleep 1000 &
echo $! > `+pidFile+`
wait`)
	require.NoError(t, s.Start(t.Context(), "w", []Process{{Name: "w", Executable: exe}}))
	eventually(t, func() bool { return status(s, "w", "w").State == StateRunning && readFile(t, pidFile) != "" }, "not running")
	child, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx, "w"), "stopped by TERM, not after the minute's timeout")
	eventually(t, func() bool { return syscall.Kill(child, 0) != nil }, "the child %d was left running", child)
}

func TestParseMemoryAndEnv(t *testing.T) {
	for in, want := range map[string]uint64{"1": 1, "512K": 512 << 10, "3m": 3 << 20, "2G": 2 << 30, "1T": 1 << 40} {
		got, err := parseMemory(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0", "0G", "G", "-1", "1.5G", "1X"} {
		_, err := parseMemory(in)
		assert.Error(t, err, in)
	}
	_, err := ParseBPM([]byte("processes:\n- name: a\n  executable: /a\n  env: {\"A=B\": x}\n"))
	assert.ErrorContains(t, err, "processes[0].env")
}

// TestSupervisorStopWhileStarting: a Stop while Start runs the hooks wins:
// Start starts nothing and says so.
func TestSupervisorStopWhileStarting(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	s := fastSupervisor(t, l)
	exe := script(t, l, "/var/vcap/jobs/w/bin/w", `while :; do sleep 0.05; done`)
	hook := script(t, l, "/var/vcap/jobs/w/bin/hook", `sleep 0.5`)
	errc := make(chan error, 1)
	go func() {
		errc <- s.Start(t.Context(), "w", []Process{{Name: "w", Executable: exe, Hooks: Hooks{PreStart: hook}}})
	}()
	eventually(t, func() bool { return strings.Contains(strings.Join(s.Jobs(), ","), "w") }, "Start never claimed the job")
	require.NoError(t, s.Stop(t.Context(), "w"))
	select {
	case err := <-errc:
		require.ErrorContains(t, err, "stopped while it was starting")
	case <-time.After(time.Minute):
		t.Fatal("Start did not return in a minute")
	}
	assert.Empty(t, s.Status(), "nothing runs")
	assert.Empty(t, s.Jobs())
}

// TestSupervisorKillsWhatAnExitedProcessLeft: a child left behind by a
// process that exits is killed before the process starts again.
func TestSupervisorKillsWhatAnExitedProcessLeft(t *testing.T) {
	l := Layout{Root: t.TempDir()}
	s := fastSupervisor(t, l)
	pidFile := l.Path("/var/vcap/data/child.pid")
	require.NoError(t, os.MkdirAll(filepath.Dir(pidFile), 0o755))
	exe := script(t, l, "/var/vcap/jobs/w/bin/w", `[ -s `+pidFile+` ] && exec sleep 1000
sleep 1000 &
echo $! > `+pidFile+`
exit 1`)
	require.NoError(t, s.Start(t.Context(), "w", []Process{{Name: "w", Executable: exe}}))
	eventually(t, func() bool { return status(s, "w", "w").State == StateRunning }, "never running")
	child, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	eventually(t, func() bool { return syscall.Kill(child, 0) != nil }, "the child %d of the exited process still runs", child)
}

// With DieWithSupervisor, a job process does not outlive the process that
// runs its supervisor, even one killed outright: the test runs a
// supervisor in a child test process, kills that with SIGKILL, and the
// job process goes too. Without it the job process is left running.
func TestSupervisorDieWithSupervisor(t *testing.T) {
	if os.Getenv("KF_SUPERVISOR_CHILD") != "" {
		return // run by supervisorChild
	}
	for _, die := range []bool{true, false} {
		pid := supervisorChild(t, die)
		gone := func() bool {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			// Gone, or a zombie waiting for init to reap it.
			return err != nil || strings.Contains(string(b), ") Z ")
		}
		if die {
			eventually(t, gone, "job process %d outlived its supervisor's process", pid)
			continue
		}
		time.Sleep(500 * time.Millisecond)
		assert.False(t, gone(), "without DieWithSupervisor the job process %d runs on", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// supervisorChild starts this test binary as a child that runs a
// supervisor with one job process (sleep), kills the child with SIGKILL
// once the job process runs, and returns the job process's pid.
func supervisorChild(t *testing.T, die bool) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSupervisorChild$", "-test.v")
	cmd.Env = append(os.Environ(), "KF_SUPERVISOR_CHILD="+t.TempDir(), fmt.Sprintf("KF_SUPERVISOR_DIE=%t", die))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	pid := 0
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "JOB PID "); ok {
			pid, err = strconv.Atoi(v)
			require.NoError(t, err)
			break
		}
	}
	require.NotZero(t, pid, "the child said no job pid")
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	return pid
}

// TestSupervisorChild is the child of TestSupervisorDieWithSupervisor.
func TestSupervisorChild(t *testing.T) {
	root := os.Getenv("KF_SUPERVISOR_CHILD")
	if root == "" {
		t.Skip("run by TestSupervisorDieWithSupervisor")
	}
	l := Layout{Root: root}
	s := NewSupervisor(l, SupervisorConfig{StableAfter: 50 * time.Millisecond, DieWithSupervisor: os.Getenv("KF_SUPERVISOR_DIE") == "true"}, nil)
	exe := script(t, l, "/var/vcap/jobs/w/bin/w", "exec sleep 300")
	require.NoError(t, s.Start(context.Background(), "w", []Process{{Name: "w", Executable: exe}}))
	eventually(t, func() bool { return status(s, "w", "w").State == StateRunning }, "not running")
	fmt.Printf("JOB PID %d\n", status(s, "w", "w").PID)
	time.Sleep(time.Minute) // until killed
}
