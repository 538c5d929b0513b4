package cloudconfig

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// Limits on what Parse and ParseRuntime read, so that hostile input costs
// bounded time and memory.
const (
	// MaxSize is the largest config read, in bytes.
	MaxSize = 8 << 20
	// MaxDepth is the deepest nesting of mappings and sequences followed,
	// in cloud_properties as anywhere else.
	MaxDepth = 64
	// maxAliasNodes bounds the nodes visited on top of the document's own
	// through aliases and merge keys (a "billion laughs" document).
	maxAliasNodes = 1 << 20
)

// read is Parse and ParseRuntime: it reads data's one YAML document with
// decode, applies check to the result unless reading was cut short, and
// returns every problem at once with ops-file paths and lines.
func read[T any](data []byte, object string, hint func(path, key string) string,
	decode func(*decoder, *yaml.Node) *T, check func(*T, func(string) bool) []kubefoundry.FieldError,
	names func(*T) selectors) (*T, error) {
	if len(data) > MaxSize {
		return nil, &kubefoundry.ValidationError{Object: object, Problems: []kubefoundry.FieldError{{
			Field: "/", Value: strconv.Itoa(len(data)) + " bytes", Reason: fmt.Sprintf("a config is at most %d bytes", MaxSize)}}}
	}
	root, err := yamltree.Document(data, "a config")
	if err != nil {
		return nil, &kubefoundry.ValidationError{Object: object, Problems: []kubefoundry.FieldError{{
			Field: "/", Reason: err.Error(), Line: yamltree.ErrorLine(err.Error())}}}
	}
	d := &decoder{lines: map[string]int{}, bad: map[string]bool{}, budget: len(data) + maxAliasNodes, hint: hint}
	v := decode(d, root)
	probs := d.probs
	if d.budget >= 0 { // else what was not read would be reported as missing
		for _, p := range check(v, d.isBad) {
			if !d.isBad(p.Field) {
				probs = append(probs, p)
			}
		}
	}
	if err := finish(object, probs, d.lines, names(v)); err != nil {
		return nil, err
	}
	return v, nil
}

// decoder walks a YAML node tree. Paths are ops-file paths with indexes
// for list elements (/networks/0/subnets/1/range); finish turns them into
// name= selectors.
type decoder struct {
	probs  []kubefoundry.FieldError
	lines  map[string]int  // path -> line of its key or list element
	bad    map[string]bool // paths whose value could not be read
	budget int             // node visits left
	hint   func(path, key string) string
}

// failAt records a problem at path on a given line.
func (d *decoder) failAt(path string, line int, value, format string, args ...any) {
	d.bad[path] = true
	d.probs = append(d.probs, kubefoundry.FieldError{Field: path, Value: value, Reason: fmt.Sprintf(format, args...), Line: line})
}

// fail records a problem at path, on the line of path's key when it has
// one, else n's, else its nearest parent's.
func (d *decoder) fail(path string, n *yaml.Node, value, format string, args ...any) {
	line, ok := d.lines[path]
	switch {
	case ok:
	case n != nil:
		line = n.Line
	default:
		line = yamltree.LineOf(d.lines, path)
	}
	d.failAt(path, line, value, format, args...)
}

// isBad reports whether path, or a parent of it, could not be read.
func (d *decoder) isBad(path string) bool {
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

// spend counts one node visit; false once the budget is gone.
func (d *decoder) spend() bool {
	d.budget--
	if d.budget == -1 {
		d.probs = append(d.probs, kubefoundry.FieldError{Field: "/", Reason: "the document expands to too many nodes through aliases"})
	}
	return d.budget >= 0
}

// resolve follows aliases to the node they name; nil when the budget is
// spent or the alias leads nowhere.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	if n == nil || !d.spend() {
		return nil
	}
	for hops := 0; n != nil && n.Kind == yaml.AliasNode; hops++ {
		if hops == MaxDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

// entry is one key and value of a mapping.
type entry struct{ key, val *yaml.Node }

// entries lists a mapping's keys and values with merge keys (<<)
// applied: the mapping's own keys first, then the merged keys it does not
// override. Keys that are not strings and keys given twice are problems.
func (d *decoder) entries(path string, n *yaml.Node, depth int) []entry {
	if depth > MaxDepth {
		d.fail(path, n, "", "nested deeper than %d levels", MaxDepth)
		return nil
	}
	var own, merged []entry
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
			d.failAt(path, k.Line, "", "keys must be strings, not %s", yamltree.Kind(k))
			continue
		}
		if line, dup := first[k.Value]; dup {
			d.failAt(yamltree.Join(path, k.Value), k.Line, "", "defined twice (first at line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		own = append(own, entry{k, v})
	}
	for _, e := range merged {
		if _, ok := first[e.key.Value]; !ok {
			first[e.key.Value] = e.key.Line
			own = append(own, e)
		}
	}
	return own
}

// merged returns the entries a merge key brings in: those of a mapping,
// or of a list of mappings where the earlier win.
func (d *decoder) merged(path string, v *yaml.Node, depth int) []entry {
	if v = d.resolve(v); v == nil {
		return nil
	}
	sources := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		sources = nil
		for _, s := range v.Content {
			sources = append(sources, d.resolve(s))
		}
	}
	var out []entry
	seen := map[string]bool{}
	for _, s := range sources {
		if s == nil || s.Kind != yaml.MappingNode {
			d.failAt(path, v.Line, "", "a merge key (<<) takes a mapping or a list of mappings")
			return out
		}
		for _, e := range d.entries(path, s, depth+1) {
			if !seen[e.key.Value] {
				seen[e.key.Value] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// fields reads a mapping whose keys are known: it records each key's
// line, reports unknown keys and returns the values by key. Null reads as
// an empty mapping. ok is false when n is not a mapping.
func (d *decoder) fields(path string, n *yaml.Node, depth int, known ...string) (map[string]*yaml.Node, bool) {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return map[string]*yaml.Node{}, n != nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "", "must be a mapping, not %s", yamltree.Kind(n))
		return nil, false
	}
	out := map[string]*yaml.Node{}
	for _, e := range d.entries(path, n, depth) {
		key, at := e.key.Value, yamltree.Join(path, e.key.Value)
		if !slices.Contains(known, key) {
			hint := ""
			if d.hint != nil {
				hint = d.hint(path, key)
			}
			d.failAt(at, e.key.Line, "", "unknown key %q%s", key, hint)
			continue
		}
		d.lines[at] = e.key.Line
		out[key] = e.val
	}
	return out, true
}

// present reports whether a key was given with a value other than null.
func (d *decoder) present(f map[string]*yaml.Node, key string) bool {
	n, ok := f[key]
	return ok && !yamltree.IsNull(d.resolve(n))
}

// str reads a scalar as the string it is written as (BOSH reads 3000 as
// "3000"); null is "".
func (d *decoder) str(path string, n *yaml.Node) string {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" {
		d.fail(path, n, "", "must be a string, not %s", yamltree.Kind(n))
		return ""
	}
	return n.Value
}

// integer reads an integer that fits an int; null is 0.
func (d *decoder) integer(path string, n *yaml.Node) int {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return 0
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.fail(path, n, shown(n), "must be an integer, not %s", yamltree.Kind(n))
		return 0
	}
	var v int
	if err := n.Decode(&v); err != nil {
		d.fail(path, n, shown(n), "is out of range")
		return 0
	}
	return v
}

// boolean reads true or false; null is false.
func (d *decoder) boolean(path string, n *yaml.Node) bool {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return false
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.fail(path, n, shown(n), "must be true or false, not %s", yamltree.Kind(n))
	}
	return b
}

// list reads a sequence and records its elements' lines; null is nil.
func (d *decoder) list(path string, n *yaml.Node) []*yaml.Node {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n, "", "must be a list, not %s", yamltree.Kind(n))
		return nil
	}
	for i, e := range n.Content {
		d.lines[yamltree.Index(path, i)] = e.Line
	}
	return n.Content
}

// strs reads a list of strings; an element that is not one reads as "".
func (d *decoder) strs(path string, n *yaml.Node) []string {
	var out []string
	for i, e := range d.list(path, n) {
		out = append(out, d.str(yamltree.Index(path, i), e))
	}
	return out
}

// shown is a scalar as a problem shows it, cut to a readable length.
func shown(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	if len(n.Value) > 64 {
		return n.Value[:61] + "..."
	}
	return n.Value
}

// free reads a free-form mapping (cloud_properties, env, properties):
// any keys, any values, depth and size bounded. Null is nil.
func (d *decoder) free(path string, n *yaml.Node, depth int) manifest.Map {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "", "must be a mapping, not %s", yamltree.Kind(n))
		return nil
	}
	m, _ := d.value(path, n, depth).(map[string]any)
	if m == nil {
		return nil
	}
	return manifest.Map(m)
}

// value converts a free-form node to map[string]any, []any or a scalar.
func (d *decoder) value(path string, n *yaml.Node, depth int) any {
	if n = d.resolve(n); n == nil {
		return nil
	}
	if depth > MaxDepth {
		d.fail(path, n, "", "nested deeper than %d levels", MaxDepth)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for _, e := range d.entries(path, n, depth) {
			m[e.key.Value] = d.value(yamltree.Join(path, e.key.Value), e.val, depth+1)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, e := range n.Content {
			s[i] = d.value(yamltree.Index(path, i), e, depth+1)
		}
		return s
	case yaml.ScalarNode:
		return yamltree.Scalar(n)
	}
	return nil
}

// stringMap reads a mapping of strings to strings (tags).
func (d *decoder) stringMap(path string, n *yaml.Node) map[string]string {
	n = d.resolve(n)
	if yamltree.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "", "must be a mapping of strings, not %s", yamltree.Kind(n))
		return nil
	}
	var out map[string]string
	for _, e := range d.entries(path, n, 1) {
		at := yamltree.Join(path, e.key.Value)
		d.lines[at] = e.key.Line
		v := d.resolve(e.val)
		if v == nil {
			continue
		}
		if v.Kind != yaml.ScalarNode || yamltree.IsNull(v) || v.ShortTag() == "!!bool" {
			d.fail(at, v, "", "must be a string, not %s", yamltree.Kind(v))
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[e.key.Value] = v.Value
	}
	return out
}

// selector names the elements of one list by a key (name).
type selector struct {
	key   string
	names []string       // by index
	first map[string]int // name -> index of its first element
}

// selectors collects the named lists of a config by their index path.
type selectors map[string]selector

func (s selectors) add(path, key string, n int, name func(int) string) {
	sel := selector{key: key, names: make([]string, n), first: map[string]int{}}
	for i := range n {
		sel.names[i] = name(i)
		if _, ok := sel.first[sel.names[i]]; !ok {
			sel.first[sel.names[i]] = i
		}
	}
	s[path] = sel
}

// pretty rewrites the indexes of named elements in an index path as
// name= selectors, as ops-files write them: /networks/0/subnets/1/range
// becomes /networks/name=default/subnets/1/range. An element keeps its
// index when it has no name or an earlier element has the same name.
func (s selectors) pretty(path string) string {
	if path == "" || path == "/" {
		return "/"
	}
	var b strings.Builder
	raw := ""
	for _, t := range strings.Split(path[1:], "/") {
		out := t
		if sel, ok := s[raw]; ok {
			if i, err := strconv.Atoi(t); err == nil && i >= 0 && i < len(sel.names) {
				if name := sel.names[i]; strings.TrimSpace(name) != "" && sel.first[name] == i {
					out = sel.key + "=" + strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
				}
			}
		}
		raw += "/" + t
		b.WriteString("/" + out)
	}
	return b.String()
}

// finish turns problems with index paths into the error Parse, Validate
// and their runtime config twins return: selectors in paths, lines when
// the config was read from YAML, in document order.
func finish(object string, probs []kubefoundry.FieldError, lines map[string]int, sel selectors) error {
	if len(probs) == 0 {
		return nil
	}
	for i := range probs {
		p := &probs[i]
		if p.Line == 0 && lines != nil {
			p.Line = yamltree.LineOf(lines, p.Field)
		}
		p.Field = sel.pretty(p.Field)
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	return &kubefoundry.ValidationError{Object: object, Problems: probs}
}

// checker collects the problems of a config built or read, with index
// paths.
type checker struct {
	probs []kubefoundry.FieldError
	// unread reports a path Parse could not read, so that rules that
	// depend on it are not applied to its zero value.
	unread func(path string) bool
}

func newChecker(unread func(string) bool) *checker {
	if unread == nil {
		unread = func(string) bool { return false }
	}
	return &checker{unread: unread}
}

func (c *checker) add(path, value, format string, args ...any) {
	c.probs = append(c.probs, kubefoundry.FieldError{Field: path, Value: value, Reason: fmt.Sprintf(format, args...)})
}

func (c *checker) required(path, value string) {
	if strings.TrimSpace(value) == "" {
		c.add(path, "", "is required")
	}
}

// unique reports a name that an earlier element of the list has.
func (c *checker) unique(seen map[string]bool, path, name, what string) {
	if name == "" {
		return
	}
	if seen[name] {
		c.add(path, name, "%s is defined more than once", what)
		return
	}
	seen[name] = true
}
