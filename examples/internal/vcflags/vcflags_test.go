package vcflags

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGovcEnvironment(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "known_hosts")
	require.NoError(t, os.WriteFile(hosts, []byte("other.example 11:22\nvc.example:8443 AA:BB:CC\n"), 0o600))
	ca1, ca2 := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	require.NoError(t, os.WriteFile(ca1, []byte("CA-ONE"), 0o600))
	require.NoError(t, os.WriteFile(ca2, []byte("CA-TWO"), 0o600))
	t.Setenv("GOVC_URL", "https://vc.example:8443/sdk")
	t.Setenv("GOVC_USERNAME", "admin")
	t.Setenv("GOVC_TLS_KNOWN_HOSTS", hosts)
	t.Setenv("GOVC_TLS_CA_CERTS", ca1+string(filepath.ListSeparator)+ca2)

	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	v := Register(fs)
	require.NoError(t, fs.Parse([]string{"-call-timeout", "30s"}))
	cfg, err := v.Config()
	require.NoError(t, err)
	assert.Equal(t, "AA:BB:CC", cfg.Thumbprint, "looked up by host:port")
	assert.Contains(t, cfg.CACert, "CA-ONE")
	assert.Contains(t, cfg.CACert, "CA-TWO")
	assert.Equal(t, "admin", cfg.Username)
	assert.Equal(t, "30s", cfg.CallTimeout.String())

	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	v = Register(fs)
	require.NoError(t, fs.Parse([]string{"-thumbprint", "DD", "-url", "https://other.example/sdk"}))
	cfg, err = v.Config()
	require.NoError(t, err)
	assert.Equal(t, "DD", cfg.Thumbprint, "-thumbprint wins over the file")

	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	v = Register(fs)
	require.NoError(t, fs.Parse([]string{"-url", "https://other.example/sdk"}))
	cfg, err = v.Config()
	require.NoError(t, err)
	assert.Equal(t, "11:22", cfg.Thumbprint, "by host name alone")

	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	v = Register(fs)
	require.NoError(t, fs.Parse([]string{"-ca-certs", filepath.Join(dir, "missing.pem")}))
	_, err = v.Config()
	require.ErrorContains(t, err, "-ca-certs")
}
