package simulator_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// echo is a pool member for the tests: it greets each connection with
// its name and a newline, then echoes what it reads until the client
// half-closes, and then closes.
type echo struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startEcho starts a member named name listening on addr; it stops when
// the test ends, if it has not been stopped before.
func startEcho(t *testing.T, addr, name string) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	e := &echo{name: name, ln: ln, conns: map[net.Conn]struct{}{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer func() {
					e.mu.Lock()
					delete(e.conns, c)
					e.mu.Unlock()
					_ = c.Close()
				}()
				if _, err := fmt.Fprintln(c, name); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(e.stop)
	return e
}

// port is the port the member listens on.
func (e *echo) port() int { return e.ln.Addr().(*net.TCPAddr).Port }

// stop closes the member's listener and connections and waits for them.
func (e *echo) stop() {
	_ = e.ln.Close()
	e.mu.Lock()
	for c := range e.conns {
		_ = c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// echoes starts a member on each address, all on one port, as the
// members of a pool with one port.
func echoes(t *testing.T, ips ...string) []*echo {
	t.Helper()
	for try := 0; ; try++ {
		first := startEcho(t, net.JoinHostPort(ips[0], "0"), ips[0])
		out := []*echo{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(first.port())))
			if err != nil {
				break
			}
			_ = ln.Close()
			out = append(out, startEcho(t, ln.Addr().String(), ip))
		}
		if len(out) == len(ips) {
			return out
		}
		for _, e := range out {
			e.stop()
		}
		require.Less(t, try, 10, "no port free on all of %v", ips)
	}
}

// freePort is a port nothing listens on now on ip.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// conn is a client connection through the load balancer, greeted by the
// member that serves it.
type conn struct {
	c      net.Conn
	r      *bufio.Reader
	member string
}

// dial connects to addr and reads the member's greeting, all within a
// few seconds.
func dial(addr string) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("no greeting through %s: %w", addr, err)
	}
	return &conn{c: c, r: r, member: strings.TrimSpace(name)}, nil
}

// roundTrip sends msg, half-closes, and requires msg back and then the
// end of the stream: bytes go both ways and a half-close goes through.
func (c *conn) roundTrip(t *testing.T, msg string) {
	t.Helper()
	defer c.c.Close()
	_, err := io.WriteString(c.c, msg)
	require.NoError(t, err)
	require.NoError(t, c.c.(*net.TCPConn).CloseWrite())
	back, err := io.ReadAll(c.r)
	require.NoError(t, err, "echo of %q from %s", msg, c.member)
	require.Equal(t, msg, string(back), "echo from %s", c.member)
}

// ask makes one whole exchange through addr and returns the member that
// answered it.
func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := dial(addr)
	require.NoError(t, err, "through %s", addr)
	c.roundTrip(t, "ping "+addr+" "+strings.Repeat("x", 64<<10))
	return c.member
}

// askN makes n exchanges through addr, one after the other, and returns
// who answered each.
func askN(t *testing.T, addr string, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, ask(t, addr))
	}
	return out
}

// refused requires that nothing listens on addr.
func refused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err == nil {
		_ = c.Close()
	}
	require.ErrorIs(t, err, syscall.ECONNREFUSED, "a connection to %s", addr)
}

// loopbackInventory is the default inventory with a floating pool on
// loopback, whose addresses a virtual server can listen on.
func loopbackInventory(cidr string) *simulator.Inventory {
	inv := simulator.DefaultInventory()
	base := strings.TrimSuffix(cidr, "0/24")
	inv.FloatingCIDR, inv.FloatingRange = cidr, [2]string{base + "10", base + "250"}
	return &inv
}

// TestLoadBalancerForwardsTheAPI builds a cluster's topology with the nsxt
// client and reaches its control plane through the API virtual server,
// as a kubeconfig does on a simulated foundation.
func TestLoadBalancerForwardsTheAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sim, ncfg := simulator.Start(t, simulator.Config{ForwardLoadBalancers: true, Inventory: loopbackInventory("127.200.0.0/24")})
	c, err := nsxt.New(ctx, ncfg)
	require.NoError(t, err)
	defer func() { _ = c.Close(context.Background()) }()

	m := echoes(t, "127.31.0.11", "127.31.0.12", "127.31.0.13")
	inv := sim.Inventory()
	topo := nsxt.Topology{
		ClusterID:           "fwd",
		Tier0Path:           "/infra/tier-0s/" + inv.Tier0,
		EdgeClusterPath:     inv.EdgeClusterPath(),
		TransportZonePath:   inv.TransportZonePath(),
		NodeIPBlockPath:     "/infra/ip-blocks/" + inv.NodeBlock.ID,
		PodIPBlockPaths:     []string{"/infra/ip-blocks/" + inv.PodBlock.ID},
		FloatingIPPoolPaths: []string{"/infra/ip-pools/" + inv.FloatingPool},
		APIPort:             freePort(t, "127.0.0.1"),
		APIMemberPort:       m[0].port(),
		APIMembers:          []string{"127.31.0.11", "127.31.0.12"},
	}
	n, err := c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	vip := net.JoinHostPort(n.APIAddress, strconv.Itoa(n.APIPort))
	const vs = "/infra/lb-virtual-servers/kf_fwd_api"
	require.Equal(t, map[string]string{vs: vip}, sim.Forwarding())

	// Round-robin over the two members.
	got := askN(t, vip, 4)
	require.ElementsMatch(t, []string{"127.31.0.11", "127.31.0.12", "127.31.0.11", "127.31.0.12"}, got)
	require.NotEqual(t, got[0], got[1], "round-robin: %v", got)
	require.Equal(t, got[0:2], got[2:4], "round-robin: %v", got)

	// One member stops: the other answers every connection.
	m[0].stop()
	require.Equal(t, []string{"127.31.0.12", "127.31.0.12", "127.31.0.12", "127.31.0.12"}, askN(t, vip, 4))

	// The pool changes: new connections follow, one made before goes on.
	held, err := dial(vip)
	require.NoError(t, err)
	require.Equal(t, "127.31.0.12", held.member)
	topo.APIMembers = []string{"127.31.0.13"}
	_, err = c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Equal(t, []string{"127.31.0.13", "127.31.0.13", "127.31.0.13"}, askN(t, vip, 3))
	held.roundTrip(t, "still there")

	// A LoadBalancer Service on the cluster's load balancer: its own
	// address, its port forwarded to the NodePort on the nodes.
	svcPort := freePort(t, "127.0.0.1")
	st, err := c.EnsureLoadBalancer(ctx, nsxt.LoadBalancer{ClusterID: "fwd", Namespace: "default", Name: "web",
		Ports: []nsxt.ServicePort{{Port: svcPort, NodePort: m[2].port()}}, Nodes: []string{"127.31.0.13"},
		FloatingIPPoolPaths: topo.FloatingIPPoolPaths})
	require.NoError(t, err)
	require.Len(t, st.VirtualServers, 1)
	svcVIP := net.JoinHostPort(st.IP, strconv.Itoa(svcPort))
	require.Equal(t, map[string]string{vs: vip, st.VirtualServers[0]: svcVIP}, sim.Forwarding())
	require.Equal(t, "127.31.0.13", ask(t, svcVIP))
	_, err = c.DeleteLoadBalancer(ctx, "fwd", "default", "web")
	require.NoError(t, err)
	refused(t, svcVIP)

	// The topology goes, and the virtual server with it: nothing listens.
	_, err = c.TeardownTopology(ctx, "fwd")
	require.NoError(t, err)
	require.Nil(t, sim.Object(vs))
	refused(t, vip)
	require.Empty(t, sim.Forwarding())
}

// TestForwardingFollowsTheIntent changes a virtual server, its pool and
// its service through the API and the control methods, and checks that
// the listeners and the members follow each change.
func TestForwardingFollowsTheIntent(t *testing.T) {
	e := newEnv(t, simulator.Config{ForwardLoadBalancers: true})
	m := echoes(t, "127.31.1.11", "127.31.1.12", "127.31.1.13")
	mp := strconv.Itoa(m[0].port())
	vp := freePort(t, "127.0.0.1")
	vip := net.JoinHostPort("127.201.0.1", strconv.Itoa(vp))
	const vs, pool, svc = "/infra/lb-virtual-servers/vs", "/infra/lb-pools/pool", "/infra/lb-services/lb"

	require.NoError(t, e.sim.Put("/infra/tier-1s/t1", map[string]any{"tier0_path": "/infra/tier-0s/t0"}))
	require.NoError(t, e.sim.Put(svc, map[string]any{"connectivity_path": "/infra/tier-1s/t1"}))
	require.NoError(t, e.sim.Put(pool, map[string]any{"members": []any{
		map[string]any{"ip_address": "127.31.1.11", "port": mp}}}))
	status, body := e.call(t, http.MethodPatch, vs, map[string]any{"ip_address": "127.201.0.1",
		"ports": []any{strconv.Itoa(vp)}, "pool_path": pool, "lb_service_path": svc})
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, map[string]string{vs: vip}, e.sim.Forwarding())
	require.Equal(t, "127.31.1.11", ask(t, vip))

	patch := func(path string, fields map[string]any) {
		t.Helper()
		require.NoError(t, e.sim.Patch(path, fields))
	}

	t.Run("disabled", func(t *testing.T) {
		patch(vs, map[string]any{"enabled": false})
		refused(t, vip)
		require.Empty(t, e.sim.Forwarding())
		patch(vs, map[string]any{"enabled": true})
		require.Equal(t, "127.31.1.11", ask(t, vip))
	})
	t.Run("moved", func(t *testing.T) {
		moved := net.JoinHostPort("127.201.0.2", strconv.Itoa(vp))
		patch(vs, map[string]any{"ip_address": "127.201.0.2"})
		refused(t, vip)
		require.Equal(t, map[string]string{vs: moved}, e.sim.Forwarding())
		require.Equal(t, "127.31.1.11", ask(t, moved))
		patch(vs, map[string]any{"ip_address": "127.201.0.1"})
		refused(t, moved)
		require.Equal(t, "127.31.1.11", ask(t, vip))
	})
	t.Run("service disabled", func(t *testing.T) {
		patch(svc, map[string]any{"enabled": false})
		refused(t, vip)
		patch(svc, map[string]any{"enabled": true})
		require.Equal(t, "127.31.1.11", ask(t, vip))
	})
	t.Run("service detached", func(t *testing.T) {
		o := e.sim.Object(svc)
		delete(o, "connectivity_path")
		require.NoError(t, e.sim.Put(svc, o))
		refused(t, vip)
		patch(svc, map[string]any{"connectivity_path": "/infra/tier-1s/t1"})
		require.Equal(t, "127.31.1.11", ask(t, vip))
	})
	t.Run("pool emptied", func(t *testing.T) {
		patch(pool, map[string]any{"members": []any{}})
		refused(t, vip)
		patch(pool, map[string]any{"members": []any{map[string]any{"ip_address": "127.31.1.11", "port": mp}}})
		require.Equal(t, "127.31.1.11", ask(t, vip))
	})
	t.Run("member disabled", func(t *testing.T) {
		patch(pool, map[string]any{"members": []any{
			map[string]any{"ip_address": "127.31.1.11", "port": mp, "admin_state": "DISABLED"},
			map[string]any{"ip_address": "127.31.1.12", "port": mp, "admin_state": "GRACEFUL_DISABLED"},
			map[string]any{"ip_address": "127.31.1.13", "port": mp}}})
		require.Equal(t, []string{"127.31.1.13", "127.31.1.13", "127.31.1.13"}, askN(t, vip, 3))
	})
	t.Run("backup member", func(t *testing.T) {
		patch(pool, map[string]any{"members": []any{
			map[string]any{"ip_address": "127.31.1.11", "port": mp, "backup_member": true},
			map[string]any{"ip_address": "127.31.1.12", "port": mp},
			map[string]any{"ip_address": "127.31.1.13", "port": strconv.Itoa(freePort(t, "127.31.1.13"))}}})
		require.Equal(t, []string{"127.31.1.12", "127.31.1.12", "127.31.1.12"}, askN(t, vip, 3))
		patch(pool, map[string]any{"members": []any{
			map[string]any{"ip_address": "127.31.1.11", "port": mp, "backup_member": true},
			map[string]any{"ip_address": "127.31.1.13", "port": strconv.Itoa(freePort(t, "127.31.1.13"))}}})
		require.Equal(t, "127.31.1.11", ask(t, vip), "the backup when no other member accepts")
	})
	t.Run("member port", func(t *testing.T) {
		// No port on the member: the virtual server's default_pool_member_ports.
		patch(pool, map[string]any{"members": []any{map[string]any{"ip_address": "127.31.1.12"}}})
		patch(vs, map[string]any{"default_pool_member_ports": []any{mp}})
		require.Equal(t, "127.31.1.12", ask(t, vip))
		// Nor on the virtual server: the port the client connected to.
		same := startEcho(t, net.JoinHostPort("127.31.1.14", strconv.Itoa(vp)), "same port")
		patch(pool, map[string]any{"members": []any{map[string]any{"ip_address": "127.31.1.14"}}})
		patch(vs, map[string]any{"default_pool_member_ports": []any{}})
		require.Equal(t, "same port", ask(t, vip))
		same.stop()
		patch(pool, map[string]any{"members": []any{map[string]any{"ip_address": "127.31.1.11", "port": mp}}})
	})
	t.Run("ports", func(t *testing.T) {
		vp2 := freePort(t, "127.0.0.1")
		vip2 := net.JoinHostPort("127.201.0.1", strconv.Itoa(vp2))
		patch(vs, map[string]any{"ports": []any{strconv.Itoa(vp), strconv.Itoa(vp2)}})
		require.Equal(t, map[string]string{vs: vip + ", " + vip2}, e.sim.Forwarding())
		require.Equal(t, "127.31.1.11", ask(t, vip))
		require.Equal(t, "127.31.1.11", ask(t, vip2))

		// As many default_pool_member_ports as ports: each port its own.
		second := startEcho(t, "127.31.1.12:0", "second port")
		patch(pool, map[string]any{"members": []any{map[string]any{"ip_address": "127.31.1.12"}}})
		patch(vs, map[string]any{"default_pool_member_ports": []any{mp, strconv.Itoa(second.port())}})
		require.Equal(t, "127.31.1.12", ask(t, vip))
		require.Equal(t, "second port", ask(t, vip2))
		patch(pool, map[string]any{"members": []any{map[string]any{"ip_address": "127.31.1.11", "port": mp}}})

		patch(vs, map[string]any{"ports": []any{fmt.Sprintf("%d-%d", vp, vp+1)}})
		require.Contains(t, e.sim.Forwarding()[vs], "port range")
		refused(t, vip)
		refused(t, vip2)
		patch(vs, map[string]any{"ports": []any{strconv.Itoa(vp)}})
		require.Equal(t, "127.31.1.11", ask(t, vip))
	})

	// PUT through the API replaces it; DELETE closes it.
	o := e.sim.Object(vs)
	o["ip_address"] = "127.201.0.3"
	status, body = e.call(t, http.MethodPut, vs, o)
	require.Equal(t, http.StatusOK, status, body)
	refused(t, vip)
	vip3 := net.JoinHostPort("127.201.0.3", strconv.Itoa(vp))
	require.Equal(t, "127.31.1.11", ask(t, vip3))
	status, body = e.call(t, http.MethodDelete, vs, nil)
	require.Equal(t, http.StatusOK, status, body)
	refused(t, vip3)
	require.Empty(t, e.sim.Forwarding())
}

// TestForwardingBindFailure: a virtual server that cannot listen does
// not fail its write; Forwarding says why, and a later write tries
// again.
func TestForwardingBindFailure(t *testing.T) {
	e := newEnv(t, simulator.Config{ForwardLoadBalancers: true})
	m := startEcho(t, "127.31.2.11:0", "member")
	taken, err := net.Listen("tcp", "127.202.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	addr := taken.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	require.NoError(t, e.sim.Put("/infra/tier-1s/t1", map[string]any{"tier0_path": "/infra/tier-0s/t0"}))
	require.NoError(t, e.sim.Put("/infra/lb-services/lb", map[string]any{"connectivity_path": "/infra/tier-1s/t1"}))
	require.NoError(t, e.sim.Put("/infra/lb-pools/pool", map[string]any{"members": []any{
		map[string]any{"ip_address": "127.31.2.11", "port": strconv.Itoa(m.port())}}}))
	vs := func(ip string) map[string]any {
		return map[string]any{"ip_address": ip, "ports": []any{port},
			"pool_path": "/infra/lb-pools/pool", "lb_service_path": "/infra/lb-services/lb"}
	}
	status, body := e.call(t, http.MethodPatch, "/infra/lb-virtual-servers/in-use", vs("127.202.0.1"))
	require.Equal(t, http.StatusOK, status, body)
	status, body = e.call(t, http.MethodPatch, "/infra/lb-virtual-servers/not-local", vs("192.0.2.10"))
	require.Equal(t, http.StatusOK, status, body)

	fwd := e.sim.Forwarding()
	require.Contains(t, fwd["/infra/lb-virtual-servers/in-use"], "address already in use")
	require.Contains(t, fwd["/infra/lb-virtual-servers/in-use"], addr)
	require.Contains(t, fwd["/infra/lb-virtual-servers/not-local"], "cannot assign requested address")
	require.NotNil(t, e.sim.Object("/infra/lb-virtual-servers/in-use"), "the write stands")

	// Freed, the address is taken up on the next write.
	require.NoError(t, taken.Close())
	require.NoError(t, e.sim.Patch("/infra/lb-pools/pool", map[string]any{"description": "any write"}))
	require.Equal(t, addr, e.sim.Forwarding()["/infra/lb-virtual-servers/in-use"])
	require.Equal(t, "member", ask(t, addr))
}

// TestCloseEndsForwarding: Close closes the listeners and the forwarded
// connections, and leaves no goroutine and no port behind.
func TestCloseEndsForwarding(t *testing.T) {
	before := goleak.IgnoreCurrent()
	m := startEcho(t, "127.31.3.11:0", "member")
	sim, err := simulator.New(simulator.Config{ForwardLoadBalancers: true})
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			sim.Close()
		}
	}()
	vip := net.JoinHostPort("127.203.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	_, vport, _ := net.SplitHostPort(vip)
	require.NoError(t, sim.Put("/infra/tier-1s/t1", map[string]any{"tier0_path": "/infra/tier-0s/t0"}))
	require.NoError(t, sim.Put("/infra/lb-services/lb", map[string]any{"connectivity_path": "/infra/tier-1s/t1"}))
	require.NoError(t, sim.Put("/infra/lb-pools/pool", map[string]any{"members": []any{
		map[string]any{"ip_address": "127.31.3.11", "port": strconv.Itoa(m.port())}}}))
	require.NoError(t, sim.Put("/infra/lb-virtual-servers/vs", map[string]any{"ip_address": "127.203.0.1",
		"ports": []any{vport}, "pool_path": "/infra/lb-pools/pool", "lb_service_path": "/infra/lb-services/lb"}))

	held, err := dial(vip)
	require.NoError(t, err)
	defer held.c.Close()
	half, err := dial(vip) // half-closed by the client, still open the other way
	require.NoError(t, err)
	defer half.c.Close()
	require.NoError(t, half.c.(*net.TCPConn).CloseWrite())

	closed = true
	done := make(chan struct{})
	go func() { defer close(done); sim.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		require.FailNow(t, "Close did not return in 5 s: a listener or a forwarded connection holds it")
	}
	// Close has waited: nothing of the forwarding still waits on the network.
	require.Empty(t, blockedForwarding(), "goroutines of the forwarding still on the network after Close")
	for _, c := range []*conn{held, half} {
		_ = c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = c.r.ReadByte()
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the forwarded connection still open after Close: %v", err)
		require.Error(t, err)
	}
	refused(t, vip)
	ln, err := net.Listen("tcp", vip)
	require.NoError(t, err, "the port is free again")
	require.NoError(t, ln.Close())
	m.stop()
	goleak.VerifyNone(t, before)
	require.Empty(t, sim.Forwarding(), "nothing listens after Close")
}

// blockedForwarding lists the goroutines of the simulator's forwarding
// that wait on the network, as a stack dump shows them.
func blockedForwarding() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "runtime_pollWait") && strings.Contains(g, "nsxt/simulator.(*Server)") {
			out = append(out, g)
		}
	}
	return out
}

// TestForwardingOff: without Config.ForwardLoadBalancers, nothing listens,
// and a virtual server on an address that could not be bound is accepted
// as always.
func TestForwardingOff(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	m := startEcho(t, "127.31.4.11:0", "member")
	vip := net.JoinHostPort("127.204.0.1", strconv.Itoa(freePort(t, "127.0.0.1")))
	_, vport, _ := net.SplitHostPort(vip)
	require.NoError(t, e.sim.Put("/infra/tier-1s/t1", map[string]any{"tier0_path": "/infra/tier-0s/t0"}))
	require.NoError(t, e.sim.Put("/infra/lb-services/lb", map[string]any{"connectivity_path": "/infra/tier-1s/t1"}))
	require.NoError(t, e.sim.Put("/infra/lb-pools/pool", map[string]any{"members": []any{
		map[string]any{"ip_address": "127.31.4.11", "port": strconv.Itoa(m.port())}}}))
	require.NoError(t, e.sim.Put("/infra/lb-virtual-servers/vs", map[string]any{"ip_address": "127.204.0.1",
		"ports": []any{vport}, "pool_path": "/infra/lb-pools/pool", "lb_service_path": "/infra/lb-services/lb"}))
	refused(t, vip)
	require.Nil(t, e.sim.Forwarding())
}
