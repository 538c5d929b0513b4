package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const demo = "testdata/release"

func TestCreateThenRead(t *testing.T) {
	ctx := context.Background()
	dir := copyDir(t, demo)
	data, m := create(t, dir)

	assert.Equal(t, "kf-demo", m.Name)
	assert.Regexp(t, `^0\+dev\.[0-9a-f]{12}$`, m.Version)
	assert.Equal(t, []string{"api", "nats", "smoke-tests"}, namesOf(m.Jobs, func(j JobRef) string { return j.Name }))
	assert.Equal(t, []string{"api", "golang", "nats"}, namesOf(m.Packages, func(p PackageRef) string { return p.Name }))
	require.NotNil(t, m.License)
	for _, j := range m.Jobs {
		assert.Regexp(t, `^[0-9a-f]{40}$`, j.Fingerprint)
		assert.Equal(t, j.Fingerprint, j.Version)
		assert.Regexp(t, `^[0-9a-f]{40}$`, j.SHA1)
	}

	// The layout: release.MF first, then jobs/, packages/, the license.
	var names []string
	for _, e := range entriesOf(t, data) {
		names = append(names, e.Name)
	}
	assert.Equal(t, []string{"release.MF", "jobs/", "jobs/api.tgz", "jobs/nats.tgz", "jobs/smoke-tests.tgz",
		"packages/", "packages/api.tgz", "packages/golang.tgz", "packages/nats.tgz", "license.tgz", "LICENSE", "NOTICE"}, names)
	natsTgz := entriesOf(t, entryData(t, entriesOf(t, data), "jobs/nats.tgz"))
	names = nil
	for _, e := range natsTgz {
		names = append(names, e.Name)
	}
	assert.Equal(t, []string{"./", "./job.MF", "./monit", "./templates/", "./templates/ctl.erb", "./templates/nats.conf.erb"}, names)

	path := filepath.Join(t.TempDir(), "kf-demo.tgz")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	rel, err := Open(ctx, path)
	require.NoError(t, err)
	assert.Equal(t, *m, rel.Manifest)

	for _, name := range []string{"nats", "api", "smoke-tests"} {
		src, err := os.ReadFile(filepath.Join(dir, "jobs", name, "spec"))
		require.NoError(t, err)
		want, err := ParseJobSpec(src)
		require.NoError(t, err)
		j := rel.Job(name)
		require.NotNil(t, j, name)
		assert.Equal(t, *want, j.Spec)
		assert.Equal(t, src, j.Manifest, "job.MF is the spec as written")
		monit, err := os.ReadFile(filepath.Join(dir, "jobs", name, "monit"))
		require.NoError(t, err)
		assert.Equal(t, monit, j.Monit)
		require.Len(t, j.Templates, len(want.Templates))
		for tmpl := range want.Templates {
			b, err := os.ReadFile(filepath.Join(dir, "jobs", name, "templates", tmpl))
			require.NoError(t, err)
			assert.Equal(t, b, j.Templates[tmpl], tmpl)
		}
	}
	assert.Equal(t, []string{"nats.port", "nats.user"}, rel.Job("nats").Spec.Provides[0].Properties)
	assert.Equal(t, map[string]any{"enabled": false, "min_version": "1.2"}, rel.Job("api").Spec.Properties["api.tls"].Default)

	paths := func(p *Package) []string {
		var out []string
		for _, f := range p.Files {
			out = append(out, f.Path)
		}
		return out
	}
	// src/ and blobs/ globs, {a,b}, ** and excluded_files.
	assert.Equal(t, []string{"api/lib/util.go", "api/main.go", "nats/server.go", "packaging"}, paths(rel.Package("api")))
	assert.Equal(t, []string{"golang/go1.26.0.linux-amd64.tar.gz", "packaging"}, paths(rel.Package("golang")))
	assert.Equal(t, []string{"nats/server.go", "packaging"}, paths(rel.Package("nats")))
	assert.Equal(t, []string{"golang", "nats"}, rel.Manifest.Packages[0].Dependencies)

	lic, err := os.ReadFile(filepath.Join(dir, "LICENSE"))
	require.NoError(t, err)
	assert.Equal(t, lic, rel.License.Files["LICENSE"])
	assert.Contains(t, rel.License.Files, "NOTICE")

	out := t.TempDir()
	require.NoError(t, rel.ExtractPackage(ctx, "api", out))
	got, err := os.ReadFile(filepath.Join(out, "api", "lib", "util.go"))
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join(dir, "src", "api", "lib", "util.go"))
	require.NoError(t, err)
	assert.Equal(t, want, got)
	_, err = os.Stat(filepath.Join(out, "packaging"))
	require.NoError(t, err)
}

func TestCreateIsDeterministic(t *testing.T) {
	a, ma := create(t, demo)
	// A copy has other mtimes, inode order and owner: the same bytes.
	b, mb := create(t, copyDir(t, demo))
	assert.Equal(t, ma, mb)
	assert.True(t, bytes.Equal(a, b), "two releases of the same directory differ")

	// Every entry, outside and in, has the epoch as its mtime, owner 0
	// and no owner names, and a mode of 0644 or 0755.
	var headers func(data []byte) []*tar.Header
	headers = func(data []byte) []*tar.Header {
		gz, err := gzip.NewReader(bytes.NewReader(data))
		require.NoError(t, err)
		tr := tar.NewReader(gz)
		var out []*tar.Header
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return out
			}
			require.NoError(t, err)
			out = append(out, h)
			if strings.HasSuffix(h.Name, ".tgz") {
				inner, err := io.ReadAll(tr)
				require.NoError(t, err)
				out = append(out, headers(inner)...)
			}
		}
	}
	for _, h := range headers(a) {
		assert.True(t, h.ModTime.Equal(time.Unix(0, 0)), "%s: mtime %s", h.Name, h.ModTime)
		assert.Zero(t, h.Uid+h.Gid, h.Name)
		assert.Empty(t, h.Uname+h.Gname, h.Name)
		assert.Contains(t, []int64{0o644, 0o755}, h.Mode, h.Name)
	}

	c, mc := create(t, demo, WithAlgorithm(SHA256), WithVersion("1.10"), WithName("other"))
	d, _ := create(t, demo, WithAlgorithm(SHA256), WithVersion("1.10"), WithName("other"))
	assert.True(t, bytes.Equal(c, d))
	assert.Equal(t, "1.10", mc.Version)
	assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, mc.Jobs[0].SHA1)
	assert.Regexp(t, `^[0-9a-f]{64}$`, mc.Jobs[0].Fingerprint)
}

func TestCreateFingerprintsFollowTheirSources(t *testing.T) {
	base := copyDir(t, demo)
	_, before := create(t, base)
	fps := func(m *Manifest) map[string]string {
		out := map[string]string{}
		for _, j := range m.Jobs {
			out["job/"+j.Name] = j.Fingerprint
		}
		for _, p := range m.Packages {
			out["package/"+p.Name] = p.Fingerprint
		}
		out["license"] = m.License.Fingerprint
		return out
	}
	tests := []struct {
		name    string
		change  func(dir string)
		changed []string
	}{
		{"a src file two packages select", func(dir string) {
			appendTo(t, filepath.Join(dir, "src", "nats", "server.go"), "// changed\n")
		}, []string{"package/api", "package/nats"}},
		{"a src file one package selects", func(dir string) {
			appendTo(t, filepath.Join(dir, "src", "api", "lib", "util.go"), "// changed\n")
		}, []string{"package/api"}},
		{"an excluded src file", func(dir string) {
			appendTo(t, filepath.Join(dir, "src", "api", "main_test.go"), "// changed\n")
		}, nil},
		{"a blob", func(dir string) {
			appendTo(t, filepath.Join(dir, "blobs", "golang", "go1.26.0.linux-amd64.tar.gz"), "x")
		}, []string{"package/golang"}},
		{"the executable bit of a package file", func(dir string) {
			require.NoError(t, os.Chmod(filepath.Join(dir, "src", "api", "main.go"), 0o755))
		}, []string{"package/api"}},
		{"the executable bit of packaging, which does not count", func(dir string) {
			require.NoError(t, os.Chmod(filepath.Join(dir, "packages", "nats", "packaging"), 0o755))
		}, nil},
		{"a packaging script", func(dir string) {
			appendTo(t, filepath.Join(dir, "packages", "golang", "packaging"), "# changed\n")
		}, []string{"package/golang"}},
		{"a template", func(dir string) {
			appendTo(t, filepath.Join(dir, "jobs", "api", "templates", "config.yml.erb"), "# changed\n")
		}, []string{"job/api"}},
		{"a monit file", func(dir string) {
			appendTo(t, filepath.Join(dir, "jobs", "nats", "monit"), "  # changed\n")
		}, []string{"job/nats"}},
		{"a job spec", func(dir string) {
			appendTo(t, filepath.Join(dir, "jobs", "smoke-tests", "spec"), "# changed\n")
		}, []string{"job/smoke-tests"}},
		{"a package's dependencies", func(dir string) {
			writeFile(t, filepath.Join(dir, "packages", "nats", "spec"), "name: nats\nfiles: [nats/*.go]\n")
		}, []string{"package/nats"}},
		{"a package spec's formatting alone, which does not count", func(dir string) {
			writeFile(t, filepath.Join(dir, "packages", "nats", "spec"), "# reformatted\nname: nats\ndependencies: [golang]\nfiles: ['nats/*.go']\n")
		}, nil},
		{"the license", func(dir string) {
			appendTo(t, filepath.Join(dir, "NOTICE"), "changed\n")
		}, []string{"license"}},
		{"a src file no package selects", func(dir string) {
			writeFile(t, filepath.Join(dir, "src", "README"), "unused\n")
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, base)
			tt.change(dir)
			_, after := create(t, dir)
			var changed []string
			b, a := fps(before), fps(after)
			for k := range b {
				if a[k] != b[k] {
					changed = append(changed, k)
				}
			}
			slices.Sort(changed)
			assert.Equal(t, tt.changed, changed)
			if len(tt.changed) == 0 {
				assert.Equal(t, before.Version, after.Version)
			} else {
				assert.NotEqual(t, before.Version, after.Version, "the dev version follows the fingerprints")
			}
		})
	}
}

func appendTo(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(s), 0o644))
}

// The published fingerprint of a real release's package:
// dummy-boshrelease's dummy_package, 8a4fde65… in its release dummy-2
// (releases/dummy/dummy-2.yml), whose sources testdata/dummy holds as
// they were.
func TestCreateMatchesAPublishedFingerprint(t *testing.T) {
	_, m := create(t, "testdata/dummy", WithName("dummy"))
	require.Len(t, m.Packages, 1)
	assert.Equal(t, "8a4fde656f31e3a9eb65f9e103910f50658e7a3a", m.Packages[0].Fingerprint)
}

func TestFingerprint(t *testing.T) {
	// Worked by hand (python3's hashlib): sha1("x") = 11f6ad8e…,
	// sha1("p") = 516b9783…, and the fingerprint is the SHA-1 of
	// "v2" + "a/b" + "11f6ad8ec52a2984abaafd7c3b516503785c2072" + "100755" +
	// "packaging" + "516b9783fca517eecbd1d064da2d165310b19759" + "dep1,dep2":
	// the entries sorted by path, packaging without a mode, the
	// dependencies sorted and joined with commas.
	entries := []FingerprintEntry{
		{Path: "packaging", Digest: SHA1.Digest([]byte("p"))},
		{Path: "a/b", Digest: SHA1.Digest([]byte("x")), Mode: ModeExecutable},
	}
	assert.Equal(t, "11f6ad8ec52a2984abaafd7c3b516503785c2072", entries[1].Digest)
	assert.Equal(t, "ff409292a0bb87cb06f45a47f05c22ea14bebf67", Fingerprint(SHA1, entries, []string{"dep2", "dep1"}))
	// Nothing at all: the SHA-1 of "v2".
	assert.Equal(t, "a1047eab1035d58682a53557e0b2a75edbfd15fd", Fingerprint(SHA1, nil, nil))

	// cloudfoundry/os-conf-release 23.0.3 (made with --sha2) lists its
	// job monit with fingerprint 18993a3f…: job.MF, an empty monit and
	// templates/pre-start, whose SHA-256 digests these are.
	osconf := []FingerprintEntry{
		{Path: "templates/pre-start", Digest: "sha256:0bb1d7b97e8283fec8b58052c551d4e96df74323d8e5ff73cee475059db236a6", Mode: ModeRegular},
		{Path: "monit", Digest: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Mode: ModeRegular},
		{Path: "job.MF", Digest: "sha256:226972d84aed6a96685fa87ff39636d9be46dde8e3d7337c0cc5ebc98775b412", Mode: ModeRegular},
	}
	assert.Equal(t, "18993a3f4b4326685cc9a67fed330f2634257eb44e13505eea08bfc0f89c35e3", Fingerprint(SHA256, osconf, nil))
	assert.Equal(t, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", SHA256.Digest(nil))
}

func TestCreateReportsEveryProblem(t *testing.T) {
	dir := copyDir(t, demo)
	// nats: an unknown key, a missing template, a property of a link
	// the job does not declare.
	writeFile(t, filepath.Join(dir, "jobs", "nats", "spec"), `name: nats
templates:
  ctl.erb: bin/ctl
  missing.erb: config/missing
packages: [nats, nope]
provides:
- {name: nats, type: nats, properties: [nats.nope]}
propertys: {}
`)
	// a job directory whose spec names another job
	writeFile(t, filepath.Join(dir, "jobs", "renamed", "spec"), "name: smoke-tests\n")
	// a glob matching nothing, an unknown dependency, a cycle, a
	// missing packaging script, a pre_packaging script
	writeFile(t, filepath.Join(dir, "packages", "api", "spec"), "name: api\ndependencies: [golang, nats, ghost]\nfiles: [api/**/*, nothing/*.c]\n")
	writeFile(t, filepath.Join(dir, "packages", "golang", "spec"), "name: golang\ndependencies: [nats]\nfiles: [golang/*]\n")
	require.NoError(t, os.Remove(filepath.Join(dir, "packages", "nats", "packaging")))
	writeFile(t, filepath.Join(dir, "packages", "nats", "pre_packaging"), "true\n")
	// a package spec with an unknown key
	writeFile(t, filepath.Join(dir, "packages", "extra", "spec"), "name: extra\nfile: [x]\n")
	writeFile(t, filepath.Join(dir, "packages", "extra", "packaging"), "true\n")

	var buf bytes.Buffer
	_, err := Create(context.Background(), dir, &buf)
	probs := problems(t, err)
	requireProblem(t, probs, "jobs/nats/spec/propertys (line 8)", `unknown key "propertys"`)
	requireProblem(t, probs, "jobs/nats/spec/templates/missing.erb (line 4)", "jobs/nats/templates/missing.erb is missing")
	requireProblem(t, probs, "jobs/nats/spec/provides/0/properties/0", "no such property")
	requireProblem(t, probs, "jobs/nats/spec/packages/1", "no package")
	requireProblem(t, probs, "jobs/renamed/spec/name (line 1)", "jobs/renamed")
	requireProblem(t, probs, "packages/api/spec/files/1", "matches no file")
	requireProblem(t, probs, "packages/api/spec/dependencies/2", "ghost", "no package")
	requireProblem(t, probs, "packages/golang/spec/dependencies", "golang -> nats -> golang", "cycle")
	requireProblem(t, probs, "packages/nats/packaging", "missing")
	requireProblem(t, probs, "packages/nats/pre_packaging", "not run")
	requireProblem(t, probs, "packages/extra/spec/file (line 2)", `unknown key "file"`)
	assert.Zero(t, buf.Len(), "nothing is written when the directory has problems")
}

func TestCreateRefusesSymlinksInPackages(t *testing.T) {
	dir := copyDir(t, demo)
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(dir, "src", "api", "passwd")))
	_, err := Create(context.Background(), dir, &bytes.Buffer{})
	requireProblem(t, problems(t, err), "packages/api/spec/files/0", "symlink")
}

func TestCreateNeedsAName(t *testing.T) {
	dir := copyDir(t, demo)
	require.NoError(t, os.Remove(filepath.Join(dir, "config", "final.yml")))
	_, err := Create(context.Background(), dir, &bytes.Buffer{})
	requireProblem(t, problems(t, err), "config/final.yml", "WithName")
	_, m := create(t, dir, WithName("named"))
	assert.Equal(t, "named", m.Name)
}

func TestCreateNoCompression(t *testing.T) {
	data, m := create(t, demo, WithNoCompression())
	assert.True(t, m.NoCompression)
	job := entryData(t, entriesOf(t, data), "jobs/nats.tgz")
	assert.False(t, bytes.HasPrefix(job, []byte{0x1f, 0x8b}), "a plain tar")
	rel, err := Read(context.Background(), bytes.NewReader(data))
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(rel.Job("nats").Templates["ctl.erb"]), "nats-server"))
}
