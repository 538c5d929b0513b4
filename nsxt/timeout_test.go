package nsxt_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/transport/transporttest"
	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// hangingManager accepts TCP connections and never says a word, as a
// manager whose service is stuck does. It stops with the test.
func hangingManager(t *testing.T) string { return transporttest.SilentListener(t) }

// A manager that accepts the connection and does not shake hands fails
// in TLSHandshakeTimeout with a *kubefoundry.TimeoutError naming the
// stage and the manager, and the next manager takes over.
func TestTLSHandshakeTimeout(t *testing.T) {
	hung := hangingManager(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := nsxt.New(ctx, nsxt.Config{URLs: []string{"https://" + hung}, Username: "admin", Password: "pw",
		Insecure: true, TLSHandshakeTimeout: 300 * time.Millisecond}, nsxt.WithLogger(zaptest.NewLogger(t)))
	require.Less(t, time.Since(start), 30*time.Second, "bounded by the handshake timeout, not the call's 2 minutes")
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	require.Equal(t, kubefoundry.StageTLS, te.Stage)
	require.Equal(t, hung, te.Host)
	require.Equal(t, 300*time.Millisecond, te.After)
	require.ErrorIs(t, err, kubefoundry.ErrTimeout)
	require.ErrorIs(t, err, nsxt.ErrUnavailable)
	require.NoError(t, ctx.Err())

	sim, err := simulator.New(simulator.Config{})
	require.NoError(t, err)
	defer sim.Close()
	c, err := nsxt.New(ctx, nsxt.Config{URLs: []string{"https://" + hung, sim.URL}, Username: sim.Username(), Password: sim.Password(),
		CACert: string(sim.CertificatePEM()), TLSHandshakeTimeout: 300 * time.Millisecond, Timeout: 3 * time.Second},
		nsxt.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err, "the next manager takes over")
	defer c.Close(context.Background())
	_, err = c.BuildTopology(ctx, topology(sim, "c1"))
	require.NoError(t, err)

	// A call that then times out names the manager that took over.
	release := make(chan struct{})
	defer close(release) // before sim.Close, which waits for the handler
	sim.Inject(&simulator.Fault{Method: http.MethodGet, Path: regexp.MustCompile(`/search/query$`), Nth: 1, Times: 100,
		Status: http.StatusServiceUnavailable, Before: func() { <-release }})
	_, err = c.TeardownTopology(ctx, "c1")
	require.ErrorAs(t, err, &te)
	require.Equal(t, kubefoundry.StageCall, te.Stage)
	require.Equal(t, strings.TrimPrefix(sim.URL, "https://"), te.Host)
	require.NoError(t, ctx.Err())
}

// A manager that takes a request and never answers fails the call in
// Config.Timeout with a *kubefoundry.TimeoutError naming the call.
func TestCallTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := nsxt.New(ctx, nsxt.Config{URLs: []string{srv.URL}, Username: "admin", Password: "pw", NoSession: true,
		Insecure: true, Timeout: 300 * time.Millisecond}, nsxt.WithLogger(zaptest.NewLogger(t)))
	require.Less(t, time.Since(start), 30*time.Second)
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	require.Equal(t, kubefoundry.StageCall, te.Stage)
	require.Equal(t, "GET /policy/api/v1/infra/domains/default", te.Op)
	require.Equal(t, strings.TrimPrefix(srv.URL, "https://"), te.Host)
	require.ErrorIs(t, err, kubefoundry.ErrTimeout)
	require.NoError(t, ctx.Err())
}

// A write that runs out of time is not sent again, to the same manager
// or the next: NSX may have done it.
func TestTimedOutWriteIsNotRepeated(t *testing.T) {
	sim, err := simulator.New(simulator.Config{})
	require.NoError(t, err)
	defer sim.Close()
	release := make(chan struct{})
	defer close(release) // before sim.Close, which waits for the handler
	sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`/infra$`), Nth: 1, Times: 100,
		Status: http.StatusServiceUnavailable, Before: func() { <-release }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Two managers (the same one twice): a write sent again would reach
	// it again.
	c, err := nsxt.New(ctx, nsxt.Config{URLs: []string{sim.URL, sim.URL}, Username: sim.Username(), Password: sim.Password(),
		CACert: string(sim.CertificatePEM()), Timeout: 3 * time.Second}, nsxt.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.BuildTopology(ctx, topology(sim, "c1"))
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	require.Equal(t, kubefoundry.StageCall, te.Stage)
	require.Equal(t, "PATCH /policy/api/v1/infra", te.Op)
	require.NoError(t, ctx.Err())
	require.Equal(t, 1, sim.Requests()["PATCH /policy/api/v1/infra"], "sent once")
}
