package variables_test

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
	"github.com/kubefoundry/kubefoundry/bosh/variables"
)

// certs reads every certificate of a PEM bundle.
func certs(t *testing.T, text string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
		out = append(out, c)
	}
	return out
}

// verify checks leaf (PEM) against the CAs of bundle (PEM) as a TLS
// client of name would.
func verify(t *testing.T, leaf, bundle, name string) error {
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range certs(t, bundle) {
		pool.AddCert(c)
	}
	_, err := cert(t, leaf).Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// part is the key k of a map variable.
func part(t *testing.T, s *variables.Store, name, k string) string {
	t.Helper()
	v, ok, err := s.Get(name)
	require.NoError(t, err)
	require.True(t, ok, name)
	m, ok := v.(map[string]any)
	require.True(t, ok, "%s is a map", name)
	str, _ := m[k].(string)
	require.NotEmpty(t, str, "%s.%s", name, k)
	return str
}

func phase(t *testing.T, s *variables.Store, name string) variables.RotationPhase {
	t.Helper()
	p, err := s.RotationPhase(name)
	require.NoError(t, err)
	return p
}

func fileOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

var rotationDefs = []manifest.Variable{
	{Name: "ca", Type: "certificate", Options: manifest.Map{"is_ca": true, "common_name": "ca"}},
	{Name: "api", Type: "certificate", UpdateMode: "converge", Options: manifest.Map{"ca": "ca", "common_name": "api", "alternative_names": []any{"api.internal"}, "extended_key_usage": []any{"server_auth"}}},
	{Name: "etcd", Type: "certificate", Options: manifest.Map{"ca": "ca", "common_name": "etcd", "alternative_names": []any{"etcd.internal"}, "extended_key_usage": []any{"server_auth"}}},
	{Name: "admin", Type: "password"},
}

// TestRotateCA walks the three steps of a CA rotation with real x509
// verification at each: the old leaf verifies against the bundle while
// both CAs are there, the new leaf against the new CA, and after the
// drop the old leaf no longer verifies. Each step survives a reopen and
// does nothing the second time.
func TestRotateCA(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vars.json")
	s, err := variables.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Generate(rotationDefs))
	assert.Equal(t, variables.NotRotating, phase(t, s, "ca"))

	oldCA := part(t, s, "ca", "certificate")
	require.Len(t, certs(t, oldCA), 1)
	oldAPI := part(t, s, "api", "certificate")
	oldEtcd := part(t, s, "etcd", "certificate")
	require.NoError(t, verify(t, oldAPI, part(t, s, "api", "ca"), "api.internal"))

	reopen := func() {
		t.Helper()
		var err error
		s, err = variables.Open(path)
		require.NoError(t, err)
	}

	// Step 1: the new CA is trusted beside the old one, which still signs.
	require.NoError(t, s.RotateCA("ca"))
	reopen()
	assert.Equal(t, variables.NewTransitional, phase(t, s, "ca"), "the phase survives a reopen")
	bundle := part(t, s, "api", "ca")
	both := certs(t, bundle)
	require.Len(t, both, 2, "leaf.ca holds both CAs")
	assert.Equal(t, cert(t, oldCA).Raw, both[0].Raw, "the active (old) CA first, as CredHub orders them")
	newCA := both[1]
	assert.True(t, newCA.IsCA)
	assert.NotEqual(t, both[0].PublicKey, newCA.PublicKey, "a new key")
	assert.Equal(t, bundle, part(t, s, "ca", "certificate"), "((ca.certificate)) is the bundle too")
	assert.Equal(t, bundle, part(t, s, "ca", "ca"))
	assert.Equal(t, bundle, part(t, s, "etcd", "ca"))
	assert.Equal(t, oldAPI, part(t, s, "api", "certificate"), "leaves are not regenerated at step 1, even under converge")
	require.NoError(t, s.Generate(rotationDefs))
	assert.Equal(t, oldAPI, part(t, s, "api", "certificate"), "nor by Generate: the active CA did not change")
	require.NoError(t, verify(t, oldAPI, bundle, "api.internal"), "the old leaf verifies against the bundle")
	caKey := part(t, s, "ca", "private_key")
	kb, _ := pem.Decode([]byte(caKey))
	require.NotNil(t, kb)
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	require.NoError(t, err)
	assert.True(t, key.PublicKey.Equal(both[0].PublicKey), "private_key is the key of the first certificate of the bundle")

	before := fileOf(t, path)
	require.NoError(t, s.RotateCA("ca"), "step 1 again")
	assert.Equal(t, before, fileOf(t, path), "does nothing")
	assert.Equal(t, bundle, part(t, s, "api", "ca"))

	// ((api.ca)) in a manifest gets the bundle.
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("tls:\n  ca: ((api.ca))\n  cert: ((api.certificate))\n"), &doc))
	require.NoError(t, opsfile.Interpolate(&doc, s))
	var out struct{ TLS struct{ CA, Cert string } }
	require.NoError(t, doc.Decode(&out))
	assert.Len(t, certs(t, out.TLS.CA), 2)

	// Step 2: the new CA signs; every leaf it signs is regenerated.
	regenerated, err := s.PromoteCA("ca")
	require.NoError(t, err)
	assert.Equal(t, []string{"api", "etcd"}, regenerated)
	reopen()
	assert.Equal(t, variables.OldTransitional, phase(t, s, "ca"))
	bundle = part(t, s, "api", "ca")
	both = certs(t, bundle)
	require.Len(t, both, 2)
	assert.Equal(t, newCA.Raw, both[0].Raw, "the active (new) CA first now")
	assert.Equal(t, cert(t, oldCA).Raw, both[1].Raw, "the old one still trusted")
	newAPI := part(t, s, "api", "certificate")
	assert.NotEqual(t, oldAPI, newAPI)
	assert.Equal(t, newCA.RawSubject, cert(t, newAPI).RawIssuer)
	require.NoError(t, verify(t, newAPI, bundle, "api.internal"), "the new leaf verifies against the bundle")
	require.NoError(t, verify(t, oldAPI, bundle, "api.internal"), "and so does the old one still")
	require.NoError(t, verify(t, part(t, s, "etcd", "certificate"), bundle, "etcd.internal"))
	assert.NotEqual(t, oldEtcd, part(t, s, "etcd", "certificate"), "a leaf without converge is regenerated too")
	assert.Equal(t, []string{"api.internal"}, cert(t, newAPI).DNSNames, "with its own options")

	before = fileOf(t, path)
	regenerated, err = s.PromoteCA("ca")
	require.NoError(t, err, "step 2 again")
	assert.Empty(t, regenerated)
	assert.Equal(t, before, fileOf(t, path), "does nothing")
	require.NoError(t, s.Generate(rotationDefs))
	assert.Equal(t, newAPI, part(t, s, "api", "certificate"), "a converging leaf signed by the active CA is kept")

	// Step 3: only the new CA remains.
	require.NoError(t, s.DropTransitional("ca"))
	reopen()
	assert.Equal(t, variables.NotRotating, phase(t, s, "ca"))
	only := part(t, s, "api", "ca")
	require.Len(t, certs(t, only), 1)
	assert.Equal(t, newCA.Raw, certs(t, only)[0].Raw)
	assert.Equal(t, only, part(t, s, "ca", "certificate"))
	require.NoError(t, verify(t, newAPI, only, "api.internal"), "the new leaf verifies against the new CA alone")
	err = verify(t, oldAPI, only, "api.internal")
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown, "the old leaf does not verify against the new CA alone")

	before = fileOf(t, path)
	require.NoError(t, s.DropTransitional("ca"), "step 3 again")
	assert.Equal(t, before, fileOf(t, path), "does nothing")

	// And a second rotation can start.
	require.NoError(t, s.RotateCA("ca"))
	assert.Equal(t, variables.NewTransitional, phase(t, s, "ca"))
}

// TestRotationErrors: a step out of order, or on what is not a CA this
// store generated, fails naming the variable and changes nothing.
func TestRotationErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vars.json")
	s, err := variables.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Generate(rotationDefs))
	require.NoError(t, s.Put("given-ca", map[string]any{"ca": part(t, s, "ca", "certificate"), "certificate": part(t, s, "ca", "certificate"), "private_key": part(t, s, "ca", "private_key")}))

	promote := func(n string) error { _, err := s.PromoteCA(n); return err }
	inPhase := func(p variables.RotationPhase) {
		t.Helper()
		switch phase(t, s, "ca") {
		case variables.NewTransitional:
			_, err := s.PromoteCA("ca")
			require.NoError(t, err)
			require.NoError(t, s.DropTransitional("ca"))
		case variables.OldTransitional:
			require.NoError(t, s.DropTransitional("ca"))
		}
		switch p {
		case variables.OldTransitional:
			require.NoError(t, s.RotateCA("ca"))
			_, err := s.PromoteCA("ca")
			require.NoError(t, err)
		case variables.NewTransitional:
			require.NoError(t, s.RotateCA("ca"))
		}
		require.Equal(t, p, phase(t, s, "ca"))
	}
	for _, tc := range []struct {
		name  string
		phase variables.RotationPhase
		step  func(string) error
		on    string
		want  string // in the reason
	}{
		{"promote before rotate", variables.NotRotating, promote, "ca", "RotateCA first"},
		{"drop before promote", variables.NewTransitional, s.DropTransitional, "ca", "PromoteCA first"},
		{"rotate before drop", variables.OldTransitional, s.RotateCA, "ca", "DropTransitional first"},
		{"rotate a leaf", variables.NotRotating, s.RotateCA, "api", "not a CA"},
		{"promote a leaf", variables.NewTransitional, promote, "api", "not a CA"},
		{"drop a leaf", variables.OldTransitional, s.DropTransitional, "api", "not a CA"},
		{"rotate a password", variables.NotRotating, s.RotateCA, "admin", "not a CA"},
		{"rotate a CA put", variables.NotRotating, s.RotateCA, "given-ca", "put, not generated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inPhase(tc.phase)
			before := fileOf(t, path)
			err := tc.step(tc.on)
			var fe *kubefoundry.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "/variables/name="+tc.on, fe.Field)
			assert.Contains(t, fe.Reason, tc.want)
			assert.True(t, kubefoundry.IsInvalid(err))
			assert.Equal(t, before, fileOf(t, path), "nothing changed")
			assert.Equal(t, tc.phase, phase(t, s, "ca"))
		})
	}

	for _, step := range []func(string) error{s.RotateCA, promote, s.DropTransitional} {
		err := step("nowhere")
		assert.True(t, kubefoundry.IsNotFound(err), "%v", err)
		assert.Contains(t, err.Error(), `"nowhere"`)
	}
	_, err = s.RotationPhase("nowhere")
	assert.True(t, kubefoundry.IsNotFound(err))
}

// TestRotateIntermediate: promoting a root regenerates the intermediate
// CA it signs and, below it, the leaves the intermediate signs, so the
// whole chain verifies against the new root.
func TestRotateIntermediate(t *testing.T) {
	s, err := variables.Open(filepath.Join(t.TempDir(), "vars.json"))
	require.NoError(t, err)
	require.NoError(t, s.Generate([]manifest.Variable{
		{Name: "leaf", Type: "certificate", Options: manifest.Map{"ca": "mid", "common_name": "leaf", "alternative_names": []any{"leaf.internal"}, "extended_key_usage": []any{"server_auth"}}},
		{Name: "mid", Type: "certificate", Options: manifest.Map{"is_ca": true, "ca": "root", "common_name": "mid"}},
		{Name: "root", Type: "certificate", Options: manifest.Map{"is_ca": true, "common_name": "root"}},
	}))
	chain := func() error {
		inter := x509.NewCertPool()
		inter.AddCert(cert(t, part(t, s, "leaf", "ca")))
		roots := x509.NewCertPool()
		for _, c := range certs(t, part(t, s, "mid", "ca")) {
			roots.AddCert(c)
		}
		_, err := cert(t, part(t, s, "leaf", "certificate")).Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "leaf.internal"})
		return err
	}
	require.NoError(t, chain())
	require.NoError(t, s.RotateCA("root"))
	regenerated, err := s.PromoteCA("root")
	require.NoError(t, err)
	assert.Equal(t, []string{"leaf", "mid"}, regenerated)
	require.NoError(t, s.DropTransitional("root"))
	require.Len(t, certs(t, part(t, s, "mid", "ca")), 1)
	require.NoError(t, chain(), "leaf -> new mid -> new root")
}

// TestConcurrentUse: reads and rotation steps from many goroutines (run
// with -race).
func TestConcurrentUse(t *testing.T) {
	s, err := variables.Open(filepath.Join(t.TempDir(), "vars.json"))
	require.NoError(t, err)
	require.NoError(t, s.Generate(rotationDefs[:2]))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				v, ok, err := s.Get("api")
				assert.NoError(t, err)
				assert.True(t, ok)
				assert.NotEmpty(t, v.(map[string]any)["ca"])
				_, err = s.RotationPhase("ca")
				assert.NoError(t, err)
			}
		})
	}
	wg.Go(func() {
		assert.NoError(t, s.RotateCA("ca"))
		_, err := s.PromoteCA("ca")
		assert.NoError(t, err)
		assert.NoError(t, s.DropTransitional("ca"))
	})
	wg.Wait()
	assert.Equal(t, variables.NotRotating, phase(t, s, "ca"))
}

// TestFailedWriteChangesNothing: when the store cannot be written, a
// step fails and the store in memory is as it was.
func TestFailedWriteChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vars.json")
	s, err := variables.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Generate(rotationDefs[:2]))
	require.NoError(t, s.RotateCA("ca"))
	bundle := part(t, s, "api", "ca")
	api := part(t, s, "api", "certificate")

	// A directory that is not empty where the file goes: the rename fails.
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.MkdirAll(filepath.Join(path, "in-the-way"), 0o700))
	_, err = s.PromoteCA("ca")
	require.Error(t, err)
	assert.Equal(t, variables.NewTransitional, phase(t, s, "ca"))
	assert.Equal(t, bundle, part(t, s, "api", "ca"))
	assert.Equal(t, api, part(t, s, "api", "certificate"))
	require.Error(t, s.Put("x", "y"))
	_, ok, _ := s.Get("x")
	assert.False(t, ok)

	require.NoError(t, os.RemoveAll(path))
	require.Error(t, s.Put("x", make(chan int)), "a value JSON cannot hold")
	_, ok, _ = s.Get("x")
	assert.False(t, ok)
	_, err = s.PromoteCA("ca")
	require.NoError(t, err, "and it works once the way is clear")
}
