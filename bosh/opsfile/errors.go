package opsfile

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kubefoundry/kubefoundry"
)

// OpError is the failure of one operation of an Apply. It names the
// operation by its index in the list and its path, and, when the ops were
// read by ParseOps, by its line in the ops-file. Err says what went wrong
// and wraps kubefoundry.ErrNotFound (a key, index or name=value the path
// requires is missing) or kubefoundry.ErrInvalid (anything else).
type OpError struct {
	Index int    // position of the op in the list, from 0
	Type  OpType // replace or remove
	Path  string // the op's path as written
	Line  int    // line of the op in its ops-file; 0 if it was built in code
	// Message is the op's own error: text; when set it leads the error
	// message, as bosh-cli shows it, and the cause follows.
	Message string
	Err     error
}

func (e *OpError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "op %d (%s %q", e.Index, e.Type, e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ", line %d", e.Line)
	}
	b.WriteString("): ")
	if e.Message != "" {
		b.WriteString(e.Message)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// MissingVariablesError lists every variable an Interpolate found no value
// for, sorted by name, with the lines that use each. It wraps
// kubefoundry.ErrNotFound.
type MissingVariablesError struct {
	Names []string
	// Lines maps each name to the lines of the document that use it, in
	// order (empty when the document has no line numbers).
	Lines map[string][]int
}

func (e *MissingVariablesError) Error() string {
	parts := make([]string, len(e.Names))
	for i, n := range e.Names {
		parts[i] = n
		if l := lineList(e.Lines[n]); l != "" {
			parts[i] += " (" + l + ")"
		}
	}
	return "expected to find variables: " + strings.Join(parts, ", ")
}

// Unwrap makes errors.Is(err, kubefoundry.ErrNotFound) true.
func (e *MissingVariablesError) Unwrap() error { return kubefoundry.ErrNotFound }

// problem is an error whose message stands alone and which wraps a shared
// sentinel without repeating its text.
type problem struct {
	msg  string
	kind error
}

func (p *problem) Error() string { return p.msg }
func (p *problem) Unwrap() error { return p.kind }

func invalidf(format string, args ...any) error {
	return &problem{msg: fmt.Sprintf(format, args...), kind: kubefoundry.ErrInvalid}
}

func notFoundf(format string, args ...any) error {
	return &problem{msg: fmt.Sprintf(format, args...), kind: kubefoundry.ErrNotFound}
}

// syntaxError is a YAML syntax error; it keeps the parser's error and
// wraps kubefoundry.ErrInvalid.
type syntaxError struct {
	what string
	err  error
}

func (e *syntaxError) Error() string   { return e.what + ": " + e.err.Error() }
func (e *syntaxError) Unwrap() []error { return []error{e.err, kubefoundry.ErrInvalid} }

// lineList formats "line 3" or "lines 3, 9", skipping zeros.
func lineList(lines []int) string {
	var s []string
	for _, l := range lines {
		if l > 0 {
			s = append(s, strconv.Itoa(l))
		}
	}
	switch len(s) {
	case 0:
		return ""
	case 1:
		return "line " + s[0]
	}
	return "lines " + strings.Join(s, ", ")
}
