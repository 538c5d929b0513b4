package opsfile

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Apply applies ops to doc in order, as bosh-cli's -o does. doc is a
// document node, as yaml.Unmarshal into a yaml.Node gives, or any other
// node, which then stands for the whole document.
//
// Apply is all or nothing: when an op fails it returns an *OpError naming
// the op and leaves doc as it was. On success the tree under doc is a new
// one: nodes the ops did not touch keep their lines and comments, nodes an
// op inserted keep their lines in the ops-file, and aliases are expanded
// and merge keys (<<) folded, so every path sees the data a YAML decoder
// would see.
func Apply(doc *yaml.Node, ops []Op) error {
	if doc == nil {
		return invalidf("apply ops: no document")
	}
	if len(ops) == 0 {
		return nil
	}
	work := copyTree(doc, true)
	switch {
	case work.Kind == yaml.DocumentNode && len(work.Content) == 0:
		work.Content = []*yaml.Node{newNull()}
	case work.Kind == 0:
		*work = *newNull()
	}
	expanded, err := expandAliases(work)
	if err != nil {
		return fmt.Errorf("apply ops: %w", err)
	}
	work = expanded
	for i, op := range ops {
		if err := applyOp(work, op); err != nil {
			return &OpError{Index: i, Type: op.Type, Path: op.Path.String(), Line: op.Line, Message: op.Error, Err: err}
		}
	}
	*doc = *work
	return nil
}

// applyOp applies one op to the expanded tree under doc.
func applyOp(doc *yaml.Node, op Op) error {
	cur := doc
	setRoot := func(n *yaml.Node) { *doc = *n }
	if doc.Kind == yaml.DocumentNode {
		cur = doc.Content[0]
		setRoot = func(n *yaml.Node) { doc.Content[0] = n }
	}
	switch op.Type {
	case Replace:
		if op.Value == nil {
			return invalidf("a replace needs a value")
		}
		value, err := expandAliases(copyTree(op.Value, true))
		if err != nil {
			return fmt.Errorf("value: %w", err)
		}
		if value.Kind == yaml.DocumentNode {
			if len(value.Content) == 0 {
				value = newNull()
			} else {
				value = value.Content[0]
			}
		}
		if value.Kind == 0 {
			value = newNull()
		}
		return replace(cur, setRoot, op.Path, value)
	case Remove:
		return remove(cur, op.Path)
	}
	return invalidf("unknown op type %q (want replace or remove)", op.Type)
}

// replace walks p from cur, creating what optional segments allow, and
// puts value at its end. setRoot replaces cur, for the path "".
func replace(cur *yaml.Node, setRoot func(*yaml.Node), p Pointer, value *yaml.Node) error {
	toks := p.tokens
	if len(toks) == 0 {
		setRoot(value)
		return nil
	}
	for i, tok := range toks {
		last := i == len(toks)-1
		at := p.prefix(i)
		switch tok.kind {
		case indexToken:
			if cur.Kind != yaml.SequenceNode {
				return mismatch("an array", at, cur)
			}
			seq := cur
			if last {
				pos, insert, err := arrayIndex(tok.index, tok.mods, len(seq.Content), true, at, seq)
				if err != nil {
					return err
				}
				if insert {
					seq.Content = insertAt(seq.Content, pos, value)
				} else {
					seq.Content[pos] = value
				}
				return nil
			}
			pos, _, err := arrayIndex(tok.index, tok.mods, len(seq.Content), false, at, seq)
			if err != nil {
				return err
			}
			cur = seq.Content[pos]

		case appendToken:
			if cur.Kind != yaml.SequenceNode {
				return mismatch("an array", at, cur)
			}
			cur.Content = append(cur.Content, value)
			return nil

		case matchToken:
			if cur.Kind != yaml.SequenceNode {
				return mismatch("an array", at, cur)
			}
			seq := cur
			idxs := matching(seq, tok)
			if len(idxs) == 0 && tok.optional {
				if last {
					seq.Content = append(seq.Content, value)
					return nil
				}
				item := &yaml.Node{Kind: yaml.MappingNode, Tag: mapTag, Line: value.Line, Column: value.Column}
				item.Content = []*yaml.Node{
					newString(tok.key, value.Line, value.Column),
					newString(tok.value, value.Line, value.Column),
				}
				seq.Content = append(seq.Content, item)
				cur = item
				continue
			}
			if err := exactlyOne(idxs, at, seq); err != nil {
				return err
			}
			if last {
				pos, insert, err := arrayIndex(idxs[0], tok.mods, len(seq.Content), true, at, seq)
				if err != nil {
					return err
				}
				if insert {
					seq.Content = insertAt(seq.Content, pos, value)
				} else {
					seq.Content[pos] = value
				}
				return nil
			}
			pos, _, err := arrayIndex(idxs[0], tok.mods, len(seq.Content), false, at, seq)
			if err != nil {
				return err
			}
			cur = seq.Content[pos]

		case keyToken:
			if cur.Kind != yaml.MappingNode {
				return mismatch("a map", at, cur)
			}
			m := cur
			j := findKey(m, tok.key)
			if j < 0 && !tok.optional {
				return missingKey(tok.key, at, m)
			}
			if last {
				if j < 0 {
					m.Content = append(m.Content, newString(tok.key, value.Line, value.Column), value)
				} else {
					m.Content[j+1] = value
				}
				return nil
			}
			if j < 0 {
				var created *yaml.Node
				switch toks[i+1].kind {
				case appendToken, matchToken:
					created = &yaml.Node{Kind: yaml.SequenceNode, Tag: seqTag, Line: value.Line, Column: value.Column}
				case keyToken:
					created = &yaml.Node{Kind: yaml.MappingNode, Tag: mapTag, Line: value.Line, Column: value.Column}
				default:
					return invalidf("optional key %q at %q is missing, and an index cannot follow it: only a key, a name=value or \"-\" says what to create at %q",
						tok.key, at, p.prefix(i+1))
				}
				m.Content = append(m.Content, newString(tok.key, value.Line, value.Column), created)
				j = len(m.Content) - 2
			}
			cur = m.Content[j+1]
		}
	}
	return nil // not reached: the last token returns above
}

// remove walks p from cur and deletes the node at its end.
func remove(cur *yaml.Node, p Pointer) error {
	toks := p.tokens
	if len(toks) == 0 {
		return invalidf("cannot remove the entire document")
	}
	for i, tok := range toks {
		last := i == len(toks)-1
		at := p.prefix(i)
		switch tok.kind {
		case indexToken:
			if cur.Kind != yaml.SequenceNode {
				return mismatch("an array", at, cur)
			}
			pos, _, err := arrayIndex(tok.index, tok.mods, len(cur.Content), false, at, cur)
			if err != nil {
				return err
			}
			if last {
				cur.Content = deleteAt(cur.Content, pos)
				return nil
			}
			cur = cur.Content[pos]

		case appendToken:
			return invalidf("\"-\" at %q names no item, so there is nothing to remove", at)

		case matchToken:
			if cur.Kind != yaml.SequenceNode {
				return mismatch("an array", at, cur)
			}
			idxs := matching(cur, tok)
			if len(idxs) == 0 && tok.optional {
				return nil
			}
			if err := exactlyOne(idxs, at, cur); err != nil {
				return err
			}
			pos, _, err := arrayIndex(idxs[0], tok.mods, len(cur.Content), false, at, cur)
			if err != nil {
				return err
			}
			if last {
				cur.Content = deleteAt(cur.Content, pos)
				return nil
			}
			cur = cur.Content[pos]

		case keyToken:
			if cur.Kind != yaml.MappingNode {
				return mismatch("a map", at, cur)
			}
			j := findKey(cur, tok.key)
			if j < 0 {
				if tok.optional {
					return nil
				}
				return missingKey(tok.key, at, cur)
			}
			if last {
				cur.Content = append(cur.Content[:j:j], cur.Content[j+2:]...)
				return nil
			}
			cur = cur.Content[j+1]
		}
	}
	return nil
}

// arrayIndex turns an index and its modifiers into a position in an array
// of n items, as go-patch does: :prev and :next move the index, a negative
// index counts from the end, and (only when insertion is allowed, on the
// last segment of a replace) :before or :after, which must come last, make
// it an insertion before or after that item.
func arrayIndex(idx int, mods []modifier, n int, allowInsert bool, at string, seq *yaml.Node) (pos int, insert bool, err error) {
	before, after := false, false
	for _, m := range mods {
		if before || after {
			return 0, false, invalidf("at %q: no modifier may follow :before or :after", at)
		}
		switch m {
		case modPrev:
			idx--
		case modNext:
			idx++
		case modBefore, modAfter:
			if !allowInsert {
				return 0, false, invalidf("at %q: :before and :after go only on the last segment of a replace", at)
			}
			before, after = m == modBefore, m == modAfter
		}
	}
	if idx >= n || -idx-1 >= n {
		return 0, false, notFoundf("expected array index %d at %q, found an array of %d items%s", idx, at, n, atLine(seq))
	}
	if idx < 0 {
		idx += n
	}
	if after {
		idx++
	}
	return idx, before || after, nil
}

// matching lists the items of seq that are maps whose key tok.key holds
// the string tok.value.
func matching(seq *yaml.Node, tok token) []int {
	var idxs []int
	for i, item := range seq.Content {
		if item.Kind != yaml.MappingNode {
			continue
		}
		if j := findKey(item, tok.key); j >= 0 && isString(item.Content[j+1], tok.value) {
			idxs = append(idxs, i)
		}
	}
	return idxs
}

func exactlyOne(idxs []int, at string, seq *yaml.Node) error {
	switch len(idxs) {
	case 1:
		return nil
	case 0:
		return notFoundf("expected exactly one array item to match %q, found none%s", at, atLine(seq))
	}
	lines := make([]int, len(idxs))
	for i, x := range idxs {
		lines[i] = seq.Content[x].Line
	}
	where := lineList(lines)
	if where != "" {
		where = " (" + where + ")"
	}
	return invalidf("expected exactly one array item to match %q, found %d%s", at, len(idxs), where)
}

func mismatch(want, at string, found *yaml.Node) error {
	return invalidf("expected %s at %q, found %s%s", want, at, describe(found), atLine(found))
}

func missingKey(key, at string, m *yaml.Node) error {
	keys := stringKeys(m)
	others := "found no other map keys"
	if len(keys) > 0 {
		others = "found map keys: " + quoteAll(keys)
	}
	return notFoundf("expected a map key %q at %q (%s)%s", key, at, others, atLine(m))
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

func insertAt(s []*yaml.Node, pos int, n *yaml.Node) []*yaml.Node {
	out := make([]*yaml.Node, 0, len(s)+1)
	out = append(out, s[:pos]...)
	out = append(out, n)
	return append(out, s[pos:]...)
}

func deleteAt(s []*yaml.Node, pos int) []*yaml.Node {
	out := make([]*yaml.Node, 0, len(s)-1)
	out = append(out, s[:pos]...)
	return append(out, s[pos+1:]...)
}
