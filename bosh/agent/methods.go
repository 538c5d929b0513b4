package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

// Implemented lists the agent methods this agent serves; the other
// methods of BOSH's agent answer "unknown message <method>".
var Implemented = []string{"ping", "get_state", "apply", "prepare", "start", "stop", "drain", "run_script", "run_errand",
	"fetch_logs", "fetch_logs_with_signed_url", "sync_dns", "sync_dns_with_signed_url", "mount_disk", "unmount_disk", "migrate_disk",
	"list_disk", "update_settings"}

// methods are the director's methods, as bosh-agent serves them: apply,
// prepare, stop, drain and run_script run as tasks.
func (a *Agent) methods() mbus.Methods {
	return mbus.Methods{
		"ping":                       {Func: func(context.Context, json.RawMessage) (any, error) { return "pong", nil }},
		"get_state":                  {Func: a.getState},
		"apply":                      {Func: a.applyMethod, LongRunning: true},
		"prepare":                    {Func: a.prepareMethod, LongRunning: true},
		"start":                      {Func: a.startMethod},
		"stop":                       {Func: a.stopMethod, LongRunning: true},
		"drain":                      {Func: a.drainMethod, LongRunning: true},
		"run_script":                 {Func: a.runScriptMethod, LongRunning: true},
		"run_errand":                 {Func: a.runErrandMethod, LongRunning: true},
		"fetch_logs":                 {Func: a.fetchLogsMethod, LongRunning: true},
		"fetch_logs_with_signed_url": {Func: a.fetchLogsSignedMethod, LongRunning: true},
		"sync_dns":                   {Func: a.syncDNSMethod(false), LongRunning: true},
		"sync_dns_with_signed_url":   {Func: a.syncDNSMethod(true), LongRunning: true},
		"mount_disk":                 {Func: a.mountDiskMethod, LongRunning: true},
		"unmount_disk":               {Func: a.unmountDiskMethod, LongRunning: true},
		"migrate_disk":               {Func: a.migrateDiskMethod, LongRunning: true},
		"list_disk":                  {Func: a.listDiskMethod},
		"update_settings":            {Func: a.updateSettingsMethod, LongRunning: true},
	}
}

// specArg decodes the first argument of apply and prepare.
func specArg(args json.RawMessage) (*ApplySpec, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(args, &list); err != nil || len(list) < 1 {
		return nil, errors.New("want one argument, the apply spec")
	}
	var s ApplySpec
	if err := json.Unmarshal(list[0], &s); err != nil {
		return nil, fmt.Errorf("apply spec: %w", err)
	}
	return &s, nil
}

func (a *Agent) applyMethod(ctx context.Context, args json.RawMessage) (any, error) {
	spec, err := specArg(args)
	if err != nil {
		return nil, err
	}
	a.specMu.Lock()
	defer a.specMu.Unlock()
	if err := a.apply(ctx, spec); err != nil {
		return nil, err
	}
	a.log.Info("spec applied", zap.String("deployment", spec.Deployment), zap.String("instance_group", spec.Job.Name), zap.Int("index", spec.Index))
	return "applied", nil
}

func (a *Agent) prepareMethod(ctx context.Context, args json.RawMessage) (any, error) {
	spec, err := specArg(args)
	if err != nil {
		return nil, err
	}
	a.specMu.Lock()
	defer a.specMu.Unlock()
	if err := a.prepare(ctx, spec); err != nil {
		return nil, err
	}
	return "prepared", nil
}

// jobs are the applied jobs, in the spec's order.
func (a *Agent) jobs() ([]string, *ApplySpec, error) {
	spec, err := a.loadSpec()
	if err != nil || spec == nil {
		return nil, spec, err
	}
	out := make([]string, len(spec.Job.Templates))
	for i, j := range spec.Job.Templates {
		out[i] = j.Name
	}
	return out, spec, nil
}

// startMethod starts every applied job that has a bpm.yml; a job whose
// bpm.yml is bad, or whose pre_start hook fails, fails start naming it,
// and the jobs started before it stay up (stop takes them down).
func (a *Agent) startMethod(ctx context.Context, _ json.RawMessage) (any, error) {
	jobs, _, err := a.jobs()
	if err != nil {
		return nil, err
	}
	if jobs == nil {
		return nil, errNoSpec
	}
	a.stopped.Store(false)
	for _, job := range jobs {
		b, err := os.ReadFile(a.layout.BPMFile(job))
		if errors.Is(err, os.ErrNotExist) {
			continue // a job with no processes
		}
		if err != nil {
			return nil, err
		}
		cfg, err := ParseBPM(b)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", job, err)
		}
		if err := a.sup.Start(ctx, job, cfg.Processes); err != nil {
			return nil, err
		}
	}
	return "started", nil
}

func (a *Agent) stopMethod(ctx context.Context, _ json.RawMessage) (any, error) {
	a.stopped.Store(true)
	if err := a.sup.StopAll(ctx); err != nil {
		return nil, err
	}
	return "stopped", nil
}

// getState answers get_state: the applied spec with the agent's id, the
// job state and each process's; with the argument "full", the vitals too.
func (a *Agent) getState(_ context.Context, args json.RawMessage) (any, error) {
	var list []any
	_ = json.Unmarshal(args, &list)
	full := len(list) > 0 && list[0] == "full"
	spec, err := a.loadSpec()
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if spec != nil {
		b, _ := json.Marshal(spec)
		_ = json.Unmarshal(b, &out)
	}
	ps := a.sup.Status()
	procs := make([]map[string]any, len(ps))
	for i, p := range ps {
		procs[i] = map[string]any{"name": p.Name, "state": p.State, "uptime": map[string]any{"secs": int64(p.Uptime / time.Second)}}
	}
	out["agent_id"] = a.cfg.Settings.AgentID
	out["bosh_protocol"] = "1"
	out["job_state"] = a.jobState(ps)
	out["processes"] = procs
	out["vm"] = map[string]any{"name": a.cfg.Settings.VM.Name}
	if full {
		out["vitals"] = vitals(a.layout)
	}
	return out, nil
}

// drainMethod runs each applied job's bin/drain, as bosh-agent does, all
// at once: with "update" the arguments say whether the job and its
// configuration change (job_changed|job_unchanged,
// hash_changed|hash_unchanged, then the updated packages), with
// "shutdown" job_shutdown hash_unchanged. A script's answer, an integer
// on its first line of output, is how long to wait: n >= 0 seconds and
// done, or -n seconds and ask again with job_check_status. The drain ends
// when every script's wait has; its value is 0.
func (a *Agent) drainMethod(ctx context.Context, args json.RawMessage) (any, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(args, &list); err != nil || len(list) < 1 {
		return nil, errors.New("want the drain type (update, shutdown or status) and, for update, the new spec")
	}
	var kind string
	if err := json.Unmarshal(list[0], &kind); err != nil {
		return nil, fmt.Errorf("drain type: %w", err)
	}
	jobs, cur, err := a.jobs()
	if err != nil {
		return nil, err
	}
	var next *ApplySpec
	var params []string
	switch kind {
	case "shutdown":
		params = []string{"job_shutdown", "hash_unchanged"}
	case "update":
		if len(list) < 2 {
			return nil, errors.New("drain update: want the new spec")
		}
		next = &ApplySpec{}
		if err := json.Unmarshal(list[1], next); err != nil {
			return nil, fmt.Errorf("drain update: new spec: %w", err)
		}
		params = updateParams(cur, next)
	case "status":
		params = []string{"job_check_status", "hash_unchanged"}
	default:
		return nil, fmt.Errorf("unknown drain type %q: want update, shutdown or status", kind)
	}
	env := []string{"BOSH_JOB_STATE=" + specJSON(cur), "BOSH_JOB_NEXT_STATE=" + specJSON(next)}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, job := range jobs {
		script := a.layout.Script(job, "drain")
		if _, err := os.Stat(script); err != nil {
			continue
		}
		wg.Go(func() {
			if err := a.drainJob(ctx, job, script, params, env); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return 0, nil
}

func (a *Agent) drainJob(ctx context.Context, job, script string, params, env []string) error {
	for {
		out, err := a.script(ctx, job, "drain", script, params, env)
		if err != nil {
			return err
		}
		line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
		n, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			return fmt.Errorf("job %s: drain script answered %q, not an integer", job, truncate(line, 80))
		}
		wait := time.Duration(n) * time.Second
		if n < 0 {
			wait = -wait
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if n >= 0 {
			return nil
		}
		params = []string{"job_check_status", "hash_unchanged"}
	}
}

func updateParams(cur, next *ApplySpec) []string {
	jobChanged, hashChanged := "job_unchanged", "hash_unchanged"
	if cur == nil || !sameJobs(cur.Job, next.Job) {
		jobChanged = "job_changed"
	}
	if cur == nil || cur.ConfigurationHash != next.ConfigurationHash {
		hashChanged = "hash_changed"
	}
	out := []string{jobChanged, hashChanged}
	for _, name := range sortedKeys(next.Packages) {
		if cur == nil || cur.Packages[name].Version != next.Packages[name].Version {
			out = append(out, name)
		}
	}
	return out
}

func sameJobs(a, b JobSpec) bool {
	if a.Name != b.Name || len(a.Templates) != len(b.Templates) {
		return false
	}
	for i := range a.Templates {
		if a.Templates[i] != b.Templates[i] {
			return false
		}
	}
	return true
}

// specJSON is a spec as drain scripts read it in BOSH_JOB_STATE and
// BOSH_JOB_NEXT_STATE, as bosh-agent presents it: only
// {"persistent_disk": N} (never the properties, which hold secrets), and
// "" for none.
func specJSON(s *ApplySpec) string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf(`{"persistent_disk":%d}`, s.PersistentDisk)
}

// runScriptMethod runs bin/<name> of every applied job that has it, all at
// once, as bosh-agent's run_script does; the value is {} when all pass.
// Their output goes to sys/log/<job>/<name>.stdout.log and .stderr.log.
func (a *Agent) runScriptMethod(ctx context.Context, args json.RawMessage) (any, error) {
	var list []json.RawMessage
	var name string
	if err := json.Unmarshal(args, &list); err != nil || len(list) < 1 || json.Unmarshal(list[0], &name) != nil {
		return nil, errors.New("want the script's name")
	}
	// The options may carry env for the scripts (pre-stop's
	// BOSH_VM_NEXT_STATE and the like).
	var opts struct {
		Env map[string]string `json:"env"`
	}
	if len(list) > 1 {
		_ = json.Unmarshal(list[1], &opts)
	}
	var env []string
	for _, k := range sortedKeys(opts.Env) {
		if k != "" && !strings.ContainsAny(k, "=\x00") {
			env = append(env, k+"="+opts.Env[k])
		}
	}
	if err := safeName(name); err != nil {
		return nil, fmt.Errorf("script name %q: %w", name, err)
	}
	jobs, _, err := a.jobs()
	if err != nil {
		return nil, err
	}
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		failed, passed []string
		errs           []error
	)
	for _, job := range jobs {
		script := a.layout.Script(job, name)
		if _, err := os.Stat(script); err != nil {
			continue
		}
		wg.Go(func() {
			_, err := a.script(ctx, job, name, script, nil, env)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, job)
				errs = append(errs, err)
				return
			}
			passed = append(passed, job)
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		sort.Strings(failed)
		sort.Strings(passed)
		return nil, fmt.Errorf("%d of %d %s scripts failed. Failed Jobs: %s. Successful Jobs: %s. %w",
			len(failed), len(failed)+len(passed), name, strings.Join(failed, ", "), strings.Join(passed, ", "), errors.Join(errs...))
	}
	return map[string]any{}, nil
}

// script runs a job's script, its output appended to
// sys/log/<job>/<name>.stdout.log and .stderr.log, and returns its
// standard output.
func (a *Agent) script(ctx context.Context, job, name, path string, args, env []string) (string, error) {
	logDir := a.layout.LogDir(job)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return "", err
	}
	var logs []*os.File
	for _, stream := range []string{"stdout", "stderr"} {
		f, err := os.OpenFile(filepath.Join(logDir, name+"."+stream+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			closeAll(logs)
			return "", err
		}
		logs = append(logs, f)
	}
	defer closeAll(logs)
	cmd := exec.Command(path, args...)
	cmd.Dir = a.layout.JobLink(job)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "BOSH_JOB_NAME=" + job}, env...)
	var out bytes.Buffer
	cmd.Stdout = &multi{&out, logs[0]}
	cmd.Stderr = logs[1]
	if err := runGroup(ctx, cmd); err != nil {
		return out.String(), fmt.Errorf("job %s: %s: %s (its output is in %s)", job, name, exitReason(err), logDir)
	}
	return out.String(), nil
}

// multi writes to a buffer (bounded) and a file.
type multi struct {
	buf *bytes.Buffer
	f   *os.File
}

func (m *multi) Write(p []byte) (int, error) {
	if room := 64<<10 - m.buf.Len(); room > 0 {
		m.buf.Write(p[:min(len(p), room)])
	}
	return m.f.Write(p)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
