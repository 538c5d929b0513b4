package release

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// MaxYAMLSize is the largest release.MF, job spec or package spec the
// parsers read, in bytes.
const MaxYAMLSize = 16 << 20

// maxAliasNodes bounds the nodes visited through aliases on top of the
// document's own, so that a "billion laughs" document fails.
const maxAliasNodes = 1 << 16

// walker reads a YAML node tree strictly: every problem is recorded with
// its path and line, unknown keys by name.
type walker struct {
	object string
	probs  []kubefoundry.FieldError
	bad    map[string]bool // paths with a problem of their own
	budget int
}

// isBad reports whether path or a parent of it has a problem recorded,
// so that the checks after the walk do not report it again.
func (w *walker) isBad(path string) bool {
	for p := path; p != ""; {
		if w.bad[p] {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}

// document reads the one YAML document of data into its top node, or
// records why it cannot.
func (w *walker) document(data []byte, what string) *yaml.Node {
	if len(data) > MaxYAMLSize {
		w.fail("/", 0, strconv.Itoa(len(data))+" bytes", "%s is at most %d bytes", what, MaxYAMLSize)
		return nil
	}
	root, err := yamltree.Document(data, what)
	if err != nil {
		w.fail("/", yamltree.ErrorLine(err.Error()), "", "%s", err.Error())
		return nil
	}
	w.budget = len(data) + maxAliasNodes
	return root
}

func (w *walker) fail(path string, line int, value, format string, args ...any) {
	if path == "" {
		path = "/"
	}
	if w.bad == nil {
		w.bad = map[string]bool{}
	}
	w.bad[path] = true
	w.probs = append(w.probs, kubefoundry.FieldError{Field: path, Value: value, Reason: fmt.Sprintf(format, args...), Line: line})
}

func (w *walker) err() error {
	if len(w.probs) == 0 {
		return nil
	}
	return &kubefoundry.ValidationError{Object: w.object, Problems: w.probs}
}

// resolve follows aliases within the node budget; nil when spent.
func (w *walker) resolve(n *yaml.Node, path string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 64 {
			w.fail(path, n.Line, "", "aliases nest too deep")
			return nil
		}
		n = n.Alias
	}
	w.budget--
	if w.budget < 0 {
		if w.budget == -1 {
			w.fail(path, 0, "", "the document expands to too many nodes through aliases")
		}
		return nil
	}
	return n
}

// field is one key of a mapping as mapping hands it to a handler.
type field struct {
	key  string
	val  *yaml.Node // resolved; nil when the alias budget is spent
	path string
	line int
}

// mapping walks a mapping, calling handle for each known key and
// recording unknown, duplicate and non-string keys. It reports whether n
// is a mapping (null counts as an empty one).
func (w *walker) mapping(n *yaml.Node, path string, known []string, handle func(f field)) bool {
	if n == nil {
		return false
	}
	if yamltree.IsNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		w.fail(path, n.Line, "", "must be a mapping, not %s", yamltree.Kind(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := w.resolve(n.Content[i], path)
		if k == nil {
			return true
		}
		if k.Kind != yaml.ScalarNode || yamltree.IsNull(k) {
			w.fail(path, k.Line, "", "a key must be a string, not %s", yamltree.Kind(k))
			continue
		}
		p := yamltree.Join(path, k.Value)
		if seen[k.Value] {
			w.fail(p, k.Line, "", "the key appears twice")
			continue
		}
		seen[k.Value] = true
		if known != nil && !slices.Contains(known, k.Value) {
			w.fail(p, k.Line, "", "unknown key %q (known: %s)", k.Value, strings.Join(known, ", "))
			continue
		}
		v := w.resolve(n.Content[i+1], p)
		if v == nil {
			return true
		}
		handle(field{key: k.Value, val: v, path: p, line: k.Line})
	}
	return true
}

// str reads a scalar as the text it was written with, so that a version
// 1.10 stays "1.10"; a !!binary (or the Ruby CLI's !binary) scalar is
// decoded from base64.
func (w *walker) str(f field) (string, bool) {
	n := f.val
	if n.Kind != yaml.ScalarNode || yamltree.IsNull(n) {
		w.fail(f.path, f.line, "", "must be a string, not %s", yamltree.Kind(n))
		return "", false
	}
	if n.Tag == "!!binary" || n.Tag == "!binary" || n.Tag == "tag:yaml.org,2002:binary" {
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			w.fail(f.path, f.line, "", "a !!binary value that is not base64: %v", err)
			return "", false
		}
		return string(b), true
	}
	return n.Value, true
}

func (w *walker) boolean(f field) (bool, bool) {
	n := f.val
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var b bool
		if n.Decode(&b) == nil {
			return b, true
		}
	}
	if yamltree.IsNull(n) {
		return false, true
	}
	w.fail(f.path, f.line, n.Value, "must be true or false, not %s", yamltree.Kind(n))
	return false, false
}

// strList reads a list of strings; null is an empty list (nil).
func (w *walker) strList(f field) []string {
	n := f.val
	if yamltree.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		w.fail(f.path, f.line, "", "must be a list of strings, not %s", yamltree.Kind(n))
		return nil
	}
	var out []string
	for i, e := range n.Content {
		p := yamltree.Index(f.path, i)
		e = w.resolve(e, p)
		if e == nil {
			return out
		}
		if s, ok := w.str(field{val: e, path: p, line: e.Line}); ok {
			out = append(out, s)
		}
	}
	return out
}

// list walks a list of mappings; null is an empty list.
func (w *walker) list(f field, each func(i int, e *yaml.Node, path string)) {
	n := f.val
	if yamltree.IsNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.fail(f.path, f.line, "", "must be a list, not %s", yamltree.Kind(n))
		return
	}
	for i, e := range n.Content {
		p := yamltree.Index(f.path, i)
		if e = w.resolve(e, p); e == nil {
			return
		}
		each(i, e, p)
	}
}

// value decodes a free-form value (a property's default or example).
func (w *walker) value(f field) any {
	n := f.val
	if n.Kind == yaml.ScalarNode {
		return yamltree.Scalar(n)
	}
	var v any
	if err := n.Decode(&v); err != nil {
		w.fail(f.path, f.line, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil
	}
	return v
}

// validName reports whether s is a name BOSH accepts for a release, job
// or package: letters, digits, '-', '_' and '.'.
func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}
