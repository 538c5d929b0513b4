package variables_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/variables"
)

func get(t *testing.T, s *variables.Store, name string) any {
	t.Helper()
	v, ok, err := s.Get(name)
	require.NoError(t, err)
	require.True(t, ok, name)
	return v
}

func problems(t *testing.T, err error) map[string]string {
	t.Helper()
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	out := map[string]string{}
	for _, p := range ve.Problems {
		out[p.Field] = p.Reason
	}
	return out
}

// TestConverge: with update_mode converge a generated value follows its
// declaration (type, options, CA); without, it is kept as BOSH keeps it.
func TestConverge(t *testing.T) {
	ca := manifest.Variable{Name: "ca", Type: "certificate", Options: manifest.Map{"is_ca": true, "common_name": "ca"}}
	leaf := func(mode string, names ...any) manifest.Variable {
		return manifest.Variable{Name: "leaf", Type: "certificate", UpdateMode: mode, Options: manifest.Map{"ca": "ca", "common_name": "leaf", "alternative_names": names}}
	}
	pw := func(mode string, length int) manifest.Variable {
		return manifest.Variable{Name: "pw", Type: "password", UpdateMode: mode, Options: manifest.Map{"length": length}}
	}
	for _, tc := range []struct {
		name        string
		first, then []manifest.Variable
		variable    string
		regenerated bool
		check       func(t *testing.T, s *variables.Store)
	}{
		{name: "password length, converge", variable: "pw", regenerated: true,
			first: []manifest.Variable{pw("converge", 20)}, then: []manifest.Variable{pw("converge", 32)},
			check: func(t *testing.T, s *variables.Store) { assert.Len(t, get(t, s, "pw"), 32) }},
		{name: "password length, no update_mode", variable: "pw",
			first: []manifest.Variable{pw("", 20)}, then: []manifest.Variable{pw("", 32)},
			check: func(t *testing.T, s *variables.Store) { assert.Len(t, get(t, s, "pw"), 20) }},
		{name: "password length, no-overwrite", variable: "pw",
			first: []manifest.Variable{pw("no-overwrite", 20)}, then: []manifest.Variable{pw("no-overwrite", 32)}},
		{name: "same options, converge", variable: "pw",
			first: []manifest.Variable{pw("converge", 20)}, then: []manifest.Variable{pw("converge", 20)}},
		{name: "same list options, converge", variable: "leaf",
			first: []manifest.Variable{ca, leaf("converge", "a.internal", "10.0.0.1")}, then: []manifest.Variable{ca, leaf("converge", "a.internal", "10.0.0.1")}},
		{name: "no options to none, converge", variable: "pw",
			first: []manifest.Variable{{Name: "pw", Type: "password", UpdateMode: "converge"}}, then: []manifest.Variable{{Name: "pw", Type: "password", UpdateMode: "converge", Options: manifest.Map{}}}},
		{name: "type, converge", variable: "pw", regenerated: true,
			first: []manifest.Variable{pw("converge", 20)}, then: []manifest.Variable{{Name: "pw", Type: "rsa", UpdateMode: "converge", Options: manifest.Map{"length": 20}}},
			check: func(t *testing.T, s *variables.Store) { assert.Contains(t, get(t, s, "pw"), "private_key") }},
		{name: "overwrite", variable: "pw", regenerated: true,
			first: []manifest.Variable{pw("overwrite", 20)}, then: []manifest.Variable{pw("overwrite", 20)}},
		{name: "alternative names, converge", variable: "leaf", regenerated: true,
			first: []manifest.Variable{ca, leaf("converge", "a.internal")}, then: []manifest.Variable{ca, leaf("converge", "a.internal", "b.internal")},
			check: func(t *testing.T, s *variables.Store) {
				assert.Equal(t, []string{"a.internal", "b.internal"}, cert(t, part(t, s, "leaf", "certificate")).DNSNames)
				require.NoError(t, verify(t, part(t, s, "leaf", "certificate"), part(t, s, "leaf", "ca"), "b.internal"))
			}},
		{name: "alternative names, no update_mode", variable: "leaf",
			first: []manifest.Variable{ca, leaf("", "a.internal")}, then: []manifest.Variable{ca, leaf("", "a.internal", "b.internal")},
			check: func(t *testing.T, s *variables.Store) {
				assert.Equal(t, []string{"a.internal"}, cert(t, part(t, s, "leaf", "certificate")).DNSNames)
			}},
		{name: "CA regenerated, converging leaf", variable: "leaf", regenerated: true,
			first: []manifest.Variable{leaf("converge", "a.internal"), ca},
			then:  []manifest.Variable{leaf("converge", "a.internal"), {Name: "ca", Type: "certificate", UpdateMode: "converge", Options: manifest.Map{"is_ca": true, "common_name": "ca2"}}},
			check: func(t *testing.T, s *variables.Store) {
				assert.Equal(t, "ca2", cert(t, part(t, s, "ca", "certificate")).Subject.CommonName)
				require.NoError(t, verify(t, part(t, s, "leaf", "certificate"), part(t, s, "ca", "certificate"), "a.internal"), "signed by the new CA")
			}},
		{name: "CA regenerated, leaf without update_mode", variable: "leaf",
			first: []manifest.Variable{leaf("", "a.internal"), ca},
			then:  []manifest.Variable{leaf("", "a.internal"), {Name: "ca", Type: "certificate", UpdateMode: "converge", Options: manifest.Map{"is_ca": true, "common_name": "ca2"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vars.json")
			s, err := variables.Open(path)
			require.NoError(t, err)
			require.NoError(t, s.Generate(tc.first))
			// A certificate's ca follows its CA; the certificate is what
			// is generated.
			value := func() any {
				v := get(t, s, tc.variable)
				if m, ok := v.(map[string]any); ok && m["certificate"] != nil {
					return m["certificate"]
				}
				return v
			}
			before := value()
			s, err = variables.Open(path) // what converge compares survives a reopen
			require.NoError(t, err)
			require.NoError(t, s.Generate(tc.then))
			after := value()
			if tc.regenerated {
				assert.NotEqual(t, before, after, "regenerated")
			} else {
				assert.Equal(t, before, after, "kept")
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// TestConvergeKeepsWhatWasPut: a value the caller put is never
// regenerated, converge or not; it is checked against the declared type.
func TestConvergeKeepsWhatWasPut(t *testing.T) {
	s, err := variables.Open(filepath.Join(t.TempDir(), "vars.json"))
	require.NoError(t, err)
	require.NoError(t, s.Generate([]manifest.Variable{{Name: "pw", Type: "password", Options: manifest.Map{"length": 20}}}))
	require.NoError(t, s.Put("pw", "given-by-the-operator"))
	for _, mode := range []string{"", "converge", "overwrite"} {
		require.NoError(t, s.Generate([]manifest.Variable{{Name: "pw", Type: "password", UpdateMode: mode, Options: manifest.Map{"length": 40}}}))
		assert.Equal(t, "given-by-the-operator", get(t, s, "pw"), mode)
	}

	// Put before any Generate: the type is unknown, so any value goes in,
	// and Generate reports one of the wrong shape without replacing it.
	require.NoError(t, s.Put("tls", "not-a-certificate"))
	err = s.Generate([]manifest.Variable{{Name: "tls", Type: "certificate", UpdateMode: "converge", Options: manifest.Map{"is_ca": true}}})
	assert.Contains(t, problems(t, err)["/variables/name=tls"], "a certificate value is a map of ca, certificate, private_key")
	assert.Equal(t, "not-a-certificate", get(t, s, "tls"))
	err = s.Put("tls", "still-not")
	var fe *kubefoundry.FieldError
	require.ErrorAs(t, err, &fe, "the type is known now")
	assert.Equal(t, "/variables/name=tls", fe.Field)
}

// TestConvergeDuringRotation: a CA in rotation is not regenerated by
// converge; the problem says how to end the rotation.
func TestConvergeDuringRotation(t *testing.T) {
	s, err := variables.Open(filepath.Join(t.TempDir(), "vars.json"))
	require.NoError(t, err)
	ca := manifest.Variable{Name: "ca", Type: "certificate", UpdateMode: "converge", Options: manifest.Map{"is_ca": true, "common_name": "ca"}}
	require.NoError(t, s.Generate([]manifest.Variable{ca}))
	require.NoError(t, s.RotateCA("ca"))
	bundle := part(t, s, "ca", "certificate")
	ca.Options = manifest.Map{"is_ca": true, "common_name": "other"}
	err = s.Generate([]manifest.Variable{ca})
	assert.Contains(t, problems(t, err)["/variables/name=ca"], "DropTransitional")
	assert.Equal(t, bundle, part(t, s, "ca", "certificate"))
	assert.Equal(t, variables.NewTransitional, phase(t, s, "ca"))
}

// TestUpdateModeUnknown: a mode BOSH does not have is a problem at its
// path.
func TestUpdateModeUnknown(t *testing.T) {
	s, err := variables.Open(filepath.Join(t.TempDir(), "vars.json"))
	require.NoError(t, err)
	err = s.Generate([]manifest.Variable{{Name: "pw", Type: "password", UpdateMode: "sometimes"}})
	assert.Contains(t, problems(t, err), "/variables/name=pw/update_mode")
	_, ok, _ := s.Get("pw")
	assert.False(t, ok)
}

// TestPutShape: a value put for a variable of a known type must have the
// type's shape; the error names the variable and nothing changes.
func TestPutShape(t *testing.T) {
	s, err := variables.Open(filepath.Join(t.TempDir(), "vars.json"))
	require.NoError(t, err)
	require.NoError(t, s.Generate([]manifest.Variable{
		{Name: "ca", Type: "certificate", Options: manifest.Map{"is_ca": true, "common_name": "ca"}},
		{Name: "other", Type: "certificate", Options: manifest.Map{"is_ca": true, "common_name": "other"}},
		{Name: "pw", Type: "password"},
		{Name: "u", Type: "user"},
		{Name: "k", Type: "rsa"},
		{Name: "ssh", Type: "ssh"},
	}))
	caCert, caKey := part(t, s, "ca", "certificate"), part(t, s, "ca", "private_key")
	otherKey := part(t, s, "other", "private_key")
	cert := func(parts ...string) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(parts); i += 2 {
			m[parts[i]] = parts[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name, variable string
		value          any
		want           string // in the reason; "" for accepted
	}{
		{"password string", "pw", "a-password", ""},
		{"password number", "pw", 42, "a password is a non-empty string, not a int"},
		{"password empty", "pw", "", "an empty string"},
		{"user", "u", map[string]string{"username": "a", "password": "b"}, ""},
		{"user without username", "u", map[string]any{"password": "b"}, "username missing"},
		{"rsa", "k", cert("private_key", caKey, "public_key", "x"), ""},
		{"rsa key not PEM", "k", cert("private_key", "x", "public_key", "x"), "private_key: no PEM private key"},
		{"ssh as a string", "ssh", "ssh-rsa AAAA", "a ssh value is a map of private_key, public_key, not a string"},
		{"certificate", "ca", cert("ca", caCert, "certificate", caCert, "private_key", caKey), ""},
		{"certificate from YAML", "ca", yamlNode(t, map[string]string{"ca": caCert, "certificate": caCert, "private_key": caKey}), ""},
		{"certificate without ca", "ca", cert("certificate", caCert, "private_key", caKey), "ca missing"},
		{"certificate without anything", "ca", map[string]any{}, "ca, certificate, private_key missing"},
		{"certificate not PEM", "ca", cert("ca", caCert, "certificate", "nope", "private_key", caKey), "certificate: no PEM certificate"},
		{"certificate with a key in ca", "ca", cert("ca", caKey, "certificate", caCert, "private_key", caKey), `ca: a PEM block of type "RSA PRIVATE KEY"`},
		{"certificate with another key", "ca", cert("ca", caCert, "certificate", caCert, "private_key", otherKey), "private_key is not the key of the certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := get(t, s, tc.variable)
			err := s.Put(tc.variable, tc.value)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			var fe *kubefoundry.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "/variables/name="+tc.variable, fe.Field)
			assert.Contains(t, fe.Reason, tc.want)
			assert.True(t, kubefoundry.IsInvalid(err))
			assert.Equal(t, before, get(t, s, tc.variable), "unchanged")
		})
	}
	// A YAML node is stored as the value it holds.
	v := get(t, s, "ca").(map[string]any)
	assert.Equal(t, caCert, v["certificate"])
}

func yamlNode(t *testing.T, v any) *yaml.Node {
	t.Helper()
	var n yaml.Node
	require.NoError(t, n.Encode(v))
	return &n
}

// TestMigrateFormat1: a store written as a bare object of name -> value
// opens, keeps its values, and is adopted by the next Generate: kept
// (not regenerated), written in the current format, and rotatable.
func TestMigrateFormat1(t *testing.T) {
	dir := t.TempDir()
	gen, err := variables.Open(filepath.Join(dir, "gen.json"))
	require.NoError(t, err)
	require.NoError(t, gen.Generate(rotationDefs))
	old := map[string]any{}
	for _, d := range rotationDefs {
		old[d.Name] = get(t, gen, d.Name)
	}
	old["given"] = "a value put long ago"
	b, err := json.Marshal(old)
	require.NoError(t, err)
	path := filepath.Join(dir, "vars.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))

	s, err := variables.Open(path)
	require.NoError(t, err)
	for name, v := range old {
		assert.Equal(t, v, get(t, s, name), name)
	}
	assert.Equal(t, string(b), fileOf(t, path), "migrated in memory only")

	require.NoError(t, s.Generate(rotationDefs))
	for _, d := range rotationDefs {
		assert.Equal(t, old[d.Name], get(t, s, d.Name), "%s kept", d.Name)
	}
	assert.Contains(t, fileOf(t, path), `"$format": 2`)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	s, err = variables.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Generate(rotationDefs))
	assert.Equal(t, old["api"], get(t, s, "api"), "a converging leaf of the adopted CA is kept: the CA is the one that signed it")
	assert.Equal(t, "a value put long ago", get(t, s, "given"))
	require.NoError(t, s.RotateCA("ca"))
	regenerated, err := s.PromoteCA("ca")
	require.NoError(t, err)
	assert.Equal(t, []string{"api", "etcd"}, regenerated, "adopted leaves are known to be signed by the CA")
	require.NoError(t, verify(t, part(t, s, "api", "certificate"), part(t, s, "api", "ca"), "api.internal"))
}

// TestOpenBadStore: a damaged store is refused, naming what is wrong,
// never a panic.
func TestOpenBadStore(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"not JSON", `{"a":`, "unexpected end"},
		{"not an object", `[1]`, "cannot unmarshal array"},
		{"future format", `{"$format": 3, "variables": {}}`, "format 3"},
		{"null variable", `{"$format": 2, "variables": {"x": null}}`, "/variables/name=x"},
		{"no version", `{"$format": 2, "variables": {"x": {"origin": "put", "versions": []}}}`, "0 active"},
		{"null version", `{"$format": 2, "variables": {"x": {"origin": "put", "versions": [null]}}}`, "null"},
		{"two active", `{"$format": 2, "variables": {"x": {"origin": "put", "versions": [{"id": 1, "value": "a"}, {"id": 2, "value": "b"}]}}}`, "2 active"},
		{"odd origin", `{"$format": 2, "variables": {"x": {"origin": "found", "versions": [{"id": 1, "value": "a"}]}}}`, `origin "found"`},
		{"transitional without phase", `{"$format": 2, "variables": {"x": {"origin": "generated", "versions": [{"id": 1, "value": "a"}, {"id": 2, "value": "b", "transitional": true}]}}}`, "rotation"},
		{"phase without transitional", `{"$format": 2, "variables": {"x": {"origin": "generated", "rotation": "new-transitional", "versions": [{"id": 1, "value": "a"}]}}}`, "without a transitional"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vars.json")
			require.NoError(t, os.WriteFile(path, []byte(tc.text), 0o600))
			_, err := variables.Open(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestExpiring lists the certificate versions that end within a time,
// soonest first, each with its CA.
func TestExpiring(t *testing.T) {
	s, err := variables.Open(filepath.Join(t.TempDir(), "vars.json"))
	require.NoError(t, err)
	require.NoError(t, s.Generate([]manifest.Variable{
		{Name: "ca", Type: "certificate", Options: manifest.Map{"is_ca": true, "common_name": "ca", "duration": 100}},
		{Name: "soon", Type: "certificate", Options: manifest.Map{"ca": "ca", "common_name": "soon", "duration": 10}},
		{Name: "sooner", Type: "certificate", Options: manifest.Map{"ca": "ca", "common_name": "sooner", "duration": 5}},
		{Name: "late", Type: "certificate", Options: manifest.Map{"ca": "ca", "common_name": "late"}},
		{Name: "pw", Type: "password"},
	}))
	day := 24 * time.Hour
	names := func(within time.Duration) []string {
		t.Helper()
		list, err := s.Expiring(within)
		require.NoError(t, err)
		var out []string
		for _, x := range list {
			out = append(out, x.Name)
		}
		return out
	}
	assert.Empty(t, names(day))
	assert.Equal(t, []string{"sooner", "soon"}, names(30*day))
	assert.Equal(t, []string{"sooner", "soon", "ca"}, names(200*day))
	assert.Equal(t, []string{"sooner", "soon", "ca", "late"}, names(400*day))

	list, err := s.Expiring(30 * day)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, variables.Expiry{Name: "sooner", NotAfter: cert(t, part(t, s, "sooner", "certificate")).NotAfter, CA: "ca"}, list[0])
	assert.WithinDuration(t, time.Now().Add(10*day), list[1].NotAfter, time.Hour)

	require.NoError(t, s.RotateCA("ca"))
	require.NoError(t, s.Put("given", map[string]any{"ca": part(t, s, "ca", "certificate"), "certificate": part(t, s, "sooner", "certificate"), "private_key": part(t, s, "sooner", "private_key")}))
	list, err = s.Expiring(200 * day)
	require.NoError(t, err)
	var cas []variables.Expiry
	for _, x := range list {
		if x.Name == "ca" {
			cas = append(cas, x)
		}
		if x.Name == "given" {
			assert.Empty(t, x.CA, "a value put: its signer is not known")
		}
	}
	require.Len(t, cas, 2, "the transitional CA too")
	assert.True(t, cas[0].IsCA)
	assert.Equal(t, "ca", cas[0].CA, "self-signed")
	assert.NotEqual(t, cas[0].Transitional, cas[1].Transitional)
	assert.Len(t, list, 5, "sooner, soon, given and both CAs")

	require.NoError(t, s.Put("broken", "x"))
	assert.Error(t, s.Generate([]manifest.Variable{{Name: "broken", Type: "certificate", Options: manifest.Map{"is_ca": true}}}), "declared a certificate")
	list, err = s.Expiring(200 * day)
	assert.Contains(t, problems(t, err), "/variables/name=broken", "a certificate that cannot be read is a problem")
	assert.Len(t, list, 5, "the others are still listed")
	assert.False(t, strings.Contains(s.String(), "BEGIN"), "String shows no value")
}
