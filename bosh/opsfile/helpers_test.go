package opsfile_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
)

// parseDoc reads a YAML document into a node tree.
func parseDoc(t testing.TB, s string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(s), &n))
	return &n
}

// render writes a node tree as YAML with two-space indents.
func render(t testing.TB, n *yaml.Node) string {
	t.Helper()
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	require.NoError(t, enc.Encode(n))
	require.NoError(t, enc.Close())
	return b.String()
}

// canon is s as block YAML, to compare documents by content and order
// whatever their flow or block style.
func canon(t testing.TB, s string) string {
	t.Helper()
	return block(t, parseDoc(t, s))
}

// block renders n with every map and array in block style, leaving n as
// it was.
func block(t testing.TB, n *yaml.Node) string {
	t.Helper()
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	require.NoError(t, enc.Encode(n))
	var c yaml.Node
	require.NoError(t, yaml.Unmarshal(b.Bytes(), &c))
	unflow(&c)
	return render(t, &c)
}

func unflow(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	for _, c := range n.Content {
		unflow(c)
	}
}

// mustOps parses an ops-file.
func mustOps(t testing.TB, s string) []opsfile.Op {
	t.Helper()
	ops, err := opsfile.ParseOps([]byte(dedent(s)))
	require.NoError(t, err)
	return ops
}

// dedent strips the indentation of the first non-empty line from every
// line, so YAML can be written indented inside a test table.
func dedent(s string) string {
	lines := strings.Split(strings.TrimLeft(s, "\n"), "\n")
	indent := ""
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			indent = l[:len(l)-len(strings.TrimLeft(l, " \t"))]
			break
		}
	}
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			lines[i] = ""
			continue
		}
		lines[i] = strings.TrimPrefix(l, indent)
	}
	return strings.Join(lines, "\n")
}
