package opsfile

import (
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
)

// OpType is the kind of an operation: Replace or Remove.
type OpType string

const (
	// Replace sets the node at Path to Value, creating what the path's
	// optional segments name, appending for /- and name=value?, and
	// inserting for :before and :after.
	Replace OpType = "replace"
	// Remove deletes the node at Path; with optional segments a missing
	// node is no error.
	Remove OpType = "remove"
)

// Op is one operation of an ops-file.
type Op struct {
	Type OpType
	Path Pointer
	// Value is what Replace puts at Path; Apply copies it each time, so one
	// Op may be applied to many documents. Nil for Remove.
	Value *yaml.Node
	// Error is the op's error: text, shown ahead of the cause when the op
	// fails; "" for none.
	Error string
	// Line is the op's line in its ops-file; 0 for an op built in code.
	Line int
}

// ParseOps reads an ops-file: a YAML list of operations, each a map with
// type (replace or remove), path, value (replace only) and an optional
// error message. An empty file, or one holding only null, has no
// operations.
//
// Every problem is reported at once in a *kubefoundry.ValidationError
// whose fields are named like "2/path" (the op's index, then its key) with
// their lines; an unknown key is a problem, not ignored. As in bosh-cli, a
// replace whose value is null counts as having no value. A YAML syntax
// error is returned as is, wrapping kubefoundry.ErrInvalid too.
func ParseOps(data []byte) ([]Op, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &syntaxError{what: "ops-file", err: err}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	if root.Kind == 0 || (root.Kind == yaml.ScalarNode && root.ShortTag() == nullTag) {
		return nil, nil
	}
	root, err := expandAliases(root)
	if err != nil {
		return nil, fmt.Errorf("ops-file: %w", err)
	}
	if root.Kind != yaml.SequenceNode {
		return nil, &kubefoundry.ValidationError{Object: "ops-file", Problems: []kubefoundry.FieldError{{
			Field:  "/",
			Reason: "an ops-file is a list of operations, found " + describe(root),
			Line:   root.Line,
		}}}
	}

	var problems []kubefoundry.FieldError
	add := func(field string, n *yaml.Node, reason string) {
		problems = append(problems, kubefoundry.FieldError{Field: field, Reason: reason, Line: n.Line})
	}
	ops := make([]Op, 0, len(root.Content))
	for i, item := range root.Content {
		at := strconv.Itoa(i)
		if item.Kind != yaml.MappingNode {
			add(at, item, "an operation is a map of type, path, value and error, found "+describe(item))
			continue
		}
		op := Op{Line: item.Line}
		var typ, path, value, errMsg *yaml.Node
		seen := map[string]bool{}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			if k.Kind != yaml.ScalarNode {
				add(at, k, "keys of an operation are type, path, value and error, found "+describe(k))
				continue
			}
			if seen[k.Value] {
				add(at+"/"+k.Value, k, "duplicate key")
				continue
			}
			seen[k.Value] = true
			switch k.Value {
			case "type":
				typ = v
			case "path":
				path = v
			case "value":
				value = v
			case "error":
				errMsg = v
			default:
				add(at+"/"+k.Value, k, "unknown key (an operation has type, path, value and error)")
			}
		}

		switch {
		case isNull(typ):
			add(at+"/type", nodeOr(typ, item), "missing (want replace or remove)")
		case typ.Kind != yaml.ScalarNode:
			add(at+"/type", typ, "want replace or remove, found "+describe(typ))
		case typ.Value == string(Replace), typ.Value == string(Remove):
			op.Type = OpType(typ.Value)
		default:
			add(at+"/type", typ, fmt.Sprintf("unknown type %q (want replace or remove)", typ.Value))
		}

		switch {
		case isNull(path):
			add(at+"/path", nodeOr(path, item), "missing")
		case path.Kind != yaml.ScalarNode:
			add(at+"/path", path, "a path is a string, found "+describe(path))
		default:
			p, err := ParsePointer(path.Value)
			if err != nil {
				add(at+"/path", path, err.Error())
			}
			op.Path = p
		}

		switch op.Type {
		case Replace:
			if isNull(value) {
				add(at+"/value", nodeOr(value, item), "missing (a replace needs a value; null counts as none)")
			}
			op.Value = value
		case Remove:
			if !isNull(value) {
				add(at+"/value", value, "a remove takes no value")
			}
		}

		switch {
		case isNull(errMsg):
		case errMsg.Kind != yaml.ScalarNode:
			add(at+"/error", errMsg, "an error message is a string, found "+describe(errMsg))
		default:
			op.Error = errMsg.Value
		}
		ops = append(ops, op)
	}
	if len(problems) > 0 {
		return nil, &kubefoundry.ValidationError{Object: "ops-file", Problems: problems}
	}
	return ops, nil
}

// isNull reports whether n is absent or YAML null.
func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == nullTag)
}

func nodeOr(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}
