package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServeUntilCancelled(t *testing.T) {
	t.Setenv("NSXT_USERNAME", "")
	t.Setenv("NSXT_PASSWORD", "")
	certFile := filepath.Join(t.TempDir(), "nsx.pem")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-username", "kf", "-password", "s3cret-pw", "-cert-out", certFile}, pw)
		pw.CloseWithError(err)
		done <- err
	}()

	// Read until the URL, then keep draining so run never blocks writing.
	sc := bufio.NewScanner(pr)
	urlRe := regexp.MustCompile(`^NSX-T simulator listening on (https://127\.0\.0\.1:\d+)$`)
	var url string
	var lines []string
	for url == "" && sc.Scan() {
		lines = append(lines, sc.Text())
		if m := urlRe.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
		}
	}
	require.NotEmpty(t, url, "no URL printed: %q", lines)
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(pr)
		rest <- string(b)
	}()

	pem, err := os.ReadFile(certFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	get := func(user, password string) (*http.Response, map[string]any) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/policy/api/v1/infra/tier-0s/t0", nil)
		require.NoError(t, err)
		req.SetBasicAuth(user, password)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp, body
	}
	resp, body := get("kf", "s3cret-pw")
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	assert.Equal(t, "t0", body["id"])
	assert.Equal(t, "/infra/tier-0s/t0", body["path"])
	resp, _ = get("kf", "wrong")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the context was cancelled")
	}
	out := <-rest
	assert.Contains(t, out, "user name: kf\n")
	assert.Contains(t, out, "certificate: "+certFile+"\n")
	assert.Contains(t, out, "-url "+url+" -ca-file "+certFile+" -username kf")
	for _, flag := range []string{"-tier0 /infra/tier-0s/t0", "-edge-cluster /infra/sites/default/enforcement-points/default/edge-clusters/",
		"-transport-zone /infra/sites/default/enforcement-points/default/transport-zones/", "-node-block /infra/ip-blocks/",
		"-pod-block /infra/ip-blocks/", "-floating-pool /infra/ip-pools/"} {
		assert.Contains(t, out, flag)
	}
	assert.NotContains(t, out, "s3cret-pw", "the password is never printed")
}

func TestFlagErrors(t *testing.T) {
	t.Setenv("NSXT_USERNAME", "")
	t.Setenv("NSXT_PASSWORD", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"all interfaces", []string{"-addr", ":8443"}, "loopback only"},
		{"not loopback", []string{"-addr", "192.0.2.1:8443"}, "loopback only"},
		{"host name", []string{"-addr", "localhost:8443"}, "loopback only"},
		{"no port", []string{"-addr", "127.0.0.1"}, "missing port"},
		{"user without password", []string{"-username", "kf"}, "give both -username and -password"},
		{"negative reads", []string{"-realize-after-reads", "-1"}, "must not be negative"},
		{"negative lag", []string{"-search-lag", "-1s"}, "must not be negative"},
		{"negative purge", []string{"-purge-after", "-5m"}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // an accepted configuration would serve until this
			err := run(ctx, tt.args, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
