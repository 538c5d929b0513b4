package director

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/blobstore"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/stemcell"
	"github.com/kubefoundry/kubefoundry/bosh/template"
)

// Config is what a Director works with.
type Config struct {
	// Store is the director's state.
	Store Store
	// CPI makes VMs and disks.
	CPI cpi.CPI
	// Bus issues each new VM's agent its certificate; Agents is the
	// director's client on it.
	Bus    *mbus.Bus
	Agents *mbus.Client
	// Blobs holds packages and rendered templates; Signer signs the URLs
	// agents fetch them by, at BlobstoreURL (the blobstore server's
	// address as agents reach it).
	Blobs        *blobstore.Local
	Signer       *blobstore.Signer
	BlobstoreURL string
	// Renderer renders job templates (one Ruby process for the director).
	Renderer *template.Renderer

	// AgentWait is how long a new VM's agent has to answer (BOSH's
	// agent_wait_timeout): 10 minutes when 0.
	AgentWait time.Duration
	// AgentPing is how often a new VM's agent is pinged while it comes
	// up: every second when 0.
	AgentPing time.Duration
	// PingTimeout bounds the wait for the ping that tells whether an
	// instance's agent answers before it is deleted: 10s when 0.
	PingTimeout time.Duration
	// CreateVMTimeout bounds a create_vm, which a deploy's end does not
	// cut short: 30 minutes when 0.
	CreateVMTimeout time.Duration
	// URLTTL is how long the signed URLs in an apply spec stay good:
	// 2 hours when 0; it must outlast the longest update of a group.
	URLTTL time.Duration
	// VariablesDir, when set, holds each deployment's variables store
	// (<deployment>.json, bosh/variables): what its manifests' variables
	// blocks generate and their ((placeholders)) are interpolated from.
	// Without it each deployment's store is kept in Store.
	VariablesDir string
	// TempDir is where uploads are unpacked; the system's when empty.
	TempDir string
	// MaxThreads bounds the instances a deployment's deletion works on
	// at once (BOSH's max_threads): 32 when 0.
	MaxThreads int
	// Log logs; nothing when nil.
	Log *zap.Logger
}

// Director is kubefoundry's BOSH director: uploads, deploys and deletes
// deployments through a CPI and the agents of their VMs. Its methods may
// be called concurrently; two tasks that change one deployment do not run
// at once (the second is a *LockedError).
type Director struct {
	cfg     Config
	log     *zap.Logger
	updater *Updater

	mu      sync.Mutex
	running map[int64]context.CancelCauseFunc // the tasks running, to cancel

	uploadMu sync.Mutex // one upload at a time: two of one version must not both store it

	allocMu  sync.Mutex
	reserved map[string]map[netip.Addr]string // addresses a running task of each deployment has given out, by instance id
}

// New returns a Director on cfg, first closing what a director that
// stopped left open in the store: a task still queued or processing
// ends in state error, saying the director stopped during it, and its
// lock is released; deploying again converges from what the store
// recorded. The agents the store names are allowed on the bus (which
// must have the CA that issued their certificates).
func New(cfg Config) (*Director, error) {
	var ve kubefoundry.ValidationError
	ve.Object = "director config"
	for _, f := range []struct {
		name string
		nil  bool
	}{{"store", cfg.Store == nil}, {"cpi", cfg.CPI == nil}, {"bus", cfg.Bus == nil}, {"agents", cfg.Agents == nil},
		{"blobs", cfg.Blobs == nil}, {"signer", cfg.Signer == nil}, {"renderer", cfg.Renderer == nil}} {
		if f.nil {
			ve.Add(f.name, "", "required")
		}
	}
	if cfg.BlobstoreURL == "" {
		ve.Add("blobstore_url", "", "required")
	}
	if err := ve.Err(); err != nil {
		return nil, err
	}
	if cfg.AgentWait == 0 {
		cfg.AgentWait = 10 * time.Minute
	}
	if cfg.AgentPing == 0 {
		cfg.AgentPing = time.Second
	}
	if cfg.MaxThreads <= 0 {
		cfg.MaxThreads = 32
	}
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = 10 * time.Second
	}
	if cfg.CreateVMTimeout == 0 {
		cfg.CreateVMTimeout = 30 * time.Minute
	}
	if cfg.URLTTL == 0 {
		cfg.URLTTL = 2 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	d := &Director{cfg: cfg, log: cfg.Log, updater: NewUpdater(cfg.Agents, cfg.Log), running: map[int64]context.CancelCauseFunc{},
		reserved: map[string]map[netip.Addr]string{}}
	if err := d.recover(); err != nil {
		return nil, err
	}
	if err := d.allowRecordedAgents(); err != nil {
		return nil, err
	}
	return d, nil
}

// allowRecordedAgents lets the agents the store names on the bus: a bus
// started anew (with the director's CA) knows none of them.
func (d *Director) allowRecordedAgents() error {
	deps, err := d.cfg.Store.Deployments()
	if err != nil {
		return err
	}
	var ids []string
	for _, dep := range deps {
		recs, err := d.cfg.Store.Instances(dep.Name)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.AgentID != "" {
				ids = append(ids, r.AgentID)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return d.cfg.Bus.AllowAgents(ids...)
}

// ErrTaskCancelled is the cause of a task's end when CancelTask ends it.
var ErrTaskCancelled = errors.New("the task was cancelled")

// CancelTask cancels a task this director runs: it is recorded
// cancelling, and ends between two steps (what is in flight finishes)
// in state cancelled, releasing its lock. A task that is not running is
// ErrNotFound, or ErrConflict when it has ended.
func (d *Director) CancelTask(id int64) error {
	d.mu.Lock()
	cancel, ok := d.running[id]
	d.mu.Unlock()
	if !ok {
		t, err := d.cfg.Store.Task(id)
		if err != nil {
			return err
		}
		return fmt.Errorf("task %d is %s, not running: %w", id, t.State, kubefoundry.ErrConflict)
	}
	t, err := d.cfg.Store.Task(id)
	if err == nil && t.State == TaskProcessing {
		t.State = TaskCancelling
		_ = d.cfg.Store.PutTask(t)
	}
	cancel(ErrTaskCancelled)
	return nil
}

// recover ends the tasks a stopped director left running, and frees the
// locks they held.
func (d *Director) recover() error {
	st := d.cfg.Store
	tasks, err := st.Tasks(0)
	if err != nil {
		return err
	}
	ended := map[int64]bool{}
	for _, t := range tasks {
		if t.State != TaskQueued && t.State != TaskProcessing && t.State != TaskCancelling {
			continue
		}
		t.State = TaskError
		t.Result = "the director stopped during this task; what it recorded is kept: run it again to converge"
		t.Ended = time.Now()
		if err := st.PutTask(t); err != nil {
			return err
		}
		ended[t.ID] = true
		d.log.Warn("ended a task the last director left running", zap.Int64("task", t.ID), zap.String("deployment", t.Deployment))
	}
	locks, err := st.Locks()
	if err != nil {
		return err
	}
	for name, id := range locks {
		if ended[id] {
			if err := st.Unlock(name, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// UploadStemcell reads a stemcell tarball and makes the stemcell on the
// cloud through the CPI. Uploading one already there (the same name,
// version and image digest) returns its record and does nothing; the same
// name and version with another image is ErrConflict.
func (d *Director) UploadStemcell(ctx context.Context, tarball string) (StemcellRecord, error) {
	d.uploadMu.Lock()
	defer d.uploadMu.Unlock()
	dir, err := os.MkdirTemp(d.cfg.TempDir, "stemcell-")
	if err != nil {
		return StemcellRecord{}, err
	}
	defer os.RemoveAll(dir)
	sc, err := stemcell.Read(tarball, dir)
	if err != nil {
		return StemcellRecord{}, err
	}
	m := sc.Manifest
	have, err := d.cfg.Store.Stemcells()
	if err != nil {
		return StemcellRecord{}, err
	}
	for _, s := range have {
		if s.Name == m.Name && s.Version == m.Version {
			if s.Digest != m.SHA1 {
				return StemcellRecord{}, fmt.Errorf("stemcell %s/%s is uploaded with image %s; this one's is %s: %w", m.Name, m.Version, s.Digest, m.SHA1, kubefoundry.ErrConflict)
			}
			return s, nil
		}
	}
	cid, err := d.cfg.CPI.CreateStemcell(ctx, sc.ImagePath, m.CloudProperties)
	if err != nil {
		return StemcellRecord{}, fmt.Errorf("stemcell %s/%s: create_stemcell: %w", m.Name, m.Version, err)
	}
	rec := StemcellRecord{Name: m.Name, OS: m.OperatingSystem, Version: m.Version, CID: cid, Digest: m.SHA1}
	if err := d.cfg.Store.PutStemcell(rec); err != nil {
		// Not recorded, so not kept: nothing on the cloud that the
		// director does not know of.
		if derr := d.cfg.CPI.DeleteStemcell(context.WithoutCancel(ctx), cid); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete_stemcell %s: %w", cid, derr))
		}
		return StemcellRecord{}, err
	}
	return rec, nil
}

// UploadRelease reads a release tarball, checking every digest, and keeps
// its jobs (for rendering) and its compiled packages (in the blobstore).
// Packages are taken as compiled: a release's source packages are kept by
// name only, and a deploy that needs one fails naming it. Uploading the
// same release again (the same jobs and packages) returns its record and
// stores nothing; the same release compiled against another stemcell
// (the same jobs; packages of the same names and versions) adds those
// compiled packages, as BOSH's director does, so that deployments move to
// the new stemcell. The same name and version with other content is
// ErrConflict. On failure, no blob it stored is left.
func (d *Director) UploadRelease(ctx context.Context, path string) (rec ReleaseRecord, err error) {
	d.uploadMu.Lock()
	defer d.uploadMu.Unlock()
	rel, err := release.Open(ctx, path)
	if err != nil {
		return ReleaseRecord{}, err
	}
	m := rel.Manifest
	rec = ReleaseRecord{Name: m.Name, Version: m.Version}
	for _, ref := range m.Jobs {
		j := rel.Job(ref.Name)
		if j == nil {
			return ReleaseRecord{}, fmt.Errorf("release %s/%s: job %s: %w", m.Name, m.Version, ref.Name, kubefoundry.ErrInvalid)
		}
		rec.Jobs = append(rec.Jobs, ReleaseJob{Name: ref.Name, Fingerprint: ref.Fingerprint, Spec: j.Manifest, Templates: j.Templates})
	}
	add := m.CompiledPackages
	old, err := d.cfg.Store.Release(m.Name, m.Version)
	switch {
	case err == nil:
		if add, err = newPackages(old, rec, m); err != nil {
			return ReleaseRecord{}, fmt.Errorf("release %s/%s is uploaded with other %w", m.Name, m.Version, err)
		}
		if len(add) == 0 {
			return old, nil
		}
		// Jobs as first uploaded: they are the same.
		rec = old
		rec.Packages = slices.Clone(old.Packages)
	case !errors.Is(err, kubefoundry.ErrNotFound):
		return ReleaseRecord{}, err
	}
	var stored []string
	defer func() {
		if err != nil {
			for _, id := range stored {
				_ = d.cfg.Blobs.Delete(context.WithoutCancel(ctx), id)
			}
		}
	}()
	for _, ref := range add {
		id, digest, err := d.putPackage(ctx, rel, ref.Name)
		if err != nil {
			return rec, fmt.Errorf("release %s/%s: package %s: %w", m.Name, m.Version, ref.Name, err)
		}
		stored = append(stored, id)
		rec.Packages = append(rec.Packages, ReleasePackage{Name: ref.Name, Version: ref.Version, Stemcell: ref.Stemcell,
			Dependencies: ref.Dependencies, BlobID: id, Digest: digest.String()})
	}
	if err := d.cfg.Store.PutRelease(rec); err != nil {
		return rec, err
	}
	return rec, nil
}

// newPackages are the compiled packages of an upload of a release already
// held that the record does not have: none when it is the same release,
// those of another stemcell when it is the same release compiled against
// it. Other jobs, or another version of a package, is ErrConflict.
func newPackages(old, rec ReleaseRecord, m release.Manifest) ([]release.CompiledPackageRef, error) {
	if len(old.Jobs) != len(rec.Jobs) {
		return nil, fmt.Errorf("jobs: %w", kubefoundry.ErrConflict)
	}
	for i := range old.Jobs {
		if old.Jobs[i].Name != rec.Jobs[i].Name || old.Jobs[i].Fingerprint != rec.Jobs[i].Fingerprint {
			return nil, fmt.Errorf("jobs (%s): %w", rec.Jobs[i].Name, kubefoundry.ErrConflict)
		}
	}
	// Whatever the stemcell, the packages are the release's: the same
	// names and versions.
	want, got := map[string]string{}, map[string]string{}
	for _, p := range old.Packages {
		want[p.Name] = p.Version
	}
	for _, p := range m.CompiledPackages {
		got[p.Name] = p.Version
	}
	if !maps.Equal(want, got) {
		return nil, fmt.Errorf("packages: %w", kubefoundry.ErrConflict)
	}
	var add []release.CompiledPackageRef
	for _, p := range m.CompiledPackages {
		if !slices.ContainsFunc(old.Packages, func(o ReleasePackage) bool { return o.Name == p.Name && o.Stemcell == p.Stemcell }) {
			add = append(add, p)
		}
	}
	return add, nil
}

// putPackage copies a compiled package's tarball into the blobstore.
func (d *Director) putPackage(ctx context.Context, rel *release.Release, name string) (string, blobstore.Digest, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(rel.CopyPackage(ctx, name, pw)) }()
	id, digest, err := d.cfg.Blobs.Put(ctx, pr)
	_ = pr.CloseWithError(errors.New("abandoned"))
	return id, digest, err
}

// latest picks the highest of versions, comparing dotted numbers as
// numbers ("1.10" after "1.9").
func latest(versions []string) string {
	if len(versions) == 0 {
		return ""
	}
	return slices.MaxFunc(versions, compareVersions)
}

func compareVersions(a, b string) int {
	as, bs := splitVersion(a), splitVersion(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		xn, xok := number(x)
		yn, yok := number(y)
		switch {
		case xok && yok && xn != yn:
			if xn < yn {
				return -1
			}
			return 1
		case xok != yok:
			if xok {
				return 1 // a number sorts after a word (1.0 after 1.0-dev)
			}
			return -1
		case x != y:
			if x < y {
				return -1
			}
			return 1
		}
	}
	return len(as) - len(bs)
}

func splitVersion(v string) []string {
	var out []string
	cur := ""
	for _, r := range v {
		if r == '.' || r == '-' || r == '+' {
			out = append(out, cur)
			cur = ""
			continue
		}
		cur += string(r)
	}
	return append(out, cur)
}

func number(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
		n = n*10 + int(r-'0')
	}
	return n, true
}
