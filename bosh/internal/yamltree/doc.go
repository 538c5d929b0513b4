// Package yamltree is what BOSH's YAML formats (bosh/manifest,
// bosh/cloudconfig) share to read a go.yaml.in/yaml/v3 node tree into
// typed values and report every problem at once, each at its ops-file
// path (/instance_groups/name=worker/instances) and line: the one
// document, a Decoder for keys, kinds, aliases, merge keys and limits,
// the rules' Checker, name= selectors, and the address entries both
// formats write (static_ips, reserved and static lists).
//
// A format's parser reads its document with a Decoder, checks what it
// read with a Checker, and turns both into one error with Finish:
//
//	root, err := yamltree.Document(data, "a config")
//	if err != nil { ... }
//	d := yamltree.NewDecoder(len(data)+1<<20, 64, nil)
//	var c Config
//	if f, ok := d.Root(root, "name", "networks"); ok {
//		c.Name = d.Str("/name", f["name"])
//		for i, e := range d.List("/networks", f["networks"]) {
//			c.Networks = append(c.Networks, readNetwork(d, yamltree.Index("/networks", i), e))
//		}
//	}
//	probs := d.Problems(func(unread func(string) bool) []kubefoundry.FieldError {
//		k := yamltree.NewChecker(unread)
//		k.Required("/name", c.Name)
//		return k.Problems
//	})
//	sel := yamltree.Selectors{}
//	sel.Add("/networks", "name", len(c.Networks), func(i int) string { return c.Networks[i].Name })
//	return yamltree.Finish("config", probs, d.Lines(), sel)
//
// Bad input is a problem, never a panic: the Decoder counts every node
// it visits (aliases make a document larger than its bytes) against a
// budget, and follows nesting to a given depth. A Span is two addresses
// whatever it holds, so a /8 in static_ips costs no memory.
//
// # Concurrency
//
// The functions keep no state. A Decoder or a Checker reads or checks
// one document and is not safe for concurrent use; Selectors may be read
// concurrently once built.
//
// # Files
//
//	yamltree.go  the one document, syntax error lines, node kinds, scalars by tag, ops-file path tokens, lines of paths
//	decoder.go   Decoder: fields, unknown keys, merge keys, aliases and their budget, strings, integers, booleans, lists, free-form maps
//	problems.go  Checker for a format's rules; Selectors (name= in paths); Finish, the ValidationError in line order
//	span.go      Span: an address, "a - b" range or CIDR as static_ips, reserved and static write them; sizes without expanding
package yamltree
