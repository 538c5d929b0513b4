package cloudconfig

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// Named is one config of several of its type, by the name the director
// keeps it under ("default", "dns", ...).
type Named[T any] struct {
	Name   string
	Config *T
}

// MergeCloud makes one cloud config of several named ones, as BOSH's
// director does with its named cloud configs: their AZs, VM types, VM
// extensions, disk types and networks side by side, and the compilation
// block of the one config that has it. The result, even of one config, is
// checked as a whole
// (a name in two configs is an error at its path in the merged config);
// a compilation block in two configs is an error naming both.
func MergeCloud(configs ...Named[CloudConfig]) (*CloudConfig, error) {
	out := &CloudConfig{}
	compiledBy := ""
	for _, n := range configs {
		c := n.Config
		out.AZs = append(out.AZs, c.AZs...)
		out.VMTypes = append(out.VMTypes, c.VMTypes...)
		out.VMExtensions = append(out.VMExtensions, c.VMExtensions...)
		out.DiskTypes = append(out.DiskTypes, c.DiskTypes...)
		out.Networks = append(out.Networks, c.Networks...)
		if c.Compilation != nil {
			if out.Compilation != nil {
				return nil, &kubefoundry.ValidationError{Object: "cloud configs", Problems: []kubefoundry.FieldError{{Field: "/compilation",
					Reason: fmt.Sprintf("in both %s and %s: only one cloud config may have it", compiledBy, n.Name)}}}
			}
			out.Compilation, compiledBy = c.Compilation, n.Name
		}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("cloud configs %s together: %w", names(configs), err)
	}
	return out, nil
}

// MergeRuntime makes one runtime config of several named ones, as BOSH's
// director does: their releases (one named in two configs must be the same
// version, and counts once), add-ons, variables and tags (a tag set by two
// configs must have the same value). The result is checked as a whole.
func MergeRuntime(configs ...Named[RuntimeConfig]) (*RuntimeConfig, error) {
	out := &RuntimeConfig{}
	verr := &kubefoundry.ValidationError{Object: "runtime configs " + names(configs)}
	releaseFrom := map[string]string{}
	tagFrom := map[string]string{}
	for _, n := range configs {
		r := n.Config
		for _, rel := range r.Releases {
			if i := slices.IndexFunc(out.Releases, func(o manifest.Release) bool { return o.Name == rel.Name }); i >= 0 {
				if !reflect.DeepEqual(out.Releases[i], rel) {
					verr.Add("/releases/name="+rel.Name, rel.Version, "in %s at %s and in %s at another version or source: a release is deployed at one version",
						releaseFrom[rel.Name], out.Releases[i].Version, n.Name)
				}
				continue
			}
			out.Releases = append(out.Releases, rel)
			releaseFrom[rel.Name] = n.Name
		}
		out.Addons = append(out.Addons, r.Addons...)
		out.Variables = append(out.Variables, r.Variables...)
		for _, k := range slices.Sorted(maps.Keys(r.Tags)) {
			v := r.Tags[k]
			if old, ok := out.Tags[k]; ok && old != v {
				verr.Add("/tags/"+k, v, "%s sets it to %q", tagFrom[k], old)
				continue
			}
			if out.Tags == nil {
				out.Tags = map[string]string{}
			}
			out.Tags[k], tagFrom[k] = v, n.Name
		}
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("runtime configs %s together: %w", names(configs), err)
	}
	return out, nil
}

func names[T any](configs []Named[T]) string {
	s := make([]string, len(configs))
	for i, n := range configs {
		s[i] = n.Name
	}
	return strings.Join(s, ", ")
}
