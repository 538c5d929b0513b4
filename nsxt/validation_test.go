package nsxt_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// A spec with several mistakes is refused with all of them at once, each
// named by its path from the spec, and the cluster id by the SDK's one
// rule.
func TestValidationListsEveryProblem(t *testing.T) {
	sim, err := simulator.New(simulator.Config{})
	require.NoError(t, err)
	defer sim.Close()

	t.Run("Topology", func(t *testing.T) {
		var rule *kubefoundry.FieldError
		require.ErrorAs(t, kubefoundry.ClusterID("a-").Validate(), &rule)
		topo := topology(sim, "a-", "a", "A", "a")
		topo.Tier0Path = "t0"
		topo.PodIPBlockPaths = nil
		topo.LBSize = "HUGE"
		topo.APIMembers[2] = "master-3"
		err := topo.Validate()
		require.ErrorIs(t, err, nsxt.ErrInvalid)
		require.ErrorIs(t, err, kubefoundry.ErrInvalid)
		require.Equal(t, []string{"Topology.ClusterID", "Topology.Tier0Path", "Topology.PodIPBlockPaths", "Topology.LBSize",
			"Topology.APIMembers[2]", "Topology.Namespaces[1]", "Topology.Namespaces[2]"}, problemFields(t, err))
		var ve *kubefoundry.ValidationError
		require.ErrorAs(t, err, &ve)
		require.Equal(t, "nsxt.Topology", ve.Object)
		require.Equal(t, nsxt.FieldError{Field: "Topology.ClusterID", Value: "a-", Reason: rule.Reason}, ve.Problems[0],
			"the cluster id is checked by kubefoundry.ClusterID")
		require.Contains(t, err.Error(), `Topology.APIMembers[2] "master-3": is not an IP address`)
	})

	t.Run("LoadBalancer", func(t *testing.T) {
		lb := nsxt.LoadBalancer{ClusterID: "c1", Namespace: "Web", Name: "fe", FloatingIPPoolPaths: []string{"/infra/ip-pools/p"},
			Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}, {Protocol: "SCTP", Port: 0, NodePort: 30081}}, IP: "10.0.0"}
		require.Equal(t, []string{"LoadBalancer.Namespace", "LoadBalancer.IP", "LoadBalancer.Ports[1].Protocol", "LoadBalancer.Ports[1].Port"},
			problemFields(t, lb.Validate()))
	})

	t.Run("NetworkPolicy", func(t *testing.T) {
		np := nsxt.NetworkPolicy{ClusterID: "c1", Namespace: "shop", Name: "P",
			Ingress: []nsxt.PolicyRule{{
				Peers: []nsxt.Peer{{IPBlock: &nsxt.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}, {}},
				Ports: []nsxt.PolicyPort{{Named: "http"}, {Port: 1}, {Protocol: "SCTP", Port: 2}},
			}}}
		_, err := np.Translate()
		require.Equal(t, []string{"NetworkPolicy.Name", "NetworkPolicy.Ingress[0].Peers[0].IPBlock.Except", "NetworkPolicy.Ingress[0].Peers[1]",
			"NetworkPolicy.Ingress[0].Ports[0].Port", "NetworkPolicy.Ingress[0].Ports[2].Protocol"}, problemFields(t, err))
	})

	// The calls that take a cluster id and names check them all too,
	// before reaching NSX.
	t.Run("calls", func(t *testing.T) {
		c := newClient(t, sim)
		_, err := c.TeardownNamespace(context.Background(), "C1", "Shop")
		require.Equal(t, []string{"Topology.ClusterID", "Topology.Namespace"}, problemFields(t, err))
		_, err = c.DeleteLoadBalancer(context.Background(), "c1", "Shop", "Web_1")
		require.Equal(t, []string{"LoadBalancer.Namespace", "LoadBalancer.Name"}, problemFields(t, err))
		_, err = c.EnsureNamespace(context.Background(), topology(sim, "-c1"), "-")
		require.Equal(t, []string{"Topology.ClusterID", "Topology.Namespace"}, problemFields(t, err))
		require.Zero(t, sim.Writes())
	})
}

// A wrong Config is refused before anything is sent, with every problem
// named, and no secret shown.
func TestConfigValidation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := nsxt.New(ctx, nsxt.Config{
		URLs:       []string{"http://nsx-1", "https://ops:urlpass@nsx-2", "https://nsx-3"},
		CACert:     "not PEM",
		Thumbprint: "ab:cd",
		Timeout:    -time.Second,
	})
	require.ErrorIs(t, err, nsxt.ErrInvalid)
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "nsxt.Config", ve.Object)
	require.Equal(t, []string{"Config.URLs[0]", "Config.URLs[1]", "Config.Username", "Config.Timeout", "Config.CACert", "Config.Thumbprint"},
		problemFields(t, err))
	require.NotContains(t, err.Error(), "urlpass")

	_, err = nsxt.New(ctx, nsxt.Config{})
	require.Equal(t, []string{"Config.URLs", "Config.Username"}, problemFields(t, err))
	_, err = nsxt.New(ctx, nsxt.Config{URLs: []string{"https://nsx"}, ClientCert: "x", ClientKey: "y"})
	require.Equal(t, []string{"Config.ClientCert"}, problemFields(t, err))
}

// nsxt's sentinels are the SDK's, so one errors.Is answers for every
// layer; ErrProtected is NSX's own and wraps the closest shared one.
func TestSharedSentinels(t *testing.T) {
	for _, tc := range []struct{ nsxt, shared error }{
		{nsxt.ErrNotFound, kubefoundry.ErrNotFound},
		{nsxt.ErrConflict, kubefoundry.ErrConflict},
		{nsxt.ErrInvalid, kubefoundry.ErrInvalid},
		{nsxt.ErrUnauthorized, kubefoundry.ErrUnauthorized},
		{nsxt.ErrUnavailable, kubefoundry.ErrUnavailable},
		{nsxt.ErrLimitExceeded, kubefoundry.ErrLimitExceeded},
		{nsxt.ErrInUse, kubefoundry.ErrInUse},
		{nsxt.ErrPendingDelete, kubefoundry.ErrPendingDelete},
	} {
		require.True(t, tc.nsxt == tc.shared, "%v", tc.shared)
	}
	require.ErrorIs(t, nsxt.ErrProtected, kubefoundry.ErrForbidden)
	require.ErrorIs(t, &nsxt.APIError{Op: "patch /infra", Kind: nsxt.ErrProtected}, kubefoundry.ErrForbidden)
	require.False(t, errors.Is(nsxt.ErrProtected, kubefoundry.ErrUnauthorized))
}
