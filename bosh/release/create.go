package release

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// Option configures Create, Read, Open and ExtractPackage; each says which
// it applies to.
type Option interface{ apply(*options) }

type options struct {
	name, version string
	alg           Algorithm
	commit        string
	uncommitted   bool
	tempDir       string
	limits        Limits
	noCompression bool
	level         int
	levelSet      bool
}

// gzipLevel is the gzip level of the tarballs Create and Compile write.
func (o options) gzipLevel() int {
	if o.levelSet {
		return o.level
	}
	return gzip.DefaultCompression
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithName sets the release's name (Create). Without it Create takes
// final_name (or name) from the directory's config/final.yml.
func WithName(name string) Option { return optionFunc(func(o *options) { o.name = name }) }

// WithVersion sets the release's version (Create), such as "1.10". Without
// it the release is a dev release versioned by DevVersion.
func WithVersion(version string) Option {
	return optionFunc(func(o *options) { o.version = version })
}

// WithAlgorithm sets the digest algorithm of fingerprints and tarball
// digests (Create): SHA1, the default, or SHA256 as bosh create-release
// --sha2.
func WithAlgorithm(a Algorithm) Option { return optionFunc(func(o *options) { o.alg = a }) }

// WithCommit records the release directory's commit and whether it had
// uncommitted changes in release.MF (Create); without it commit_hash is
// empty.
func WithCommit(hash string, uncommitted bool) Option {
	return optionFunc(func(o *options) { o.commit, o.uncommitted = hash, uncommitted })
}

// WithTempDir sets where Create builds the job and package tarballs
// before it writes the release tarball; os.TempDir() by default.
func WithTempDir(dir string) Option { return optionFunc(func(o *options) { o.tempDir = dir }) }

// WithLimits sets the limits of Read, Open and ExtractPackage.
func WithLimits(l Limits) Option { return optionFunc(func(o *options) { o.limits = l }) }

// WithNoCompression makes Create write job, package and license tarballs
// as plain tar, recording no_compression in release.MF, as bosh
// create-release --no-compression does.
func WithNoCompression() Option { return optionFunc(func(o *options) { o.noCompression = true }) }

// WithCompressionLevel sets the gzip level (compress/gzip's, from
// gzip.NoCompression to gzip.BestCompression) of every gzipped tarball
// Create and Compile write; gzip.DefaultCompression by default.
// gzip.NoCompression still writes gzip (stored blocks), which every BOSH
// agent reads, at almost no CPU: for packages of binaries, hundreds of
// megabytes that compress little and would take minutes of compression
// (many more under the race detector).
func WithCompressionLevel(level int) Option {
	return optionFunc(func(o *options) { o.level, o.levelSet = level, true })
}

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	o.limits = o.limits.withDefaults()
	return o
}

// srcFile is a file of the release directory that goes into a job,
// package or license tarball.
type srcFile struct {
	rel         string // path in the tarball and the fingerprint
	abs         string
	exec        bool
	excludeMode bool
	size        int64
	digest      string
}

// built is a job, package or license ready to be tarred.
type built struct {
	name        string
	files       []srcFile
	extra       []string // fingerprint chunks: a package's dependencies
	fingerprint string
	tgz         string // temp file
	digest      string
	size        int64
	packages    []string // a job's
}

// Create makes a release tarball from the release directory dir and
// writes it to out, returning its release.MF. It reads what bosh
// create-release reads:
//
//	jobs/<name>/spec, monit, properties_schema.json, templates/...
//	packages/<name>/spec, packaging
//	src/, blobs/          the files package specs' globs select (src/ first)
//	LICENSE*, NOTICE*     the license, when there is one
//	config/final.yml      final_name, when WithName is not given
//
// and computes fingerprints as bosh-cli does (see Fingerprint), so the
// same sources give the same fingerprints as `bosh create-release`.
// Without WithVersion the version is DevVersion's. The output is
// byte-for-byte the same for the same directory, options and Go
// version: entries in a fixed order (release.MF, jobs/ and packages/
// sorted by name, license.tgz, then LICENSE and NOTICE files), the epoch
// as every mtime, uid and gid 0, modes 0644 or 0755 (by the executable
// bit) and 0755 for directories, no names or times in gzip headers.
//
// Every problem with the directory is reported at once, as a
// *kubefoundry.ValidationError naming each file (and its line in a spec):
// unknown keys and bad values in specs, a job directory whose spec names
// another job, templates the spec names that are missing, a package
// without packaging, globs that match no file, unknown dependencies and
// dependency cycles, jobs needing unknown packages, symlinks selected
// into a package. A package's pre_packaging script is not run: it is
// reported as unsupported, and so is a vendored package's spec.lock.
func Create(ctx context.Context, dir string, out io.Writer, opts ...Option) (*Manifest, error) {
	o := buildOptions(opts)
	c := &creator{dir: dir, o: o, v: &kubefoundry.ValidationError{Object: "release directory " + dir}}
	name := c.releaseName()
	jobs := c.jobs()
	pkgs := c.packages()
	lic := c.license()
	known := map[string]bool{}
	deps := map[string][]string{}
	for _, p := range pkgs {
		known[p.name] = true
		deps[p.name] = p.extra
	}
	for _, p := range pkgs {
		for i, d := range p.extra {
			if !known[d] {
				c.fail(fmt.Sprintf("packages/%s/spec", p.name), fmt.Sprintf("/dependencies/%d", i), d, 0, "the release has no package of this name")
			}
		}
	}
	for _, cy := range cycles(deps) {
		c.fail("packages/"+cy[0]+"/spec", "/dependencies", strings.Join(cy, " -> "), 0, "packages depend on each other in a cycle")
	}
	for _, j := range jobs {
		for i, p := range j.packages {
			if !known[p] {
				c.fail(fmt.Sprintf("jobs/%s/spec", j.name), fmt.Sprintf("/packages/%d", i), p, 0, "the release has no package of this name")
			}
		}
	}
	if err := c.v.Err(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	tmp, err := os.MkdirTemp(o.tempDir, "bosh-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	all := append(append([]*built{}, jobs...), pkgs...)
	if lic != nil {
		all = append(all, lic)
	}
	for i, b := range all {
		entries := make([]FingerprintEntry, 0, len(b.files))
		for k := range b.files {
			f := &b.files[k]
			st, err := os.Stat(f.abs)
			if err != nil {
				return nil, err
			}
			fh, err := os.Open(f.abs)
			if err != nil {
				return nil, err
			}
			f.digest, err = o.alg.digestReader(&ctxReader{ctx: ctx, r: fh})
			fh.Close()
			if err != nil {
				return nil, err
			}
			f.size = st.Size()
			e := FingerprintEntry{Path: f.rel, Digest: f.digest}
			if b == lic {
				e.Path = path.Base(f.rel)
			}
			if !f.excludeMode {
				e.Mode = ModeRegular
				if f.exec {
					e.Mode = ModeExecutable
				}
			}
			entries = append(entries, e)
		}
		b.fingerprint = Fingerprint(o.alg, entries, b.extra)
		files := make([]tarFile, len(b.files))
		for k, f := range b.files {
			files[k] = tarFile{name: f.rel, exec: f.exec, src: f.abs, size: f.size}
		}
		b.tgz = filepath.Join(tmp, fmt.Sprintf("%d.tgz", i))
		if b.digest, b.size, err = writeTarFile(ctx, b.tgz, withParents(files), o.noCompression, o.gzipLevel(), o.alg); err != nil {
			return nil, err
		}
	}

	m := &Manifest{Name: name, Version: o.version, CommitHash: o.commit, UncommittedChanges: o.uncommitted, NoCompression: o.noCompression}
	for _, j := range jobs {
		m.Jobs = append(m.Jobs, JobRef{Name: j.name, Version: j.fingerprint, Fingerprint: j.fingerprint, SHA1: j.digest, Packages: j.packages})
	}
	for _, p := range pkgs {
		m.Packages = append(m.Packages, PackageRef{Name: p.name, Version: p.fingerprint, Fingerprint: p.fingerprint, SHA1: p.digest, Dependencies: p.extra})
	}
	if lic != nil {
		m.License = &LicenseRef{Version: lic.fingerprint, Fingerprint: lic.fingerprint, SHA1: lic.digest}
	}
	if m.Version == "" {
		m.Version = DevVersion(m)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	mf, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	entries := []tarFile{{name: "release.MF", data: mf}}
	if len(jobs) > 0 {
		entries = append(entries, tarFile{name: "jobs/", dir: true})
		for _, j := range jobs {
			entries = append(entries, tarFile{name: "jobs/" + j.name + ".tgz", src: j.tgz, size: j.size})
		}
	}
	if len(pkgs) > 0 {
		entries = append(entries, tarFile{name: "packages/", dir: true})
		for _, p := range pkgs {
			entries = append(entries, tarFile{name: "packages/" + p.name + ".tgz", src: p.tgz, size: p.size})
		}
	}
	if lic != nil {
		entries = append(entries, tarFile{name: "license.tgz", src: lic.tgz, size: lic.size})
		for _, f := range lic.files {
			entries = append(entries, tarFile{name: f.rel, src: f.abs, size: f.size})
		}
	}
	if err := writeTar(ctx, out, entries, false, o.gzipLevel()); err != nil {
		return nil, err
	}
	return m, nil
}

// DevVersion is the version Create gives a release made without
// WithVersion: "0+dev." and the first 12 hex digits of the SHA-1 of the
// lines "job <name> <fingerprint>", "package <name> <fingerprint>" (in
// the manifest's order) and "license <fingerprint>", each ending in a
// newline. The same sources give the same version, and a change to any
// job, package or the license gives another. (bosh create-release
// numbers dev releases 0+dev.1, 0+dev.2… from what it made before, which
// a function of the sources alone cannot.)
func DevVersion(m *Manifest) string {
	var b strings.Builder
	for _, j := range m.Jobs {
		fmt.Fprintf(&b, "job %s %s\n", j.Name, j.Fingerprint)
	}
	for _, p := range m.Packages {
		fmt.Fprintf(&b, "package %s %s\n", p.Name, p.Fingerprint)
	}
	if m.License != nil {
		fmt.Fprintf(&b, "license %s\n", m.License.Fingerprint)
	}
	return "0+dev." + SHA1.Digest([]byte(b.String()))[:12]
}

func writeTarFile(ctx context.Context, name string, entries []tarFile, plain bool, level int, alg Algorithm) (string, int64, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	h := alg.new()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = writeTar(ctx, cw, entries, plain, level)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	return alg.format(h.Sum(nil)), cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// creator gathers a release directory's jobs, packages and license, and
// every problem with them.
type creator struct {
	dir string
	o   options
	v   *kubefoundry.ValidationError
	// the files of src/ and blobs/, by relative path
	src, blobs map[string]fs.FileMode
}

// fail records a problem with file (relative to the release directory)
// at field (a path in the file's YAML, or "").
func (c *creator) fail(file, field, value string, line int, format string, args ...any) {
	c.v.Problems = append(c.v.Problems, kubefoundry.FieldError{Field: file + field, Value: value, Reason: fmt.Sprintf(format, args...), Line: line})
}

// merge records the problems of a spec's parse error under its file.
func (c *creator) merge(file string, err error) {
	var ve *kubefoundry.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			p.Field = file + p.Field
			c.v.Problems = append(c.v.Problems, p)
		}
		return
	}
	c.fail(file, "", "", 0, "%v", err)
}

func (c *creator) releaseName() string {
	if c.o.name != "" {
		if !validName(c.o.name) {
			c.fail("WithName", "", c.o.name, 0, "a release name: letters, digits, '-', '_' and '.'")
		}
		return c.o.name
	}
	data, err := os.ReadFile(filepath.Join(c.dir, "config", "final.yml"))
	if err != nil {
		c.fail("config/final.yml", "", "", 0, "no release name: give WithName, or final_name in config/final.yml (%v)", err)
		return ""
	}
	var final struct {
		FinalName string `yaml:"final_name"`
		Name      string `yaml:"name"`
	}
	if err := yaml.Unmarshal(data, &final); err != nil {
		c.fail("config/final.yml", "", "", yamltree.ErrorLine(err.Error()), "not YAML: %v", err)
		return ""
	}
	name := final.FinalName
	if name == "" {
		name = final.Name
	}
	if !validName(name) {
		c.fail("config/final.yml", "/final_name", name, 0, "a release name is required: letters, digits, '-', '_' and '.'")
	}
	return name
}

// subdirs lists the directories under dir/kind, sorted; a missing one is
// empty.
func (c *creator) subdirs(kind string) []string {
	entries, err := os.ReadDir(filepath.Join(c.dir, kind))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.fail(kind, "", "", 0, "%v", err)
		}
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// regular stats a file that must be a regular file (through symlinks,
// as bosh-cli follows them for jobs); it reports whether it is, and
// whether the link or file itself has an executable bit, as bosh-cli
// takes the mode from lstat.
func regular(p string) (exists, ok, exec bool) {
	li, err := os.Lstat(p)
	if err != nil {
		return false, false, false
	}
	st, err := os.Stat(p)
	if err != nil {
		return true, false, false
	}
	return true, st.Mode().IsRegular(), li.Mode()&0o111 != 0
}

func (c *creator) jobs() []*built {
	var out []*built
	for _, name := range c.subdirs("jobs") {
		jdir := filepath.Join(c.dir, "jobs", name)
		specFile := "jobs/" + name + "/spec"
		data, err := os.ReadFile(filepath.Join(jdir, "spec"))
		if err != nil {
			c.fail(specFile, "", "", 0, "a job directory needs its spec: %v", err)
			continue
		}
		spec, lines, err := parseJobSpec(data)
		if err != nil {
			c.merge(specFile, err)
			if spec == nil {
				continue
			}
		}
		if spec.Name != name && validName(spec.Name) {
			c.fail(specFile, "/name", spec.Name, lines["/name"], "the job's directory is jobs/%s: the names must agree", name)
		}
		_, _, specExec := regular(filepath.Join(jdir, "spec"))
		b := &built{name: name, packages: spec.Packages}
		if b.packages == nil {
			b.packages = []string{}
		}
		b.files = append(b.files, srcFile{rel: "job.MF", abs: filepath.Join(jdir, "spec"), exec: specExec})
		for _, extra := range []string{"monit", "properties_schema.json"} {
			p := filepath.Join(jdir, extra)
			exists, ok, exec := regular(p)
			switch {
			case ok:
				b.files = append(b.files, srcFile{rel: extra, abs: p, exec: exec})
			case exists:
				c.fail("jobs/"+name+"/"+extra, "", "", 0, "must be a regular file")
			}
		}
		for _, src := range sortedKeys(spec.Templates) {
			if relPathProblem(src) != "" {
				continue // reported by the spec's checks
			}
			p := filepath.Join(jdir, "templates", filepath.FromSlash(src))
			exists, ok, exec := regular(p)
			field := yamltree.Join("/templates", src)
			switch {
			case !exists:
				c.fail(specFile, field, src, lines[field], "the spec names this template, but jobs/%s/templates/%s is missing", name, src)
			case !ok:
				c.fail(specFile, field, src, lines[field], "jobs/%s/templates/%s is not a regular file", name, src)
			default:
				b.files = append(b.files, srcFile{rel: "templates/" + path.Clean(src), abs: p, exec: exec})
			}
		}
		out = append(out, b)
	}
	return out
}

// listFiles lists the files under dir/kind by slash-separated relative
// path, not following symlinked directories (a symlink is listed as
// itself, as bosh-cli's globs see it).
func (c *creator) listFiles(kind string) map[string]fs.FileMode {
	out := map[string]fs.FileMode{}
	root := filepath.Join(c.dir, kind)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = info.Mode()
		return nil
	})
	if err != nil {
		c.fail(kind, "", "", 0, "%v", err)
	}
	return out
}

func (c *creator) packages() []*built {
	names := c.subdirs("packages")
	if len(names) == 0 {
		return nil
	}
	c.src, c.blobs = c.listFiles("src"), c.listFiles("blobs")
	var out []*built
	for _, name := range names {
		pdir := filepath.Join(c.dir, "packages", name)
		specFile := "packages/" + name + "/spec"
		data, err := os.ReadFile(filepath.Join(pdir, "spec"))
		if err != nil {
			c.fail(specFile, "", "", 0, "a package directory needs its spec: %v", err)
			continue
		}
		spec, lines, err := parsePackageSpec(data)
		if err != nil {
			c.merge(specFile, err)
			if spec == nil {
				continue
			}
		}
		if spec.Name != name && validName(spec.Name) {
			c.fail(specFile, "/name", spec.Name, lines["/name"], "the package's directory is packages/%s: the names must agree", name)
		}
		for _, unsupported := range []struct{ file, why string }{
			{"pre_packaging", "pre_packaging scripts are not run: do their work in packaging, or before creating the release"},
			{"spec.lock", "vendored packages (spec.lock) are not supported"},
		} {
			if _, err := os.Lstat(filepath.Join(pdir, unsupported.file)); err == nil {
				c.fail("packages/"+name+"/"+unsupported.file, "", "", 0, "%s", unsupported.why)
			}
		}
		b := &built{name: name, extra: spec.Dependencies}
		packaging := filepath.Join(pdir, "packaging")
		switch exists, ok, exec := regular(packaging); {
		case !exists:
			c.fail("packages/"+name+"/packaging", "", "", 0, "a package needs its packaging script, and it is missing")
		case !ok:
			c.fail("packages/"+name+"/packaging", "", "", 0, "must be a regular file")
		default:
			b.files = append(b.files, srcFile{rel: "packaging", abs: packaging, exec: exec, excludeMode: true})
		}
		selected := map[string]srcFile{}
		for i, g := range spec.Files {
			field := fmt.Sprintf("/files/%d", i)
			if relPathProblem(g) != "" || checkGlob(g) != nil {
				continue // reported by the spec's checks
			}
			found := false
			for _, root := range []struct {
				kind  string
				files map[string]fs.FileMode
			}{{"src", c.src}, {"blobs", c.blobs}} {
				for _, rel := range sortedKeys(root.files) {
					if !globMatch(g, rel) {
						continue
					}
					found = true
					if _, dup := selected[rel]; dup {
						continue
					}
					mode := root.files[rel]
					if mode&fs.ModeSymlink != 0 {
						c.fail(specFile, field, g, lines[field], "selects %s/%s, a symlink: symlinks are not supported in packages", root.kind, rel)
						continue
					}
					if !mode.IsRegular() {
						c.fail(specFile, field, g, lines[field], "selects %s/%s, which is not a regular file", root.kind, rel)
						continue
					}
					selected[rel] = srcFile{rel: rel, abs: filepath.Join(c.dir, root.kind, filepath.FromSlash(rel)), exec: mode&0o111 != 0}
				}
			}
			if !found {
				c.fail(specFile, field, g, lines[field], "matches no file under src/ or blobs/")
			}
		}
		for _, g := range spec.ExcludedFiles {
			for rel := range selected {
				if globMatch(g, rel) {
					delete(selected, rel)
				}
			}
		}
		for _, special := range []string{"packaging", "pre_packaging"} {
			if _, ok := selected[special]; ok {
				c.fail(specFile, "/files", special, lines["/files"], "the files select src/%s or blobs/%s, which would clash with the package's own %s", special, special, special)
				delete(selected, special)
			}
		}
		for _, rel := range sortedKeys(selected) {
			b.files = append(b.files, selected[rel])
		}
		out = append(out, b)
	}
	return out
}

func (c *creator) license() *built {
	var files []srcFile
	for _, pattern := range []string{"LICENSE*", "NOTICE*"} {
		matches, err := filepath.Glob(filepath.Join(c.dir, pattern))
		if err != nil {
			c.fail(pattern, "", "", 0, "%v", err)
			continue
		}
		slices.Sort(matches)
		for _, m := range matches {
			base := filepath.Base(m)
			exists, ok, _ := regular(m)
			if exists && !ok {
				c.fail(base, "", "", 0, "a license file must be a regular file")
				continue
			}
			files = append(files, srcFile{rel: base, abs: m, excludeMode: true})
		}
	}
	if len(files) == 0 {
		return nil
	}
	return &built{name: "license", files: files}
}
