package opsfile_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
)

func TestParseOps(t *testing.T) {
	ops, err := opsfile.ParseOps([]byte(`
# scale the workers
- type: replace
  path: /instance_groups/name=worker/instances
  value: 5

- type: remove
  path: /instance_groups/name=worker/vm_extensions?
  error: cannot drop the worker's vm_extensions

- type: replace
  path: /variables?/-
  value: {name: worker_password, type: password}
`))
	require.NoError(t, err)
	require.Len(t, ops, 3)

	assert.Equal(t, opsfile.Replace, ops[0].Type)
	assert.Equal(t, "/instance_groups/name=worker/instances", ops[0].Path.String())
	assert.Equal(t, "5", ops[0].Value.Value)
	assert.Equal(t, 3, ops[0].Line)
	assert.Empty(t, ops[0].Error)

	assert.Equal(t, opsfile.Remove, ops[1].Type)
	assert.Nil(t, ops[1].Value)
	assert.Equal(t, "cannot drop the worker's vm_extensions", ops[1].Error)
	assert.Equal(t, 7, ops[1].Line)

	assert.Equal(t, "/variables?/-", ops[2].Path.String())
	assert.Equal(t, 11, ops[2].Line)
}

func TestParseOpsEmpty(t *testing.T) {
	for _, in := range []string{"", "\n# nothing\n", "null", "~", "[]"} {
		ops, err := opsfile.ParseOps([]byte(in))
		require.NoError(t, err, "%q", in)
		assert.Empty(t, ops, "%q", in)
	}
}

// TestParseOpsListsEveryProblem: one bad ops-file, every problem reported
// at once with its field and line.
func TestParseOpsListsEveryProblem(t *testing.T) {
	_, err := opsfile.ParseOps([]byte(`- type: replace
  path: /a
- type: replace
  path: /a
  value: null
- type: remove
  path: /a
  value: 1
- type: copy
  path: /a
  from: /b
- path: /a
  value: 1
- type: replace
  value: 1
- type: replace
  path: a/b
  value: 1
- type: replace
  path: /a/b:sideways
  value: 1
- type: replace
  path: /a
  value: 1
  eror: typo
- just a string
- type: replace
  path: [/a]
  value: 1
  error: {not: text}
- type: remove
  path: /a
  path: /b
`))
	require.Error(t, err)
	assert.ErrorIs(t, err, kubefoundry.ErrInvalid)

	var verr *kubefoundry.ValidationError
	require.ErrorAs(t, err, &verr)
	assert.Equal(t, "ops-file", verr.Object)

	type problem struct {
		Field  string
		Line   int
		Reason string
	}
	var got []problem
	for _, p := range verr.Problems {
		got = append(got, problem{p.Field, p.Line, p.Reason})
	}
	assert.Equal(t, []problem{
		{"0/value", 1, "missing (a replace needs a value; null counts as none)"},
		{"1/value", 5, "missing (a replace needs a value; null counts as none)"},
		{"2/value", 8, "a remove takes no value"},
		{"3/from", 11, "unknown key (an operation has type, path, value and error)"},
		{"3/type", 9, `unknown type "copy" (want replace or remove)`},
		{"4/type", 12, "missing (want replace or remove)"},
		{"5/path", 14, "missing"},
		{"6/path", 17, `path "a/b" must start with "/"`},
		{"7/path", 20, `path "/a/b:sideways": segment 2 "b:sideways": unknown modifier "sideways" (want prev, next, before or after; write ~7 for a literal ":")`},
		{"8/eror", 25, "unknown key (an operation has type, path, value and error)"},
		{"9", 26, "an operation is a map of type, path, value and error, found a string"},
		{"10/path", 28, "a path is a string, found an array"},
		{"10/error", 30, "an error message is a string, found a map"},
		{"11/path", 33, "duplicate key"},
	}, got)
}

func TestParseOpsNotAList(t *testing.T) {
	_, err := opsfile.ParseOps([]byte("type: replace\npath: /a\nvalue: 1\n"))
	require.Error(t, err)
	assert.Equal(t, "invalid ops-file: / (line 1): an ops-file is a list of operations, found a map", err.Error())
	assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
}

func TestParseOpsSyntaxError(t *testing.T) {
	_, err := opsfile.ParseOps([]byte("- type: replace\n  path: [/a\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ops-file: yaml: line")
	assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
}

// TestParseOpsAnchors: an ops-file may share values through anchors.
func TestParseOpsAnchors(t *testing.T) {
	ops := mustOps(t, `
		- type: replace
		  path: /a?
		  value: &v {x: 1}
		- type: replace
		  path: /b?
		  value: *v
	`)
	doc := parseDoc(t, "{}")
	require.NoError(t, opsfile.Apply(doc, ops))
	assert.Equal(t, canon(t, "a: {x: 1}\nb: {x: 1}"), block(t, doc))
}
