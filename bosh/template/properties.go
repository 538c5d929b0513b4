package template

import (
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/release"
)

// Properties returns a job's properties as its templates see them, as the
// director binds them: for every property the job's spec declares, the
// value the manifest sets, else the spec's default (a property with
// neither is absent, so p raises and if_p skips). The manifest's value
// comes from the job's own properties; when the job has none (nil, not
// empty), from the instance group's properties merged over the
// deployment's global ones.
//
// The job's own properties must be ones its spec declares: a property the
// spec does not declare is reported, every one at once, at its path
// ("properties/nats/prot"), as is a value where a declared dotted name
// needs a hash. Group and global properties are shared by every job, so
// only what a job declares is taken from them.
func Properties(spec *release.JobSpec, job, group, global map[string]any) (map[string]any, error) {
	var verr kubefoundry.ValidationError
	src := job
	if job == nil {
		src = mergeMaps(global, group)
	} else {
		undeclared(spec, job, "", &verr)
	}
	out := map[string]any{}
	for _, name := range sortedKeys(spec.Properties) {
		value, err := lookup(src, name)
		if err != "" {
			verr.Add("properties/"+strings.ReplaceAll(name, ".", "/"), "", "%s", err)
			continue
		}
		if value == nil {
			value = spec.Properties[name].Default
		}
		if value != nil {
			set(out, name, clone(value))
		}
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// undeclared reports every key of props (at prefix) that is neither a
// declared property nor on the way to one.
func undeclared(spec *release.JobSpec, props map[string]any, prefix string, verr *kubefoundry.ValidationError) {
	for _, key := range sortedKeys(props) {
		name := prefix + key
		if _, ok := spec.Properties[name]; ok {
			continue
		}
		if declaresUnder(spec, name+".") {
			// A value that is not a hash here is reported by the lookup
			// of the declared name below it.
			if inner, ok := props[key].(map[string]any); ok {
				undeclared(spec, inner, name+".", verr)
			}
			continue
		}
		verr.Add("properties/"+strings.ReplaceAll(name, ".", "/"), "",
			"job %q does not declare property %q", spec.Name, name)
	}
}

func declaresUnder(spec *release.JobSpec, prefix string) bool {
	for name := range spec.Properties {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// lookup finds a dotted name; it returns a problem when a value that is
// not a hash stands where the name needs one.
func lookup(props map[string]any, name string) (any, string) {
	var cur any = props
	keys := strings.Split(name, ".")
	for i, key := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			if cur == nil {
				return nil, ""
			}
			return nil, "property " + quote(name) + " needs " + quote(strings.Join(keys[:i], ".")) + " to be a hash"
		}
		cur = m[key]
		if cur == nil {
			return nil, ""
		}
	}
	return cur, ""
}

func set(dst map[string]any, name string, value any) {
	keys := strings.Split(name, ".")
	for _, key := range keys[:len(keys)-1] {
		next, ok := dst[key].(map[string]any)
		if !ok {
			next = map[string]any{}
			dst[key] = next
		}
		dst = next
	}
	dst[keys[len(keys)-1]] = value
}

// mergeMaps deep-merges over onto base (over wins), copying both.
func mergeMaps(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = clone(v)
	}
	for k, v := range over {
		if om, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(bm, om)
				continue
			}
		}
		out[k] = clone(v)
	}
	return out
}

// clone copies maps and lists so that a template's properties never alias
// the manifest's.
func clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = clone(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = clone(x)
		}
		return out
	}
	return v
}

func quote(s string) string { return `"` + s + `"` }
