package opsfile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
)

// maxFuzzInput keeps each fuzz input small enough to run fast.
const maxFuzzInput = 4 << 10

// opsSeeds are ops-files that reach every path syntax and both op types.
var opsSeeds = []string{
	"",
	"[]",
	"- {type: replace, path: /name, value: cluster-2}",
	"- {type: replace, path: '/instance_groups/name=worker/instances', value: 7}",
	"- {type: replace, path: '/instance_groups/name=worker:prev/jobs/0:after', value: {name: x}}",
	"- {type: replace, path: '/instance_groups/-1:before', value: {name: y}}",
	"- {type: replace, path: '/instance_groups/name=new?/jobs?/name=j?/properties?/a', value: 1}",
	"- {type: replace, path: '/variables/name=admin_password/options?/length', value: 32}",
	"- {type: replace, path: '', value: {replaced: true}}",
	"- {type: replace, path: '/x~1y?/z~0?', value: [1, 2]}",
	"- {type: remove, path: /update/canaries}",
	"- {type: remove, path: '/instance_groups/name=master/jobs/name=kube-apiserver'}",
	"- {type: remove, path: '/instance_groups/name=gone?'}",
	"- {type: remove, path: '/stemcells/0:next'}",
	"- {type: remove, path: '/releases/-'}",
	"- {type: remove, path: ''}",
	"- {type: replace, path: /a, value: &v {x: 1}}\n- {type: replace, path: /b?, value: *v}",
	"- {type: replace, path: /a, error: custom}",
	"- {type: copy, path: /a, from: /b}",
	"- type: replace\n  path: /instance_groups/0/azs/-\n  value: ((zone))\n  error: 'no zones'",
}

// docSeeds are documents for FuzzApply and FuzzInterpolate besides the
// manifest in testdata.
var docSeeds = []string{
	"",
	"null",
	"[1, 2, {name: a}]",
	"a: &a {b: 1}\nc: *a\nd: {<<: *a, e: 2}",
	"a: &a [1, *a]",
	"k: ((count))\n((name)): ((props))\nurl: https://((ip)):((port))/((missing))",
	"- ((tls.ca))\n- ((tls.nope))\n- ((/abs/name))\n- ((!count))\n- (( ip ))\n- x((props))",
	"((name)): 1\nsame: 2\n((dup)): 3",
}

func seedFiles(f *testing.F, pattern string) [][]byte {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed files %s: %v", pattern, err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// marshal renders n, or reports that it cannot (a YAML tree the parser
// accepted but the encoder refuses), so a fuzz target can compare trees
// without failing on the encoder's own limits.
func marshal(n *yaml.Node) (out []byte, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	if err := enc.Encode(n); err != nil {
		return nil, false
	}
	if err := enc.Close(); err != nil {
		return nil, false
	}
	return b.Bytes(), true
}

func FuzzParseOps(f *testing.F) {
	for _, s := range opsSeeds {
		f.Add([]byte(s))
	}
	for _, b := range seedFiles(f, "ops/*.yml") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		ops, err := opsfile.ParseOps(data)
		if err != nil {
			if !errors.Is(err, kubefoundry.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for i, op := range ops {
			switch op.Type {
			case opsfile.Replace:
				if op.Value == nil {
					t.Fatalf("op %d: replace without a value", i)
				}
			case opsfile.Remove:
			default:
				t.Fatalf("op %d: type %q", i, op.Type)
			}
			p, err := opsfile.ParsePointer(op.Path.String())
			if err != nil || p.String() != op.Path.String() {
				t.Fatalf("op %d: path %q does not parse again: %v", i, op.Path, err)
			}
		}
	})
}

// FuzzApply applies fuzzed ops-files to seed documents: the manifest in
// testdata and docSeeds, picked by the first argument. The documents stay
// fixed, so minimizing a new input only shortens the ops-file.
func FuzzApply(f *testing.F) {
	docs := append([]string{string(seedFiles(f, "manifest.yml")[0])}, docSeeds...)
	for _, s := range opsSeeds {
		f.Add(uint8(0), []byte(s))
	}
	for _, b := range seedFiles(f, "ops/*.yml") {
		f.Add(uint8(0), b)
	}
	for i := range docSeeds {
		f.Add(uint8(i+1), []byte(opsSeeds[4]))
		f.Add(uint8(i+1), []byte(opsSeeds[8]))
	}
	f.Fuzz(func(t *testing.T, which uint8, opsData []byte) {
		if len(opsData) > maxFuzzInput {
			return
		}
		ops, err := opsfile.ParseOps(opsData)
		if err != nil {
			return
		}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(docs[int(which)%len(docs)]), &doc); err != nil {
			t.Fatal(err)
		}
		before, beforeOK := marshal(&doc)
		err = opsfile.Apply(&doc, ops)
		if err != nil {
			var opErr *opsfile.OpError
			if !errors.As(err, &opErr) && !errors.Is(err, kubefoundry.ErrInvalid) {
				t.Fatalf("error is neither an *OpError nor ErrInvalid: %v", err)
			}
			if after, ok := marshal(&doc); beforeOK && (!ok || !bytes.Equal(before, after)) {
				t.Fatalf("a failed Apply changed the document:\n%s\n---\n%s", before, after)
			}
			return
		}
		if !beforeOK {
			return
		}
		out, ok := marshal(&doc)
		if !ok {
			t.Fatalf("the document cannot be written after Apply")
		}
		var again yaml.Node
		if err := yaml.Unmarshal(out, &again); err != nil {
			t.Fatalf("the document written after Apply does not parse: %v\n%s", err, out)
		}
	})
}

func FuzzInterpolate(f *testing.F) {
	f.Add(seedFiles(f, "manifest.yml")[0])
	for _, d := range docSeeds {
		f.Add([]byte(d))
	}
	vars := opsfile.Multi{
		opsfile.Map{
			"count":          3,
			"name":           "cluster",
			"dup":            "same",
			"ip":             "10.0.0.1",
			"port":           8443,
			"ratio":          1.5,
			"props":          map[string]any{"a": []any{1, "x", nil}},
			"tls":            cert,
			"tls-kubernetes": cert,
			"admin_password": "pw",
			"api_ip":         "10.0.0.2",
			"worker_vm_type": "large",
			"/abs/name":      "abs",
			"loop":           "((loop))",
		},
		varsFunc(func(name string) (any, bool, error) {
			if name == "broken" {
				return nil, false, errors.New("store down")
			}
			return nil, false, nil
		}),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil {
			return
		}
		before, beforeOK := marshal(&doc)
		err := opsfile.Interpolate(&doc, vars)
		if err != nil {
			if after, ok := marshal(&doc); beforeOK && (!ok || !bytes.Equal(before, after)) {
				t.Fatalf("a failed Interpolate changed the document:\n%s\n---\n%s", before, after)
			}
			return
		}
		if !beforeOK {
			return
		}
		out, ok := marshal(&doc)
		if !ok {
			t.Fatalf("the document cannot be written after Interpolate")
		}
		var again yaml.Node
		if err := yaml.Unmarshal(out, &again); err != nil {
			t.Fatalf("the document written after Interpolate does not parse: %v\n%s", err, out)
		}
	})
}
