package cloudconfig

import (
	"fmt"
	"strconv"

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
	names func(*T) yamltree.Selectors) (*T, error) {
	if len(data) > MaxSize {
		return nil, &kubefoundry.ValidationError{Object: object, Problems: []kubefoundry.FieldError{{
			Field: "/", Value: strconv.Itoa(len(data)) + " bytes", Reason: fmt.Sprintf("a config is at most %d bytes", MaxSize)}}}
	}
	root, err := yamltree.Document(data, "a config")
	if err != nil {
		return nil, &kubefoundry.ValidationError{Object: object, Problems: []kubefoundry.FieldError{{
			Field: "/", Reason: err.Error(), Line: yamltree.ErrorLine(err.Error())}}}
	}
	d := &decoder{yamltree.NewDecoder(len(data)+maxAliasNodes, MaxDepth, hint)}
	v := decode(d, root)
	probs := d.Problems(func(unread func(string) bool) []kubefoundry.FieldError { return check(v, unread) })
	if err := yamltree.Finish(object, probs, d.Lines(), names(v)); err != nil {
		return nil, err
	}
	return v, nil
}

// decoder walks a YAML node tree. Paths are ops-file paths with indexes
// for list elements (/networks/0/subnets/1/range); yamltree.Finish turns
// them into name= selectors.
type decoder struct{ *yamltree.Decoder }

// integer reads an integer that fits an int; null is 0.
func (d *decoder) integer(path string, n *yaml.Node) int {
	v, _ := d.Int(path, n)
	return v
}

// boolean reads true or false; null is false.
func (d *decoder) boolean(path string, n *yaml.Node) bool {
	b := d.Bool(path, n)
	return b != nil && *b
}

// free reads a free-form mapping (cloud_properties, env, properties):
// any keys, any values, depth and size bounded. Null is nil.
func (d *decoder) free(path string, n *yaml.Node, depth int) manifest.Map {
	return manifest.Map(d.Free(path, n, depth))
}

// checker collects the problems of a config built or read, with index
// paths.
type checker struct{ *yamltree.Checker }

func newChecker(unread func(string) bool) *checker { return &checker{yamltree.NewChecker(unread)} }
