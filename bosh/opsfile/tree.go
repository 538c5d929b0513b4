package opsfile

import (
	"fmt"
	"sort"

	"go.yaml.in/yaml/v3"
)

// Tags as yaml.Node.ShortTag reports them.
const (
	strTag   = "!!str"
	intTag   = "!!int"
	nullTag  = "!!null"
	mapTag   = "!!map"
	seqTag   = "!!seq"
	mergeTag = "!!merge"
)

// Expanding aliases may grow a document to at most expandSlack nodes more
// than expandFactor times its own size, so that a small document of nested
// aliases (a "billion laughs") fails fast instead of exhausting memory.
const (
	expandFactor = 16
	expandSlack  = 1 << 16
)

// copyTree returns a deep copy of n. With remap, aliases inside the copy
// point at the copies of their anchors when those are inside n too;
// without it every alias keeps pointing at its original anchor.
func copyTree(n *yaml.Node, remap bool) *yaml.Node {
	if n == nil {
		return nil
	}
	var memo map[*yaml.Node]*yaml.Node
	var aliases []*yaml.Node
	if remap {
		memo = map[*yaml.Node]*yaml.Node{}
	}
	var cp func(*yaml.Node) *yaml.Node
	cp = func(n *yaml.Node) *yaml.Node {
		if n == nil {
			return nil
		}
		c := *n
		if remap {
			memo[n] = &c
			if n.Kind == yaml.AliasNode {
				aliases = append(aliases, &c)
			}
		}
		if n.Content != nil {
			c.Content = make([]*yaml.Node, len(n.Content))
			for i, k := range n.Content {
				c.Content[i] = cp(k)
			}
		}
		return &c
	}
	root := cp(n)
	for _, a := range aliases {
		if t, ok := memo[a.Alias]; ok {
			a.Alias = t
		}
	}
	return root
}

// expandAliases replaces every alias under n by a copy of its anchor's
// node, drops the anchors and folds merge keys (<<) into their maps, so
// the tree holds the same data as yaml decoding would give, as go-patch
// sees it, and a change made through one path changes nothing elsewhere.
// It returns the node to use in place of n.
func expandAliases(n *yaml.Node) (*yaml.Node, error) {
	if n == nil {
		return nil, invalidf("document has an empty node")
	}
	own := 0
	countNodes(n, &own)
	limit := expandSlack + expandFactor*own
	c := &counter{limit: limit, memo: map[*yaml.Node]int{}, active: map[*yaml.Node]bool{}}
	if _, err := c.count(n); err != nil {
		return nil, err
	}
	e := &expander{left: limit, active: map[*yaml.Node]bool{}}
	return e.expand(n)
}

// countNodes counts the nodes of a tree without following aliases.
func countNodes(n *yaml.Node, total *int) {
	if n == nil {
		return
	}
	*total++
	for _, c := range n.Content {
		countNodes(c, total)
	}
}

// counter computes how many nodes a tree has once its aliases are
// expanded, without expanding them, remembering each node's size, and
// stops at limit.
type counter struct {
	limit  int
	memo   map[*yaml.Node]int
	active map[*yaml.Node]bool // nodes on the current path, to catch cycles
}

func (c *counter) count(n *yaml.Node) (int, error) {
	if n == nil {
		return 0, invalidf("document has an empty node")
	}
	if size, ok := c.memo[n]; ok {
		return size, nil
	}
	if c.active[n] {
		return 0, invalidf("an alias%s is inside the node it refers to", atLine(n))
	}
	c.active[n] = true
	defer delete(c.active, n)
	size := 1
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 0, invalidf("alias *%s%s has no anchor", n.Value, atLine(n))
		}
		if c.active[n.Alias] {
			return 0, invalidf("alias *%s%s is inside the node it refers to", n.Value, atLine(n))
		}
		s, err := c.count(n.Alias)
		if err != nil {
			return 0, err
		}
		size = s
	}
	for _, k := range n.Content {
		s, err := c.count(k)
		if err != nil {
			return 0, err
		}
		size += s
		if size > c.limit {
			break
		}
	}
	if size > c.limit {
		return 0, invalidf("document expands to more than %d nodes through its aliases", c.limit)
	}
	c.memo[n] = size
	return size, nil
}

type expander struct {
	left   int                 // nodes that may still be visited
	active map[*yaml.Node]bool // anchors being expanded, to catch cycles
}

func (e *expander) expand(n *yaml.Node) (*yaml.Node, error) {
	if n == nil {
		return nil, invalidf("document has an empty node")
	}
	e.left--
	if e.left < 0 {
		return nil, invalidf("document expands to too many nodes through its aliases")
	}
	if n.Kind == yaml.AliasNode {
		t := n.Alias
		if t == nil {
			return nil, invalidf("alias *%s%s has no anchor", n.Value, atLine(n))
		}
		if e.active[t] {
			return nil, invalidf("alias *%s%s is inside the node it refers to", n.Value, atLine(n))
		}
		e.active[t] = true
		c, err := e.expand(copyTree(t, false))
		delete(e.active, t)
		return c, err
	}
	n.Anchor = ""
	for i, c := range n.Content {
		x, err := e.expand(c)
		if err != nil {
			return nil, err
		}
		n.Content[i] = x
	}
	if n.Kind == yaml.MappingNode {
		if err := foldMergeKeys(n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// foldMergeKeys replaces the << entries of m by the entries they merge
// in: keys written in m win, then earlier merged maps over later ones.
func foldMergeKeys(m *yaml.Node) error {
	found := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		if isMergeKey(m.Content[i]) {
			found = true
			break
		}
	}
	if !found {
		return nil
	}
	var own, merged []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if !isMergeKey(k) {
			own = append(own, k, v)
			continue
		}
		switch v.Kind {
		case yaml.MappingNode:
			merged = append(merged, v.Content...)
		case yaml.SequenceNode:
			for _, item := range v.Content {
				if item.Kind != yaml.MappingNode {
					return invalidf("merge key <<%s takes a map or a list of maps, found %s in the list", atLine(k), describe(item))
				}
				merged = append(merged, item.Content...)
			}
		default:
			return invalidf("merge key <<%s takes a map or a list of maps, found %s", atLine(k), describe(v))
		}
	}
	out := own
	for i := 0; i+1 < len(merged); i += 2 {
		if !hasKey(out, merged[i]) {
			out = append(out, merged[i], merged[i+1])
		}
	}
	m.Content = out
	return nil
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == mergeTag
}

// hasKey reports whether the key/value list pairs has a key equal to k.
func hasKey(pairs []*yaml.Node, k *yaml.Node) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		if sameScalar(pairs[i], k) {
			return true
		}
	}
	return false
}

func sameScalar(a, b *yaml.Node) bool {
	return a.Kind == yaml.ScalarNode && b.Kind == yaml.ScalarNode &&
		a.Value == b.Value && a.ShortTag() == b.ShortTag()
}

// findKey returns the index in m.Content of the string key named key, or
// -1. Only string keys match, as in go-patch, where `1: a` has the integer
// key 1 and no path segment names it.
func findKey(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind == yaml.ScalarNode && k.Value == key && k.ShortTag() == strTag {
			return i
		}
	}
	return -1
}

// stringKeys lists the string keys of m, sorted, for messages.
func stringKeys(m *yaml.Node) []string {
	var keys []string
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == strTag {
			keys = append(keys, k.Value)
		}
	}
	sort.Strings(keys)
	return keys
}

// isString reports whether n is a string scalar with value s.
func isString(n *yaml.Node, s string) bool {
	return n.Kind == yaml.ScalarNode && n.Value == s && n.ShortTag() == strTag
}

// describe names what n is, in YAML's words, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "an array"
	case yaml.DocumentNode:
		return "a document"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case strTag:
			return "a string"
		case intTag:
			return "an integer"
		case "!!float":
			return "a float"
		case "!!bool":
			return "a boolean"
		case nullTag:
			return "null"
		case "!!timestamp":
			return "a timestamp"
		case "!!binary":
			return "binary data"
		default:
			return "a " + tag + " scalar"
		}
	}
	return "nothing"
}

// atLine is " (line N)" for a node read from a file, "" otherwise.
func atLine(n *yaml.Node) string {
	if n == nil || n.Line <= 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", n.Line)
}

func newString(s string, line, col int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: strTag, Value: s, Line: line, Column: col}
}

func newNull() *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: nullTag, Value: "null"}
}

// setPosition gives every node under n the line and column of the text
// it stands for.
func setPosition(n *yaml.Node, line, col int) {
	if n == nil {
		return
	}
	n.Line, n.Column = line, col
	for _, c := range n.Content {
		setPosition(c, line, col)
	}
}
