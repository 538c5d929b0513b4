package yamltree

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kubefoundry/kubefoundry"
)

// Checker collects the problems a format's rules find in values read or
// built in Go, at index paths (/instance_groups/1/name).
type Checker struct {
	// Problems are the problems found, in the order found.
	Problems []kubefoundry.FieldError
	unread   func(path string) bool
}

// NewChecker returns a Checker. unread, when not nil, reports the paths
// a Decoder could not read (Decoder.Unread), so that rules depending on
// them are not applied to their zero values.
func NewChecker(unread func(path string) bool) *Checker {
	if unread == nil {
		unread = func(string) bool { return false }
	}
	return &Checker{unread: unread}
}

// Unread reports whether path could not be read.
func (c *Checker) Unread(path string) bool { return c.unread(path) }

// Add records a problem at path.
func (c *Checker) Add(path, value, format string, args ...any) {
	c.Problems = append(c.Problems, kubefoundry.FieldError{Field: path, Value: value, Reason: fmt.Sprintf(format, args...)})
}

// Required reports a value that is empty or blank ("is required").
func (c *Checker) Required(path, value string) {
	if strings.TrimSpace(value) == "" {
		c.Add(path, "", "is required")
	}
}

// Unique reports a name that an earlier element of the list has ("the
// release is defined more than once", what being "the release"); seen
// holds the list's names so far. An empty name is left to Required.
func (c *Checker) Unique(seen map[string]bool, path, name, what string) {
	if name == "" {
		return
	}
	if seen[name] {
		c.Add(path, name, "%s is defined more than once", what)
		return
	}
	seen[name] = true
}

// selector names the elements of one list by a key (name).
type selector struct {
	key   string
	names []string       // by index
	first map[string]int // name -> index of its first element
}

// Selectors names the elements of a document's named lists, by the
// index path of the list, so that Pretty can write paths as ops-files
// do.
type Selectors map[string]selector

// Add names the n elements of the list at path: element i is key=name(i)
// (name=worker, alias=default).
func (s Selectors) Add(path, key string, n int, name func(int) string) {
	sel := selector{key: key, names: make([]string, n), first: map[string]int{}}
	for i := range n {
		sel.names[i] = name(i)
		if _, ok := sel.first[sel.names[i]]; !ok {
			sel.first[sel.names[i]] = i
		}
	}
	s[path] = sel
}

// Pretty rewrites the indexes of named elements in an index path as
// key=name selectors, as ops-files write them: /networks/0/subnets/1/range
// becomes /networks/name=default/subnets/1/range. An element keeps its
// index when it has no name or an earlier element has the same name. The
// root ("" or "/") is "/".
func (s Selectors) Pretty(path string) string {
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

// Finish turns problems at index paths into the error a format's Parse
// and Validate return, nil when there are none: a
// *kubefoundry.ValidationError naming object ("cloud config"), its paths
// written with sel, each problem without a line given the line of its
// path or nearest parent in lines (nil for values built in Go), in line
// order.
func Finish(object string, probs []kubefoundry.FieldError, lines map[string]int, sel Selectors) error {
	if len(probs) == 0 {
		return nil
	}
	for i := range probs {
		p := &probs[i]
		if p.Line == 0 && lines != nil {
			p.Line = LineOf(lines, p.Field)
		}
		p.Field = sel.Pretty(p.Field)
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	return &kubefoundry.ValidationError{Object: object, Problems: probs}
}
