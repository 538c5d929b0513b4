package opsfile

import (
	"sort"
	"strings"
)

// Vars gives the values of variables by name, for Interpolate.
type Vars interface {
	// Get returns the value of the variable name: a plain name such as
	// "admin_password" or an absolute one such as
	// "/director/cluster-1/admin_password", never with a ".key" (Interpolate
	// looks sub-keys up in the value). found is false when there is no such
	// variable; err is a failure to look, which Interpolate reports as is.
	//
	// A value is a Go value that go.yaml.in/yaml/v3 can encode (string,
	// integers, bool, map, slice, struct, nil) or a *yaml.Node.
	Get(name string) (value any, found bool, err error)
}

// Map holds variables by name, as bosh-cli's -v name=value and -l file
// give them. As in bosh-cli, a name with dots stands for a key inside a
// variable: Map{"cert.ca": "..."} answers Get("cert") with {ca: "..."},
// unless "cert" itself is in the map.
//
// A Map is safe for concurrent reads.
type Map map[string]any

// Get implements Vars.
func (m Map) Get(name string) (any, bool, error) {
	if v, ok := m[name]; ok {
		return v, true, nil
	}
	prefix := name + "."
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, false, nil
	}
	sort.Strings(keys) // "a.b" before "a.b.c": the deeper name wins
	nested := map[string]any{}
	for _, k := range keys {
		path := strings.Split(k[len(prefix):], ".")
		at := nested
		for _, p := range path[:len(path)-1] {
			next, ok := at[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				at[p] = next
			}
			at = next
		}
		at[path[len(path)-1]] = m[k]
	}
	return nested, true, nil
}

// Multi tries each of its Vars in order and answers with the first that
// finds the name or fails to look; nil entries are skipped. Put the values
// a caller provides before a generated-variables store, as bosh-cli puts
// -v before --vars-store.
type Multi []Vars

// Get implements Vars.
func (m Multi) Get(name string) (any, bool, error) {
	for _, v := range m {
		if v == nil {
			continue
		}
		val, found, err := v.Get(name)
		if found || err != nil {
			return val, found, err
		}
	}
	return nil, false, nil
}
