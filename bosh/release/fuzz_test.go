package release

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kubefoundry/kubefoundry"
)

// FuzzReadManifest checks that no input panics ParseManifest, that a
// rejected one is a *kubefoundry.ValidationError whose problems all name
// a path, and that an accepted one writes and reads back equal.
func FuzzReadManifest(f *testing.F) {
	f.Add([]byte(sampleMF))
	for _, s := range []string{
		"",
		"name: a\nversion: 1.10\n",
		"name: a\nversion: !binary MQ==\njobs: []\n",
		"name: a\nversion: \"1\"\njobs:\n- {name: j, version: a, fingerprint: a, sha1: 74df35d9c45ead42b4f372e3cfc3fd366701abcc}\n",
		"name: a\nversion: \"1\"\npackages:\n- {name: p, version: a, fingerprint: a, sha1: 74df35d9c45ead42b4f372e3cfc3fd366701abcc, dependencies: [p]}\n",
		"a: &a [*a]\n",
		"name: &n [*n, *n]\n",
		"- a\n",
		"name: a\n---\n",
		"license: ~\ncompiled_packages: [{stemcell: 1}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			checkProblems(t, err)
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("ParseManifest(Marshal(m)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(m, back) {
			t.Fatalf("round trip differs:\n%#v\n%#v\n%s", m, back, out)
		}
	})
}

// FuzzParseJobSpec checks that no job spec panics ParseJobSpec and that
// every rejection names its paths.
func FuzzParseJobSpec(f *testing.F) {
	for _, name := range []string{"nats", "api", "smoke-tests"} {
		b, err := os.ReadFile(filepath.Join(demo, "jobs", name, "spec"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("templates: {../x: /y}\nproperties: {a: {default: &a [*a]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseJobSpec(data)
		if err != nil {
			checkProblems(t, err)
			return
		}
		for src, dst := range s.Templates {
			if relPathProblem(src) != "" || relPathProblem(dst) != "" {
				t.Fatalf("accepted template %q -> %q", src, dst)
			}
		}
	})
}

func checkProblems(t *testing.T, err error) {
	t.Helper()
	var ve *kubefoundry.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) == 0 {
		t.Fatalf("error is not a ValidationError with problems: %v", err)
	}
	for _, p := range ve.Problems {
		if !strings.HasPrefix(p.Field, "/") || p.Reason == "" {
			t.Fatalf("problem without a path or reason: %+v", p)
		}
	}
}

// FuzzOpen checks that no tarball panics Read, that what is accepted
// holds only safe relative paths, and that extracting its packages
// writes nothing outside the directory given. The seeds are a real
// release, a plain-tar one, and hostile ones.
func FuzzOpen(f *testing.F) {
	var buf bytes.Buffer
	if _, err := Create(context.Background(), "testdata/dummy", &buf, WithName("dummy")); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	buf.Reset()
	if _, err := Create(context.Background(), demo, &buf, WithNoCompression()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(tarOf(f, []testEntry{file("release.MF", "name: a\nversion: \"1\"\n"), file("../evil", "x")}, true))
	f.Add(tarOf(f, []testEntry{file("release.MF", "name: a\nversion: \"1\"\n"), {Name: "jobs/x", Type: tar.TypeSymlink, Linkname: "/etc"}}, false))
	f.Add(tarOf(f, []testEntry{{Name: "release.MF", Type: tar.TypeLink, Linkname: "/etc/passwd"}}, true))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		limits := WithLimits(Limits{EntrySize: 1 << 20, TotalSize: 8 << 20, Entries: 1000, MemorySize: 4 << 20})
		rel, err := Read(context.Background(), bytes.NewReader(data), limits)
		if err != nil {
			return
		}
		safe := func(p string) {
			if path.IsAbs(p) || relPathProblem(p) != "" || strings.Contains(p, "\\") {
				t.Fatalf("accepted a file at %q", p)
			}
		}
		for _, j := range rel.Jobs {
			for _, f := range j.Files {
				safe(f.Path)
			}
		}
		for _, p := range append(rel.Packages, rel.CompiledPackages...) {
			for _, f := range p.Files {
				safe(f.Path)
			}
		}
		root := t.TempDir()
		tgz := filepath.Join(root, "r.tgz")
		if err := os.WriteFile(tgz, data, 0o644); err != nil {
			t.Fatal(err)
		}
		opened, err := Open(context.Background(), tgz, limits)
		if err != nil {
			t.Fatalf("Read accepted what Open refuses: %v", err)
		}
		for _, p := range opened.Packages {
			_ = opened.ExtractPackage(context.Background(), p.Name, filepath.Join(root, "out", p.Name))
		}
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "r.tgz" && e.Name() != "out" {
				t.Fatalf("extraction wrote %s outside its directory", e.Name())
			}
		}
	})
}
