package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Marshal writes the manifest as YAML in BOSH's key order (name,
// features, releases, stemcells, update, instance_groups, addons,
// variables, tags; within each block the order BOSH documents), with
// two-space indentation and lists not indented under their key, as BOSH's
// own manifests are written. Free-form maps are written with sorted keys.
// Marshal does not validate; Parse(Marshal(m)) equals m for a valid m.
func (m *Manifest) Marshal() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(m); err != nil {
		return nil, fmt.Errorf("marshal manifest %q: %w", m.Name, err)
	}
	quoteMergeKeys(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("marshal manifest %q: %w", m.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal manifest %q: %w", m.Name, err)
	}
	return buf.Bytes(), nil
}

// quoteMergeKeys quotes keys spelled "<<" (a property may be named so),
// which the encoder writes plain and a reader would take for merge keys.
func quoteMergeKeys(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "<<" {
				k.Tag, k.Style = "!!str", yaml.DoubleQuotedStyle
			}
		}
	}
	for _, c := range n.Content {
		quoteMergeKeys(c)
	}
}

// MarshalYAML writes the map with sorted keys, numbers so that they read
// back as the same type (a float64 3 is written 3.0), multi-line strings
// as literal blocks.
func (m Map) MarshalYAML() (any, error) {
	return valueNode(map[string]any(m), 0)
}

// MarshalYAML writes the known features, then Other.
func (f Features) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, kv := range f.known() {
		if kv.v != nil {
			n.Content = append(n.Content, strNode(kv.k), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(*kv.v)})
		}
	}
	if len(f.Other) > 0 {
		other, err := valueNode(map[string]any(f.Other), 0)
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(other.Content); i += 2 {
			if !slices.ContainsFunc(f.known(), func(kv boolKey) bool { return kv.k == other.Content[i].Value }) {
				n.Content = append(n.Content, other.Content[i], other.Content[i+1])
			}
		}
	}
	return n, nil
}

type boolKey struct {
	k string
	v *bool
}

func (f *Features) known() []boolKey {
	return []boolKey{
		{"converge_variables", f.ConvergeVariables},
		{"randomize_az_placement", f.RandomizeAZPlacement},
		{"use_dns_addresses", f.UseDNSAddresses},
		{"use_short_dns_addresses", f.UseShortDNSAddresses},
		{"use_link_dns_names", f.UseLinkDNSNames},
		{"use_tmpfs_config", f.UseTmpfsConfig},
	}
}

// MarshalJSON writes the known features and Other in one object.
func (f Features) MarshalJSON() ([]byte, error) {
	out := map[string]any{}
	for k, v := range f.Other {
		out[k] = v
	}
	for _, kv := range f.known() {
		if kv.v != nil {
			out[kv.k] = *kv.v
		} else {
			delete(out, kv.k)
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads the known features; other keys go to Other.
func (f *Features) UnmarshalJSON(b []byte) error {
	var in map[string]any
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*f = Features{}
	fields := map[string]**bool{}
	for _, kv := range []struct {
		k string
		p **bool
	}{
		{"converge_variables", &f.ConvergeVariables}, {"randomize_az_placement", &f.RandomizeAZPlacement},
		{"use_dns_addresses", &f.UseDNSAddresses}, {"use_short_dns_addresses", &f.UseShortDNSAddresses},
		{"use_link_dns_names", &f.UseLinkDNSNames}, {"use_tmpfs_config", &f.UseTmpfsConfig},
	} {
		fields[kv.k] = kv.p
	}
	for k, v := range in {
		if p, ok := fields[k]; ok {
			b, ok := v.(bool)
			if !ok {
				return fmt.Errorf("features.%s: want true or false, not %v", k, v)
			}
			*p = &b
			continue
		}
		if f.Other == nil {
			f.Other = Map{}
		}
		f.Other[k] = v
	}
	return nil
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// valueNode builds the node of a free-form value. The types Parse makes
// are built here; anything else a caller put in a Map goes through the
// YAML encoder, and a value it cannot encode is an error, not a panic.
func valueNode(v any, depth int) (*yaml.Node, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("a value is nested deeper than %d levels", MaxDepth)
	}
	switch v := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}, nil
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}, nil
	case uint64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(v, 10)}, nil
	case float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: formatFloat(v)}, nil
	case string:
		n := strNode(v)
		if strings.Contains(v, "\n") {
			n.Style = yaml.LiteralStyle
		}
		return n, nil
	case Map:
		return valueNode(map[string]any(v), depth)
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			val, err := valueNode(v[k], depth+1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, strNode(k), val)
		}
		return n, nil
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range v {
			val, err := valueNode(e, depth+1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, val)
		}
		return n, nil
	}
	return encodeNode(v)
}

// encodeNode encodes a value of another type (a []string, a struct, an
// int32…) with the YAML encoder, which panics on some types (funcs,
// channels).
func encodeNode(v any) (n *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = nil, fmt.Errorf("cannot write a %s in a manifest", reflect.TypeOf(v))
		}
	}()
	n = &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	return n, nil
}

// formatFloat writes a float so that YAML reads it back as a float.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return ".nan"
	case math.IsInf(f, 1):
		return ".inf"
	case math.IsInf(f, -1):
		return "-.inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}
