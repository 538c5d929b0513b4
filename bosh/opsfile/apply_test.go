package opsfile_test

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
)

// exampleDoc is the document go-patch's docs/examples.md demonstrates
// operations on.
const exampleDoc = `
key: 1
key2:
  nested:
    super_nested: 2
  other: 3
array: [4, 5, 6]
items:
- name: item7
- name: item8
- name: item8
`

func TestApplyReplace(t *testing.T) {
	tests := []struct {
		name, path, value string
		want              string // the whole document after the op
		err               string // or the error it fails with
		errIs             error
	}{
		{
			name: "map key", path: "/key", value: "10",
			want: "key: 10\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "missing key without ? is an error", path: "/key_not_there", value: "10",
			err:   `expected a map key "key_not_there" at "/key_not_there" (found map keys: "array", "items", "key", "key2") (line 2)`,
			errIs: kubefoundry.ErrNotFound,
		},
		{
			name: "missing key with ? is created", path: "/new_key?", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]\nnew_key: 10",
		},
		{
			name: "nested key", path: "/key2/nested/super_nested", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 10}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "? carries over and creates the maps on its right", path: "/key2/nested?/another_nested/super_nested", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2, another_nested: {super_nested: 10}}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "missing parent without ?", path: "/key3/nested", value: "10",
			err: `expected a map key "key3" at "/key3"`, errIs: kubefoundry.ErrNotFound,
		},
		{
			name: "array index", path: "/array/0", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [10, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "negative index counts from the end", path: "/array/-1", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 10]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "append", path: "/array/-", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6, 10]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "append creates a missing optional array", path: "/array2?/-", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]\narray2: [10]",
		},
		{
			name: ":prev", path: "/array/1:prev", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [10, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: ":next", path: "/array/0:next", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 10, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: ":after inserts", path: "/array/0:after", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 10, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: ":before inserts", path: "/array/0:before", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [10, 4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: ":prev then :before", path: "/array/-1:prev:before", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 10, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "no modifier after :before", path: "/array/0:before:prev", value: "10",
			err: `at "/array/0:before:prev": no modifier may follow :before or :after`, errIs: kubefoundry.ErrInvalid,
		},
		{
			name: ":before only on the last segment", path: "/items/0:before/name", value: "x",
			err: `at "/items/0:before": :before and :after go only on the last segment of a replace`,
		},
		{
			name: "index out of range", path: "/array/3", value: "10",
			err: `expected array index 3 at "/array/3", found an array of 3 items (line 7)`, errIs: kubefoundry.ErrNotFound,
		},
		{
			name: "negative index out of range", path: "/array/-4", value: "10",
			err: `expected array index -4 at "/array/-4", found an array of 3 items`,
		},
		{
			name: ":next past the end", path: "/array/2:next", value: "10",
			err: `expected array index 3 at "/array/2:next"`,
		},
		{
			// go-patch's docs/examples.md says this adds count, but its code
			// (and so bosh-cli) wants count? for a key that is not there.
			name: "name= then a missing key without ?", path: "/items/name=item7/count", value: "10",
			err: `expected a map key "count" at "/items/name=item7/count" (found map keys: "name") (line 9)`, errIs: kubefoundry.ErrNotFound,
		},
		{
			name: "name= adds a sibling key", path: "/items/name=item7/count?", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7, count: 10}, {name: item8}, {name: item8}]",
		},
		{
			name: "name= matching two items is an error", path: "/items/name=item8/count", value: "10",
			err: `expected exactly one array item to match "/items/name=item8", found 2 (lines 10, 11)`, errIs: kubefoundry.ErrInvalid,
		},
		{
			name: "name= matching nothing is an error", path: "/items/name=item9/count", value: "10",
			err: `expected exactly one array item to match "/items/name=item9", found none (line 9)`, errIs: kubefoundry.ErrNotFound,
		},
		{
			name: "name=? appends a new item and fills it", path: "/items/name=item9?/count", value: "10",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}, {name: item9, count: 10}]",
		},
		{
			name: "name=? as the last segment appends the value", path: "/items/name=item9?", value: "{name: item9, size: 2}",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}, {name: item9, size: 2}]",
		},
		{
			name: "name=? that matches replaces", path: "/items/name=item7?", value: "{name: item7, size: 2}",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7, size: 2}, {name: item8}, {name: item8}]",
		},
		{
			name: "name= with :after inserts after the match", path: "/items/name=item7:after", value: "{name: new}",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: new}, {name: item8}, {name: item8}]",
		},
		{
			name: "name= with :next descends into the following item", path: "/items/name=item7:next/size?", value: "3",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8, size: 3}, {name: item8}]",
		},
		{
			name: "a map where an array is needed", path: "/key2/0", value: "10",
			err: `expected an array at "/key2/0", found a map (line 4)`, errIs: kubefoundry.ErrInvalid,
		},
		{
			name: "an array where a map is needed", path: "/array/foo", value: "10",
			err: `expected a map at "/array/foo", found an array (line 7)`,
		},
		{
			name: "a scalar where a map is needed", path: "/key/x", value: "10",
			err: `expected a map at "/key/x", found an integer (line 2)`,
		},
		{
			name: "name= on a map", path: "/key2/name=x", value: "10",
			err: `expected an array at "/key2/name=x", found a map`,
		},
		{
			name: "- on a map", path: "/key2/-", value: "10",
			err: `expected an array at "/key2/-", found a map`,
		},
		{
			name: "a missing optional key followed by an index", path: "/nope?/0", value: "10",
			err: `optional key "nope" at "/nope?" is missing, and an index cannot follow it`,
		},
		{
			name: "the whole document", path: "", value: "{only: this}",
			want: "only: this",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := parseDoc(t, exampleDoc)
			p, err := opsfile.ParsePointer(tt.path)
			require.NoError(t, err)
			op := opsfile.Op{Type: opsfile.Replace, Path: p, Value: parseDoc(t, tt.value)}
			err = opsfile.Apply(doc, []opsfile.Op{op})
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				if tt.errIs != nil {
					assert.ErrorIs(t, err, tt.errIs)
				}
				assert.Equal(t, canon(t, exampleDoc), block(t, doc), "a failed Apply changes nothing")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, canon(t, tt.want), block(t, doc))
		})
	}
}

func TestApplyRemove(t *testing.T) {
	tests := []struct {
		name, path string
		want       string
		err        string
		errIs      error
	}{
		{
			name: "map key", path: "/key",
			want: "key2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "nested map key", path: "/key2/nested/super_nested",
			want: "key: 1\nkey2: {nested: {}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "array item", path: "/array/1",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 6]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "last array item", path: "/array/-1",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5]\nitems: [{name: item7}, {name: item8}, {name: item8}]",
		},
		{
			name: "array item by name=", path: "/items/name=item7",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{name: item8}, {name: item8}]",
		},
		{
			name: "key inside a name= item", path: "/items/name=item7/name",
			want: "key: 1\nkey2: {nested: {super_nested: 2}, other: 3}\narray: [4, 5, 6]\nitems: [{}, {name: item8}, {name: item8}]",
		},
		{
			name: "missing optional key is no error", path: "/key2/nope?",
			want: exampleDoc,
		},
		{
			name: "missing optional parent is no error", path: "/key2/nope?/deeper",
			want: exampleDoc,
		},
		{
			name: "missing optional name= is no error", path: "/items/name=nope?",
			want: exampleDoc,
		},
		{
			name: "missing key", path: "/nope",
			err: `expected a map key "nope" at "/nope"`, errIs: kubefoundry.ErrNotFound,
		},
		{
			name: "map without keys", path: "/key2/nested/super_nested/x",
			err: `expected a map at "/key2/nested/super_nested/x", found an integer (line 5)`,
		},
		{
			name: "ambiguous name=", path: "/items/name=item8",
			err: `expected exactly one array item to match "/items/name=item8", found 2`, errIs: kubefoundry.ErrInvalid,
		},
		{
			name: "index out of range", path: "/array/3",
			err: `expected array index 3 at "/array/3", found an array of 3 items`, errIs: kubefoundry.ErrNotFound,
		},
		{
			name: "- names no item", path: "/array/-",
			err: `"-" at "/array/-" names no item, so there is nothing to remove`,
		},
		{
			name: "the whole document", path: "",
			err: "cannot remove the entire document",
		},
		{
			name: ":before is not for remove", path: "/array/0:before",
			err: ":before and :after go only on the last segment of a replace",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := parseDoc(t, exampleDoc)
			p, err := opsfile.ParsePointer(tt.path)
			require.NoError(t, err)
			err = opsfile.Apply(doc, []opsfile.Op{{Type: opsfile.Remove, Path: p}})
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				if tt.errIs != nil {
					assert.ErrorIs(t, err, tt.errIs)
				}
				assert.Equal(t, canon(t, exampleDoc), block(t, doc), "a failed Apply changes nothing")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, canon(t, tt.want), block(t, doc))
		})
	}
}

// TestApplyReadme is the example of go-patch's README: a manifest changed
// by an ops-file with name= selectors, an optional key and an append.
func TestApplyReadme(t *testing.T) {
	doc := parseDoc(t, `
releases:
- name: capi
  version: 0.1
instance_groups:
- name: cloud_controller
  instances: 0
  jobs:
  - name: cloud_controller
    release: capi
- name: uaa
  instances: 0
`)
	ops := mustOps(t, `
		- type: replace
		  path: /instance_groups/name=cloud_controller/instances
		  value: 1
		- type: replace
		  path: /instance_groups/name=cloud_controller/jobs/name=cloud_controller/consumes?/db
		  value:
		    instances:
		    - address: some-db.local
		    properties:
		      username: user
		      password: pass
		- type: replace
		  path: /instance_groups/name=uaa/instances
		  value: 1
		- type: replace
		  path: /instance_groups/-
		  value:
		    name: uaadb
		    instances: 2
		- type: replace
		  path: /releases/name=capi/version
		  value: latest
	`)
	require.NoError(t, opsfile.Apply(doc, ops))
	assert.Equal(t, canon(t, `
releases:
- name: capi
  version: latest
instance_groups:
- name: cloud_controller
  instances: 1
  jobs:
  - name: cloud_controller
    release: capi
    consumes:
      db:
        instances:
        - address: some-db.local
        properties:
          username: user
          password: pass
- name: uaa
  instances: 1
- name: uaadb
  instances: 2
`), block(t, doc))
}

// TestApplyInOrder checks that each op sees what the ones before it did.
func TestApplyInOrder(t *testing.T) {
	doc := parseDoc(t, "a: 1\n")
	ops := mustOps(t, `
		- type: replace
		  path: /list?/-
		  value: {name: first}
		- type: replace
		  path: /list/name=first/size?
		  value: 1
		- type: replace
		  path: /list/-
		  value: {name: second}
		- type: replace
		  path: /list/name=first:after
		  value: {name: between}
		- type: remove
		  path: /a
	`)
	require.NoError(t, opsfile.Apply(doc, ops))
	assert.Equal(t, canon(t, "list: [{name: first, size: 1}, {name: between}, {name: second}]"), block(t, doc))

	// In the other order the second op finds no list.
	reversed := []opsfile.Op{ops[1], ops[0]}
	err := opsfile.Apply(parseDoc(t, "a: 1\n"), reversed)
	require.Error(t, err)
	var opErr *opsfile.OpError
	require.ErrorAs(t, err, &opErr)
	assert.Equal(t, 0, opErr.Index)
}

// TestApplyErrorNamesOp checks that a failure names the op's index, type,
// path and ops-file line, shows the op's error: text, and changes nothing
// even when earlier ops succeeded.
func TestApplyErrorNamesOp(t *testing.T) {
	const manifest = `
name: cluster
instance_groups:
- name: master
  instances: 1
- name: worker
  instances: 3
`
	doc := parseDoc(t, manifest)
	ops := mustOps(t, `
		- type: replace
		  path: /instance_groups/name=worker/instances
		  value: 5
		- type: remove
		  path: /name
		- type: replace
		  path: /instance_groups/name=etcd/instances
		  value: 3
		  error: this manifest has no etcd instance group; apply etcd.yml first
	`)
	err := opsfile.Apply(doc, ops)
	require.Error(t, err)

	var opErr *opsfile.OpError
	require.ErrorAs(t, err, &opErr)
	assert.Equal(t, 2, opErr.Index)
	assert.Equal(t, opsfile.Replace, opErr.Type)
	assert.Equal(t, "/instance_groups/name=etcd/instances", opErr.Path)
	assert.Equal(t, 6, opErr.Line)
	assert.Equal(t, "this manifest has no etcd instance group; apply etcd.yml first", opErr.Message)
	assert.Equal(t, `op 2 (replace "/instance_groups/name=etcd/instances", line 6): `+
		`this manifest has no etcd instance group; apply etcd.yml first: `+
		`expected exactly one array item to match "/instance_groups/name=etcd", found none (line 4)`, err.Error())
	assert.ErrorIs(t, err, kubefoundry.ErrNotFound)
	assert.Equal(t, canon(t, manifest), block(t, doc), "the ops before the failing one are not kept")

	// Without error: the cause stands alone.
	ops[2].Error = ""
	err = opsfile.Apply(parseDoc(t, manifest), ops)
	require.Error(t, err)
	assert.Equal(t, `op 2 (replace "/instance_groups/name=etcd/instances", line 6): `+
		`expected exactly one array item to match "/instance_groups/name=etcd", found none (line 4)`, err.Error())

	// An op built in code has no line.
	p, err := opsfile.ParsePointer("/nope")
	require.NoError(t, err)
	err = opsfile.Apply(parseDoc(t, manifest), []opsfile.Op{{Type: opsfile.Remove, Path: p}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `op 0 (remove "/nope"): expected a map key "nope"`)
}

// TestApplyMatchesStringsOnly: as in go-patch, name=value compares with
// string values only; `id: 1` is the integer 1.
func TestApplyMatchesStringsOnly(t *testing.T) {
	doc := parseDoc(t, "items:\n- id: 1\n- id: \"1\"\n  quoted: true\n- 3\n")
	ops := mustOps(t, `
		- type: replace
		  path: /items/id=1/found?
		  value: yes
	`)
	require.NoError(t, opsfile.Apply(doc, ops))
	assert.Equal(t, canon(t, "items:\n- id: 1\n- id: \"1\"\n  quoted: true\n  found: yes\n- 3\n"), block(t, doc))
}

// TestApplyAliases: ops see the data a YAML decoder sees, through aliases
// and merge keys, and a change through one alias leaves the others alone.
func TestApplyAliases(t *testing.T) {
	doc := parseDoc(t, `
base: &base
  vm_type: small
  azs: [z1]
groups:
- name: a
  <<: *base
- name: b
  <<: *base
  vm_type: large
shared: *base
`)
	ops := mustOps(t, `
		- type: replace
		  path: /groups/name=a/vm_type
		  value: medium
		- type: replace
		  path: /groups/name=b/azs/-
		  value: z2
	`)
	require.NoError(t, opsfile.Apply(doc, ops))
	assert.Equal(t, canon(t, `
base: {vm_type: small, azs: [z1]}
groups:
- {name: a, vm_type: medium, azs: [z1]}
- {name: b, vm_type: large, azs: [z1, z2]}
shared: {vm_type: small, azs: [z1]}
`), block(t, doc))
}

func TestApplyRefusesAliasBombsAndCycles(t *testing.T) {
	bomb := `
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
`
	ops := mustOps(t, "- {type: remove, path: /a}")
	err := opsfile.Apply(parseDoc(t, bomb), ops)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expands to more than")
	assert.ErrorIs(t, err, kubefoundry.ErrInvalid)

	err = opsfile.Apply(parseDoc(t, "a: &a [1, *a]\nb: 2\n"), ops)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "alias *a (line 1) is inside the node it refers to")
}

// TestApplyKeepsLines: nodes no op touched keep their lines; inserted ones
// carry their lines in the ops-file.
func TestApplyKeepsLines(t *testing.T) {
	doc := parseDoc(t, "a: 1\nb:\n  c: 2\n")
	ops := mustOps(t, `
		- type: replace
		  path: /d?
		  value:
		    e: 3
	`)
	require.NoError(t, opsfile.Apply(doc, ops))
	root := doc.Content[0]
	b := root.Content[3]
	assert.Equal(t, 3, b.Content[1].Line, "c: 2 stays on line 3")
	d := root.Content[5]
	assert.Equal(t, 4, d.Content[1].Line, "e: 3 is on line 4 of the ops-file")
}

// TestApplyValueIsCopied: the same op applied twice, or to two documents,
// inserts separate copies.
func TestApplyValueIsCopied(t *testing.T) {
	ops := mustOps(t, "- {type: replace, path: /l/-, value: {n: 1}}\n- {type: replace, path: /l/0/n, value: 2}")
	doc := parseDoc(t, "l: []")
	require.NoError(t, opsfile.Apply(doc, []opsfile.Op{ops[0], ops[0], ops[1]}))
	assert.Equal(t, canon(t, "l: [{n: 2}, {n: 1}]"), block(t, doc))
	assert.Equal(t, "1", ops[0].Value.Content[1].Value, "the op's own value is untouched")
}

func TestApplyEmptyAndBareDocuments(t *testing.T) {
	ops := mustOps(t, "- {type: replace, path: '', value: {a: 1}}")

	var empty yaml.Node // as yaml.Unmarshal leaves it for ""
	require.NoError(t, opsfile.Apply(&empty, ops))
	assert.Equal(t, "a: 1\n", block(t, &empty))

	bare := parseDoc(t, "x: 1").Content[0] // a mapping node, no document node
	require.NoError(t, opsfile.Apply(bare, mustOps(t, "- {type: replace, path: '/y?', value: 2}")))
	assert.Equal(t, "x: 1\ny: 2\n", block(t, bare))

	err := opsfile.Apply(parseDoc(t, "x: 1"), mustOps(t, "- {type: replace, path: /y/z, value: 2}"))
	require.Error(t, err)

	zero := parseDoc(t, "x: 1")
	p, err := opsfile.ParsePointer("/x")
	require.NoError(t, err)
	require.NoError(t, opsfile.Apply(zero, []opsfile.Op{{Type: opsfile.Replace, Path: p, Value: &yaml.Node{}}}))
	assert.Equal(t, yaml.ScalarNode, zero.Content[0].Content[1].Kind, "a zero yaml.Node value becomes a null scalar")
	assert.Equal(t, "!!null", zero.Content[0].Content[1].ShortTag())

	require.NoError(t, opsfile.Apply(parseDoc(t, "x: 1"), nil), "no ops, no change")
	assert.True(t, errors.Is(opsfile.Apply(nil, ops), kubefoundry.ErrInvalid))
}

// TestTestdataOpsFiles applies the ops-files the fuzz targets start from
// to the seed manifest, so the seeds are known to reach success and
// failure.
func TestTestdataOpsFiles(t *testing.T) {
	manifest, err := os.ReadFile("testdata/manifest.yml")
	require.NoError(t, err)
	read := func(name string) []opsfile.Op {
		b, err := os.ReadFile("testdata/ops/" + name)
		require.NoError(t, err)
		ops, err := opsfile.ParseOps(b)
		require.NoError(t, err)
		return ops
	}
	doc := parseDoc(t, string(manifest))
	require.NoError(t, opsfile.Apply(doc, append(read("scale-workers.yml"), read("add-etcd.yml")...)))

	var m struct {
		Releases       []struct{ Name string }
		Stemcells      []struct{ Version string }
		InstanceGroups []struct {
			Name         string
			Instances    int
			AZs          []string `yaml:"azs"`
			VMType       string   `yaml:"vm_type"`
			VMExtensions []string `yaml:"vm_extensions"`
			Jobs         []struct {
				Name       string
				Properties map[string]any
			}
		} `yaml:"instance_groups"`
		Variables []struct{ Name string }
	}
	require.NoError(t, doc.Decode(&m))
	require.Len(t, m.InstanceGroups, 3)
	assert.Equal(t, "master", m.InstanceGroups[0].Name)
	assert.Equal(t, []string{"z1", "z2", "z0", "z3"}, m.InstanceGroups[0].AZs, "merged from defaults, then one inserted")
	assert.Equal(t, map[string]any{"servers": "((etcd_servers))"}, m.InstanceGroups[0].Jobs[0].Properties["etcd"])
	assert.Equal(t, "etcd", m.InstanceGroups[1].Name)
	assert.Equal(t, "worker", m.InstanceGroups[2].Name)
	assert.Equal(t, 5, m.InstanceGroups[2].Instances)
	assert.Equal(t, []string{"z1", "z2", "z3"}, m.InstanceGroups[2].AZs, "the insert went into master's copy only")
	assert.Equal(t, []string{"big-disk"}, m.InstanceGroups[2].VMExtensions)
	assert.Len(t, m.Releases, 1)
	assert.Equal(t, "latest", m.Stemcells[0].Version)
	assert.Len(t, m.Variables, 3)

	err = opsfile.Interpolate(doc, opsfile.Map{"admin_password": "pw", "tls-kubernetes": cert, "api_ip": "10.0.0.2"})
	var missing *opsfile.MissingVariablesError
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, []string{"etcd_servers", "worker_vm_type"}, missing.Names)

	b, err := os.ReadFile("testdata/ops/errors.yml")
	require.NoError(t, err)
	_, err = opsfile.ParseOps(b)
	var verr *kubefoundry.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.Len(t, verr.Problems, 2)
}
