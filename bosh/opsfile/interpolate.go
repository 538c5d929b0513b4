package opsfile

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// placeholder matches ((name)), ((!name)) and, as bosh-cli accepts since
// 2024, (( name )). A name has letters, digits, _, -, . and /.
var placeholder = regexp.MustCompile(`\(\([ \t]*(!?[-/.\w\pL]+)[ \t]*\)\)`)

// Interpolate replaces the ((name)) placeholders in doc's values and map
// keys with the values vars gives, as bosh-cli's -v, -l and --vars-store
// do:
//
//   - A value that is one placeholder and nothing else takes the variable's
//     value with its type: an integer stays an integer, a map a map.
//   - Inside a longer string, "https://((ip)):((port))", each placeholder
//     is replaced by the variable's text; only strings and integers may be
//     put inside a string.
//   - ((cert.ca)) is the key ca of the variable cert, and deeper keys
//     likewise; ((/director/dep/cert)) names a variable by absolute name.
//   - ((!name)) is ((name)): bosh-cli drops the ! before looking the name up.
//   - Values are not interpolated again: a value holding "((x))" stays so.
//
// Every variable with no value is listed at once in a
// *MissingVariablesError, sorted, never left empty. Interpolate is all or
// nothing: on any error doc is unchanged. The nodes that replace a
// placeholder take its line and column. Vars.Get is called once per
// variable name.
func Interpolate(doc *yaml.Node, vars Vars) error {
	if doc == nil {
		return invalidf("interpolate: no document")
	}
	in := &interpolator{vars: vars, cache: map[string]lookup{}, missing: map[string][]int{}}
	in.walk(doc)

	errs := in.errs
	if len(in.missing) > 0 {
		names := make([]string, 0, len(in.missing))
		for n := range in.missing {
			names = append(names, n)
		}
		sort.Strings(names)
		errs = append(errs, &MissingVariablesError{Names: names, Lines: in.missing})
	}
	switch len(errs) {
	case 0:
	case 1:
		return errs[0]
	default:
		return errors.Join(errs...)
	}
	for _, e := range in.edits {
		keep := *e.node
		*e.node = *e.repl
		e.node.Anchor = keep.Anchor
		e.node.HeadComment, e.node.LineComment, e.node.FootComment = keep.HeadComment, keep.LineComment, keep.FootComment
		// A comment after "key: ((map))" belongs after the key once the
		// value is a block of lines, where a YAML parser would put it.
		if e.key != nil && e.node.Kind != yaml.ScalarNode && e.node.Style&yaml.FlowStyle == 0 && e.key.LineComment == "" {
			e.key.LineComment, e.node.LineComment = e.node.LineComment, ""
		}
	}
	return nil
}

type interpolator struct {
	vars     Vars
	cache    map[string]lookup // by variable name
	missing  map[string][]int  // variable name -> lines that use it
	errs     []error
	reported map[string]bool // names whose Get failure is in errs
	edits    []edit
}

type lookup struct {
	node  *yaml.Node
	found bool
	err   error
}

// edit replaces node's content with repl once every placeholder resolved.
// key is the map key node is the value of, if any.
type edit struct {
	node, repl, key *yaml.Node
}

func (in *interpolator) walk(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			in.walk(c)
		}
	case yaml.MappingNode:
		var keys map[int]*yaml.Node // index of a key -> its replacement
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode {
				if r := in.scalar(k, true); r != nil {
					if keys == nil {
						keys = map[int]*yaml.Node{}
					}
					keys[i] = r
				}
			} else {
				in.walk(k)
			}
			if v := n.Content[i+1]; v.Kind == yaml.ScalarNode {
				if r := in.scalar(v, false); r != nil {
					in.edits = append(in.edits, edit{node: v, repl: r, key: k})
				}
			} else {
				in.walk(v)
			}
		}
		if keys != nil {
			in.checkKeys(n, keys)
		}
	case yaml.ScalarNode:
		if r := in.scalar(n, false); r != nil {
			in.edits = append(in.edits, edit{node: n, repl: r})
		}
	}
	// An alias shows its anchor's node, which is interpolated where it is
	// written.
}

// checkKeys refuses a map whose keys would repeat once interpolated, and
// records the key edits.
func (in *interpolator) checkKeys(m *yaml.Node, repl map[int]*yaml.Node) {
	type key struct{ tag, value string }
	first := map[key]int{} // final key -> index of its first pair
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if r, ok := repl[i]; ok {
			k = r
		}
		if k.Kind != yaml.ScalarNode {
			continue
		}
		id := key{k.ShortTag(), k.Value}
		j, dup := first[id]
		if !dup {
			first[id] = i
			continue
		}
		if _, ri := repl[i]; !ri {
			if _, rj := repl[j]; !rj {
				continue // written twice in the document, not ours to judge
			}
		}
		in.errs = append(in.errs, invalidf("map%s has the key %q twice once interpolated (%s)",
			atLine(m), k.Value, lineList([]int{m.Content[j].Line, m.Content[i].Line})))
	}
	for i, r := range repl {
		in.edits = append(in.edits, edit{node: m.Content[i], repl: r})
	}
}

// scalar returns what replaces n, or nil when n has no placeholder or one
// of its variables could not be resolved (the reason is recorded).
func (in *interpolator) scalar(n *yaml.Node, isKey bool) *yaml.Node {
	ms := placeholder.FindAllStringSubmatchIndex(n.Value, -1)
	if len(ms) == 0 {
		return nil
	}
	if len(ms) == 1 && ms[0][0] == 0 && ms[0][1] == len(n.Value) {
		name := strings.TrimPrefix(n.Value[ms[0][2]:ms[0][3]], "!")
		v, ok := in.resolve(name, n)
		if !ok {
			return nil
		}
		if isKey && v.Kind != yaml.ScalarNode {
			in.errs = append(in.errs, invalidf("variable %q%s is %s, and a map key takes a string or a number", name, atLine(n), describe(v)))
			return nil
		}
		r := copyTree(v, false)
		setPosition(r, n.Line, n.Column)
		return r
	}

	var b strings.Builder
	ok := true
	last := 0
	for _, m := range ms {
		b.WriteString(n.Value[last:m[0]])
		last = m[1]
		name := strings.TrimPrefix(n.Value[m[2]:m[3]], "!")
		v, found := in.resolve(name, n)
		if !found {
			ok = false
			continue
		}
		s, err := text(v)
		if err != nil {
			in.errs = append(in.errs, invalidf("variable %q%s: %v", name, atLine(n), err))
			ok = false
			continue
		}
		b.WriteString(s)
	}
	if !ok {
		return nil
	}
	b.WriteString(n.Value[last:])
	r := *n
	r.Content = nil
	r.Value = b.String()
	r.Tag = strTag
	r.Style &^= yaml.TaggedStyle
	return &r
}

// resolve finds the value of a name such as "cert.ca" for a placeholder
// in site, recording why when it cannot.
func (in *interpolator) resolve(name string, site *yaml.Node) (*yaml.Node, bool) {
	parts := strings.Split(name, ".")
	base := parts[0]
	l, ok := in.cache[base]
	if !ok {
		l = in.get(base)
		in.cache[base] = l
	}
	if l.err != nil {
		if !in.reported[base] {
			if in.reported == nil {
				in.reported = map[string]bool{}
			}
			in.reported[base] = true
			in.errs = append(in.errs, fmt.Errorf("variable %q%s: %w", base, atLine(site), l.err))
		}
		return nil, false
	}
	if !l.found {
		in.missing[base] = append(in.missing[base], site.Line)
		return nil, false
	}
	v := l.node
	for i, key := range parts[1:] {
		at := strings.Join(parts[:i+1], ".")
		if v.Kind != yaml.MappingNode {
			in.errs = append(in.errs, invalidf("variable %q%s: %q is %s, not a map with the key %q", name, atLine(site), at, describe(v), key))
			return nil, false
		}
		j := findKey(v, key)
		if j < 0 {
			keys := stringKeys(v)
			others := "it has no keys"
			if len(keys) > 0 {
				others = "it has " + quoteAll(keys)
			}
			in.errs = append(in.errs, notFoundf("variable %q%s: %q has no key %q (%s)", name, atLine(site), at, key, others))
			return nil, false
		}
		v = v.Content[j+1]
	}
	return v, true
}

func (in *interpolator) get(name string) lookup {
	if in.vars == nil {
		return lookup{}
	}
	val, found, err := in.vars.Get(name)
	if err != nil || !found {
		return lookup{found: found, err: err}
	}
	n, err := toNode(val)
	if err != nil {
		return lookup{err: fmt.Errorf("value cannot be written as YAML: %w", err)}
	}
	return lookup{node: n, found: true}
}

// toNode turns a variable's value into a YAML node of its own.
func toNode(v any) (*yaml.Node, error) {
	var n *yaml.Node
	switch x := v.(type) {
	case *yaml.Node:
		n = x
	case yaml.Node:
		n = &x
	default:
		return encode(v)
	}
	if n == nil || n.Kind == 0 {
		return newNull(), nil
	}
	n = copyTree(n, true)
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return newNull(), nil
		}
		n = n.Content[0]
	}
	return expandAliases(n)
}

// encode is yaml.Node.Encode, which panics rather than fails on values
// such as funcs and channels.
func encode(v any) (n *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = nil, fmt.Errorf("%v", r)
		}
	}()
	n = new(yaml.Node)
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	return n, nil
}

// text is a value as it goes inside a string: strings and integers only,
// as bosh-cli allows.
func text(v *yaml.Node) (string, error) {
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case strTag:
			return v.Value, nil
		case intTag:
			var i int64
			if err := v.Decode(&i); err == nil {
				return strconv.FormatInt(i, 10), nil
			}
			var u uint64
			if err := v.Decode(&u); err == nil {
				return strconv.FormatUint(u, 10), nil
			}
			return v.Value, nil
		}
	}
	return "", fmt.Errorf("value is %s; only strings and integers can be put inside a string", describe(v))
}
