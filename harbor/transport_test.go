package harbor_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/runtime"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/harbor"
	"github.com/kubefoundry/kubefoundry/harbor/simulator"
	"github.com/kubefoundry/kubefoundry/internal/transport/transporttest"
)

// A Harbor port that accepts the connection and never shakes hands fails
// New after the TLS handshake bound, with an error that says so.
func TestTLSHandshakeTimeout(t *testing.T) {
	addr := transporttest.SilentListener(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := harbor.New(ctx, harbor.Config{URL: "https://" + addr, Username: "admin", Password: "pw",
		TLSHandshakeTimeout: 300 * time.Millisecond})
	require.NoError(t, ctx.Err(), "the handshake bound ended the call, not the test's")
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	require.Equal(t, kubefoundry.StageTLS, te.Stage)
	require.Equal(t, addr, te.Host)
	require.Equal(t, 300*time.Millisecond, te.After)
	require.ErrorIs(t, err, harbor.ErrTimeout)
	require.Contains(t, err.Error(), "TLS handshake")
}

// A Harbor that takes the request and never answers fails the call after
// Config.Timeout, with an error naming the call.
func TestCallTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := harbor.New(ctx, harbor.Config{URL: srv.URL, Username: "admin", Password: "pw", Timeout: 300 * time.Millisecond})
	require.NoError(t, ctx.Err(), "the call bound ended the call, not the test's")
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	require.Equal(t, kubefoundry.StageCall, te.Stage)
	require.Equal(t, "GET /api/v2.0/ping", te.Op)
	require.Equal(t, strings.TrimPrefix(srv.URL, "http://"), te.Host)
	require.Equal(t, 300*time.Millisecond, te.After)
	require.ErrorIs(t, err, harbor.ErrTimeout)
}

// Harbor answers that mean "not now" (502, 503, 429) are ErrUnavailable,
// and an answer later than Config.Timeout is a call TimeoutError; the
// client works again once the fault is spent.
func TestUnavailableAndSlowHarbor(t *testing.T) {
	sim, cfg := simulator.Start(t, simulator.Config{})
	cfg.Timeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := harbor.New(ctx, cfg, harbor.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	_, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: "c1"})
	require.NoError(t, err)
	path := regexp.MustCompile(`^/api/v2\.0/projects/c1$`)

	for _, status := range []int{http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusTooManyRequests} {
		sim.Inject(&simulator.Fault{Method: http.MethodGet, Path: path, Times: 2, Status: status, Code: "BUSY", Message: "injected fault: try later"})
		for range 2 {
			_, err := c.GetProject(ctx, "c1")
			require.ErrorIs(t, err, harbor.ErrUnavailable)
			require.ErrorIs(t, err, kubefoundry.ErrUnavailable)
			var ae *harbor.APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, status, ae.Status)
			require.Equal(t, "BUSY: injected fault: try later", ae.Message, "Harbor's error body is read")
			var rae *runtime.APIError
			require.ErrorAs(t, err, &rae, "go-client's error is in the chain")
			require.Equal(t, status, rae.Code)
		}
		_, err = c.GetProject(ctx, "c1")
		require.NoError(t, err, "the fault is spent")
	}

	sim.Inject(&simulator.Fault{Method: http.MethodGet, Path: path, Delay: time.Minute})
	_, err = c.GetProject(ctx, "c1")
	require.NoError(t, ctx.Err(), "the call bound ended the call, not the test's")
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	require.Equal(t, kubefoundry.StageCall, te.Stage)
	require.Equal(t, "GET /api/v2.0/projects/c1", te.Op)
	require.Equal(t, strings.TrimPrefix(cfg.URL, "http://"), te.Host)
	require.Equal(t, cfg.Timeout, te.After)
	require.ErrorIs(t, err, harbor.ErrTimeout)
	require.NotErrorIs(t, err, harbor.ErrUnavailable)
	_, err = c.GetProject(ctx, "c1")
	require.NoError(t, err)
}

// An error answer that is not Harbor's (a load balancer's JSON in front of
// it, with a status the operation's spec does not list) is kept as it
// came, not read as Harbor's errors list.
func TestErrorBodyOfAnotherServer(t *testing.T) {
	b := simulated(t)
	p := newProxy(t, b.url)
	c := clientAt(t, p.URL, b.user, b.pw)
	ctx := context.Background()
	_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "c1"})
	require.NoError(t, err)
	const body = `{"message": "no healthy upstream"}`
	p.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v2.0/projects/c1" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, body)
		return true
	}, nil)
	_, err = c.GetProject(ctx, "c1")
	var ae *harbor.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusServiceUnavailable, ae.Status)
	require.Equal(t, body, ae.Message)
	require.ErrorIs(t, err, harbor.ErrUnavailable)
}

// TLS is verified against the CA bundle or the thumbprint given, and
// only Insecure turns it off.
func TestTLSTrust(t *testing.T) {
	b := simulated(t)
	target, err := url.Parse(b.url)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	rpt := &http.Transport{}
	rp.Transport = rpt
	srv := httptest.NewUnstartedServer(rp)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		rpt.CloseIdleConnections()
	})
	cert := srv.Certificate()
	sum := sha256.Sum256(cert.Raw)
	thumb := hex.EncodeToString(sum[:])
	colons := strings.ToUpper(regexp.MustCompile(`(..)`).ReplaceAllString(thumb, "$1:"))
	colons = strings.TrimSuffix(colons, ":")
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	other := strings.Repeat("ab", sha256.Size)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name string
		cfg  harbor.Config
		ok   bool
	}{
		{"no trust", harbor.Config{}, false},
		{"CA bundle", harbor.Config{CACert: ca}, true},
		{"thumbprint", harbor.Config{Thumbprint: thumb}, true},
		{"thumbprint with colons", harbor.Config{Thumbprint: colons}, true},
		{"another thumbprint", harbor.Config{Thumbprint: other}, false},
		{"insecure", harbor.Config{Insecure: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.URL, cfg.Username, cfg.Password = srv.URL, b.user, b.pw
			c, err := harbor.New(ctx, cfg)
			if !tc.ok {
				require.ErrorContains(t, err, "certificate")
				require.NotErrorIs(t, err, harbor.ErrTimeout)
				return
			}
			require.NoError(t, err)
			defer c.Close(context.Background())
			_, err = c.Scanners(ctx)
			require.NoError(t, err)
		})
	}
}
