package kube_test

import (
	"testing"

	"github.com/kubefoundry/kubefoundry/kube"
)

// FuzzParseManifests: manifests come from users and add-on bundles. The
// parser must never panic, and whatever it accepts has a kind and a name.
func FuzzParseManifests(f *testing.F) {
	for _, seed := range []string{
		addonsV1,
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n",
		`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}`,
		"kind: [unclosed",
		"---\n- a\n- b\n",
		"apiVersion: v1\nkind: List\nmetadata: {name: l}\nitems: []\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := kube.ParseManifests(data)
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.GetKind() == "" || o.GetName() == "" || o.GetAPIVersion() == "" {
				t.Fatalf("accepted an object without kind, name or apiVersion: %v", o.Object)
			}
		}
	})
}
