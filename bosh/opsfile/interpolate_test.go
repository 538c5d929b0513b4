package opsfile_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
)

var cert = map[string]any{
	"ca":          "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
	"certificate": "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n",
	"private_key": "-----BEGIN RSA PRIVATE KEY-----\nKEY\n-----END RSA PRIVATE KEY-----\n",
}

func TestInterpolate(t *testing.T) {
	vars := opsfile.Map{
		"a":                                  "A",
		"count":                              3,
		"enabled":                            true,
		"ratio":                              2.5,
		"port":                               8443,
		"ip":                                 "10.0.0.5",
		"password":                           "s3cret%[==x",
		"numeric":                            "10",
		"nothing":                            nil,
		"azs":                                []string{"z1", "z2"},
		"props":                              map[string]any{"a": 1, "b": []any{"x"}},
		"tls":                                cert,
		"deep":                               map[string]any{"a": map[string]any{"b": map[string]any{"c": "found"}}},
		"/director/cluster-1/admin_password": "abs",
		"iaas":                               "vsphere",
		"Ω":                                  "☃",
		"with-a-dash":                        "dash",
		"with_an_underscore":                 "underscore",
		"placeholder":                        "((count))",
		"multiline":                          "this\nhas\nlines",
		"hex":                                parseDoc(t, "0x1F").Content[0],
		"node":                               parseDoc(t, "{from: node, list: [1, 2]}"),
	}
	tests := []struct {
		name, doc, want string
	}{
		{"an integer stays an integer", "instances: ((count))", "instances: 3"},
		{"a boolean stays a boolean", "on: ((enabled))", "on: true"},
		{"a float stays a float", "r: ((ratio))", "r: 2.5"},
		{"a string that looks like a number stays a string", "v: ((numeric))", `v: "10"`},
		{"null", "v: ((nothing))", "v: null"},
		{"a list", "azs: ((azs))", "azs: [z1, z2]"},
		{"a map", "properties: ((props))", "properties: {a: 1, b: [x]}"},
		{"a *yaml.Node", "v: ((node))", "v: {from: node, list: [1, 2]}"},
		{"in a string", "url: https://((ip)):((port))/v1", "url: https://10.0.0.5:8443/v1"},
		{"the same variable twice in a string", "userpass: ((ip)):((ip))", "userpass: 10.0.0.5:10.0.0.5"},
		{"a value with % is taken as is", "uri: nats://nats:((password))@((ip)):4222", "uri: nats://nats:s3cret%[==x@10.0.0.5:4222"},
		{"an integer node in a string", "v: port-((hex))", "v: port-31"},
		{"sub-key .ca", "ca: ((tls.ca))", "ca: |\n  -----BEGIN CERTIFICATE-----\n  CA\n  -----END CERTIFICATE-----\n"},
		{"sub-key .certificate", "c: ((tls.certificate))", "c: |\n  -----BEGIN CERTIFICATE-----\n  LEAF\n  -----END CERTIFICATE-----\n"},
		{"sub-key .private_key", "k: ((tls.private_key))", "k: |\n  -----BEGIN RSA PRIVATE KEY-----\n  KEY\n  -----END RSA PRIVATE KEY-----\n"},
		{"deeper sub-keys", "v: ((deep.a.b.c))", "v: found"},
		{"a sub-key that is a map", "v: ((deep.a))", "v: {b: {c: found}}"},
		{"absolute name", "pw: ((/director/cluster-1/admin_password))", "pw: abs"},
		{"! is dropped", "a: ((!count))\nb: [((!ip))]\nc: x-((!ip))", "a: 3\nb: [10.0.0.5]\nc: x-10.0.0.5"},
		{"spaces inside the parentheses", "a: (( count ))", "a: 3"},
		{"a whole key", "((iaas)): cpi", "vsphere: cpi"},
		{"inside a key", "((iaas))_cpi: props", "vsphere_cpi: props"},
		{"an integer key", "((count)): three", "3: three"},
		{"unicode names", "v: ((Ω))", "v: ☃"},
		{"dashes and underscores", "((with-a-dash)): ((with_an_underscore))", "dash: underscore"},
		{"a value is not interpolated again", "v: ((placeholder))", "v: ((count))"},
		{"multi-line values", "v: ((multiline))", "v: |-\n  this\n  has\n  lines\n"},
		{"a whole document", "((props))", "{a: 1, b: [x]}"},
		{"deep in lists and maps", "a: [{b: [((count))]}]", "a: [{b: [3]}]"},
		{"not placeholders", "a: (()\nb: ((\nc: ((a b))\nd: ((a))x((", "a: (()\nb: ((\nc: ((a b))\nd: Ax(("},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := parseDoc(t, tt.doc)
			require.NoError(t, opsfile.Interpolate(doc, vars))
			assert.Equal(t, canon(t, tt.want), block(t, doc))
		})
	}
}

// TestInterpolateMissing: every missing name is listed at once, sorted,
// each with the lines that use it, and nothing is left half done.
func TestInterpolateMissing(t *testing.T) {
	const in = `name: ((deployment))
((key)): ((key2))
present: ((here))
url: https://((zeta)):((port))
list:
- ((key2))
- ((/abs/name.ca))
`
	doc := parseDoc(t, in)
	err := opsfile.Interpolate(doc, opsfile.Map{"here": "yes", "port": 1})
	require.Error(t, err)

	var missing *opsfile.MissingVariablesError
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, []string{"/abs/name", "deployment", "key", "key2", "zeta"}, missing.Names)
	assert.Equal(t, []int{2, 6}, missing.Lines["key2"])
	assert.Equal(t, "expected to find variables: /abs/name (line 7), deployment (line 1), key (line 2), key2 (lines 2, 6), zeta (line 4)", err.Error())
	assert.ErrorIs(t, err, kubefoundry.ErrNotFound)
	assert.Equal(t, canon(t, in), block(t, doc), "a failed Interpolate changes nothing")

	// No vars at all: everything is missing, nothing becomes empty.
	err = opsfile.Interpolate(parseDoc(t, "a: ((x))"), nil)
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, []string{"x"}, missing.Names)
}

func TestInterpolateErrors(t *testing.T) {
	failing := varsFunc(func(name string) (any, bool, error) {
		if name == "broken" {
			return nil, false, errors.New("credhub unreachable")
		}
		return nil, false, nil
	})
	vars := opsfile.Multi{opsfile.Map{
		"ratio": 2.5,
		"map":   map[string]any{"a": 1},
		"tls":   cert,
		"str":   "plain",
		"k":     "same",
		"fn":    func() {},
	}, failing}
	tests := []struct {
		name, doc string
		errs      []string
		errIs     error
	}{
		{
			name: "a float inside a string", doc: "address: ((str)):((ratio))",
			errs: []string{`variable "ratio" (line 1): value is a float; only strings and integers can be put inside a string`},
		},
		{
			name: "a map inside a string", doc: "a: x-((map))",
			errs: []string{`variable "map" (line 1): value is a map; only strings and integers can be put inside a string`},
		},
		{
			name: "a missing sub-key", doc: "ca: ((tls.cert))",
			errs:  []string{`variable "tls.cert" (line 1): "tls" has no key "cert" (it has "ca", "certificate", "private_key")`},
			errIs: kubefoundry.ErrNotFound,
		},
		{
			name: "a sub-key of a string", doc: "ca: ((str.ca))",
			errs: []string{`variable "str.ca" (line 1): "str" is a string, not a map with the key "ca"`},
		},
		{
			name: "a map as a map key", doc: "((map)): x",
			errs: []string{`variable "map" (line 1) is a map, and a map key takes a string or a number`},
		},
		{
			name: "keys that repeat once interpolated", doc: "same: 1\n((k)): 2",
			errs: []string{`map (line 1) has the key "same" twice once interpolated (lines 1, 2)`},
		},
		{
			name: "a failing store", doc: "a: ((broken))\nb: ((broken))",
			errs: []string{`variable "broken" (line 1): credhub unreachable`},
		},
		{
			name: "a value YAML cannot hold", doc: "a: ((fn))",
			errs: []string{`variable "fn" (line 1): value cannot be written as YAML`},
		},
		{
			name: "every kind of error at once", doc: "a: ((missing))\nb: x((ratio))\nc: ((tls.nope))",
			errs: []string{
				`variable "ratio" (line 2): value is a float`,
				`variable "tls.nope" (line 3): "tls" has no key "nope"`,
				"expected to find variables: missing (line 1)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := parseDoc(t, tt.doc)
			err := opsfile.Interpolate(doc, vars)
			require.Error(t, err)
			for _, e := range tt.errs {
				assert.Contains(t, err.Error(), e)
			}
			if tt.errIs != nil {
				assert.ErrorIs(t, err, tt.errIs)
			}
			assert.Equal(t, canon(t, tt.doc), block(t, doc), "a failed Interpolate changes nothing")
		})
	}
}

// TestInterpolatePositions: a value takes the line and column of its
// placeholder; anchors and comments stay.
func TestInterpolatePositions(t *testing.T) {
	doc := parseDoc(t, "a: 1\nprops: ((props)) # from the store\nshared: &s ((n))\nalias: *s\n")
	require.NoError(t, opsfile.Interpolate(doc, opsfile.Map{"props": map[string]any{"x": []int{1}}, "n": 7}))
	root := doc.Content[0]
	props := root.Content[3]
	assert.Equal(t, 2, props.Line)
	assert.Equal(t, 8, props.Column)
	assert.Equal(t, 2, props.Content[1].Content[0].Line, "nested nodes too")
	assert.Equal(t, "# from the store", root.Content[2].LineComment, "on the key, as a parser puts it")
	assert.Equal(t, "a: 1\nprops: # from the store\n  x:\n    - 1\nshared: &s 7\nalias: *s\n", render(t, doc))

	var out struct{ Alias int }
	require.NoError(t, doc.Decode(&out))
	assert.Equal(t, 7, out.Alias)
}

// TestInterpolateAsksOncePerName: a store is asked once per variable, not
// once per use.
func TestInterpolateAsksOncePerName(t *testing.T) {
	asked := map[string]int{}
	vars := varsFunc(func(name string) (any, bool, error) {
		asked[name]++
		return cert, name == "tls", nil
	})
	doc := parseDoc(t, "a: ((tls.ca))\nb: ((tls.certificate))\nc: ((tls))\nd: ((gone))\ne: ((gone))")
	require.Error(t, opsfile.Interpolate(doc, vars))
	assert.Equal(t, map[string]int{"tls": 1, "gone": 1}, asked)
}

// TestApplyThenInterpolate is bosh-cli's order: ops first, then variables,
// including those an op brought in.
func TestApplyThenInterpolate(t *testing.T) {
	doc := parseDoc(t, "a: b\n")
	ops := mustOps(t, "- {type: replace, path: /a, value: ((c))}")
	require.NoError(t, opsfile.Apply(doc, ops))
	require.NoError(t, opsfile.Interpolate(doc, opsfile.Map{"c": "x"}))
	assert.Equal(t, "a: x\n", render(t, doc))

	err := opsfile.Interpolate(parseDoc(t, "a: ((c))"), opsfile.Map{})
	require.Error(t, err)
	assert.Equal(t, "expected to find variables: c (line 1)", err.Error())
}

func TestInterpolateBareNodes(t *testing.T) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: "((v))"}
	require.NoError(t, opsfile.Interpolate(n, opsfile.Map{"v": 5}))
	assert.Equal(t, "5", n.Value)
	assert.Equal(t, "!!int", n.ShortTag())

	var empty yaml.Node
	require.NoError(t, opsfile.Interpolate(&empty, nil))
	assert.ErrorIs(t, opsfile.Interpolate(nil, nil), kubefoundry.ErrInvalid)
}

type varsFunc func(name string) (any, bool, error)

func (f varsFunc) Get(name string) (any, bool, error) { return f(name) }
