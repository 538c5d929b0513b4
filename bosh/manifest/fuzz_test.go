package manifest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubefoundry/kubefoundry"
)

// FuzzParse checks that no input panics or hangs Parse, that a rejected
// input is a *kubefoundry.ValidationError whose problems all name a
// field, and that an accepted one writes and reads back to the same
// bytes. The seeds are the test manifests and documents built to hurt.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	minimal, err := os.ReadFile("testdata/minimal.yml")
	if err != nil {
		f.Fatal(err)
	}
	// Valid manifests with values that are hard to write back as read.
	for _, s := range []string{
		"properties: {a: !!binary aGVsbG8=, b: 2001-12-14, c: .nan, d: -0.0, e: 0x1F, f: 1_000, g: 1e+300, h: 18446744073709551615}\n",
		"properties: {\"<<\": 1, \"true\": yes, ~: null, 1: \"1\", \"a\\nb\": \"x\\ny\", \" \": \"\"}\n",
		"features: {later: [1, {x: 3.0}]}\ntags: {a: 1, b: \"#\", c: \"- x\"}\n",
	} {
		f.Add(append(append([]byte{}, minimal...), s...))
	}
	for _, s := range []string{
		"",
		"name: x\n",
		"- a\n",
		"a: &a [*a]\n",
		"properties: &p {<<: *p}\n",
		"instance_groups: [{name: a, instances: 1e400, networks: [{name: n, static_ips: '::/0'}]}]\n",
		"update: {canaries: 99999999999999999999%, canary_watch_time: 9-1}\n",
		"properties: {a: !!binary aGVsbG8=, b: 2001-12-14, c: .nan, d: -0.0, e: 0x1F, f: 1_000}\n",
		"? [a]\n: b\n",
		"name: a\n---\nname: b\n",
		"tags: {a: *x}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			var verr *kubefoundry.ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) == 0 {
				t.Fatalf("Parse error is not a ValidationError with problems: %v", err)
			}
			for _, p := range verr.Problems {
				if !strings.HasPrefix(p.Field, "/") || p.Reason == "" {
					t.Fatalf("problem without a field path or reason: %+v", p)
				}
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed manifest: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(m)): %v\n%s", err, out)
		}
		again, err := back.Marshal()
		if err != nil {
			t.Fatalf("Marshal again: %v", err)
		}
		if !bytes.Equal(out, again) {
			t.Fatalf("Marshal(Parse(Marshal(m))) differs:\n%s\n---\n%s", out, again)
		}
	})
}
