package yamltree

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
)

// Decoder walks a YAML node tree into typed values, collecting every
// problem at once instead of stopping at the first. Paths are ops-file
// paths with indexes for list elements (/networks/0/subnets/1/range);
// the format's package turns them into name= selectors (see Selectors).
//
// A Decoder records the line of every key and list element it reads, so
// that a problem found later, by checking the values read, has a line
// too (Lines). It bounds what hostile input costs: every node visited,
// through aliases and merge keys as well, is counted against a budget,
// and nesting is followed at most maxDepth levels.
//
// A Decoder reads one document; it is not safe for concurrent use.
type Decoder struct {
	probs    []kubefoundry.FieldError
	lines    map[string]int  // path -> line of its key or list element
	bad      map[string]bool // paths whose value could not be read
	budget   int             // node visits left
	maxDepth int
	hint     func(path, key string) string
}

// NewDecoder returns a Decoder that visits at most budget nodes (the
// document's own and those aliases bring in) and follows nesting and
// chains of aliases at most maxDepth deep. hint, when not nil, explains
// an unknown key that belongs elsewhere: its result (": it belongs in a
// cloud config") is appended to the problem's reason.
func NewDecoder(budget, maxDepth int, hint func(path, key string) string) *Decoder {
	return &Decoder{lines: map[string]int{}, bad: map[string]bool{}, budget: budget, maxDepth: maxDepth, hint: hint}
}

// Root reads the top mapping of a document with its known keys (see
// Fields) at path "" (shown as /). When root is not a mapping the whole
// document is unread, and ok is false.
func (d *Decoder) Root(root *yaml.Node, known ...string) (map[string]*yaml.Node, bool) {
	d.lines[""] = root.Line
	f, ok := d.Fields("", root, 0, known...)
	if !ok {
		d.bad[""] = true
	}
	return f, ok
}

// FailAt records a problem at path on a given line, and marks path
// unread.
func (d *Decoder) FailAt(path string, line int, value, format string, args ...any) {
	d.bad[path] = true
	d.probs = append(d.probs, kubefoundry.FieldError{Field: path, Value: value, Reason: fmt.Sprintf(format, args...), Line: line})
}

// Fail records a problem at path, on the line of path's key or list
// element when it has one, else on n's, else on its nearest parent's;
// path is marked unread.
func (d *Decoder) Fail(path string, n *yaml.Node, value, format string, args ...any) {
	line, ok := d.lines[path]
	switch {
	case ok:
	case n != nil:
		line = n.Line
	default:
		line = LineOf(d.lines, path)
	}
	d.FailAt(path, line, value, format, args...)
}

// Unread reports whether path, or a parent of it, could not be read: a
// check of the values read leaves it alone, since its zero value is not
// what the document says.
func (d *Decoder) Unread(path string) bool {
	for p := path; ; {
		if d.bad[p] {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// SetLine records the line of a path the format reads itself (a key of
// a mapping it walks with Pairs).
func (d *Decoder) SetLine(path string, line int) { d.lines[path] = line }

// Lines maps the paths read to the lines of their keys or list elements.
func (d *Decoder) Lines() map[string]int { return d.lines }

// Problems returns the problems found while reading, then those check
// finds in the values read, leaving out those at or under an unread
// path. check is given Unread. When the budget ran out, check is not
// called: what was not read would be reported as missing.
func (d *Decoder) Problems(check func(unread func(path string) bool) []kubefoundry.FieldError) []kubefoundry.FieldError {
	probs := d.probs
	if d.budget >= 0 {
		for _, p := range check(d.Unread) {
			if !d.Unread(p.Field) {
				probs = append(probs, p)
			}
		}
	}
	return probs
}

// spend counts one node visit; false once the budget is gone.
func (d *Decoder) spend() bool {
	d.budget--
	if d.budget == -1 {
		d.probs = append(d.probs, kubefoundry.FieldError{Field: "/", Reason: "the document expands to too many nodes through aliases"})
	}
	return d.budget >= 0
}

// Resolve follows aliases to the node they name, counting the visit; nil
// when n is nil, the budget is spent, or the chain of aliases leads
// nowhere or is longer than maxDepth.
func (d *Decoder) Resolve(n *yaml.Node) *yaml.Node {
	if n == nil || !d.spend() {
		return nil
	}
	for hops := 0; n != nil && n.Kind == yaml.AliasNode; hops++ {
		if hops == d.maxDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

// Pair is one key and value of a mapping.
type Pair struct{ Key, Val *yaml.Node }

// Pairs lists the keys and values of mapping n, at nesting depth, with
// merge keys (<<) applied: the mapping's own keys first, then the merged
// keys it does not override. Keys that are not strings and keys given
// twice are problems. Past maxDepth it reports the nesting and returns
// nil.
func (d *Decoder) Pairs(path string, n *yaml.Node, depth int) []Pair {
	if depth > d.maxDepth {
		d.Fail(path, n, "", "nested deeper than %d levels", d.maxDepth)
		return nil
	}
	var own, merged []Pair
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.spend() {
			return own
		}
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merged(path, v, depth)...)
			continue
		}
		if k.Kind == yaml.AliasNode && k.Alias != nil && k.Alias.Kind == yaml.ScalarNode {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.FailAt(path, k.Line, "", "keys must be strings, not %s", Kind(k))
			continue
		}
		if line, dup := first[k.Value]; dup {
			d.FailAt(Join(path, k.Value), k.Line, "", "defined twice (first at line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		own = append(own, Pair{k, v})
	}
	for _, p := range merged {
		if _, ok := first[p.Key.Value]; !ok {
			first[p.Key.Value] = p.Key.Line
			own = append(own, p)
		}
	}
	return own
}

// merged returns the pairs a merge key brings in: those of a mapping, or
// of a list of mappings where the earlier win.
func (d *Decoder) merged(path string, v *yaml.Node, depth int) []Pair {
	if v = d.Resolve(v); v == nil {
		return nil
	}
	sources := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		sources = nil
		for _, s := range v.Content {
			sources = append(sources, d.Resolve(s))
		}
	}
	var out []Pair
	seen := map[string]bool{}
	for _, s := range sources {
		if s == nil || s.Kind != yaml.MappingNode {
			d.FailAt(path, v.Line, "", "a merge key (<<) takes a mapping or a list of mappings")
			return out
		}
		for _, p := range d.Pairs(path, s, depth+1) {
			if !seen[p.Key.Value] {
				seen[p.Key.Value] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// Fields reads a mapping whose keys are known: it records each key's
// line, reports unknown keys (with the hint) and returns the values by
// key. Null reads as an empty mapping. ok is false when n is not a
// mapping, and when n is nil or the budget is spent.
func (d *Decoder) Fields(path string, n *yaml.Node, depth int, known ...string) (map[string]*yaml.Node, bool) {
	n = d.Resolve(n)
	if IsNull(n) {
		return map[string]*yaml.Node{}, n != nil
	}
	if n.Kind != yaml.MappingNode {
		d.Fail(path, n, "", "must be a mapping, not %s", Kind(n))
		return nil, false
	}
	out := map[string]*yaml.Node{}
	for _, p := range d.Pairs(path, n, depth) {
		key, at := p.Key.Value, Join(path, p.Key.Value)
		if !slices.Contains(known, key) {
			hint := ""
			if d.hint != nil {
				hint = d.hint(path, key)
			}
			d.FailAt(at, p.Key.Line, "", "unknown key %q%s", key, hint)
			continue
		}
		d.lines[at] = p.Key.Line
		out[key] = p.Val
	}
	return out, true
}

// Present reports whether key was given in f with a value other than
// null.
func (d *Decoder) Present(f map[string]*yaml.Node, key string) bool {
	n, ok := f[key]
	return ok && !IsNull(d.Resolve(n))
}

// Str reads a scalar as the string it is written as (BOSH reads version:
// 3147 as "3147"); null is "". A boolean, list or mapping is a problem.
func (d *Decoder) Str(path string, n *yaml.Node) string {
	n = d.Resolve(n)
	if IsNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" {
		d.Fail(path, n, "", "must be a string, not %s", Kind(n))
		return ""
	}
	return n.Value
}

// Int reads an integer that fits an int. Null reads as 0; ok is false
// then, when n is nil, and when n is not such an integer (a problem).
func (d *Decoder) Int(path string, n *yaml.Node) (v int, ok bool) {
	n = d.Resolve(n)
	if IsNull(n) {
		return 0, false
	}
	return d.intOf(path, n)
}

// IntNotNull is Int where null is a problem ("must be an integer, not
// null"), as a deployment manifest's vm_resources take it.
func (d *Decoder) IntNotNull(path string, n *yaml.Node) (v int, ok bool) {
	n = d.Resolve(n)
	if n == nil {
		return 0, false
	}
	return d.intOf(path, n)
}

func (d *Decoder) intOf(path string, n *yaml.Node) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.Fail(path, n, Shown(n), "must be an integer, not %s", Kind(n))
		return 0, false
	}
	var v int
	if err := n.Decode(&v); err != nil {
		d.Fail(path, n, Shown(n), "is out of range")
		return 0, false
	}
	return v, true
}

// Bool reads true or false; null, and what is not a boolean (a
// problem), read as nil.
func (d *Decoder) Bool(path string, n *yaml.Node) *bool {
	n = d.Resolve(n)
	if IsNull(n) {
		return nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.Fail(path, n, Shown(n), "must be true or false, not %s", Kind(n))
		return nil
	}
	return &b
}

// List reads a sequence and records its elements' lines; null is nil.
func (d *Decoder) List(path string, n *yaml.Node) []*yaml.Node {
	n = d.Resolve(n)
	if IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.Fail(path, n, "", "must be a list, not %s", Kind(n))
		return nil
	}
	for i, e := range n.Content {
		d.lines[Index(path, i)] = e.Line
	}
	return n.Content
}

// Strs reads a list of strings; an element that is not one reads as "",
// so that the list keeps its length and indexes.
func (d *Decoder) Strs(path string, n *yaml.Node) []string {
	var out []string
	for i, e := range d.List(path, n) {
		out = append(out, d.Str(Index(path, i), e))
	}
	return out
}

// StringMap reads a mapping of strings to strings (tags); null is nil. A
// value that is not a string is a problem whose reason starts with
// subject ("a tag's value must be a string, not a list"; without a
// subject, "must be a string, not a list").
func (d *Decoder) StringMap(path string, n *yaml.Node, subject string) map[string]string {
	n = d.Resolve(n)
	if IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.Fail(path, n, "", "must be a mapping of strings, not %s", Kind(n))
		return nil
	}
	reason := "must be a string, not %s"
	if subject != "" {
		reason = subject + " " + reason
	}
	var out map[string]string
	for _, p := range d.Pairs(path, n, 1) {
		at := Join(path, p.Key.Value)
		d.lines[at] = p.Key.Line
		v := d.Resolve(p.Val)
		if v == nil {
			continue
		}
		if v.Kind != yaml.ScalarNode || IsNull(v) || v.ShortTag() == "!!bool" {
			d.Fail(at, v, "", reason, Kind(v))
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[p.Key.Value] = v.Value
	}
	return out
}

// Free reads a free-form mapping (properties, env, cloud_properties,
// options): any keys, any values, at nesting depth. Null is nil; what is
// not a mapping is a problem.
func (d *Decoder) Free(path string, n *yaml.Node, depth int) map[string]any {
	n = d.Resolve(n)
	if IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.Fail(path, n, "", "must be a mapping, not %s", Kind(n))
		return nil
	}
	m, _ := d.Value(path, n, depth).(map[string]any)
	return m
}

// Value converts a free-form node at nesting depth: mappings to
// map[string]any, sequences to []any, scalars by their tag (Scalar).
// Past maxDepth it reports the nesting and returns nil.
func (d *Decoder) Value(path string, n *yaml.Node, depth int) any {
	if n = d.Resolve(n); n == nil {
		return nil
	}
	if depth > d.maxDepth {
		d.Fail(path, n, "", "nested deeper than %d levels", d.maxDepth)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for _, p := range d.Pairs(path, n, depth) {
			m[p.Key.Value] = d.Value(Join(path, p.Key.Value), p.Val, depth+1)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, e := range n.Content {
			s[i] = d.Value(Index(path, i), e, depth+1)
		}
		return s
	case yaml.ScalarNode:
		return Scalar(n)
	}
	return nil
}
