// Package manifest reads, checks and writes BOSH deployment manifests
// (v2, used with a cloud config), the YAML a BOSH user hands to
// `bosh deploy`: name, releases, stemcells, update, instance_groups with
// their jobs, networks and disks, addons, variables, features and tags.
//
//	m, err := manifest.Parse(data)
//	if err != nil {
//		var verr *kubefoundry.ValidationError
//		if errors.As(err, &verr) {
//			for _, p := range verr.Problems {
//				fmt.Printf("line %d: %s: %s\n", p.Line, p.Field, p.Reason)
//			}
//		}
//		return err
//	}
//	w := m.InstanceGroup("worker")
//	u := m.UpdateFor(w)
//	batch := u.MaxInFlight.Of(w.Instances) // "30%" of 10 workers: 3
//	out, err := m.Marshal()
//
// # Reading and checking
//
// ParseNode reads a manifest already held as a YAML node tree, as package
// bosh/opsfile leaves it after ops-files and interpolation, so that a
// problem an ops-file brought in names the ops-file's line.
//
// Parse walks the YAML node tree and reports every problem at once as a
// *kubefoundry.ValidationError (errors.Is(err, kubefoundry.ErrInvalid)).
// Each problem names its field as an ops-file path, with name= (alias= for
// stemcells) selectors where the element has a unique name and its index
// otherwise, as `bosh int --path` and ops-files write them:
// /instance_groups/name=worker/instances, /releases/name=bpm/version,
// /update/max_in_flight. Each carries the YAML line of the key or list
// element. An unknown key is a problem, except inside the free-form maps
// (properties, env, options, consumes, provides, tags, unknown features).
// Validate applies the same rules to a manifest built in Go.
//
// The values BOSH takes in two forms have small types: Canaries and
// MaxInFlight (a count or "30%"; Of resolves them for a group's size as
// the director does) and WatchTime (milliseconds or "min-max"; Min and
// Max as time.Duration).
//
// Bad input is an error, never a panic: anchors and aliases are followed
// within a node budget (a "billion laughs" document fails), nesting stops
// at MaxDepth, input at MaxSize, numbers out of range are problems.
//
// # Writing
//
// Marshal writes the manifest in BOSH's key order; Parse(Marshal(m))
// equals m. Free-form maps are written with sorted keys.
//
// # Concurrency
//
// Parse, Validate and Marshal keep no state between calls and may run
// concurrently. A Manifest is plain data: share it read-only, or guard
// changes to it.
//
// # Files
//
//	manifest.go   the manifest's types (Manifest, InstanceGroup, Job, Network, Addon, Variable, Map…)
//	update.go     Update and its two-form values: Canaries, MaxInFlight, WatchTime
//	parse.go      Parse, ParseNode: the manifest's keys, read with bosh/internal/yamltree's Decoder; limits
//	validate.go   Validate: required fields, duplicates, references, static IPs (yamltree.ParseSpan), default networks; name= paths
//	marshal.go    Marshal, and how Map, Features and the update values are written
package manifest
