package agent

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/blobstore"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
)

// ApplySpec is what the director sends with apply and prepare: the
// instance's identity, its packages and rendered jobs as blobs (BOSH's
// apply spec, as bosh-agent's applyspec.V1ApplySpec reads it).
type ApplySpec struct {
	Deployment string       `json:"deployment"`
	Job        JobSpec      `json:"job"`
	Index      int          `json:"index"`
	ID         string       `json:"id"`
	AZ         string       `json:"az,omitempty"`
	Bootstrap  bool         `json:"bootstrap"`
	Networks   cpi.Networks `json:"networks,omitempty"`
	// Packages are compiled packages (gzipped tarballs of a package's
	// files) by name.
	Packages map[string]BlobRef `json:"packages"`
	// RenderedTemplatesArchive is a gzipped tarball with a directory per
	// job of Job.Templates, holding its rendered files (bin/, config/).
	RenderedTemplatesArchive *BlobRef       `json:"rendered_templates_archive,omitempty"`
	ConfigurationHash        string         `json:"configuration_hash,omitempty"`
	PersistentDisk           int            `json:"persistent_disk"`
	Properties               map[string]any `json:"properties,omitempty"`
}

// JobSpec is the instance group and its jobs.
type JobSpec struct {
	Name      string   `json:"name"`
	Templates []JobRef `json:"templates"`
}

// JobRef is one job of the instance.
type JobRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// BlobRef is a blob in the blobstore: by id, with the director's signed
// URL for it when signed URLs are on, and its digest (sha1 or the
// multi-digest form).
type BlobRef struct {
	Name        string           `json:"name,omitempty"`
	Version     string           `json:"version,omitempty"`
	SHA1        blobstore.Digest `json:"sha1"`
	BlobstoreID string           `json:"blobstore_id"`
	SignedURL   string           `json:"signed_url,omitempty"`
}

// Validate checks what the agent needs of a spec, listing every problem.
func (s *ApplySpec) Validate() error {
	var ve kubefoundry.ValidationError
	names := map[string]bool{}
	for i, j := range s.Job.Templates {
		f := fmt.Sprintf("job.templates[%d]", i)
		if err := safeName(j.Name); err != nil {
			ve.Add(f+".name", j.Name, "%v", err)
		} else if names[j.Name] {
			ve.Add(f+".name", j.Name, "listed twice")
		}
		names[j.Name] = true
		if err := safeName(j.Version); err != nil {
			ve.Add(f+".version", j.Version, "%v", err)
		}
	}
	for _, name := range sortedKeys(s.Packages) {
		p := s.Packages[name]
		f := "packages." + name
		if err := safeName(name); err != nil {
			ve.Add(f, name, "%v", err)
		}
		if err := safeName(p.Version); err != nil {
			ve.Add(f+".version", p.Version, "%v", err)
		}
		checkBlob(&ve, f, p)
	}
	if len(s.Job.Templates) > 0 {
		if s.RenderedTemplatesArchive == nil {
			ve.Add("rendered_templates_archive", "", "required with job templates")
		} else {
			checkBlob(&ve, "rendered_templates_archive", *s.RenderedTemplatesArchive)
		}
	}
	if err := ve.Err(); err != nil {
		ve.Object = "apply spec"
		return err
	}
	return nil
}

func checkBlob(ve *kubefoundry.ValidationError, f string, b BlobRef) {
	if b.BlobstoreID == "" && b.SignedURL == "" {
		ve.Add(f+".blobstore_id", "", "required")
	}
	if b.SHA1.IsZero() {
		ve.Add(f+".sha1", "", "required")
	}
}

func safeName(s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") {
		return errors.New("must be a non-empty name without '/'")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// jobVersion is the directory a job's rendered files go to: its version
// and the rendered archive's digest, so that a change of properties alone
// is a new directory.
func jobVersion(j JobRef, archive BlobRef) string {
	sum := sha256.Sum256([]byte(archive.SHA1.String()))
	return j.Version + "-" + hex.EncodeToString(sum[:6])
}

// Blobs fetches the blobs of an apply spec: by signed URL when the spec
// has one, else by id with the agent's blobstore credentials. Every blob
// is checked against its digest before it is used.
type Blobs struct {
	// Signed downloads signed URLs (a Client without credentials).
	Signed *blobstore.Client
	// ByID downloads by id (a Client with the agent's credentials); nil
	// when the agent has none.
	ByID *blobstore.Client
}

// fetch downloads b into a new file in dir, checked against its digest,
// and returns the file's path.
func (bl Blobs) fetch(ctx context.Context, b BlobRef, dir string) (string, error) {
	f, err := os.CreateTemp(dir, "blob-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	_ = f.Close()
	fail := func(err error) (string, error) {
		_ = os.Remove(name)
		return "", err
	}
	switch {
	case b.SignedURL != "" && bl.Signed != nil:
		if err := bl.Signed.DownloadFile(ctx, b.SignedURL, b.SHA1, name); err != nil {
			return fail(err)
		}
	case bl.ByID != nil:
		rc, err := bl.ByID.Get(ctx, b.BlobstoreID)
		if err != nil {
			return fail(err)
		}
		defer rc.Close()
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return fail(err)
		}
		verr := b.SHA1.Verify(io.TeeReader(rc, f))
		if cerr := f.Close(); verr == nil {
			verr = cerr
		}
		if verr != nil {
			return fail(verr)
		}
	default:
		return fail(fmt.Errorf("no way to fetch blob %s: no signed URL and no blobstore credentials", b.BlobstoreID))
	}
	return name, nil
}

// prepare fetches and unpacks what spec needs that is not there yet, into
// its versioned directories, without switching anything the running
// instance uses.
func (a *Agent) prepare(ctx context.Context, spec *ApplySpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	tmp := filepath.Join(a.layout.Root, "data", "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for _, name := range sortedKeys(spec.Packages) {
		p := spec.Packages[name]
		dir := a.layout.PackageDir(name, p.Version)
		if err := a.unpack(ctx, p, tmp, dir); err != nil {
			return fmt.Errorf("agent: package %s/%s: %w", name, p.Version, err)
		}
	}
	if len(spec.Job.Templates) == 0 {
		return nil
	}
	archive := *spec.RenderedTemplatesArchive
	var missing []JobRef
	for _, j := range spec.Job.Templates {
		if !complete(a.layout.JobDir(j.Name, jobVersion(j, archive))) {
			missing = append(missing, j)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	staged, err := os.MkdirTemp(tmp, "jobs-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staged)
	if err := a.unpack(ctx, archive, tmp, staged); err != nil {
		return fmt.Errorf("agent: rendered templates archive %s: %w", archive.BlobstoreID, err)
	}
	for _, j := range missing {
		from := filepath.Join(staged, j.Name)
		if fi, err := os.Stat(from); err != nil || !fi.IsDir() {
			return fmt.Errorf("agent: rendered templates archive %s has no directory for job %s", archive.BlobstoreID, j.Name)
		}
		if err := install(from, a.layout.JobDir(j.Name, jobVersion(j, archive))); err != nil {
			return fmt.Errorf("agent: job %s: %w", j.Name, err)
		}
	}
	return nil
}

// completeMark is the file that says a versioned directory is whole.
const completeMark = ".bosh-complete"

func complete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, completeMark))
	return err == nil
}

// unpack fetches b and unpacks it into dir, unless dir is complete
// already; the directory appears whole or not at all.
func (a *Agent) unpack(ctx context.Context, b BlobRef, tmp, dir string) error {
	if complete(dir) {
		return nil
	}
	file, err := a.blobs.fetch(ctx, b, tmp)
	if err != nil {
		return err
	}
	defer os.Remove(file)
	staged, err := os.MkdirTemp(tmp, "unpack-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staged)
	if err := untgz(ctx, file, staged, a.cfg.MaxBlobSize); err != nil {
		return err
	}
	return install(staged, dir)
}

// install marks staged complete and moves it to dir (replacing an
// incomplete dir left by an earlier attempt).
func install(staged, dir string) error {
	if err := os.WriteFile(filepath.Join(staged, completeMark), nil, 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(staged, dir)
}

// link points link at target, atomically.
func link(target, link string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	tmp := link + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// untgz unpacks a gzipped tarball into dir: regular files, directories and
// symbolic links that stay inside dir; anything else, absolute names, ".."
// and more than max bytes are refused. Every write goes through an
// os.Root on dir, so no entry reaches outside it, even through links an
// earlier entry made.
func untgz(ctx context.Context, file, dir string, max int64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("not a gzipped tarball: %w", err)
	}
	tr := tar.NewReader(zr)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tarball: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." {
			continue
		}
		if path.IsAbs(h.Name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("tarball entry %q leaves the directory", h.Name)
		}
		if err := unpackEntry(root, tr, h, name, &total, max); err != nil {
			return err
		}
	}
}

func unpackEntry(root *os.Root, tr *tar.Reader, h *tar.Header, name string, total *int64, max int64) error {
	outside := func(err error) error {
		if err != nil && strings.Contains(err.Error(), "path escapes from parent") {
			return fmt.Errorf("tarball entry %q leaves the directory: %w", h.Name, err)
		}
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return outside(root.MkdirAll(name, 0o755))
	case tar.TypeReg:
		*total += h.Size
		if *total > max {
			return fmt.Errorf("tarball holds more than %d bytes: %w", max, kubefoundry.ErrLimitExceeded)
		}
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return outside(err)
			}
		}
		out, err := root.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode&0o777)|0o400)
		if err != nil {
			return outside(err)
		}
		_, err = io.Copy(out, io.LimitReader(tr, h.Size))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		target := h.Linkname
		resolved := path.Clean(path.Join(path.Dir(name), target))
		if path.IsAbs(target) || resolved == ".." || strings.HasPrefix(resolved, "../") {
			return fmt.Errorf("tarball entry %q links to %q, outside the directory", h.Name, target)
		}
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return outside(err)
			}
		}
		return outside(root.Symlink(target, name))
	}
	return fmt.Errorf("tarball entry %q is of a type the agent does not unpack (%c)", h.Name, h.Typeflag)
}

// saveSpec writes the applied spec, atomically, so that get_state answers
// from it after a restart.
func (a *Agent) saveSpec(spec *ApplySpec) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.layout.StateDir(), 0o700); err != nil {
		return err
	}
	p := filepath.Join(a.layout.StateDir(), "spec.json")
	if err := os.WriteFile(p+".new", b, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".new", p)
}

func (a *Agent) loadSpec() (*ApplySpec, error) {
	b, err := os.ReadFile(filepath.Join(a.layout.StateDir(), "spec.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s ApplySpec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("agent: the applied spec in %s: %w", a.layout.StateDir(), err)
	}
	return &s, nil
}

// apply prepares spec, points the stable package and job paths at its
// versions, drops jobs it no longer has, and records it.
func (a *Agent) apply(ctx context.Context, spec *ApplySpec) error {
	if err := a.prepare(ctx, spec); err != nil {
		return err
	}
	for _, name := range sortedKeys(spec.Packages) {
		if err := link(a.layout.PackageDir(name, spec.Packages[name].Version), a.layout.PackageLink(name)); err != nil {
			return err
		}
	}
	keep := map[string]bool{}
	for _, j := range spec.Job.Templates {
		keep[j.Name] = true
		if err := link(a.layout.JobDir(j.Name, jobVersion(j, *spec.RenderedTemplatesArchive)), a.layout.JobLink(j.Name)); err != nil {
			return err
		}
		for _, d := range []string{a.layout.LogDir(j.Name), a.layout.RunDir(j.Name)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
	}
	if entries, err := os.ReadDir(filepath.Join(a.layout.Root, "jobs")); err == nil {
		for _, e := range entries {
			if !keep[e.Name()] {
				_ = os.Remove(filepath.Join(a.layout.Root, "jobs", e.Name()))
			}
		}
	}
	if err := a.saveSpec(spec); err != nil {
		return err
	}
	a.keepOnly(spec)
	return nil
}

// keepOnly removes the package and job versions the applied spec no
// longer names, and the links of packages it dropped, as bosh-agent's
// KeepOnly does after an apply, so that deploys do not fill the disk.
// What cannot be removed is logged and left for the next apply.
func (a *Agent) keepOnly(spec *ApplySpec) {
	keep := map[string]bool{}
	for name, p := range spec.Packages {
		keep[a.layout.PackageDir(name, p.Version)] = true
	}
	if spec.RenderedTemplatesArchive != nil {
		for _, j := range spec.Job.Templates {
			keep[a.layout.JobDir(j.Name, jobVersion(j, *spec.RenderedTemplatesArchive))] = true
		}
	}
	prune := func(base string, link func(name string) string, linkKept func(name string) bool) {
		names, _ := os.ReadDir(base)
		for _, n := range names {
			versions, _ := os.ReadDir(filepath.Join(base, n.Name()))
			kept := 0
			for _, v := range versions {
				dir := filepath.Join(base, n.Name(), v.Name())
				if keep[dir] {
					kept++
					continue
				}
				if err := os.RemoveAll(dir); err != nil {
					a.log.Warn("old version not removed", zap.String("dir", dir), zap.Error(err))
				}
			}
			if kept == 0 {
				_ = os.Remove(filepath.Join(base, n.Name()))
				if link != nil && !linkKept(n.Name()) {
					_ = os.Remove(link(n.Name()))
				}
			}
		}
	}
	prune(filepath.Join(a.layout.Root, "data", "packages"), a.layout.PackageLink, func(name string) bool { _, ok := spec.Packages[name]; return ok })
	prune(filepath.Join(a.layout.Root, "data", "jobs"), nil, nil)
}
