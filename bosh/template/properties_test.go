package template_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/template"
)

var apiSpec = &release.JobSpec{
	Name: "kube-apiserver",
	Properties: map[string]release.Property{
		"port":              {Default: 8443},
		"authorization":     {Default: "RBAC,Node"},
		"tls.cert":          {},
		"oidc.issuer":       {},
		"admin.users":       {Default: []any{"admin"}},
		"encryption.config": {Default: map[string]any{"kind": "EncryptionConfiguration"}},
	},
}

func TestProperties(t *testing.T) {
	global := map[string]any{"port": 1, "tls": map[string]any{"cert": "global-cert"}, "unrelated": true}
	group := map[string]any{"port": 2, "oidc": map[string]any{"issuer": "https://uaa"}}
	for _, c := range []struct {
		name string
		job  map[string]any
		want map[string]any
	}{{
		name: "job properties win and defaults fill the rest",
		job:  map[string]any{"port": 9443, "tls": map[string]any{"cert": "job-cert"}},
		want: map[string]any{
			"port": 9443, "authorization": "RBAC,Node", "tls": map[string]any{"cert": "job-cert"},
			"admin": map[string]any{"users": []any{"admin"}}, "encryption": map[string]any{"config": map[string]any{"kind": "EncryptionConfiguration"}},
		},
	}, {
		name: "no job properties: the group's over the global ones, only what the spec declares",
		job:  nil,
		want: map[string]any{
			"port": 2, "authorization": "RBAC,Node", "tls": map[string]any{"cert": "global-cert"}, "oidc": map[string]any{"issuer": "https://uaa"},
			"admin": map[string]any{"users": []any{"admin"}}, "encryption": map[string]any{"config": map[string]any{"kind": "EncryptionConfiguration"}},
		},
	}, {
		name: "empty job properties: group and global ignored",
		job:  map[string]any{},
		want: map[string]any{
			"port": 8443, "authorization": "RBAC,Node",
			"admin": map[string]any{"users": []any{"admin"}}, "encryption": map[string]any{"config": map[string]any{"kind": "EncryptionConfiguration"}},
		},
	}, {
		name: "a declared hash-valued property takes its whole value",
		job:  map[string]any{"encryption": map[string]any{"config": map[string]any{"kind": "Other", "resources": []any{"secrets"}}}},
		want: map[string]any{
			"port": 8443, "authorization": "RBAC,Node",
			"admin": map[string]any{"users": []any{"admin"}}, "encryption": map[string]any{"config": map[string]any{"kind": "Other", "resources": []any{"secrets"}}},
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			got, err := template.Properties(apiSpec, c.job, group, global)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestPropertiesDefaultsAreCopies(t *testing.T) {
	got, err := template.Properties(apiSpec, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got["admin"].(map[string]any)["users"].([]any)[0] = "changed"
	if apiSpec.Properties["admin.users"].Default.([]any)[0] != "admin" {
		t.Fatal("changing one job's properties changed the spec's default")
	}
}

func TestPropertiesUndeclared(t *testing.T) {
	job := map[string]any{
		"prot":       8443,                                                     // a typo
		"tls":        map[string]any{"cert": "c", "key": "k"},                  // tls.key undeclared
		"oidc":       "https://uaa",                                            // oidc.issuer needs a hash
		"encryption": map[string]any{"config": map[string]any{"any": "thing"}}, // under a declared name: fine
	}
	_, err := template.Properties(apiSpec, job, nil, nil)
	var verr *kubefoundry.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	got := map[string]bool{}
	for _, p := range verr.Problems {
		got[p.Field] = true
	}
	want := map[string]bool{"properties/prot": true, "properties/tls/key": true, "properties/oidc/issuer": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems at %v, want %v: %v", got, want, err)
	}
}
