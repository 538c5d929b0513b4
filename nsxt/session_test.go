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

	// NSX forgets it before the next request, as the first of the
	// realized-state reads (eight at a time) comes in, and before the
	// PATCH that configures: each time one new session serves every
	// request that found the old one gone, and the PATCH is sent again,
	// whole, and counted.
	e.sim.ExpireSessions()
	e.sim.Inject(&simulator.Fault{Method: http.MethodGet, Path: regexp.MustCompile(`/realized-entities$`), Nth: 1, Before: e.sim.ExpireSessions})
	expired := false
	e.sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`/infra$`), Nth: 2, Status: http.StatusForbidden,
		Before: func() { expired = true; e.sim.ExpireSessions() }})
	topo := topology(e.sim, "c1", "a", "b", "c", "d")
	n2, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.True(t, expired)
	require.Equal(t, n.Writes+1, n2.Writes, "the PATCH sent again")
	require.Equal(t, 4, e.sim.Requests()[sessionCreate], "one for each time NSX forgot it")
	require.True(t, n2.Namespaces["d"].Subnet.IsValid(), "the PATCH sent again carried its body")
	again, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes)
	require.Equal(t, 1, e.sim.Sessions())

	// A 403 for the request itself (no permission for it, error code
	// other than a session's) is its answer: no new session.
	e.sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`/infra$`), Nth: 1, Status: http.StatusForbidden, Code: 401})
	_, err = e.c.TeardownNamespace(ctx, "c1", "d")
	require.ErrorIs(t, err, nsxt.ErrUnauthorized)
	require.Equal(t, 4, e.sim.Requests()[sessionCreate])
	require.Equal(t, 1, e.sim.Sessions())

	e.c.Close(context.Background())
	require.Zero(t, e.sim.Sessions(), "Close ends it")
	reads, writes := e.c.Calls()
	_, err = e.c.BuildTopology(ctx, topo)
	require.ErrorContains(t, err, "the Client is closed")
	require.Zero(t, e.sim.Sessions(), "and makes no other")
	r2, w2 := e.c.Calls()
	require.Equal(t, [2]int64{reads, writes}, [2]int64{r2, w2}, "nothing sent, nothing counted")

	plain, err := nsxt.New(ctx, nsxt.Config{URLs: []string{e.sim.URL}, Username: e.sim.Username(), Password: e.sim.Password(),
		CACert: string(e.sim.CertificatePEM()), NoSession: true}, nsxt.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	defer plain.Close(context.Background())
	e.sim.ExpireSessions()
	again, err = plain.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, again.Writes, "the refused teardown wrote nothing")
	require.Equal(t, 4, e.sim.Requests()[sessionCreate], "no session")
	require.Zero(t, e.sim.Sessions())
}

// A password with the characters a form encodes (&, +, %, =, space)
// authenticates, with a session and without.
func TestSessionPasswordIsFormEncoded(t *testing.T) {
	ctx := context.Background()
	sim, err := simulator.New(simulator.Config{Username: "admin", Password: "p&ss+w%rd= x"})
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	for _, noSession := range []bool{false, true} {
		c, err := nsxt.New(ctx, nsxt.Config{URLs: []string{sim.URL}, Username: "admin", Password: "p&ss+w%rd= x",
			CACert: string(sim.CertificatePEM()), NoSession: noSession}, nsxt.WithLogger(zaptest.NewLogger(t)))
		require.NoError(t, err, "NoSession %t", noSession)
		c.Close(context.Background())
	}
	require.Equal(t, 1, sim.Requests()[sessionCreate])
}
