package agent

import (
	"path/filepath"
	"strings"
)

// VCapRoot is where BOSH lays a VM out; a Layout's Root stands for it.
const VCapRoot = "/var/vcap"

// Layout is BOSH's directory layout on a VM, under Root (/var/vcap on a
// real VM, a sandbox directory in tests and in-process agents):
//
//	data/packages/<name>/<version>   a package, as compiled
//	packages/<name>                  -> the applied version
//	data/jobs/<job>/<version>        a job's rendered templates
//	jobs/<job>                       -> the applied version
//	data/sys/run/<job>               pid files and the like
//	sys/log/<job>                    <process>.stdout.log, <process>.stderr.log
//	store                            the persistent disk
//	bosh                             the agent's own state
type Layout struct {
	Root string
}

// Path maps a path as a release writes it (/var/vcap/...) into the layout:
// under Root for a sandbox. Other paths are returned as they are.
func (l Layout) Path(p string) string {
	if p == VCapRoot {
		return l.Root
	}
	if rest, ok := strings.CutPrefix(p, VCapRoot+"/"); ok {
		return filepath.Join(l.Root, filepath.FromSlash(rest))
	}
	return p
}

// PackageDir is where a package's version lives.
func (l Layout) PackageDir(name, version string) string {
	return filepath.Join(l.Root, "data", "packages", name, version)
}

// PackageLink is the package's stable path.
func (l Layout) PackageLink(name string) string { return filepath.Join(l.Root, "packages", name) }

// JobDir is where a job's rendered version lives.
func (l Layout) JobDir(job, version string) string {
	return filepath.Join(l.Root, "data", "jobs", job, version)
}

// JobLink is the job's stable path (/var/vcap/jobs/<job>).
func (l Layout) JobLink(job string) string { return filepath.Join(l.Root, "jobs", job) }

// LogDir is a job's log directory.
func (l Layout) LogDir(job string) string { return filepath.Join(l.Root, "sys", "log", job) }

// RunDir is a job's run directory.
func (l Layout) RunDir(job string) string { return filepath.Join(l.Root, "data", "sys", "run", job) }

// StoreDir is where the persistent disk is mounted.
func (l Layout) StoreDir() string { return filepath.Join(l.Root, "store") }

// StateDir holds the agent's own state (the applied spec).
func (l Layout) StateDir() string { return filepath.Join(l.Root, "bosh") }

// BPMFile is a job's bpm.yml.
func (l Layout) BPMFile(job string) string {
	return filepath.Join(l.JobLink(job), "config", "bpm.yml")
}

// Script is a job's lifecycle script (pre-start, post-start, drain, ...).
func (l Layout) Script(job, name string) string {
	return filepath.Join(l.JobLink(job), "bin", name)
}
