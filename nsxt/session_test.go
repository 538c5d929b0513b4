package nsxt_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

const sessionCreate = "POST /api/session/create"

// A user's Client opens one NSX session and sends its cookie and XSRF
// token instead of the password. A session NSX forgets (its idle timeout,
// a restart) is made again, once for all the requests that found it gone
// together, and the work goes on; Close ends it. With NoSession every
// request carries the password and no session is made.
func TestSession(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, simulator.Config{})
	require.Equal(t, 1, e.sim.Requests()[sessionCreate], "New made one")
	n, err := e.c.BuildTopology(ctx, topology(e.sim, "c1", "a", "b", "c"))
	require.NoError(t, err)
	require.Equal(t, 1, e.sim.Requests()[sessionCreate], "and used it throughout")
	require.Equal(t, 1, e.sim.Sessions())

	// NSX forgets it before the next request, and again as the first of
	// the realized-state reads, eight at a time, comes in: each time one
	// new session serves every request that found the old one gone.
	e.sim.ExpireSessions()
	e.sim.Inject(&simulator.Fault{Method: http.MethodGet, Path: regexp.MustCompile(`/realized-entities$`), Nth: 1, Before: e.sim.ExpireSessions})
	topo := topology(e.sim, "c1", "a", "b", "c", "d")
	n2, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, n.Writes, n2.Writes, "a refused session is no write")
	require.Equal(t, 3, e.sim.Requests()[sessionCreate], "one for each time NSX forgot it")
	require.Equal(t, 1, e.sim.Sessions())
	e.c.Close()
	require.Zero(t, e.sim.Sessions(), "Close ends it")

	plain, err := nsxt.New(ctx, nsxt.Config{URLs: []string{e.sim.URL}, Username: e.sim.Username(), Password: e.sim.Password(),
		CACert: string(e.sim.CertificatePEM()), NoSession: true}, nsxt.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	defer plain.Close()
	e.sim.ExpireSessions()
	again, err := plain.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes)
	require.Equal(t, 3, e.sim.Requests()[sessionCreate], "no session")
	require.Zero(t, e.sim.Sessions())
}
