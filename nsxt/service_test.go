package nsxt_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

func TestLoadBalancerService(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "web")
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)

	lb := nsxt.LoadBalancer{ClusterID: "c1", Namespace: "web", Name: "frontend",
		FloatingIPPoolPaths: topo.FloatingIPPoolPaths, Nodes: []string{"172.23.0.20", "172.23.0.21"},
		Ports: []nsxt.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "https", Port: 443, NodePort: 30443}}}
	st, err := e.c.EnsureLoadBalancer(ctx, lb)
	require.NoError(t, err)
	require.Equal(t, 2, st.Writes, "allocate the address, then the virtual servers")
	require.NotEmpty(t, st.IP)
	require.NotEqual(t, n.APIAddress, st.IP)
	require.Equal(t, []string{"/infra/lb-virtual-servers/kf_c1_svc_web_frontend_tcp_80", "/infra/lb-virtual-servers/kf_c1_svc_web_frontend_tcp_443"}, st.VirtualServers)
	vs := e.sim.Object(st.VirtualServers[1])
	require.Equal(t, st.IP, vs["ip_address"])
	require.Equal(t, []any{"443"}, vs["ports"])
	require.Equal(t, "/infra/lb-services/kf_c1", vs["lb_service_path"])
	pool := e.sim.Object("/infra/lb-pools/kf_c1_svc_web_frontend_tcp_443")
	require.Equal(t, []any{
		map[string]any{"display_name": "172.23.0.20", "ip_address": "172.23.0.20", "port": "30443"},
		map[string]any{"display_name": "172.23.0.21", "ip_address": "172.23.0.21", "port": "30443"},
	}, pool["members"])

	again, err := e.c.EnsureLoadBalancer(ctx, lb)
	require.NoError(t, err)
	require.Zero(t, again.Writes)
	require.Equal(t, st.IP, again.IP)

	// A rebuild of the topology leaves the Service alone.
	rebuilt, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, rebuilt.Writes, "%s", rebuilt.Plan)

	// A node leaves and a port goes: one PATCH changes just that.
	lb.Nodes = lb.Nodes[:1]
	lb.Ports = lb.Ports[:1]
	changed, err := e.c.EnsureLoadBalancer(ctx, lb)
	require.NoError(t, err)
	require.Equal(t, 1, changed.Writes)
	require.ElementsMatch(t, []nsxt.Change{
		{Action: nsxt.Update, Path: "/infra/lb-pools/kf_c1_svc_web_frontend_tcp_80", Type: "LBPool", Fields: []string{"members"}},
		{Action: nsxt.Delete, Path: "/infra/lb-pools/kf_c1_svc_web_frontend_tcp_443", Type: "LBPool"},
		{Action: nsxt.Delete, Path: "/infra/lb-virtual-servers/kf_c1_svc_web_frontend_tcp_443", Type: "LBVirtualServer"},
	}, changed.Plan.Changes())
	require.Nil(t, e.sim.Object("/infra/lb-virtual-servers/kf_c1_svc_web_frontend_tcp_443"))

	del, err := e.c.DeleteLoadBalancer(ctx, "c1", "web", "frontend")
	require.NoError(t, err)
	require.Equal(t, 1, del.Writes)
	require.Len(t, del.Deleted, 3, "pool, virtual server and address")
	gone, err := e.c.DeleteLoadBalancer(ctx, "c1", "web", "frontend")
	require.NoError(t, err)
	require.Zero(t, gone.Writes)

	// The released address goes to the next Service that asks for it.
	lb2 := lb
	lb2.Name, lb2.IP = "other", st.IP
	st2, err := e.c.EnsureLoadBalancer(ctx, lb2)
	require.NoError(t, err)
	require.Equal(t, st.IP, st2.IP)

	// A third asking for the same address is refused by NSX, clearly.
	lb3 := lb2
	lb3.Name = "third"
	_, err = e.c.EnsureLoadBalancer(ctx, lb3)
	require.ErrorIs(t, err, nsxt.ErrInvalid)
	require.Contains(t, err.Error(), "already allocated")

	// Tearing the cluster down takes its Services with it.
	_, err = e.c.TeardownTopology(ctx, "c1")
	require.NoError(t, err)
	require.Empty(t, e.sim.Paths())
}

func TestLoadBalancerValidation(t *testing.T) {
	good := nsxt.LoadBalancer{ClusterID: "c1", Namespace: "web", Name: "fe", FloatingIPPoolPaths: []string{"/infra/ip-pools/p"},
		Ports: []nsxt.ServicePort{{Port: 80, NodePort: 30080}}}
	require.NoError(t, good.Validate())
	for _, tc := range []struct {
		field string
		edit  func(*nsxt.LoadBalancer)
	}{
		{"Name", func(lb *nsxt.LoadBalancer) { lb.Name = "Front_End" }},
		{"Ports", func(lb *nsxt.LoadBalancer) { lb.Ports = nil }},
		{"Ports[0].Protocol", func(lb *nsxt.LoadBalancer) { lb.Ports[0].Protocol = "SCTP" }},
		{"Ports[0].NodePort", func(lb *nsxt.LoadBalancer) { lb.Ports[0].NodePort = 0 }},
		{"Ports[0].NodePort", func(lb *nsxt.LoadBalancer) { lb.Ports[0].NodePort = 65536 }},
		{"Ports[0].Port", func(lb *nsxt.LoadBalancer) { lb.Ports[0].Port = 0 }},
		{"Ports[0].Port", func(lb *nsxt.LoadBalancer) { lb.Ports[0].Port = 65536 }},
		{"Ports[1]", func(lb *nsxt.LoadBalancer) { lb.Ports = append(lb.Ports, lb.Ports[0]) }},
		{"Nodes[0]", func(lb *nsxt.LoadBalancer) { lb.Nodes = []string{"node-1"} }},
		{"IP", func(lb *nsxt.LoadBalancer) { lb.IP = "10.0.0" }},
	} {
		lb := good
		lb.Ports = append([]nsxt.ServicePort{}, good.Ports...)
		tc.edit(&lb)
		err := lb.Validate()
		require.ErrorIs(t, err, nsxt.ErrInvalid, tc.field)
		require.Equal(t, []string{"LoadBalancer." + tc.field}, problemFields(t, err))
	}
	// The ends of the range are ports.
	edge := good
	edge.Ports = []nsxt.ServicePort{{Port: 1, NodePort: 65535}, {Port: 65535, NodePort: 1}}
	require.NoError(t, edge.Validate())
}
