package release

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha1" //nolint:gosec // release.MF's digests are SHA-1 unless sha256: prefixed
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kubefoundry/kubefoundry"
)

// Release is a release tarball read and verified by Read or Open: its
// release.MF, and what each job, package and the license holds.
type Release struct {
	Manifest Manifest
	// Jobs, Packages and CompiledPackages are in release.MF's order.
	Jobs             []*Job
	Packages         []*Package
	CompiledPackages []*Package
	License          *License // nil when the release has none

	path string // the tarball, when Open read it
	o    options
}

// Job is a job of a release: its job.MF and the files it renders from.
type Job struct {
	Name string
	Spec JobSpec
	// Manifest is job.MF as written (the job's spec file).
	Manifest []byte
	Monit    []byte // nil when the job has no monit file
	// PropertiesSchema is properties_schema.json; nil when absent.
	PropertiesSchema []byte
	// Templates holds each template by its key in Spec.Templates (its
	// path under templates/).
	Templates map[string][]byte
	// Files lists every file of the job's tarball, sorted by path.
	Files []FileInfo
}

// Package is a package of a release. Its files stay in the tarball:
// ExtractPackage unpacks them.
type Package struct {
	Name     string
	Compiled bool
	// Files lists the package's files (packaging among them for a source
	// package), sorted by path.
	Files []FileInfo
}

// License is a release's license.tgz: its LICENSE and NOTICE files by
// name.
type License struct {
	Files map[string][]byte
}

// FileInfo is a file in a job, package or license tarball.
type FileInfo struct {
	Path string      // slash-separated, relative ("templates/ctl.erb", "packaging")
	Mode fs.FileMode // 0644, or 0755 when the tarball marks it executable
	Size int64
}

// Job returns the job of that name, or nil.
func (r *Release) Job(name string) *Job {
	for _, j := range r.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// Package returns the (source or compiled) package of that name, or nil.
func (r *Release) Package(name string) *Package {
	for _, p := range append(slices.Clone(r.Packages), r.CompiledPackages...) {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Open reads and verifies the release tarball at path, as Read does, and
// keeps the path so that ExtractPackage can unpack packages from it.
func Open(ctx context.Context, path string, opts ...Option) (*Release, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := read(ctx, f, path, buildOptions(opts))
	if err != nil {
		return nil, err
	}
	r.path = path
	return r, nil
}

// Read reads a release tarball from r in one pass and verifies it:
//
//   - every entry is a regular file or a directory at a name inside the
//     tarball: links (symbolic or hard, wherever they point), devices,
//     FIFOs, absolute names and names with ".." are refused, in the
//     release tarball and in each job, package and license tarball;
//   - what it unpacks stays within the Limits (WithLimits), else an error
//     wraps kubefoundry.ErrLimitExceeded;
//   - release.MF parses (ParseManifest);
//   - each job, package, compiled package and license tarball has the
//     digest release.MF gives it (hex SHA-1 or sha256:<hex>); a mismatch
//     names the entry and both digests;
//   - each tarball release.MF lists is there, and the tarball holds no
//     other job, package or file;
//   - each job's job.MF parses (ParseJobSpec), names the job release.MF
//     lists it as, lists the packages release.MF gives the job (when it
//     gives them), and names exactly the templates its tarball holds;
//   - each source package has its packaging script.
//
// The problems of the last four kinds come at once, as a
// *kubefoundry.ValidationError; the others stop the read. Jobs and the
// license are held in memory; packages are listed, and unpacked by
// ExtractPackage on a release that Open read.
func Read(ctx context.Context, r io.Reader, opts ...Option) (*Release, error) {
	return read(ctx, r, "release tarball", buildOptions(opts))
}

// digests is an inner tarball's digests, and its size.
type digests struct {
	sha1, sha256 string
	size         int64
}

func (d digests) matches(want string) bool {
	if strings.HasPrefix(want, "sha256:") {
		return want == d.sha256
	}
	return strings.EqualFold(want, d.sha1)
}

func (d digests) in(want string) string {
	if strings.HasPrefix(want, "sha256:") {
		return d.sha256
	}
	return d.sha1
}

// hashing reads r through SHA-1 and SHA-256.
type hashing struct {
	r    io.Reader
	h1   hashWriter
	h256 hashWriter
	n    int64
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newHashing(r io.Reader) *hashing {
	return &hashing{r: r, h1: sha1.New(), h256: sha256.New()} //nolint:gosec
}

func (h *hashing) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h1.Write(p[:n])
	h.h256.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashing) digests() digests {
	return digests{sha1: hex.EncodeToString(h.h1.Sum(nil)), sha256: "sha256:" + hex.EncodeToString(h.h256.Sum(nil)), size: h.n}
}

// inner is a job, package or license tarball as read.
type inner struct {
	entry   string // its name in the release tarball
	digests digests
	files   []FileInfo
	data    map[string][]byte // jobs' and the license's file contents
}

func read(ctx context.Context, r io.Reader, where string, o options) (*Release, error) {
	b := &budget{Limits: o.limits}
	gzr, closeGz, err := maybeGzip(bufio.NewReader(r))
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", where, err, kubefoundry.ErrInvalid)
	}
	defer closeGz()
	var mf []byte
	jobs := map[string]*inner{}
	pkgs := map[string]*inner{}
	compiled := map[string]*inner{}
	var lic *inner
	err = walkTar(ctx, gzr, where, b, func(h *tar.Header, name string, content io.Reader) error {
		if content == nil { // a directory
			switch name {
			case "jobs", "packages", "compiled_packages":
				return nil
			}
			return fmt.Errorf("%s: unexpected directory %q (a release tarball holds release.MF, jobs/, packages/, compiled_packages/, license.tgz, LICENSE and NOTICE files): %w", where, name, kubefoundry.ErrInvalid)
		}
		dir, base := path.Split(name)
		switch {
		case name == "release.MF":
			if h.Size > MaxYAMLSize {
				return fmt.Errorf("%s: release.MF is %d bytes, more than %d: %w", where, h.Size, MaxYAMLSize, kubefoundry.ErrLimitExceeded)
			}
			if err := b.hold(where+": release.MF", h.Size); err != nil {
				return err
			}
			mf, err = io.ReadAll(content)
			return err
		case dir == "jobs/" && strings.HasSuffix(base, ".tgz"):
			in, err := readInner(ctx, content, where, name, b, true)
			jobs[strings.TrimSuffix(base, ".tgz")] = in
			return err
		case dir == "packages/" && strings.HasSuffix(base, ".tgz"):
			in, err := readInner(ctx, content, where, name, b, false)
			pkgs[strings.TrimSuffix(base, ".tgz")] = in
			return err
		case dir == "compiled_packages/" && strings.HasSuffix(base, ".tgz"):
			in, err := readInner(ctx, content, where, name, b, false)
			compiled[strings.TrimSuffix(base, ".tgz")] = in
			return err
		case name == "license.tgz":
			lic, err = readInner(ctx, content, where, name, b, true)
			return err
		case dir == "" && (strings.HasPrefix(base, "LICENSE") || strings.HasPrefix(base, "NOTICE")):
			_, err := io.Copy(io.Discard, content) // license.tgz holds them too
			return err
		}
		return fmt.Errorf("%s: unexpected entry %q (a release tarball holds release.MF, jobs/, packages/, compiled_packages/, license.tgz, LICENSE and NOTICE files): %w", where, name, kubefoundry.ErrInvalid)
	})
	if err != nil {
		return nil, err
	}
	if mf == nil {
		return nil, fmt.Errorf("%s: no release.MF: %w", where, kubefoundry.ErrInvalid)
	}
	m, err := ParseManifest(mf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	rel := &Release{Manifest: *m, o: o}
	v := &kubefoundry.ValidationError{Object: where}
	check := func(entry string, in *inner, want string) bool {
		if in == nil {
			v.Add(entry, "", "release.MF lists it, but the tarball does not hold it")
			return false
		}
		if !in.digests.matches(want) {
			v.Add(entry, "", "digest mismatch: the tarball's is %s, release.MF says %s", in.digests.in(want), want)
			return false
		}
		return true
	}
	for _, ref := range m.Jobs {
		entry := "jobs/" + ref.Name + ".tgz"
		in := jobs[ref.Name]
		delete(jobs, ref.Name)
		if !check(entry, in, ref.SHA1) {
			continue
		}
		if j := verifyJob(v, entry, ref, in); j != nil {
			rel.Jobs = append(rel.Jobs, j)
		}
	}
	for _, ref := range m.Packages {
		entry := "packages/" + ref.Name + ".tgz"
		in := pkgs[ref.Name]
		delete(pkgs, ref.Name)
		if !check(entry, in, ref.SHA1) {
			continue
		}
		if !slices.ContainsFunc(in.files, func(f FileInfo) bool { return f.Path == "packaging" }) {
			v.Add(entry, "", "a source package needs its packaging script, and the tarball has none")
		}
		rel.Packages = append(rel.Packages, &Package{Name: ref.Name, Files: in.files})
	}
	for _, ref := range m.CompiledPackages {
		entry := "compiled_packages/" + ref.Name + ".tgz"
		in := compiled[ref.Name]
		delete(compiled, ref.Name)
		if !check(entry, in, ref.SHA1) {
			continue
		}
		rel.CompiledPackages = append(rel.CompiledPackages, &Package{Name: ref.Name, Compiled: true, Files: in.files})
	}
	if m.License != nil {
		if check("license.tgz", lic, m.License.SHA1) {
			rel.License = &License{Files: lic.data}
		}
	} else if lic != nil {
		v.Add("license.tgz", "", "the tarball holds it, but release.MF lists no license")
	}
	for _, extra := range []struct {
		dir string
		m   map[string]*inner
	}{{"jobs", jobs}, {"packages", pkgs}, {"compiled_packages", compiled}} {
		for _, name := range sortedKeys(extra.m) {
			v.Add(extra.dir+"/"+name+".tgz", "", "the tarball holds it, but release.MF does not list it")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return rel, nil
}

// readInner reads a job, package or license tarball: its digests, its
// files' names, modes and sizes, and (keep) their contents.
func readInner(ctx context.Context, content io.Reader, where, entry string, b *budget, keep bool) (*inner, error) {
	hr := newHashing(content)
	in := &inner{entry: entry}
	if keep {
		in.data = map[string][]byte{}
	}
	at := where + ": " + entry
	r, closeGz, err := maybeGzip(hr)
	if err != nil {
		return nil, fmt.Errorf("%s: not a tar or gzipped tar: %v: %w", at, err, kubefoundry.ErrInvalid)
	}
	defer closeGz()
	err = walkTar(ctx, r, at, b, func(h *tar.Header, name string, r io.Reader) error {
		if r == nil {
			return nil
		}
		in.files = append(in.files, FileInfo{Path: name, Mode: fileMode(h), Size: h.Size})
		if !keep {
			_, err := io.Copy(io.Discard, r)
			return err
		}
		if err := b.hold(at+": "+name, h.Size); err != nil {
			return err
		}
		data, err := io.ReadAll(r)
		in.data[name] = data
		return err
	})
	if err != nil {
		return in, err
	}
	// The digest covers every byte of the entry, past the tar's end too.
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return in, err
	}
	in.digests = hr.digests()
	slices.SortFunc(in.files, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return in, nil
}

// verifyJob checks a job tarball against release.MF and builds its Job.
func verifyJob(v *kubefoundry.ValidationError, entry string, ref JobRef, in *inner) *Job {
	mf, ok := in.data["job.MF"]
	if !ok {
		v.Add(entry, "", "no job.MF in the job's tarball")
		return nil
	}
	spec, err := ParseJobSpec(mf)
	if err != nil {
		var ve *kubefoundry.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				p.Field = entry + "/job.MF" + p.Field
				v.Problems = append(v.Problems, p)
			}
		} else {
			v.Add(entry+"/job.MF", "", "%v", err)
		}
		return nil
	}
	n := len(v.Problems)
	if spec.Name != ref.Name {
		v.Add(entry+"/job.MF/name", spec.Name, "release.MF lists the job as %q", ref.Name)
	}
	if ref.Packages != nil {
		a, b := slices.Clone(ref.Packages), slices.Clone(spec.Packages)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			v.Add(entry+"/job.MF/packages", strings.Join(spec.Packages, ", "), "release.MF gives the job the packages %s", strings.Join(ref.Packages, ", "))
		}
	}
	j := &Job{Name: ref.Name, Spec: *spec, Manifest: mf, Monit: in.data["monit"], PropertiesSchema: in.data["properties_schema.json"], Files: in.files}
	named := map[string]bool{}
	for _, src := range sortedKeys(spec.Templates) {
		p := "templates/" + path.Clean(src)
		named[p] = true
		data, ok := in.data[p]
		if !ok {
			v.Add(entry+"/job.MF/templates/"+src, src, "job.MF names this template, but the tarball has no %s", p)
			continue
		}
		if j.Templates == nil {
			j.Templates = map[string][]byte{}
		}
		j.Templates[src] = data
	}
	for _, f := range in.files {
		switch {
		case f.Path == "job.MF" || f.Path == "monit" || f.Path == "properties_schema.json" || named[f.Path]:
		case strings.HasPrefix(f.Path, "templates/"):
			v.Add(entry+"/"+f.Path, "", "the job's tarball holds this template, but job.MF does not name it")
		default:
			v.Add(entry+"/"+f.Path, "", "unexpected file in a job's tarball (it holds job.MF, monit, properties_schema.json and templates/)")
		}
	}
	if len(v.Problems) > n {
		return nil
	}
	return j
}

// ExtractPackage unpacks the files of the release's package name into
// dir (created if missing, with its parents), checking the package
// tarball's digest against release.MF again as it reads, and the same
// safety rules and limits as Open. On any error, what it wrote is
// removed. Files are written 0644, or 0755 when the tarball marks them
// executable, and never over an existing file. Only a release that Open
// read can extract: one read from a stream by Read has no tarball to
// return to.
func (r *Release) ExtractPackage(ctx context.Context, name, dir string) (err error) {
	want, entry, err := r.packageEntry(name, false, "extract")
	if err != nil {
		return err
	}
	f, err := os.Open(r.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var created []string
	defer func() {
		if err != nil {
			for i := len(created) - 1; i >= 0; i-- {
				_ = os.Remove(created[i])
			}
		}
	}()
	b := &budget{Limits: r.o.limits}
	gzr, closeGz, err := maybeGzip(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("%s: %v: %w", r.path, err, kubefoundry.ErrInvalid)
	}
	defer closeGz()
	found := false
	err = walkTar(ctx, gzr, r.path, b, func(h *tar.Header, n string, content io.Reader) error {
		if n != entry || content == nil {
			return nil
		}
		found = true
		hr := newHashing(content)
		at := r.path + ": " + entry
		pr, closeInner, err := maybeGzip(hr)
		if err != nil {
			return fmt.Errorf("%s: %v: %w", at, err, kubefoundry.ErrInvalid)
		}
		defer closeInner()
		err = walkTar(ctx, pr, at, b, func(h *tar.Header, n string, content io.Reader) error {
			p := filepath.Join(dir, filepath.FromSlash(n))
			if content == nil {
				return mkdirs(dir, n, &created)
			}
			if err := mkdirs(dir, path.Dir(n), &created); err != nil {
				return err
			}
			out, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode(h))
			if err != nil {
				return err
			}
			created = append(created, p)
			_, err = io.Copy(out, content)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, hr); err != nil {
			return err
		}
		if d := hr.digests(); !d.matches(want) {
			return fmt.Errorf("%s: digest mismatch: the tarball's is %s, release.MF says %s: %w", at, d.in(want), want, kubefoundry.ErrInvalid)
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%s: no %s: %w", r.path, entry, kubefoundry.ErrNotFound)
	}
	return err
}

// packageEntry is the tarball entry of the package name and the digest
// release.MF gives it: its source package, else its compiled one (the
// other way round with compiledFirst). A release read from a stream has
// no tarball to read it from: verb says what the caller could not do.
func (r *Release) packageEntry(name string, compiledFirst bool, verb string) (want, entry string, err error) {
	source := func() {
		for _, p := range r.Manifest.Packages {
			if p.Name == name && want == "" {
				want, entry = p.SHA1, "packages/"+name+".tgz"
			}
		}
	}
	compiled := func() {
		for _, p := range r.Manifest.CompiledPackages {
			if p.Name == name && want == "" {
				want, entry = p.SHA1, "compiled_packages/"+name+".tgz"
			}
		}
	}
	if compiledFirst {
		compiled()
		source()
	} else {
		source()
		compiled()
	}
	if entry == "" {
		return "", "", fmt.Errorf("package %q: %w", name, kubefoundry.ErrNotFound)
	}
	if r.path == "" {
		return "", "", fmt.Errorf("package %q: the release was read from a stream; Open it from its file to %s packages: %w", name, verb, kubefoundry.ErrInvalid)
	}
	return want, entry, nil
}

// CopyPackage writes the package's tarball (packages/<name>.tgz, or
// compiled_packages/<name>.tgz for a compiled package) to w as the release
// holds it, checking its digest against release.MF as it copies: on a
// mismatch the error is kubefoundry.ErrInvalid and what was written must
// be thrown away. As with ExtractPackage, only a release that Open read
// can copy.
func (r *Release) CopyPackage(ctx context.Context, name string, w io.Writer) error {
	want, entry, err := r.packageEntry(name, true, "copy")
	if err != nil {
		return err
	}
	f, err := os.Open(r.path)
	if err != nil {
		return err
	}
	defer f.Close()
	gzr, closeGz, err := maybeGzip(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("%s: %v: %w", r.path, err, kubefoundry.ErrInvalid)
	}
	defer closeGz()
	found := false
	b := &budget{Limits: r.o.limits}
	err = walkTar(ctx, gzr, r.path, b, func(h *tar.Header, n string, content io.Reader) error {
		if n != entry || content == nil {
			return nil
		}
		found = true
		hr := newHashing(content)
		if _, err := io.Copy(w, hr); err != nil {
			return err
		}
		if d := hr.digests(); !d.matches(want) {
			return fmt.Errorf("%s: %s: digest mismatch: the tarball's is %s, release.MF says %s: %w", r.path, entry, d.in(want), want, kubefoundry.ErrInvalid)
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("%s: no %s: %w", r.path, entry, kubefoundry.ErrNotFound)
	}
	return err
}

// mkdirs makes the directories of rel under dir, one by one, recording
// those it made; it never follows a symlink it did not make (it makes
// none), since each is checked to be a directory.
func mkdirs(dir, rel string, created *[]string) error {
	if rel == "." || rel == "" {
		return nil
	}
	p := dir
	for _, seg := range strings.Split(rel, "/") {
		p = filepath.Join(p, seg)
		st, err := os.Lstat(p)
		switch {
		case err == nil && st.IsDir():
			continue
		case err == nil:
			return fmt.Errorf("%s exists and is not a directory", p)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		*created = append(*created, p)
	}
	return nil
}
