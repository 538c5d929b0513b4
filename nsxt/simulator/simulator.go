package simulator

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/bindings"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data/serializers/cleanjson"
)

const apiPrefix = "/policy/api/v1"

// Config configures a simulator. The zero value serves the default
// inventory to user "admin" with password "VMware1!VMware1!".
type Config struct {
	// Username and Password are the user's credentials, accepted by basic
	// auth and by POST /api/session/create.
	Username, Password string
	// ClientCAs, when set, also admits a client certificate that chains to
	// it, as NSX admits a principal identity.
	ClientCAs *x509.CertPool
	// Addr is the loopback address to listen on; "127.0.0.1:0" by default.
	Addr string
	// RealizeAfterReads makes a written intent report IN_PROGRESS to that
	// many realized-state reads before it reports REALIZED.
	RealizeAfterReads int
	// Inventory is what exists before any client writes; DefaultInventory
	// when zero.
	Inventory *Inventory
	// SearchLag makes the search API answer from the state as it was that
	// long ago, as NSX's search index trails its writes. It depends on the
	// clock: a test that needs the index to show the past for sure uses
	// Server.FreezeSearch instead.
	SearchLag time.Duration
	// RefuseFullBlocks makes an IP block with no room for a new subnet
	// refuse it when it is written, failing the whole request with 400
	// and, among its related_errors, error code 520012 ("IpAddressBlock
	// with path=[...] does not have spare capacity to satisfy new block
	// subnet of size N"), as some NSX versions do, rather than accept it
	// and realize it in state ERROR. The error itself has a generic code
	// (500127) and names the subnet.
	RefuseFullBlocks bool
	// PurgeAfter makes deletes asynchronous, as NSX's are: a deleted
	// object is marked_for_delete and purged that long after (NSX's purge
	// runs every 5 minutes). Until then GET answers 404 and lists leave
	// it out, but the search shows it (marked_for_delete true), it holds
	// the subnet or address it allocated, and a write to its path is
	// refused with 400 and error code 500045. Zero purges at once.
	// Server.Purge purges whatever is marked, whenever a test wants.
	PurgeAfter time.Duration
	// SessionTimeout is how long a session (POST /api/session/create)
	// lives without a request; 30 minutes (NSX's 1800 s) when zero.
	SessionTimeout time.Duration
	// ForwardLoadBalancers makes the load balancer forward TCP, as an
	// NSX edge does: each enabled virtual server with an ip_address,
	// ports and a pool with members, on an enabled load balancer
	// service attached to a gateway, listens on its address and ports
	// and passes every connection, bytes untouched, to a member of its
	// pool (round-robin over those ENABLED, skipping one that refuses).
	// Its addresses must be local (on Linux all of 127.0.0.0/8 is): a
	// floating pool such as 127.200.0.0/24. A virtual server that cannot
	// listen does not fail the write; Server.Forwarding says why. The
	// listeners follow each write before it is answered. Off by default.
	ForwardLoadBalancers bool
}

// Inventory is the pre-existing NSX configuration a platform team hands to
// kubefoundry: a tier-0, an edge cluster, an overlay transport zone, IP
// blocks for nodes and pods and a floating IP pool.
type Inventory struct {
	Tier0         string // id under /infra/tier-0s
	EdgeCluster   string // id under the default enforcement point
	TransportZone string // overlay transport zone id
	NodeBlock     Block
	PodBlock      Block
	FloatingPool  string // id under /infra/ip-pools
	FloatingCIDR  string
	FloatingRange [2]string // first and last allocatable address
	// MorePodBlocks and MoreFloatingPools are further pod blocks and
	// floating pools, as a platform team that lists several hands out.
	MorePodBlocks     []Block
	MoreFloatingPools []Pool
}

// Block is an IP block id and its CIDR.
type Block struct{ ID, CIDR string }

// Pool is an IP pool id and its one static subnet: a CIDR and the first
// and last address it hands out.
type Pool struct {
	ID    string
	CIDR  string
	Range [2]string
}

// DefaultInventory is the inventory the simulator starts with unless told
// otherwise.
func DefaultInventory() Inventory {
	return Inventory{
		Tier0:         "t0",
		EdgeCluster:   "edge-cluster-1",
		TransportZone: "overlay-tz",
		NodeBlock:     Block{"nodes-block", "172.23.0.0/16"},
		PodBlock:      Block{"pods-block", "172.24.0.0/14"},
		FloatingPool:  "floating-pool",
		FloatingCIDR:  "10.40.14.0/24",
		FloatingRange: [2]string{"10.40.14.10", "10.40.14.250"},
	}
}

// EdgeClusterPath is the policy path of the inventory's edge cluster.
func (inv Inventory) EdgeClusterPath() string {
	return "/infra/sites/default/enforcement-points/default/edge-clusters/" + inv.EdgeCluster
}

// TransportZonePath is the policy path of the inventory's transport zone.
func (inv Inventory) TransportZonePath() string {
	return "/infra/sites/default/enforcement-points/default/transport-zones/" + inv.TransportZone
}

// Server is an NSX-T Policy API simulator listening on loopback over HTTPS.
// It is safe for concurrent use.
type Server struct {
	// URL is the manager's base URL, https://127.0.0.1:port.
	URL string

	cfg  Config
	inv  Inventory
	http *httptest.Server

	mu     sync.Mutex
	st     *store
	faults []*Fault
	counts map[string]int
	// sessions are the users' sessions, by JSESSIONID cookie.
	sessions map[string]*userSession
	history  []snapshot // for SearchLag: committed states, oldest first
	frozen   *store     // what the search index shows while frozen, or nil

	fwd *forwarding // with Config.ForwardLoadBalancers, or nil
}

type snapshot struct {
	at time.Time
	st *store
}

// New starts a simulator.
func New(cfg Config) (*Server, error) {
	if cfg.Username == "" {
		cfg.Username, cfg.Password = "admin", "VMware1!VMware1!"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	inv := DefaultInventory()
	if cfg.Inventory != nil {
		inv = *cfg.Inventory
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 30 * time.Minute
	}
	s := &Server{cfg: cfg, inv: inv, counts: map[string]int{}, sessions: map[string]*userSession{}}
	if cfg.ForwardLoadBalancers {
		s.fwd = newForwarding()
	}
	st, err := seed(inv)
	if err != nil {
		return nil, err
	}
	st.user = cfg.Username
	st.refuseFull = cfg.RefuseFullBlocks
	st.purgeAfter = cfg.PurgeAfter
	s.st = st
	s.history = []snapshot{{st: st}}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("simulator: Config.Addr %q is not a loopback IP address and port", cfg.Addr)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.http = httptest.NewUnstartedServer(s)
	s.http.Listener.Close()
	s.http.Listener = ln
	// A client certificate is asked for, not required, and checked by
	// authenticated: NSX answers 403 to one it does not trust rather than
	// failing the handshake. ClientCAs is still sent, so a client can pick
	// the certificate to present.
	s.http.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, ClientCAs: cfg.ClientCAs}
	s.http.StartTLS()
	s.URL = s.http.URL
	return s, nil
}

// Close stops the server: it waits for the requests in flight, then
// closes the load balancer's listeners and the connections they carry.
func (s *Server) Close() {
	s.http.Close()
	if s.fwd != nil {
		s.fwd.close()
	}
}

// Certificate is the server's TLS certificate, for a client to trust.
func (s *Server) Certificate() *x509.Certificate { return s.http.Certificate() }

// CertificatePEM is the server's certificate in PEM, as a CA bundle.
func (s *Server) CertificatePEM() []byte { return pemCert(s.Certificate()) }

// Inventory is what the simulator was seeded with.
func (s *Server) Inventory() Inventory { return s.inv }

// Username and Password are the accepted credentials.
func (s *Server) Username() string { return s.cfg.Username }

// Password is the accepted password.
func (s *Server) Password() string { return s.cfg.Password }

// purgeDue purges what has been marked for delete for Config.PurgeAfter.
func (s *Server) purgeDue() {
	s.mu.Lock()
	due := s.st.due(s.st.now())
	s.mu.Unlock()
	if due {
		_ = s.transact(func(st *store) error { st.purge(st.now(), false); return nil })
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	s.mu.Lock()
	s.counts[key]++
	s.mu.Unlock()
	s.purgeDue()

	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/api/session/create":
		s.createSession(w, r)
		return
	case "/api/session/destroy":
		s.destroySession(w, r)
		return
	}
	a, ok := s.authenticate(r)
	if !ok {
		writeError(w, errorf(http.StatusForbidden, "The credentials were incorrect or the account specified has been locked."))
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), actorKey{}, a))
	// A request refused for its credentials or session is not one a
	// fault counts: the client's next try with good ones is.
	s.mu.Lock()
	var fault *Fault
	for _, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && f.Path.MatchString(r.URL.Path) && (f.Query == nil || f.Query.MatchString(query(r))) {
			f.seen++
			times := max(f.Times, 1)
			if f.seen >= f.Nth && f.seen < f.Nth+times {
				fault = f
				break
			}
		}
	}
	s.mu.Unlock()
	if fault != nil && fault.Before != nil {
		fault.Before()
	}
	if fault != nil && fault.Status != 0 {
		e := errorf(fault.Status, "injected fault: %d on %s", fault.Status, key)
		if fault.Code != 0 {
			e.code = fault.Code
		}
		writeError(w, e)
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case p == apiPrefix+"/infra" && r.Method == http.MethodPatch:
		s.serveHierarchical(w, r)
	case p == apiPrefix+"/infra/realized-state/realized-entities" && r.Method == http.MethodGet:
		s.serveRealized(w, r)
	case p == apiPrefix+"/search/query" && r.Method == http.MethodGet:
		s.serveSearch(w, r)
	case strings.HasPrefix(p, apiPrefix+"/infra"):
		s.serveObject(w, r, strings.TrimPrefix(p, apiPrefix))
	default:
		writeError(w, errorf(http.StatusNotFound, "The requested URI: %s could not be found.", r.URL.Path))
	}
}

// query is r's query, unescaped.
func query(r *http.Request) string {
	q, err := url.QueryUnescape(r.URL.RawQuery)
	if err != nil {
		return r.URL.RawQuery
	}
	return q
}

// actor is who makes a request: a user (basic auth), or a principal
// identity (a client certificate, named by its common name); override is
// its X-Allow-Overwrite: true header.
type actor struct {
	name         string
	pi, override bool
}

type actorKey struct{}

// actorOf is the actor ServeHTTP found for r.
func actorOf(r *http.Request) actor {
	a, _ := r.Context().Value(actorKey{}).(actor)
	return a
}

// transactAs is transact with a as the writer.
func (s *Server) transactAs(a actor, fn func(*store) error) error {
	return s.transact(func(st *store) error {
		st.user, st.pi, st.override = a.name, a.pi, a.override
		return fn(st)
	})
}

// authenticate says who r comes from: a trusted client certificate (a
// principal identity), a live session (its JSESSIONID cookie and
// X-XSRF-TOKEN header), or the configured user and password.
func (s *Server) authenticate(r *http.Request) (actor, bool) {
	override, _ := strconv.ParseBool(r.Header.Get("X-Allow-Overwrite"))
	if s.principal(r) {
		return actor{name: r.TLS.PeerCertificates[0].Subject.CommonName, pi: true, override: override}, true
	}
	if c, err := r.Cookie("JSESSIONID"); err == nil {
		u, ok := s.session(c.Value, r.Header.Get("X-XSRF-TOKEN"))
		return actor{name: u, override: override}, ok
	}
	u, p, ok := r.BasicAuth()
	ok = ok && subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) == 1
	return actor{name: u, override: override}, ok
}

// principal reports whether r presents a client certificate that chains
// to Config.ClientCAs; with no ClientCAs, no certificate is trusted.
func (s *Server) principal(r *http.Request) bool {
	if s.cfg.ClientCAs == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := r.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: s.cfg.ClientCAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

func readBody(r *http.Request) (map[string]any, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	m, err := decodeJSON(b)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "the body is not a JSON object: %v", err)
	}
	return m, nil
}

// transact runs fn on a copy of the store and keeps the copy only when fn
// succeeds and the result is valid: a write applies entirely or not at all.
// The load balancer's listeners then follow what it wrote.
func (s *Server) transact(fn func(*store) error) error {
	if err := s.commit(fn); err != nil {
		return err
	}
	s.forward()
	return nil
}

// commit is transact but for the listeners.
func (s *Server) commit(fn func(*store) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.st.clone()
	if err := fn(next); err != nil {
		return err
	}
	if err := next.validate(s.st); err != nil {
		return err
	}
	for _, o := range next.objs {
		if o.realized.state == "REALIZED" && o.realized.reads == 0 && s.cfg.RealizeAfterReads > 0 && s.st.objs[o.path] != o {
			o.realized.state = "IN_PROGRESS"
		}
	}
	s.st = next
	if s.cfg.SearchLag > 0 {
		now := time.Now()
		s.history = append(s.history, snapshot{at: now, st: next})
		// Keep the newest state old enough to be indexed, and what came after.
		for len(s.history) > 1 && now.Sub(s.history[1].at) >= s.cfg.SearchLag {
			s.history = s.history[1:]
		}
	}
	return nil
}

// indexed is what the search index shows: the state when it was frozen,
// or else the state SearchLag ago. The caller holds s.mu.
func (s *Server) indexed() *store {
	if s.frozen != nil {
		return s.frozen
	}
	if s.cfg.SearchLag <= 0 {
		return s.st
	}
	cut := time.Now().Add(-s.cfg.SearchLag)
	st := s.history[0].st
	for _, h := range s.history[1:] {
		if h.at.After(cut) {
			break
		}
		st = h.st
	}
	return st
}

func (s *Server) serveHierarchical(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	check, _ := strconv.ParseBool(r.URL.Query().Get("enforce_revision_check"))
	if err := s.transactAs(actorOf(r), func(st *store) error { return st.patchInfra(body, check) }); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// serveObject serves GET, PATCH, PUT and DELETE of one object, and GET of a
// collection (a list).
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, path string) {
	s.mu.Lock()
	o := s.st.objs[path]
	s.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		if o != nil {
			writeObject(w, r, o)
			return
		}
		lp, coll := path[:strings.LastIndex(path, "/")], path[strings.LastIndex(path, "/")+1:]
		s.mu.Lock()
		listParent := s.st.objs[lp]
		var items []*object
		if listParent != nil && collectionKinds(listParent.kind.resourceType, coll) {
			items = s.st.children(lp, coll)
		}
		s.mu.Unlock()
		if listParent == nil || !collectionKinds(listParent.kind.resourceType, coll) {
			writeError(w, errorf(http.StatusNotFound, "the path=[%s] is invalid or the object does not exist", path))
			return
		}
		writeList(w, r, items)
	case http.MethodDelete:
		if err := s.transactAs(actorOf(r), func(st *store) error { return st.remove(path) }); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodPatch, http.MethodPut:
		body, err := readBody(r)
		if err != nil {
			writeError(w, err)
			return
		}
		mode := modePatch
		if r.Method == http.MethodPut {
			mode = modePut
		}
		stored, err := s.write(actorOf(r), path, body, mode)
		if err != nil {
			writeError(w, err)
			return
		}
		if r.Method == http.MethodPut {
			writeObject(w, r, stored)
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		writeError(w, errorf(http.StatusMethodNotAllowed, "method %s is not allowed on %s", r.Method, path))
	}
}

// write creates or changes the object at path as a PATCH (modePatch) or
// PUT (modePut) of body would.
func (s *Server) write(a actor, path string, body map[string]any, mode writeMode) (*object, error) {
	parentPath, collection, id := splitPath(path)
	var stored *object
	err := s.transactAs(a, func(st *store) error {
		parent := st.objs[parentPath]
		if parent == nil {
			return errorf(http.StatusBadRequest, "parent %s of %s does not exist", parentPath, path)
		}
		k := kindFor(parent.kind.resourceType, collection, fmtString(body["resource_type"]))
		if k == nil {
			return errorf(http.StatusBadRequest, "%s: no %q objects under a %s", path, collection, parent.kind.resourceType)
		}
		if _, ok := body["resource_type"]; !ok && len(wrappers[k.wrapper]) > 1 {
			return errorf(http.StatusBadRequest, "%s: resource_type is required", path)
		}
		var err error
		stored, err = st.upsert(parent, k, id, body, mode, true)
		return err
	})
	return stored, err
}

// splitPath splits /infra/tier-1s/t1/segments/s into /infra/tier-1s/t1,
// segments and s.
func splitPath(path string) (parent, collection, id string) {
	i := strings.LastIndex(path, "/")
	if i <= 0 {
		return "", "", path
	}
	id = path[i+1:]
	rest := path[:i]
	j := strings.LastIndex(rest, "/")
	if j < 0 {
		return "", rest, id
	}
	return rest[:j], rest[j+1:], id
}

// encode runs an object through its SDK binding and out as JSON, as
// viewer sees it (its _protection).
func encode(o *object, viewer string) (json.RawMessage, error) {
	body := maps.Clone(o.body)
	body["_protection"] = o.protection(viewer)
	dv, err := cleanjson.NewJsonToDataValueDecoder().Decode(body)
	if err != nil {
		return nil, err
	}
	tc := bindings.NewTypeConverter()
	g, errs := tc.ConvertToGolang(dv, o.kind.binding())
	if len(errs) > 0 {
		return nil, bindings.VAPIerrorsToError(errs)
	}
	back, errs := tc.ConvertToVapi(g, o.kind.binding())
	if len(errs) > 0 {
		return nil, bindings.VAPIerrorsToError(errs)
	}
	js, err := cleanjson.NewDataValueToJsonEncoder().Encode(back)
	return json.RawMessage(js), err
}

func writeObject(w http.ResponseWriter, r *http.Request, o *object) {
	js, err := encode(o, actorOf(r).name)
	if err != nil {
		writeError(w, errorf(http.StatusInternalServerError, "encoding %s: %v", o.path, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(js)
}

// writeList answers a collection GET a page at a time, as NSX does: at
// most page_size results (1000 at most), and a cursor when more follow.
func writeList(w http.ResponseWriter, r *http.Request, items []*object) {
	q := r.URL.Query()
	pageSize := 1000
	if n, err := strconv.Atoi(q.Get("page_size")); err == nil && n > 0 && n < pageSize {
		pageSize = n
	}
	offset := 0
	if c := q.Get("cursor"); c != "" {
		var err error
		if offset, err = strconv.Atoi(c); err != nil || offset < 0 {
			writeError(w, errorf(http.StatusBadRequest, "invalid cursor %q", c))
			return
		}
	}
	total := len(items)
	end := min(offset+pageSize, total)
	res := make([]json.RawMessage, 0, end-min(offset, total))
	for _, o := range items[min(offset, total):end] {
		js, err := encode(o, actorOf(r).name)
		if err != nil {
			writeError(w, errorf(http.StatusInternalServerError, "encoding %s: %v", o.path, err))
			return
		}
		res = append(res, js)
	}
	resp := map[string]any{"results": res, "result_count": total}
	if end < total {
		resp["cursor"] = strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err with NSX's error body.
func writeError(w http.ResponseWriter, err error) {
	e, ok := err.(*apiError)
	if !ok {
		e = errorf(http.StatusInternalServerError, "%v", err)
	}
	body := e.body()
	if len(e.related) > 0 {
		var rel []any
		for _, r := range e.related {
			rel = append(rel, r.body())
		}
		body["related_errors"] = rel
	}
	writeJSON(w, e.status, body)
}

func (e *apiError) body() map[string]any {
	return map[string]any{
		"httpStatus":    strings.ToUpper(strings.ReplaceAll(http.StatusText(e.status), " ", "_")),
		"error_code":    e.code,
		"module_name":   "Policy",
		"error_message": e.msg,
	}
}

func nowMillis() int64 { return time.Now().UnixMilli() }

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
