// Package opsfile applies BOSH ops-files and interpolates ((variables)) in
// YAML documents, with the semantics of bosh-cli's -o and -v/-l flags
// (go-patch's paths and operations, bosh-cli's director/template
// interpolation). It works on go.yaml.in/yaml/v3 node trees, so the lines of
// a manifest survive for the errors of whatever reads it next.
//
// The shortest use, as `bosh int manifest.yml -o scale.yml -v name=value`:
//
//	var doc yaml.Node
//	if err := yaml.Unmarshal(manifest, &doc); err != nil { ... }
//	ops, err := opsfile.ParseOps(scaleYML)
//	if err != nil { ... }
//	if err := opsfile.Apply(&doc, ops); err != nil { ... }
//	if err := opsfile.Interpolate(&doc, opsfile.Map{"name": "value"}); err != nil { ... }
//
// Ops are applied in order, then variables interpolated, as bosh-cli does;
// a value an op inserts may itself hold ((placeholders)). Vars is the
// interface a variables store implements; Multi chains several (provided
// values before generated ones).
//
// Errors: ParseOps reports every problem of an ops-file at once in a
// *kubefoundry.ValidationError, with lines; Apply stops at the first
// failing op with an *OpError (index, path, ops-file line, the op's own
// error: text); Interpolate lists every missing variable in a
// *MissingVariablesError. All wrap the sentinels of package kubefoundry
// (ErrInvalid, ErrNotFound). Apply and Interpolate change nothing when
// they fail.
//
// Concurrency: a parsed []Op is read-only and may be applied to many
// documents at once. Apply and Interpolate change the document they are
// given: one goroutine per document. Map is safe for concurrent reads;
// Interpolate calls a Vars from the calling goroutine only.
//
// Files:
//
//	pointer.go      path syntax: ParsePointer, segments, modifiers, escapes
//	ops.go          Op, ParseOps: reading and checking an ops-file
//	apply.go        Apply: replace and remove on a node tree, array indexes
//	tree.go         node helpers: copying, alias and merge-key expansion, key lookup
//	interpolate.go  Interpolate: placeholders, sub-keys, typed and in-string values
//	vars.go         Vars, Map (-v, -l), Multi (several sources in order)
//	errors.go       OpError, MissingVariablesError
//	testdata/       a manifest and ops-files that seed the fuzz targets
package opsfile
