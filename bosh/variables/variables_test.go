package variables_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
	"github.com/kubefoundry/kubefoundry/bosh/variables"
)

func tkgi(t *testing.T) ([]byte, *manifest.Manifest) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "manifest", "testdata", "tkgi.yml"))
	require.NoError(t, err)
	m, err := manifest.Parse(b)
	require.NoError(t, err)
	return b, m
}

func cert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	require.NotNil(t, b)
	c, err := x509.ParseCertificate(b.Bytes)
	require.NoError(t, err)
	return c
}

// TestGenerateAndInterpolate: what a TKGI-like manifest declares is
// generated once (CAs before what they sign), kept across runs and
// reopenings, and fills every ((variable)) of the manifest.
func TestGenerateAndInterpolate(t *testing.T) {
	raw, m := tkgi(t)
	path := filepath.Join(t.TempDir(), "vars.json")
	s, err := variables.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Generate(m.Variables))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "secrets are the owner's only")

	pw, ok, err := s.Get("kubo-admin-password")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Len(t, pw, 20)

	v, _, _ := s.Get("tls-kubernetes")
	tls := v.(map[string]any)
	ca := cert(t, tls["ca"].(string))
	leaf := cert(t, tls["certificate"].(string))
	assert.True(t, ca.IsCA)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "kubernetes.default.svc", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	require.NoError(t, err, "signed by kubo_ca, for its alternative names, for servers")
	assert.Equal(t, "10.100.200.1", leaf.IPAddresses[0].String())
	assert.Equal(t, "master.cfcr.internal", leaf.Subject.CommonName)
	v, _, _ = s.Get("kubo_ca")
	assert.Equal(t, ca.Raw, cert(t, v.(map[string]any)["certificate"].(string)).Raw, "the CA is the variable kubo_ca")

	v, _, _ = s.Get("worker-ssh")
	ssh := v.(map[string]any)
	assert.True(t, strings.HasPrefix(ssh["public_key"].(string), "ssh-rsa AAAAB3NzaC1yc2E"), "authorized_keys form")
	wire, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(ssh["public_key"].(string), "ssh-rsa "))
	require.NoError(t, err)
	assert.Equal(t, "ssh-rsa", string(wire[4:11]))
	assert.Regexp(t, `^([0-9a-f]{2}:){15}[0-9a-f]{2}$`, ssh["public_key_fingerprint"])
	v, _, _ = s.Get("kubelet-user")
	assert.Len(t, v.(map[string]any)["password"], 20)

	// Generated once: a second run and a reopened store keep the values.
	require.NoError(t, s.Generate(m.Variables))
	again, err := variables.Open(path)
	require.NoError(t, err)
	require.NoError(t, again.Generate(m.Variables))
	pw2, _, _ := again.Get("kubo-admin-password")
	assert.Equal(t, pw, pw2)

	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	require.NoError(t, opsfile.Interpolate(&doc, again), "every ((variable)) the manifest uses is there")
	out, err := yaml.Marshal(&doc)
	require.NoError(t, err)
	assert.NotContains(t, string(out), "((")
	assert.Contains(t, string(out), pw.(string))
	assert.NotContains(t, s.String(), pw.(string), "String shows no value")
}

// TestGenerateProblems: every problem at once, each at its variable.
func TestGenerateProblems(t *testing.T) {
	s, err := variables.Open(filepath.Join(t.TempDir(), "vars.json"))
	require.NoError(t, err)
	err = s.Generate([]manifest.Variable{
		{Name: "no-ca", Type: "certificate", Options: manifest.Map{"common_name": "x"}},
		{Name: "missing-ca", Type: "certificate", Options: manifest.Map{"ca": "nowhere"}},
		{Name: "a", Type: "certificate", Options: manifest.Map{"ca": "b"}},
		{Name: "b", Type: "certificate", Options: manifest.Map{"ca": "a"}},
		{Name: "odd", Type: "vault-token"},
		{Name: "short", Type: "password", Options: manifest.Map{"length": 3}},
		{Name: "fine", Type: "password"},
	})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"/variables/name=no-ca", "/variables/name=missing-ca", "/variables/name=a/options/ca",
		"/variables/name=b/options/ca", "/variables/name=odd", "/variables/name=short"}, fields)
	_, ok, _ := s.Get("fine")
	assert.True(t, ok, "what could be generated is, and kept")

	require.NoError(t, s.Put("given", "from-the-caller"))
	require.NoError(t, s.Generate([]manifest.Variable{{Name: "given", Type: "password"}}))
	v, _, _ := s.Get("given")
	assert.Equal(t, "from-the-caller", v, "a given value is not replaced")
}

// A certificate's organization is CredHub's option: Kubernetes reads a
// client's groups from it.
func TestCertificateOrganization(t *testing.T) {
	s, err := variables.Open(filepath.Join(t.TempDir(), "vars.json"))
	require.NoError(t, err)
	require.NoError(t, s.Generate([]manifest.Variable{
		{Name: "ca", Type: "certificate", Options: manifest.Map{"is_ca": true, "common_name": "ca"}},
		{Name: "kubelet", Type: "certificate", Options: manifest.Map{"ca": "ca", "common_name": "kubelet", "organization": "system:nodes",
			"extended_key_usage": []any{"client_auth"}}},
		{Name: "plain", Type: "certificate", Options: manifest.Map{"ca": "ca", "common_name": "plain"}},
	}))
	v, _, _ := s.Get("kubelet")
	assert.Equal(t, []string{"system:nodes"}, cert(t, v.(map[string]any)["certificate"].(string)).Subject.Organization)
	v, _, _ = s.Get("plain")
	assert.Equal(t, []string{"kubefoundry"}, cert(t, v.(map[string]any)["certificate"].(string)).Subject.Organization)

	err = s.Generate([]manifest.Variable{{Name: "bad", Type: "certificate", Options: manifest.Map{"ca": "ca", "common_name": "bad", "organization": 7}}})
	require.ErrorContains(t, err, "options.organization")
}
