// Package nsxt builds the NSX-T network of Kubernetes clusters through the
// NSX-T Policy API, with vsphere-automation-sdk-go over REST.
//
// New connects to one or more managers (a request goes to the next when one
// refuses the connection, or does not complete the TCP connect within
// Config.ConnectTimeout or the TLS handshake within
// Config.TLSHandshakeTimeout, 10 seconds each by default), with a
// user and password (through one NSX session per manager, its cookie and
// XSRF token sent instead of the password and made again when NSX forgets
// it; Config.NoSession sends the password on every request instead) or a
// client certificate (a principal identity), trusting a CA bundle or a
// SHA-256 (or SHA-1) thumbprint, or nothing at all only when
// Config.Insecure says so. Close ends the sessions. A request answered 503
// or 429 is retried with backoff. Config.Timeout (2 minutes by default)
// bounds each call as a whole, retries and moves to the next manager
// included; a call that runs out of it is not sent again. A timeout at
// any stage is a *kubefoundry.TimeoutError naming the stage (connect, TLS
// handshake, call), the manager and, for a call, its method and path.
// NSX errors come back as *APIError wrapping ErrNotFound,
// ErrConflict, ErrInvalid, ErrPendingDelete, ErrProtected,
// ErrUnauthorized or ErrUnavailable, and the error it was made from (the
// SDK's, or the transport's when no answer came). The sentinels are the
// SDK's shared ones (nsxt.ErrNotFound is kubefoundry.ErrNotFound);
// ErrProtected, NSX's own, wraps kubefoundry.ErrForbidden. A wrong
// Config, Topology, LoadBalancer or NetworkPolicy is a
// *kubefoundry.ValidationError (wrapping ErrInvalid) naming every wrong
// field at once by its path, such as Topology.PodIPBlockPaths[1], each a
// *FieldError (kubefoundry.FieldError); cluster ids follow
// kubefoundry.ClusterID. As a principal identity (a client
// certificate, as NCP and TKGI authenticate), what kubefoundry builds is
// its own: NSX protects it from everyone else, and a user's teardown of
// it fails with ErrProtected unless Config.AllowOverwrite sends
// X-Allow-Overwrite (an enterprise admin taking a cluster over). The
// runtime logs through one logger per process: it is routed, at debug
// level, to the logger of the most recently created Client.
//
// BuildTopology makes NSX hold a cluster's Topology as TKGI lays it out: a
// tier-1 gateway on the tier-0 with route advertisement and a locale
// service on the edge cluster; a node segment with a subnet carved from the
// node IP block; SNAT for it with an address from a floating pool; a load
// balancer with the Kubernetes API virtual server (port 8443), its pool and
// an active health monitor; a DFW policy (node to node, API from anywhere,
// default deny when asked); and per namespace a segment with a subnet from
// a pod IP block, an SNAT address and rule, and a DFW policy. Single-tier
// puts the segments and SNAT on the tier-0. Every object carries the tags
// kubefoundry/cluster (and kubefoundry/namespace where it applies).
//
// The Topology holds the fields of TKGI's network profile but the
// firewall section markers, which NSX's Management Plane API has and its
// Policy API does not (TKGI's Policy API clusters have none either): the
// cluster's DFW policies are in category Application with sequence
// numbers 50 to 200, so a platform team's rules go before them in
// category Environment (or Infrastructure, Emergency) and after them in
// Application with a sequence number above 200. Several pod IP
// blocks and floating pools (pod_ip_block_ids, fip_pool_ids) are tried in
// order: a subnet or address that NSX cannot allocate (realized in state
// ERROR, as when the block or pool is exhausted) is released and allocated
// again from the next, and so is a subnet NSX refuses at once for want of
// room in its block (error code 520012, as some NSX versions answer);
// when none can, the allocations of namespaces the Topology drops are
// released at once, to make room, and the blocks or pools tried again;
// only then is it an error, the *RealizationError with NSX's reason (or
// the *APIError of the refusal). An allocation never moves: rebuilds find it in whichever
// block or pool it came from, so the lists may grow or be reordered, but
// dropping a block or pool that still holds one is a field error.
// PodRoutable (pod_routable) only takes the namespaces' SNAT address and
// rule away (the tier-1 advertises its connected segments, namespace
// subnets among them, to the tier-0 in any case), and switching it
// converges both ways. MaxL4LBServices (max_l4_lb_service)
// caps the LoadBalancer Services.
//
//	c, err := nsxt.New(ctx, nsxt.Config{URLs: []string{"https://nsx.example.com"},
//		Username: "admin", Password: pw, CACert: ca}, nsxt.WithLogger(log))
//	net, err := c.BuildTopology(ctx, nsxt.Topology{ClusterID: "c1", Tier0Path: "/infra/tier-0s/t0",
//		PodIPBlockPaths: []string{"/infra/ip-blocks/pods-1", "/infra/ip-blocks/pods-2"}, ...})
//	fmt.Println(net.APIAddress, net.Namespaces["default"].Subnet)
//
// BuildTopology reads what is tagged with the cluster through the search
// API (NSX updates its index a little after each write: a conflict from a
// stale read is met by reading again, with backoff; an update carries the
// _revision read from the object itself just before; an allocation that
// may come from several blocks or pools is read from NSX itself, a GET of
// the copy the index shows or, when it shows none, of each path it may
// have, so that a stale index never makes a second copy of it nor takes
// one NSX no longer holds as there; and any other allocation the index
// shows that NSX no longer holds, as right after a teardown, is taken as
// absent and made again rather than waited for: its realized state, read
// in any case, says so, and making it again costs one more allocation
// PATCH, so that a rebuild right after a teardown, once NSX has purged
// what the teardown deleted, succeeds at once; before, see below),
// computes the difference and sends it
// as hierarchical PATCHes of /infra with Child* objects and revision
// checks, never one call per object: one PATCH allocates the subnets and
// addresses that are missing (NSX's IpAddressPoolBlockSubnet and
// IpAddressAllocation objects), and after NSX has realized them, one PATCH
// creates, updates and deletes the rest; each fallback to the next block
// or pool costs one PATCH to release and one to allocate again. NSX
// deletes asynchronously and refuses to make an object again at a path
// it has not purged, so each copy has a path of its own: an address lives
// under its pool, and a namespace's subnet's id names its block
// (ns_<namespace>_<block id>); and a block or pool that failed is not
// tried again when the apply starts over. A rebuild
// with no change writes nothing; a change that needs no new address is one
// PATCH. A conflict (another writer changed an object since it was read)
// is met by reading again and re-applying, and so, twice at most, is a
// delete NSX refuses because something holds the object (error codes
// 500030 and 503040: a port a CNI added to a segment the update drops,
// since it was read); a refusal that stays is an error wrapping ErrInUse
// (a reference kubefoundry cannot see, such as a rule of someone else's
// naming one of the cluster's groups). It waits for NSX to realize
// what it wrote and returns a *RealizationError naming the object and
// NSX's reason otherwise. PlanTopology is the same computation as a dry
// run.
//
// What an update may delete is found as a teardown finds it (below):
// what the search shows, joined with what NSX's store holds in the
// update's own scope, so that an object made a moment ago and dropped now,
// which the index does not show yet, is deleted all the same, and a hit
// NSX no longer holds is left out. BuildTopology, always, reads what a
// teardown of the cluster reads by path and in the cluster's own
// collections, and its security policies by path, but neither the
// Services' and policies' collections nor the floating pools' addresses
// (those of namespaces it no longer wants are read by path): a search, 6
// GETs and 2 listings, then per namespace 3 GETs and a listing of its
// policy's rules, a listing of the tier-1's locale services and NAT rules,
// and 2 GETs for the API's pool and virtual server, 12+4n reads more than
// before per rebuild of n namespaces. EnsureLoadBalancer lists the
// virtual servers and GETs the pools of that Service's (one listing and a
// GET per port); ApplyNetworkPolicy GETs its two security policies, lists
// their rules and GETs the groups they name; EnsureNamespace reads that
// namespace's network as TeardownNamespace does, by path.
//
// TeardownTopology and TeardownNamespace delete, in one PATCH, every
// object tagged with the cluster (or the namespace), so they work after
// the caller has lost every id; the subnets and addresses go back to
// whichever block and pool they came from. NSX refuses to delete a segment
// that has ports, so a segment goes with the ports on it that are the
// cluster's CNI's (NCP, antrea-nsx: tagged with the cluster, or container
// ports, attachment CHILD or INDEPENDENT) and those with nothing attached.
// A VM's NIC on it (any other attachment), or a port NSX protects or owns,
// is not kubefoundry's to delete (NSX would leave the VM attached, in
// vCenter, to a network that is gone): the teardown, or the update that
// would drop the segment, is then an error wrapping ErrInUse naming the
// ports, and writes nothing. A port tagged with the cluster on a segment
// that is not the cluster's goes too, once the search shows it. An update leaves the ports of the segments it keeps alone, and
// deletes those of a segment it drops (a namespace taken out of the
// Topology). NSX deletes a security policy with its rules, so a rule added
// by hand to one of the cluster's policies (untagged, not the cluster's)
// goes with the policy, and never keeps it from going; while the policy
// stays, the rule stays. Since the search index trails writes, what the
// search finds by tag is joined with what NSX itself holds, kept when
// their tags say they are the cluster's. The reads do not grow with a
// shared NSX: what follows from the cluster id is read by path (the
// tier-1, the load balancer, the cluster's IP pool, and for each namespace
// its subnet names, the segment, group and SNAT rule), and the only
// listings are of the cluster's own collections (its IP pool's subnets,
// its tier-1's locale services and NAT rules, its security policies'
// rules, its segments' ports), of the addresses of the floating pools its
// IP pool records (BuildTopology writes them there, tag TagFloatingPool),
// and of the collections whose ids follow from names a teardown cannot
// know (the load balancer pools and virtual servers of Services, the
// security policies of NetworkPolicies). So a teardown right after a build
// leaves nothing behind, and one right after a teardown writes nothing.
// They read again after deleting, until nothing of theirs is left. A
// teardown of a cluster with n namespaces costs a search, 5 GETs and 4
// listings, then 2n GETs and a listing for the locale services, each of
// its security policies and each recorded pool, then one for the tier-1's
// NAT rules (GETs by id on a tier-0) and one for the ports of each of its
// n+1 segments; the check after the delete, the search, GETs and listings
// of the first step again. An update that drops a namespace lists the
// ports of its segment; a rebuild that keeps every segment lists none. (A
// cluster whose IP pool records no pool, or a Service whose address comes
// from a pool the Topology does not list, costs a listing of the IP pools
// and of the addresses of each kubefoundry did not make.)
// NSX deletes asynchronously: what a teardown deleted stays marked for
// delete until NSX's purge cycle (every 5 minutes) and the search still
// shows it; every search is made with marked_for_delete:false, so the
// teardown is done once what is left is marked, and one after it writes
// nothing. A rebuild before the purge, which writes the same paths, is
// refused by NSX (error code 500045): it waits for the purge, about 2 s
// then longer up to 30 s between tries, for about 10 minutes in all,
// logging each wait (WithPurgeWait changes both; with no wait it returns
// the *APIError at once, errors.Is(err, ErrPendingDelete)). NSX frees a
// released subnet or address only when it purges it, so releasing what a
// Topology drops makes room for others only after the purge.
// TeardownNamespace takes the namespace's LoadBalancer Services and
// NetworkPolicies with it; DeleteLoadBalancer and DeleteNetworkPolicy read
// only where their own objects live.
//
// EnsureNamespace and TeardownNamespace handle one namespace of a built
// cluster, for a namespace controller (kube/nsxtnet wires one to
// kube.NamespaceNetworkController); Topology.NamespacesManagedElsewhere
// keeps BuildTopology off those namespaces.
//
// EnsureLoadBalancer serves a Service of type LoadBalancer on the cluster's
// load balancer: an address from the floating pools, tried in order (or the
// one asked for, from the pool that holds it), and per port a virtual
// server whose pool is the nodes' NodePort; DeleteLoadBalancer releases
// it. A new Service beyond Topology.MaxL4LBServices is refused with a
// *LimitError (errors.Is(err, ErrLimitExceeded)) naming the limit and the
// count, one per Service of type LoadBalancer whatever its ports (TKGI's
// "1 TCP layer 4 virtual server for each Kubernetes service of type
// LoadBalancer"); the limit is recorded on the cluster's load balancer and
// read back with a GET, and the Services are counted by tag in NSX's store
// (the virtual servers) as well as through the search API, so it holds
// across clients and restarts, right after a build and in a burst (two
// new Services at the same moment may both pass). ApplyNetworkPolicy enforces a
// NetworkPolicy (a mirror of networking/v1; kube/nsxtnet converts one) as
// DFW groups and rules: label selectors become conditions on segment port
// tags (see NamespaceLabelScope for the tags the CNI must set), ipBlocks IP
// address expressions, rules ALLOW rules before the namespaces' own, and an
// isolation policy drops the rest for the selected pods while letting the
// nodes in. What NSX cannot express (ipBlock except, named ports, SCTP,
// more than 5 OR-ed selector criteria) is a field error naming the field,
// every one at once.
// Translate shows the objects without writing.
//
// Services and policies are converged like the topology (by their own tags
// kubefoundry/service and kubefoundry/network-policy), and the topology
// leaves them alone; TeardownTopology removes them with the cluster.
//
// A Client is safe for concurrent use. Tested against nsxt/simulator over
// HTTPS.
package nsxt
