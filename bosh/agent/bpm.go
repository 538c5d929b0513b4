package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
)

// BPMConfig is a job's config/bpm.yml, as bpm (cloudfoundry/bpm-release)
// reads it: the processes the agent runs for the job.
type BPMConfig struct {
	Processes []Process `yaml:"processes"`
}

// Process is one process of a job's bpm.yml.
type Process struct {
	Name       string            `yaml:"name"`
	Executable string            `yaml:"executable"`
	Args       []string          `yaml:"args"`
	Env        map[string]string `yaml:"env"`
	// Workdir is where the process starts; the job's directory when empty.
	Workdir string `yaml:"workdir"`
	Hooks   Hooks  `yaml:"hooks"`
	Limits  Limits `yaml:"limits"`
	// ShutdownSignal is the signal Stop sends first: TERM (the default)
	// or INT.
	ShutdownSignal string `yaml:"shutdown_signal"`

	// Read so that real bpm.yml files parse; bpm's isolation (volumes,
	// capabilities, unsafe) is not applied by this supervisor.
	EphemeralDisk     bool           `yaml:"ephemeral_disk"`
	PersistentDisk    bool           `yaml:"persistent_disk"`
	AdditionalVolumes []any          `yaml:"additional_volumes"`
	Capabilities      []string       `yaml:"capabilities"`
	Unsafe            map[string]any `yaml:"unsafe"`
}

// Hooks are a process's bpm hooks.
type Hooks struct {
	// PreStart runs, to completion, before the process starts the first
	// time after Start.
	PreStart string `yaml:"pre_start"`
}

// Limits are a process's bpm limits. OpenFiles and Processes are set on
// the process (RLIMIT_NOFILE, RLIMIT_NPROC) as soon as it starts; Memory
// is read and checked but not enforced (bpm enforces it with a cgroup).
type Limits struct {
	Memory    string `yaml:"memory"`
	OpenFiles uint64 `yaml:"open_files"`
	Processes uint64 `yaml:"processes"`
}

var processName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// ParseBPM reads a bpm.yml. Every problem is reported at once, each with
// its field path (processes[1].executable); an unknown key is one of them.
func ParseBPM(b []byte) (*BPMConfig, error) {
	var c BPMConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, &kubefoundry.ValidationError{Object: "bpm.yml", Problems: []kubefoundry.FieldError{{Field: "", Reason: err.Error()}}}
	}
	var ve kubefoundry.ValidationError
	if len(c.Processes) == 0 {
		ve.Add("processes", "", "at least one process is required")
	}
	seen := map[string]bool{}
	for i, p := range c.Processes {
		f := fmt.Sprintf("processes[%d]", i)
		switch {
		case !processName.MatchString(p.Name):
			ve.Add(f+".name", p.Name, "must be lower-case letters, digits, '-', '_' or '.'")
		case seen[p.Name]:
			ve.Add(f+".name", p.Name, "another process has this name")
		}
		seen[p.Name] = true
		if !path.IsAbs(p.Executable) {
			ve.Add(f+".executable", p.Executable, "must be an absolute path")
		}
		if p.Workdir != "" && !path.IsAbs(p.Workdir) {
			ve.Add(f+".workdir", p.Workdir, "must be an absolute path")
		}
		if p.Hooks.PreStart != "" && !path.IsAbs(p.Hooks.PreStart) {
			ve.Add(f+".hooks.pre_start", p.Hooks.PreStart, "must be an absolute path")
		}
		if _, err := shutdownSignal(p.ShutdownSignal); err != nil {
			ve.Add(f+".shutdown_signal", p.ShutdownSignal, "%v", err)
		}
		if p.Limits.Memory != "" {
			if _, err := parseMemory(p.Limits.Memory); err != nil {
				ve.Add(f+".limits.memory", p.Limits.Memory, "%v", err)
			}
		}
		for k := range p.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				ve.Add(f+".env", k, "not an environment variable name")
			}
		}
	}
	if err := ve.Err(); err != nil {
		ve.Object = "bpm.yml"
		return nil, err
	}
	return &c, nil
}

func shutdownSignal(s string) (syscall.Signal, error) {
	switch s {
	case "", "TERM":
		return syscall.SIGTERM, nil
	case "INT":
		return syscall.SIGINT, nil
	}
	return 0, errors.New("must be TERM or INT")
}

// parseMemory reads bpm's memory limit: a number of bytes with an optional
// K, M, G or T suffix.
func parseMemory(s string) (uint64, error) {
	mult := uint64(1)
	num := strings.TrimSpace(s)
	if n := len(num); n > 0 {
		switch strings.ToUpper(num[n-1:]) {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		case "T":
			mult = 1 << 40
		}
		if mult > 1 {
			num = num[:n-1]
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v == 0 {
		return 0, errors.New("must be a positive number of bytes, with an optional K, M, G or T")
	}
	return v * mult, nil
}
