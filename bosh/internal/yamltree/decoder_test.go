package yamltree_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// decode reads doc's root with a Decoder as a format would, and returns
// the problems as "path:line: reason [value]".
func decode(t *testing.T, doc string, budget int, read func(d *yamltree.Decoder, root *yaml.Node)) []string {
	t.Helper()
	root, err := yamltree.Document([]byte(doc), "a test document")
	require.NoError(t, err)
	if budget == 0 {
		budget = len(doc) + 1000
	}
	d := yamltree.NewDecoder(budget, 8, nil)
	read(d, root)
	return problems(d.Problems(func(func(string) bool) []kubefoundry.FieldError { return nil }))
}

func problems(ps []kubefoundry.FieldError) []string {
	var out []string
	for _, p := range ps {
		s := fmt.Sprintf("%s:%d: %s", p.Field, p.Line, p.Reason)
		if p.Value != "" {
			s += " [" + p.Value + "]"
		}
		out = append(out, s)
	}
	return out
}

// TestDecoderKinds reads one value of each kind with each reader: what
// it reads, and the problem (path, line of the key, reason, the value
// shown) when the kind is wrong.
func TestDecoderKinds(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name, value string
		read        func(d *yamltree.Decoder, n *yaml.Node) any
		want        any
		problem     string // "" when none
	}{
		{"str", "abc", str, "abc", ""},
		{"str keeps numbers as written", "3147.10", str, "3147.10", ""},
		{"str of null", "~", str, "", ""},
		{"str of a boolean", "true", str, "", "/v:2: must be a string, not a boolean"},
		{"str of a list", "[a]", str, "", "/v:2: must be a string, not a list"},
		{"str of a mapping", "{a: 1}", str, "", "/v:2: must be a string, not a mapping"},
		{"int", "42", integer, "42 true", ""},
		{"int negative", "-3", integer, "-3 true", ""},
		{"int of null", "null", integer, "0 false", ""},
		{"int of a number", "1.5", integer, "0 false", "/v:2: must be an integer, not a number [1.5]"},
		{"int of a string", "ten", integer, "0 false", "/v:2: must be an integer, not a string [ten]"},
		{"int too large for a number", "99999999999999999999", integer, "0 false", "/v:2: must be an integer, not a number [99999999999999999999]"},
		{"int out of range", "18446744073709551615", integer, "0 false", "/v:2: is out of range [18446744073709551615]"},
		{"int of a long string is cut", strings.Repeat("x", 70), integer, "0 false",
			"/v:2: must be an integer, not a string [" + strings.Repeat("x", 61) + "...]"},
		{"int not null", "7", intNotNull, "7 true", ""},
		{"int not null of null", "~", intNotNull, "0 false", "/v:2: must be an integer, not null [~]"},
		{"bool true", "true", boolean, &yes, ""},
		{"bool false", "false", boolean, &no, ""},
		{"bool of null", "~", boolean, (*bool)(nil), ""},
		{"bool of yes (YAML 1.2: a string)", "yes", boolean, (*bool)(nil), "/v:2: must be true or false, not a string [yes]"},
		{"bool of a mapping", "{}", boolean, (*bool)(nil), "/v:2: must be true or false, not a mapping"},
		{"list", "[a, 1]", list, 2, ""},
		{"list of null", "~", list, 0, ""},
		{"list of a string", "a", list, 0, "/v:2: must be a list, not a string"},
		{"strs keeps the length", "[a, [b], c]", strs, []string{"a", "", "c"}, "/v/1:2: must be a string, not a list"},
		{"free", "{a: 1, b: [x, ~], c: {d: true}}", free,
			map[string]any{"a": 1, "b": []any{"x", nil}, "c": map[string]any{"d": true}}, ""},
		{"free of null", "~", free, map[string]any(nil), ""},
		{"free of a list", "[a]", free, map[string]any(nil), "/v:2: must be a mapping, not a list"},
		{"string map", "{a: x, b: 1}", stringMap, map[string]string{"a": "x", "b": "1"}, ""},
		{"string map value", "{a: x, b: [1]}", stringMap, map[string]string{"a": "x"}, "/v/b:2: a tag's value must be a string, not a list"},
		{"string map of a string", "x", stringMap, map[string]string(nil), "/v:2: must be a mapping of strings, not a string"},
		{"fields of null", "~", fields, "map[] true", ""},
		{"fields of a list", "[a]", fields, "map[] false", "/v:2: must be a mapping, not a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got any
			probs := decode(t, "k: 1\nv: "+tc.value+"\n", 0, func(d *yamltree.Decoder, root *yaml.Node) {
				f, ok := d.Root(root, "k", "v")
				require.True(t, ok)
				got = tc.read(d, f["v"])
			})
			assert.Equal(t, tc.want, got)
			if tc.problem == "" {
				assert.Empty(t, probs)
			} else {
				assert.Equal(t, []string{tc.problem}, probs)
			}
		})
	}
}

func str(d *yamltree.Decoder, n *yaml.Node) any { return d.Str("/v", n) }
func integer(d *yamltree.Decoder, n *yaml.Node) any {
	v, ok := d.Int("/v", n)
	return fmt.Sprint(v, ok)
}
func intNotNull(d *yamltree.Decoder, n *yaml.Node) any {
	v, ok := d.IntNotNull("/v", n)
	return fmt.Sprint(v, ok)
}
func boolean(d *yamltree.Decoder, n *yaml.Node) any   { return d.Bool("/v", n) }
func list(d *yamltree.Decoder, n *yaml.Node) any      { return len(d.List("/v", n)) }
func strs(d *yamltree.Decoder, n *yaml.Node) any      { return d.Strs("/v", n) }
func free(d *yamltree.Decoder, n *yaml.Node) any      { return d.Free("/v", n, 1) }
func stringMap(d *yamltree.Decoder, n *yaml.Node) any { return d.StringMap("/v", n, "a tag's value") }
func fields(d *yamltree.Decoder, n *yaml.Node) any {
	f, ok := d.Fields("/v", n, 1, "a")
	return fmt.Sprint(f, ok)
}

// TestDecoderAbsent: a key that is not there reads as the zero value,
// without a problem, for every reader.
func TestDecoderAbsent(t *testing.T) {
	probs := decode(t, "k: 1\n", 0, func(d *yamltree.Decoder, root *yaml.Node) {
		f, _ := d.Root(root, "k", "v")
		assert.Equal(t, "", d.Str("/v", f["v"]))
		v, ok := d.Int("/v", f["v"])
		assert.Equal(t, 0, v)
		assert.False(t, ok)
		v, ok = d.IntNotNull("/v", f["v"])
		assert.Equal(t, 0, v)
		assert.False(t, ok)
		assert.Nil(t, d.Bool("/v", f["v"]))
		assert.Nil(t, d.List("/v", f["v"]))
		assert.Nil(t, d.Free("/v", f["v"], 1))
		assert.Nil(t, d.StringMap("/v", f["v"], ""))
		assert.False(t, d.Present(f, "v"))
		assert.True(t, d.Present(f, "k"))
	})
	assert.Empty(t, probs)
}

// TestDecoderUnknownKeys: every unknown key is a problem at its own path
// and line, with the format's hint, and the known keys around it are
// still read.
func TestDecoderUnknownKeys(t *testing.T) {
	doc := `name: a
azs: [z1]
networks:
- name: n
  typo: 1
  subnets: []
extra: {x: 1}
`
	root, err := yamltree.Document([]byte(doc), "a test document")
	require.NoError(t, err)
	hint := func(path, key string) string {
		if path == "" && key == "azs" {
			return ": it belongs in a cloud config"
		}
		return ""
	}
	d := yamltree.NewDecoder(1000, 8, hint)
	f, ok := d.Root(root, "name", "networks")
	require.True(t, ok)
	assert.Equal(t, "a", d.Str("/name", f["name"]))
	var names []string
	for i, e := range d.List("/networks", f["networks"]) {
		at := yamltree.Index("/networks", i)
		g, ok := d.Fields(at, e, 1, "name", "subnets")
		require.True(t, ok)
		names = append(names, d.Str(at+"/name", g["name"]))
	}
	assert.Equal(t, []string{"n"}, names)
	assert.Equal(t, []string{
		`/azs:2: unknown key "azs": it belongs in a cloud config`,
		`/extra:7: unknown key "extra"`,
		`/networks/0/typo:5: unknown key "typo"`,
	}, problems(d.Problems(func(func(string) bool) []kubefoundry.FieldError { return nil })))
	assert.Equal(t, map[string]int{"": 1, "/name": 1, "/networks": 3, "/networks/0": 4, "/networks/0/name": 4, "/networks/0/subnets": 6}, d.Lines())
}

// TestDecoderEveryProblemAtOnce: problems of every sort in one document
// are all reported, each at its line, and a check of the values read
// adds its own, except under paths that could not be read.
func TestDecoderEveryProblemAtOnce(t *testing.T) {
	doc := `name: [a]
count: many
enabled: 1
items:
- a
- {b: 1}
unknown: x
name2: ~
`
	root, err := yamltree.Document([]byte(doc), "a test document")
	require.NoError(t, err)
	d := yamltree.NewDecoder(1000, 8, nil)
	f, ok := d.Root(root, "name", "count", "enabled", "items", "name2")
	require.True(t, ok)
	name := d.Str("/name", f["name"])
	d.Int("/count", f["count"])
	d.Bool("/enabled", f["enabled"])
	d.Strs("/items", f["items"])
	name2 := d.Str("/name2", f["name2"])
	var unread []string
	probs := d.Problems(func(isUnread func(string) bool) []kubefoundry.FieldError {
		for _, p := range []string{"/name", "/name/x", "/items/0", "/items/1", "/name2"} {
			if isUnread(p) {
				unread = append(unread, p)
			}
		}
		k := yamltree.NewChecker(isUnread)
		k.Required("/name", name)   // unread: not reported again
		k.Required("/name2", name2) // null: reported
		return k.Problems
	})
	assert.Equal(t, []string{"/name", "/name/x", "/items/1"}, unread)
	assert.Equal(t, []string{
		`/unknown:7: unknown key "unknown"`,
		"/name:1: must be a string, not a list",
		"/count:2: must be an integer, not a string [many]",
		"/enabled:3: must be true or false, not an integer [1]",
		"/items/1:6: must be a string, not a mapping",
		"/name2:0: is required",
	}, problems(probs), "the check's problem has no line until Finish")
	err = yamltree.Finish("thing", probs, d.Lines(), yamltree.Selectors{})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, 8, ve.Problems[len(ve.Problems)-1].Line, "Finish gives it its key's line")
}

// TestDecoderMergeKeys: merge keys bring in the keys a mapping does not
// set itself, the earlier of a list of mappings winning; a duplicate key,
// a key that is not a string and a merge of a scalar are problems.
func TestDecoderMergeKeys(t *testing.T) {
	doc := `base: &base {a: 1, b: 2}
more: &more {b: 3, c: 4}
v:
  <<: [*base, *more]
  a: 0
w:
  x: 1
  x: 2
  [k]: 3
  <<: 5
`
	var got map[string]any
	probs := decode(t, doc, 0, func(d *yamltree.Decoder, root *yaml.Node) {
		f, _ := d.Root(root, "base", "more", "v", "w")
		got = d.Free("/v", f["v"], 1)
		d.Free("/w", f["w"], 1)
	})
	assert.Equal(t, map[string]any{"a": 0, "b": 2, "c": 4}, got)
	assert.Equal(t, []string{
		"/w/x:8: defined twice (first at line 7)",
		"/w:9: keys must be strings, not a list",
		"/w:10: a merge key (<<) takes a mapping or a list of mappings",
	}, probs)
}

// TestDecoderAliasBudget: a document whose aliases expand beyond the
// budget stops with one problem, and the check is not run on the half
// read values.
func TestDecoderAliasBudget(t *testing.T) {
	doc := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for _, l := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		prev := string(rune(l[0] - 1))
		doc += l + ": &" + l + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
	}
	doc += "v: *i\n" // 10^9 strings
	root, err := yamltree.Document([]byte(doc), "a test document")
	require.NoError(t, err)
	d := yamltree.NewDecoder(len(doc)+1<<16, 64, nil)
	f, _ := d.Root(root, "a", "b", "c", "d", "e", "f", "g", "h", "i", "v")
	d.Value("/v", f["v"], 1)
	d.Str("/name", f["name"]) // after the budget: nothing more is read, or reported
	checked := false
	probs := d.Problems(func(func(string) bool) []kubefoundry.FieldError {
		checked = true
		return []kubefoundry.FieldError{{Field: "/name", Reason: "is required"}}
	})
	assert.False(t, checked)
	assert.Equal(t, []string{"/:0: the document expands to too many nodes through aliases"}, problems(probs))
}

// TestDecoderDepth: nesting past the limit is a problem, in free-form
// values and in mappings merged into each other alike.
func TestDecoderDepth(t *testing.T) {
	deep := strings.Repeat("[", 20) + strings.Repeat("]", 20)
	probs := decode(t, "v: "+deep+"\n", 0, func(d *yamltree.Decoder, root *yaml.Node) {
		f, _ := d.Root(root, "v")
		d.Value("/v", f["v"], 1)
	})
	assert.Equal(t, []string{"/v/0/0/0/0/0/0/0/0:1: nested deeper than 8 levels"}, probs)

	doc := "m0: &m0 {x: 1}\n"
	for i := 1; i <= 10; i++ {
		doc += fmt.Sprintf("m%d: &m%d {<<: *m%d}\n", i, i, i-1)
	}
	doc += "v: *m10\n"
	probs = decode(t, doc, 0, func(d *yamltree.Decoder, root *yaml.Node) {
		known := []string{"v"}
		for i := 0; i <= 10; i++ {
			known = append(known, fmt.Sprintf("m%d", i))
		}
		f, _ := d.Root(root, known...)
		d.Fields("/v", f["m7"], 1, "x")
		assert.Empty(t, d.Problems(func(func(string) bool) []kubefoundry.FieldError { return nil }), "7 merges deep")
		d.Fields("/v", f["v"], 1, "x")
	})
	assert.Equal(t, []string{"/v:12: nested deeper than 8 levels"}, probs, "10 merges deep, at the line of its key")
}

// TestDecoderAliasLoop: an alias chain that loops (only a tree built in
// Go can have one) reads as nothing rather than hanging.
func TestDecoderAliasLoop(t *testing.T) {
	loop := &yaml.Node{Kind: yaml.AliasNode, Line: 3}
	loop.Alias = loop
	d := yamltree.NewDecoder(100, 8, nil)
	done := make(chan *yaml.Node, 1)
	go func() { done <- d.Resolve(loop) }()
	select {
	case n := <-done:
		assert.Nil(t, n)
	case <-time.After(10 * time.Second):
		t.Fatal("Resolve follows an alias loop forever")
	}
	assert.Equal(t, "", d.Str("/v", loop))
	assert.Nil(t, d.Resolve(nil))
}

// TestDecoderMergeBudget: merge keys that bring in the same large
// mapping again and again cost work, not nodes; each key they bring in
// counts against the budget, so reading stops.
func TestDecoderMergeBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("l0: &l0 {")
	for i := range 1000 {
		fmt.Fprintf(&b, "k%d: 1, ", i)
	}
	b.WriteString("}\n")
	for l := 1; l <= 4; l++ {
		fmt.Fprintf(&b, "l%d: &l%d {<<: [%s*l%d]}\n", l, l, strings.Repeat(fmt.Sprintf("*l%d, ", l-1), 9), l-1)
	}
	probs := decode(t, b.String(), len(b.String())+1<<16, func(d *yamltree.Decoder, root *yaml.Node) {
		f, _ := d.Root(root, "l0", "l1", "l2", "l3", "l4")
		d.Fields("/v", f["l4"], 1, "k0")
	})
	assert.Contains(t, probs, "/:0: the document expands to too many nodes through aliases")
}

// TestDecoderFailLine: a problem is on the line of its path's key, else
// of the node, else of the nearest parent read.
func TestDecoderFailLine(t *testing.T) {
	probs := decode(t, "a:\n  b: 1\n  c:\n    - x\n", 0, func(d *yamltree.Decoder, root *yaml.Node) {
		f, _ := d.Root(root, "a")
		g, _ := d.Fields("/a", f["a"], 1, "b", "c")
		items := d.List("/a/c", g["c"])
		d.Fail("/a/b", items[0], "", "own line")
		d.Fail("/a/x", items[0], "", "node line")
		d.Fail("/a/c/0/deep", nil, "", "parent line")
		d.FailAt("/a/y", 42, "v", "given line")
		assert.True(t, d.Unread("/a/y/z"))
		assert.False(t, d.Unread("/a"))
	})
	assert.Equal(t, []string{"/a/b:2: own line", "/a/x:4: node line", "/a/c/0/deep:4: parent line", "/a/y:42: given line [v]"}, probs)
}

// TestDecoderRoot: a document that is not a mapping is one problem, and
// all of it is unread.
func TestDecoderRoot(t *testing.T) {
	root, err := yamltree.Document([]byte("- a\n"), "a test document")
	require.NoError(t, err)
	d := yamltree.NewDecoder(100, 8, nil)
	_, ok := d.Root(root, "a")
	assert.False(t, ok)
	assert.True(t, d.Unread("/a/b"))
	assert.Equal(t, []string{":1: must be a mapping, not a list"},
		problems(d.Problems(func(func(string) bool) []kubefoundry.FieldError {
			return []kubefoundry.FieldError{{Field: "/a", Reason: "is required"}}
		})))

	// With no budget left, nothing is read, and all of it is unread.
	d = yamltree.NewDecoder(0, 8, nil)
	_, ok = d.Root(root, "a")
	assert.False(t, ok)
	assert.True(t, d.Unread("/a"))
}
