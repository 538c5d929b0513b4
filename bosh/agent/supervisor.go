package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/kubefoundry/kubefoundry/internal/retry"
)

// The states of a supervised process, as get_state reports them.
const (
	// StateStarting: started, not yet up for SupervisorConfig.StableAfter.
	StateStarting = "starting"
	// StateRunning: up for at least StableAfter.
	StateRunning = "running"
	// StateFailing: it exited, or could not be started, and waits to be
	// started again.
	StateFailing = "failing"
	// StateStopped: stopped by Stop (or never started).
	StateStopped = "stopped"
)

// SupervisorConfig tunes a Supervisor. Zero values take bpm's and monit's
// defaults.
type SupervisorConfig struct {
	// StopTimeout is how long Stop waits after the shutdown signal before
	// it kills the process group with SIGKILL; 20s (bpm's) when 0.
	StopTimeout time.Duration
	// StableAfter is how long a process must stay up to count as running;
	// 1s when 0.
	StableAfter time.Duration
	// RestartInitial and RestartMax bound the backoff between restarts of
	// a process that keeps exiting; 1s and 30s when 0. The backoff starts
	// again once the process has been up for StableAfter.
	RestartInitial, RestartMax time.Duration
	// OnFailure, when set, is told of every process that exits when it
	// was not stopped, or could not be started (why says how), before it
	// is started again; it must not block for long.
	OnFailure func(job, process, why string)
	// DieWithSupervisor kills each job process (SIGKILL) when the process
	// that runs the supervisor dies, however it dies (Linux's parent-death
	// signal): for agents simulated in a process of their own, whose job
	// processes must not outlive it. A real VM's agent leaves it false, as
	// a restarting bosh-agent leaves its jobs running.
	DieWithSupervisor bool
}

func (c SupervisorConfig) withDefaults() SupervisorConfig {
	if c.StopTimeout <= 0 {
		c.StopTimeout = 20 * time.Second
	}
	if c.StableAfter <= 0 {
		c.StableAfter = time.Second
	}
	if c.RestartInitial <= 0 {
		c.RestartInitial = time.Second
	}
	if c.RestartMax <= 0 {
		c.RestartMax = 30 * time.Second
	}
	return c
}

// Supervisor runs jobs' processes as bpm describes them, without
// containers: each in a process group of its own, its output appended to
// sys/log/<job>/<process>.stdout.log and .stderr.log, started again with
// backoff whenever it exits until Stop, which sends the shutdown signal to
// the group and SIGKILL after StopTimeout. Paths under /var/vcap in the
// executable, args, env values, workdir and hooks are mapped into the
// Layout, so the same bpm.yml runs in a sandbox. A Supervisor is safe for
// concurrent use.
type Supervisor struct {
	layout Layout
	cfg    SupervisorConfig
	log    *zap.Logger

	mu     sync.Mutex
	jobs   map[string][]*proc
	claims map[string]uint64 // jobs whose Start runs their hooks, by claim
	claim  uint64
}

// ProcessStatus is what a Supervisor knows of one process.
type ProcessStatus struct {
	Job      string
	Name     string
	State    string
	PID      int           // 0 when not running
	Uptime   time.Duration // since it last started
	Restarts int           // times it was started again after exiting
	LastExit string        // how it last exited, or why it could not start
}

type proc struct {
	job string
	p   Process

	// guarded by Supervisor.mu
	state    string
	pid      int
	started  time.Time
	restarts int
	lastExit string

	stop chan struct{} // closed by Stop
	done chan struct{} // closed when the process is down for good
}

// NewSupervisor returns a Supervisor for the layout.
func NewSupervisor(l Layout, cfg SupervisorConfig, log *zap.Logger) *Supervisor {
	if log == nil {
		log = zap.NewNop()
	}
	return &Supervisor{layout: l, cfg: cfg.withDefaults(), log: log, jobs: map[string][]*proc{}, claims: map[string]uint64{}}
}

// Start starts the job's processes: each one's pre_start hook first (to
// completion, within ctx; a failing hook fails Start naming the job and
// process, and nothing of the job is left running), then the process. A
// job that is running already is left as it is.
func (s *Supervisor) Start(ctx context.Context, job string, processes []Process) error {
	s.mu.Lock()
	if _, ok := s.jobs[job]; ok {
		s.mu.Unlock()
		return nil
	}
	// Claimed while the hooks run: a concurrent Start does nothing, and a
	// Stop meanwhile takes the claim away, which this Start then honours.
	s.claim++
	claim := s.claim
	s.jobs[job] = nil
	s.claims[job] = claim
	s.mu.Unlock()
	unclaim := func() {
		s.mu.Lock()
		if s.claims[job] == claim {
			delete(s.jobs, job)
			delete(s.claims, job)
		}
		s.mu.Unlock()
	}

	for _, dir := range []string{s.layout.LogDir(job), s.layout.RunDir(job)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			unclaim()
			return fmt.Errorf("agent: job %s: %w", job, err)
		}
	}
	for _, p := range processes {
		if p.Hooks.PreStart == "" {
			continue
		}
		if err := s.hook(ctx, job, p); err != nil {
			unclaim()
			return err
		}
	}
	procs := make([]*proc, len(processes))
	for i, p := range processes {
		procs[i] = &proc{job: job, p: p, state: StateStarting, stop: make(chan struct{}), done: make(chan struct{})}
	}
	s.mu.Lock()
	if s.claims[job] != claim {
		s.mu.Unlock()
		return fmt.Errorf("agent: job %s: stopped while it was starting", job)
	}
	s.jobs[job] = procs
	delete(s.claims, job)
	s.mu.Unlock()
	for _, p := range procs {
		go s.run(p)
	}
	return nil
}

// Stop stops the job's processes (all at once) and waits until they are
// down: the shutdown signal, then SIGKILL after StopTimeout. When ctx ends
// first, the processes are still taken down in the background, and Stop
// returns ctx's error. A job not running is no error.
func (s *Supervisor) Stop(ctx context.Context, job string) error {
	s.mu.Lock()
	procs := s.jobs[job]
	delete(s.jobs, job)
	delete(s.claims, job)
	s.mu.Unlock()
	for _, p := range procs {
		close(p.stop)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("agent: stop job %s: %w", job, ctx.Err())
		}
	}
	return nil
}

// StopAll stops every job, all at once as monit's stop all does: one job
// that takes its time to stop (an API server's graceful shutdown) does
// not hold back the others, nor waits for them.
func (s *Supervisor) StopAll(ctx context.Context) error {
	jobs := s.Jobs()
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() { errs[i] = s.Stop(ctx, job) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Jobs are the jobs started, in name order.
func (s *Supervisor) Jobs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.jobs))
	for j := range s.jobs {
		out = append(out, j)
	}
	sort.Strings(out)
	return out
}

// Status reports every process of every started job, by job then in
// bpm.yml order.
func (s *Supervisor) Status() []ProcessStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs := make([]string, 0, len(s.jobs))
	for j := range s.jobs {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	var out []ProcessStatus
	now := time.Now()
	for _, j := range jobs {
		for _, p := range s.jobs[j] {
			st := ProcessStatus{Job: j, Name: p.p.Name, State: p.state, PID: p.pid, Restarts: p.restarts, LastExit: p.lastExit}
			if p.pid != 0 {
				st.Uptime = now.Sub(p.started)
			}
			out = append(out, st)
		}
	}
	return out
}

// JobState sums up processes' states as the agent reports job_state, as
// bosh-agent sums up monit's: "running" unless a process fails
// ("failing") or is still starting ("starting"); with no process at all
// (jobs of scripts only, or none yet) it is "running".
func JobState(ps []ProcessStatus) string {
	states := make([]string, len(ps))
	for i, p := range ps {
		states[i] = p.State
	}
	switch {
	case slices.Contains(states, StateFailing):
		return StateFailing
	case slices.Contains(states, StateStarting):
		return StateStarting
	case slices.Contains(states, StateStopped):
		return StateFailing // some stopped, some not: not what was asked
	}
	return StateRunning
}

func (s *Supervisor) set(p *proc, f func(*proc)) {
	s.mu.Lock()
	f(p)
	s.mu.Unlock()
}

// run keeps p running until its stop channel closes.
func (s *Supervisor) run(p *proc) {
	defer close(p.done)
	if s.cfg.DieWithSupervisor {
		// The parent-death signal follows the thread that started the
		// process: keep this one for as long as the process runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	bo := retry.Backoff{Initial: s.cfg.RestartInitial, Max: s.cfg.RestartMax}
	log := s.log.With(zap.String("job", p.job), zap.String("process", p.p.Name))
	first := true
	for {
		if !first {
			select {
			case <-p.stop:
				s.set(p, func(p *proc) { p.state = StateStopped })
				return
			case <-time.After(bo.Next()):
			}
		}
		first = false
		cmd, logs, err := s.start(p)
		if err != nil {
			log.Warn("process not started", zap.Error(err))
			s.set(p, func(p *proc) { p.state, p.lastExit = StateFailing, err.Error() })
			s.failed(p, "could not be started: "+err.Error())
			continue
		}
		s.set(p, func(p *proc) { p.state, p.pid, p.started = StateStarting, cmd.Process.Pid, time.Now() })
		log.Info("process started", zap.Int("pid", cmd.Process.Pid))
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); closeAll(logs) }()
		stable := time.NewTimer(s.cfg.StableAfter)
		stopped := false
	wait:
		for {
			select {
			case <-stable.C:
				bo.Reset()
				s.set(p, func(p *proc) { p.state = StateRunning })
			case err := <-exited:
				// What it started in its group goes with it, so that a
				// restart does not meet it (on its port, say).
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				why := exitReason(err)
				log.Warn("process exited", zap.String("exit", why))
				s.set(p, func(p *proc) { p.state, p.pid, p.restarts, p.lastExit = StateFailing, 0, p.restarts+1, why })
				s.failed(p, "exited: "+why)
				break wait
			case <-p.stop:
				s.terminate(p, cmd, exited, log)
				stopped = true
				break wait
			}
		}
		stable.Stop()
		if stopped {
			s.set(p, func(p *proc) { p.state, p.pid = StateStopped, 0 })
			return
		}
	}
}

// failed tells OnFailure of a process that failed.
func (s *Supervisor) failed(p *proc, why string) {
	if s.cfg.OnFailure != nil {
		s.cfg.OnFailure(p.job, p.p.Name, why)
	}
}

// terminate sends the shutdown signal to the process's group, and SIGKILL
// after StopTimeout, and waits for the process to exit.
func (s *Supervisor) terminate(p *proc, cmd *exec.Cmd, exited <-chan error, log *zap.Logger) {
	sig, _ := shutdownSignal(p.p.ShutdownSignal)
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	t := time.NewTimer(s.cfg.StopTimeout)
	defer t.Stop()
	select {
	case err := <-exited:
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // what is left of its group
		log.Info("process stopped", zap.String("exit", exitReason(err)))
		return
	case <-t.C:
	}
	log.Warn("process did not stop in time: killing it", zap.Duration("timeout", s.cfg.StopTimeout))
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-exited
	s.set(p, func(p *proc) { p.lastExit = "killed after " + s.cfg.StopTimeout.String() })
}

// command builds the command for exe and args in the job's environment.
func (s *Supervisor) command(job string, p Process, exe string, args []string) *exec.Cmd {
	cmd := exec.Command(s.layout.Path(exe))
	for _, a := range args {
		cmd.Args = append(cmd.Args, s.layout.Path(a))
	}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	keys := make([]string, 0, len(p.Env))
	for k := range p.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+s.layout.Path(p.Env[k]))
	}
	cmd.Dir = s.layout.JobLink(job)
	if p.Workdir != "" {
		cmd.Dir = s.layout.Path(p.Workdir)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.cfg.DieWithSupervisor {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	return cmd
}

func (s *Supervisor) openLogs(job, name string) ([]*os.File, error) {
	var files []*os.File
	for _, stream := range []string{"stdout", "stderr"} {
		f, err := os.OpenFile(filepath.Join(s.layout.LogDir(job), name+"."+stream+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			closeAll(files)
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

func (s *Supervisor) start(p *proc) (*exec.Cmd, []*os.File, error) {
	logs, err := s.openLogs(p.job, p.p.Name)
	if err != nil {
		return nil, nil, err
	}
	cmd := s.command(p.job, p.p, p.p.Executable, p.p.Args)
	cmd.Stdout, cmd.Stderr = logs[0], logs[1]
	if err := cmd.Start(); err != nil {
		closeAll(logs)
		return nil, nil, err
	}
	setLimits(cmd.Process.Pid, p.p.Limits, s.log)
	return cmd, logs, nil
}

// setLimits applies bpm's open_files and processes limits to a started
// process (prlimit: what it opened before is not undone).
func setLimits(pid int, l Limits, log *zap.Logger) {
	set := func(res int, n uint64, name string) {
		if n == 0 {
			return
		}
		if err := unix.Prlimit(pid, res, &unix.Rlimit{Cur: n, Max: n}, nil); err != nil {
			log.Warn("limit not set", zap.String("limit", name), zap.Uint64("value", n), zap.Error(err))
		}
	}
	set(unix.RLIMIT_NOFILE, l.OpenFiles, "open_files")
	set(unix.RLIMIT_NPROC, l.Processes, "processes")
}

// hook runs a process's pre_start hook to completion.
func (s *Supervisor) hook(ctx context.Context, job string, p Process) error {
	logs, err := s.openLogs(job, p.Name)
	if err != nil {
		return fmt.Errorf("agent: job %s: process %s: pre_start: %w", job, p.Name, err)
	}
	defer closeAll(logs)
	cmd := s.command(job, p, p.Hooks.PreStart, nil)
	cmd.Stdout, cmd.Stderr = logs[0], logs[1]
	if err := runGroup(ctx, cmd); err != nil {
		return fmt.Errorf("agent: job %s: process %s: pre_start hook %s: %s (its output is in %s)", job, p.Name, p.Hooks.PreStart, exitReason(err), s.layout.LogDir(job))
	}
	return nil
}

// runGroup runs cmd (in a process group of its own) to completion; when
// ctx ends first it sends the group SIGTERM, and SIGKILL after
// scriptGrace, and returns ctx's error.
func runGroup(ctx context.Context, cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// Asked to stop: SIGTERM to the group, as bosh-agent cancels a
		// script or an errand, and SIGKILL if it is not gone within
		// scriptGrace.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		t := time.NewTimer(scriptGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what it left in its group
		return ctx.Err()
	}
}

// scriptGrace is how long a cancelled script or errand has between
// SIGTERM and SIGKILL.
const scriptGrace = 10 * time.Second

func exitReason(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
