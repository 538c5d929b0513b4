package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// dialTimeout bounds a connection to a pool member. A member on a local
// address that listens nowhere refuses at once; this is for one that
// does not answer at all.
const dialTimeout = 3 * time.Second

// forwarding is the load balancer's data plane (Config.ForwardLoadBalancers):
// a listener per port of each virtual server that can serve, forwarding
// what it accepts to the members of its pool.
type forwarding struct {
	ctx    context.Context // ends with Close: cancels dials to members
	cancel context.CancelFunc

	mu     sync.Mutex // serializes sync and close
	closed bool
	vs     map[string]*virtualServer // by policy path

	wg sync.WaitGroup // accept loops and forwarded connections
}

// virtualServer is one forwarding virtual server: its listeners (or why
// it has none), the connections it carries, and its round-robin cursor.
type virtualServer struct {
	path string
	bind string // what it listens on: vip.bind
	lns  []net.Listener
	err  error // why it does not listen, or nil

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{} // client and member sides
	next   int                   // the member the next connection tries first
}

// vip is what a virtual server's intent asks of the data plane: an
// address and ports to listen on, or why it cannot listen.
type vip struct {
	ip    netip.Addr
	ports []int
	err   error
}

// bind names what v listens on, to tell when a virtual server moves.
func (v vip) bind() string {
	return fmt.Sprint(v.ip, v.ports, v.err)
}

// member is where a connection may go: a pool member's address and port.
type member struct {
	addr   string // ip:port
	backup bool
}

func newForwarding() *forwarding {
	ctx, cancel := context.WithCancel(context.Background())
	return &forwarding{ctx: ctx, cancel: cancel, vs: map[string]*virtualServer{}}
}

// vips lists the virtual servers of st that forward, by path. A
// virtual server forwards when it is enabled, has an ip_address, ports
// and a pool_path whose pool has members, and its lb_service_path's
// service is enabled and attached (has a connectivity_path). One that
// asks for what the simulator cannot do (a port range, an address that
// is not one) is listed with the reason.
func vips(st *store) map[string]vip {
	out := map[string]vip{}
	for _, vs := range st.children("/infra", "lb-virtual-servers") {
		if pool, _ := servable(st, vs); pool == nil {
			continue
		}
		v := vip{}
		ip, err := netip.ParseAddr(vs.str("ip_address"))
		if err != nil {
			v.err = fmt.Errorf("ip_address %q is not an IP address", vs.str("ip_address"))
		}
		v.ip = ip
		for _, p := range strList(vs.body["ports"]) {
			n, err := singlePort(p)
			if err != nil && v.err == nil {
				v.err = fmt.Errorf("ports: %w", err)
			}
			v.ports = append(v.ports, n)
		}
		out[vs.path] = v
	}
	return out
}

// servable returns the pool and service of vs when it can serve: vs
// enabled with an ip_address and ports, its pool with members, its
// service enabled and attached. Otherwise both are nil.
func servable(st *store, vs *object) (pool, service *object) {
	if !enabled(vs.body["enabled"]) || vs.str("ip_address") == "" || len(strList(vs.body["ports"])) == 0 {
		return nil, nil
	}
	pool, service = st.objs[vs.str("pool_path")], st.objs[vs.str("lb_service_path")]
	if pool == nil || pool.kind.resourceType != "LBPool" || len(objList(pool.body["members"])) == 0 {
		return nil, nil
	}
	if service == nil || service.kind.resourceType != "LBService" || !enabled(service.body["enabled"]) || service.str("connectivity_path") == "" {
		return nil, nil
	}
	return pool, service
}

// members lists where a connection to the virtual server at path on its
// ports[i] = port goes, in st: its pool's members whose admin_state is
// ENABLED (NSX's default), at the member's port, or else at the virtual
// server's default_pool_member_ports (the one for that port when it has
// as many as ports, else its first), or else at port itself. None when
// the virtual server cannot serve.
func members(st *store, path string, i, port int) []member {
	vs := st.objs[path]
	if vs == nil {
		return nil
	}
	pool, _ := servable(st, vs)
	if pool == nil {
		return nil
	}
	target := port
	defaults := strList(vs.body["default_pool_member_ports"])
	switch {
	case len(defaults) == len(strList(vs.body["ports"])):
		target, _ = singlePort(defaults[i])
	case len(defaults) > 0:
		target, _ = singlePort(defaults[0])
	}
	var out []member
	for _, m := range objList(pool.body["members"]) {
		if s := fmtString(m["admin_state"]); s != "" && s != "ENABLED" {
			continue
		}
		ip, err := netip.ParseAddr(fmtString(m["ip_address"]))
		if err != nil {
			continue
		}
		p := target
		if mp := fmtString(m["port"]); mp != "" {
			p, _ = strconv.Atoi(mp)
		}
		if p <= 0 {
			continue
		}
		backup, _ := m["backup_member"].(bool)
		out = append(out, member{addr: net.JoinHostPort(ip.String(), strconv.Itoa(p)), backup: backup})
	}
	return out
}

// singlePort parses a port-or-range that is one port; a range is refused.
func singlePort(s string) (int, error) {
	if strings.Contains(s, "-") {
		return 0, fmt.Errorf("port range %s is not forwarded, only single ports", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port", s)
	}
	return n, nil
}

func enabled(v any) bool {
	b, ok := v.(bool)
	return !ok || b
}

func strList(v any) []string {
	var out []string
	for _, e := range asList(v) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func objList(v any) []map[string]any {
	var out []map[string]any
	for _, e := range asList(v) {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

// forward brings the listeners in line with the state: it starts those
// of a virtual server that has come to forward, moves those of one whose
// address or ports changed, stops those of one that no longer forwards,
// and tries again those that could not listen. It runs after every
// write; whichever runs last reads the last state.
func (s *Server) forward() {
	f := s.fwd
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	s.mu.Lock()
	want := vips(s.st)
	s.mu.Unlock()
	for path, vs := range f.vs {
		if w, ok := want[path]; !ok || w.bind() != vs.bind || vs.err != nil {
			vs.stop()
			delete(f.vs, path)
		}
	}
	for _, path := range slices.Sorted(maps.Keys(want)) {
		if _, ok := f.vs[path]; !ok {
			f.vs[path] = s.listen(path, want[path])
		}
	}
}

// listen starts the listeners of the virtual server at path, all of them
// or none.
func (s *Server) listen(path string, w vip) *virtualServer {
	vs := &virtualServer{path: path, bind: w.bind(), err: w.err, conns: map[net.Conn]struct{}{}}
	if vs.err != nil {
		return vs
	}
	for _, p := range w.ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(w.ip.String(), strconv.Itoa(p)))
		if err != nil {
			vs.stop()
			vs.lns, vs.err, vs.closed = nil, err, false
			return vs
		}
		vs.lns = append(vs.lns, ln)
	}
	for i, ln := range vs.lns {
		s.fwd.wg.Add(1)
		go s.accept(vs, ln, i, w.ports[i])
	}
	return vs
}

// stop closes vs's listeners and the connections it carries.
func (vs *virtualServer) stop() {
	for _, ln := range vs.lns {
		_ = ln.Close()
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	vs.closed = true
	for c := range vs.conns {
		_ = c.Close()
	}
}

// track adds c to the connections vs carries, or closes it when vs has
// stopped.
func (vs *virtualServer) track(c net.Conn) bool {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.closed {
		_ = c.Close()
		return false
	}
	vs.conns[c] = struct{}{}
	return true
}

func (vs *virtualServer) untrack(c net.Conn) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	delete(vs.conns, c)
	_ = c.Close()
}

// accept serves ln, vs's listener on ports[i] = port, until it closes.
func (s *Server) accept(vs *virtualServer, ln net.Listener, i, port int) {
	defer s.fwd.wg.Done()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of descriptors, say: as net/http does
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.fwd.wg.Add(1)
		go s.serveConn(vs, c, i, port)
	}
}

// serveConn forwards the client connection c, accepted on vs's ports[i]
// = port, to a member of its pool as the state has it now: round-robin
// over the members, skipping one that refuses the connection for the
// next, and over the backup members when none of the others accepts it.
// When no member accepts it, c is closed.
func (s *Server) serveConn(vs *virtualServer, c net.Conn, i, port int) {
	defer s.fwd.wg.Done()
	if !vs.track(c) {
		return
	}
	defer vs.untrack(c)
	s.mu.Lock()
	all := members(s.st, vs.path, i, port)
	s.mu.Unlock()
	var primary, backup []member
	for _, m := range all {
		if m.backup {
			backup = append(backup, m)
		} else {
			primary = append(primary, m)
		}
	}
	vs.mu.Lock()
	start := 0
	if len(primary) > 0 {
		start = vs.next % len(primary)
		vs.next = start + 1
	}
	vs.mu.Unlock()
	order := append(append(primary[start:len(primary):len(primary)], primary[:start]...), backup...)
	d := net.Dialer{Timeout: dialTimeout}
	for _, m := range order {
		mc, err := d.DialContext(s.fwd.ctx, "tcp", m.addr)
		if err != nil {
			continue
		}
		if !vs.track(mc) {
			return
		}
		defer vs.untrack(mc)
		pipe(c, mc)
		return
	}
}

// pipe copies between a and b both ways until both are done: the end of
// one direction is passed on as a half-close, an error on either ends
// both.
func pipe(a, b net.Conn) {
	done := make(chan struct{})
	cp := func(dst, src net.Conn) {
		if _, err := io.Copy(dst, src); err != nil {
			_ = a.Close()
			_ = b.Close()
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	go func() { defer close(done); cp(b, a) }()
	cp(a, b)
	<-done
}

// close stops every listener and forwarded connection and
// waits for their goroutines.
func (f *forwarding) close() {
	f.mu.Lock()
	f.closed = true
	for path, vs := range f.vs {
		vs.stop()
		delete(f.vs, path)
	}
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

// Forwarding reports the load balancer's data plane
// (Config.ForwardLoadBalancers), by virtual server path: the addresses
// it listens on ("127.200.0.10:6443"; several, for several ports, joined
// by ", "), or why it cannot listen (the bind error: the address is in
// use or not local; a port range). A virtual server that does not
// forward (disabled, its pool without members, its service disabled or
// detached) is not listed. Nil when forwarding is off.
func (s *Server) Forwarding() map[string]string {
	f := s.fwd
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string, len(f.vs))
	for path, vs := range f.vs {
		if vs.err != nil {
			out[path] = vs.err.Error()
			continue
		}
		var addrs []string
		for _, ln := range vs.lns {
			addrs = append(addrs, ln.Addr().String())
		}
		out[path] = strings.Join(addrs, ", ")
	}
	return out
}
