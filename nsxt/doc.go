// Package nsxt builds, changes and tears down the NSX-T network of
// Kubernetes clusters through the NSX-T Policy API, with
// vsphere-automation-sdk-go over REST, laid out as TKGI lays it out.
//
// For a cluster, BuildTopology makes a tier-1 gateway on the tier-0 (route
// advertisement, a locale service on the edge cluster); a node segment with
// a subnet carved from the node IP block; SNAT with an address from a
// floating pool; a load balancer with the Kubernetes API virtual server
// (port 8443), its pool and an active health monitor; a DFW policy (node to
// node, the API from anywhere, default deny when asked); and per namespace
// a segment with a subnet from a pod IP block, an SNAT address and rule,
// and a DFW policy. Topology.SingleTier puts the segments and SNAT on the
// tier-0. EnsureLoadBalancer serves a Service of type LoadBalancer on the
// cluster's load balancer, ApplyNetworkPolicy enforces a NetworkPolicy as
// DFW groups and rules. Every object carries the tag TagCluster (and
// TagNamespace, TagService, TagNetworkPolicy where they apply): that is how
// the package finds what is a cluster's, so TeardownTopology and ListOwned
// work after the caller has lost every id.
//
//	c, err := nsxt.New(ctx, nsxt.Config{URLs: []string{"https://nsx.example.com"},
//		Username: "admin", Password: pw, CACert: ca}, nsxt.WithLogger(log))
//	if err != nil { ... }
//	defer c.Close(ctx)
//	net, err := c.BuildTopology(ctx, nsxt.Topology{ClusterID: "c1",
//		Tier0Path: "/infra/tier-0s/t0", PodIPBlockPaths: []string{"/infra/ip-blocks/pods"}, ...},
//		nsxt.WithSink(sink))
//	fmt.Println(net.APIAddress, net.Namespaces["default"].Subnet)
//	objs, err := c.ListOwned(ctx, "c1") // the orphan scan
//	_, err = c.TeardownTopology(ctx, "c1")
//
// A Client is safe for concurrent use by many goroutines; a Config is a
// plain value that New copies. Package nsxt/simulator serves the Policy API
// paths the package uses, with NSX's semantics, for tests and demos.
//
// # Connecting
//
// New connects to one or more managers (Config.URLs): a request goes to the
// next when one refuses the connection or does not finish the TCP connect
// within Config.ConnectTimeout or the TLS handshake within
// Config.TLSHandshakeTimeout (10 s each by default). It trusts a CA bundle
// (Config.CACert) or a SHA-256 (or SHA-1) thumbprint, and nothing at all
// only when Config.Insecure says so. A user and password go through one NSX
// session per manager (its cookie and XSRF token are sent instead of the
// password, and it is made again when NSX forgets it; Close ends the
// sessions); Config.NoSession sends the password on every request instead.
// A client certificate (Config.ClientCert, ClientKey) authenticates as a
// principal identity, as NCP and TKGI do: NSX then protects what the
// package builds from everyone else, and a user's change or teardown of it
// fails with ErrProtected unless Config.AllowOverwrite sends
// X-Allow-Overwrite (an enterprise admin taking a cluster over).
//
// Requests are rate limited (WithRateLimit), and one answered 503 or 429 is
// retried with backoff (WithRetry). Config.Timeout (2 minutes by default)
// bounds each call as a whole, retries and moves to the next manager
// included; a call that runs out of it is not sent again. A timeout at any
// stage is a *kubefoundry.TimeoutError naming the stage (connect, TLS
// handshake, call), the manager and, for a call, its method and path. The
// SDK runtime logs through one logger per process: it is routed, at debug
// level, to the logger of the most recently created Client (WithLogger).
//
// # Building and updating
//
// BuildTopology reads what is tagged with the cluster, computes the
// difference with the Topology and sends it as hierarchical PATCHes of
// /infra: one that allocates the missing subnets and addresses, and, once
// NSX has realized them, one that creates, updates and deletes the rest. It
// then waits for NSX to realize what it wrote, and returns a
// *RealizationError naming the object and NSX's reason otherwise. A rebuild
// with no change writes nothing; a change that needs no new address is one
// PATCH. PlanTopology is the same computation as a dry run.
//
// NSX's search index trails its writes, so what the search shows is joined
// with GETs and listings of NSX's store: an object made a moment ago is
// found, one deleted a moment ago is not, and an update carries the
// _revision read from the object itself. These reads do not grow with a
// shared NSX: what follows from the cluster id is read by path, and only
// the cluster's own collections are listed, with the load balancer pools
// and virtual servers and the security policies, whose ids follow from
// Service and NetworkPolicy names. A conflict (another writer changed an
// object since it was read) is met by reading again and re-applying; so,
// twice at most, is a delete NSX refuses because something holds the object
// (a port a CNI added since the read). A refusal that stays is an error
// wrapping ErrInUse.
//
// The pod IP blocks and floating pools (Topology.PodIPBlockPaths,
// FloatingIPPoolPaths) are tried in order: a subnet or address NSX cannot
// allocate (realized in state ERROR, or refused at once for want of room,
// error code 520012) is released and allocated from the next; when none
// can, the allocations of namespaces the Topology drops are released to
// make room and every source is tried again; only then is it an error. An
// allocation never moves: the lists may grow or be reordered, but dropping
// a block or pool that still holds one is a field error. A fallback does
// not wait for NSX's purge: each copy has a path of its own (an address
// lives under its pool, a namespace's subnet's id names its block).
// PodRoutable takes only the namespaces' SNAT address and rule away, and
// switching it converges both ways. The cluster's DFW policies are in
// category Application with sequence numbers 50 to 200: a platform team's
// rules go before them in Environment (or Infrastructure, Emergency) and
// after them in Application above 200. The Policy API has no firewall
// section markers, so the Topology has none.
//
// EnsureNamespace and TeardownNamespace handle one namespace of a built
// cluster, for a namespace controller (kube/nsxtnet wires one);
// Topology.NamespacesManagedElsewhere keeps BuildTopology off those
// namespaces.
//
// # Services and NetworkPolicies
//
// EnsureLoadBalancer gives a Service an address from the floating pools, in
// order (or the one asked for, from the pool that holds it), and per port a
// virtual server whose pool is the nodes' NodePort; DeleteLoadBalancer
// releases it. A new Service beyond Topology.MaxL4LBServices is a
// *LimitError (ErrLimitExceeded), a Service counting once whatever its
// ports; the limit is recorded on the cluster's load balancer and the
// Services counted in NSX's store, so it holds across clients and restarts
// (two new Services at the same moment may both pass). ApplyNetworkPolicy
// enforces a NetworkPolicy, a mirror of networking/v1: label selectors
// become conditions on segment port tags (NamespaceLabelScope says which
// tags the CNI sets), ipBlocks IP address expressions, rules ALLOW rules
// before the namespaces' own, and an isolation policy drops the rest for
// the selected pods while letting the nodes in. What NSX cannot express
// (ipBlock except, named ports, SCTP, more than 5 OR-ed selector criteria)
// is a field error; Translate shows the objects without writing. The
// topology leaves Services and policies alone; TeardownTopology and
// TeardownNamespace remove them with the cluster or namespace.
//
// # VMs in groups and pools
//
// AddVMToGroups and RemoveVMFromGroups put a VM by name into groups of the
// domain "default" and take it out, as a criterion of its own ORed to what
// each group selects; AddPoolMembers and RemovePoolMembers do the same for
// load balancer pools (a static member, or the member group of a dynamic
// pool). This is what BOSH's vSphere CPI does with ns_groups and
// server_pools (bosh/cpi/vspherecpi.NSXTPolicy). Names are all looked up
// before anything is written; a write that loses to another writer's is
// read and made again.
//
// # Teardown and ownership
//
// TeardownTopology and TeardownNamespace delete, in one PATCH, every object
// tagged with the cluster (or namespace), found through the search and
// NSX's store, and read again until nothing of theirs is left; the subnets
// and addresses go back to their blocks and pools. A teardown right after a
// build leaves nothing, and one right after a teardown writes nothing. NSX
// refuses to delete a segment that has ports, so a segment goes with the
// ports of the cluster's CNI (tagged with the cluster, or attachment CHILD
// or INDEPENDENT) and those with nothing attached; a VM's NIC, or a port
// NSX owns or protects, is not the package's to delete: the teardown (or
// the update that would drop the segment) is then an error wrapping
// ErrInUse naming the ports, and writes nothing. An update deletes the
// ports of a segment it drops by the same rule, and leaves those of the
// segments it keeps alone. A security policy goes with its rules, those
// added by hand included. ListOwned lists what a teardown would delete.
//
// # NSX's purge
//
// NSX deletes asynchronously: a deleted object stays marked for delete
// until NSX's purge cycle (every 5 minutes), and its subnet or address is
// freed only then. Searches leave marked objects out, so a teardown is done
// once what is left is marked. A write to a path NSX has not purged is
// refused (error code 500045); an apply (BuildTopology, EnsureNamespace,
// EnsureLoadBalancer, ApplyNetworkPolicy) then waits for the purge, about 2
// s and then longer, up to 30 s, between tries, for about 10 minutes in
// all, logging each wait and reporting it as a PhaseWaiting event naming
// the path. WithPurgeWait changes both; with no wait the call returns the
// *APIError at once (errors.Is(err, ErrPendingDelete)).
//
// # Progress
//
// The calls that build or delete take CallOptions: WithSink sends their
// progress as kubefoundry.Event values (PhaseStarted, PhaseWaiting with the
// NSX path waited for, PhaseDone or PhaseFailed), Op one of the Op
// constants and Object the cluster id, or "<cluster>/<namespace>" and
// "<cluster>/<namespace>/<name>" for a namespace, Service or policy. What a
// call started is found again by its tags, so a call that did not finish is
// resumed by making it again.
//
// # Errors
//
// An error NSX answers is an *APIError wrapping ErrNotFound, ErrConflict,
// ErrInvalid, ErrPendingDelete, ErrProtected, ErrUnauthorized or
// ErrUnavailable, and the error it was made from (the SDK's, or the
// transport's when no answer came). The sentinels are the SDK's shared ones
// (nsxt.ErrNotFound is kubefoundry.ErrNotFound); ErrProtected, NSX's own,
// wraps kubefoundry.ErrForbidden. A wrong Config, Topology, LoadBalancer or
// NetworkPolicy is a *kubefoundry.ValidationError (wrapping ErrInvalid)
// naming every wrong field at once by its path, such as
// Topology.PodIPBlockPaths[1], each a *FieldError; cluster ids follow
// kubefoundry.ClusterID.
//
// # Files
//
//	client.go    New, Close, Calls; failover between managers, rate limit, retries, the per-call bound, the runtime's logs
//	config.go    Config (String redacts secrets) and the Client's Options
//	session.go   NSX user sessions: cookie and XSRF token, made again when NSX forgets them
//	errors.go    the sentinels, APIError, RealizationError, LimitError; NSX's error codes
//	topology.go  Topology, its validation, the tags, and the objects a Topology asks of NSX
//	apply.go     BuildTopology, PlanTopology, EnsureNamespace: read, allocate, configure, retry; WaitRealized
//	ipam.go      subnets and addresses: which block or pool, what NSX holds, allocation and fallback
//	plan.go      Plan and Change; the diff with what NSX holds; the hierarchical PATCH
//	read.go      the consistent reads: the search by tag joined with reads of NSX's store
//	rest.go      GETs and listings of the Policy API outside the SDK
//	teardown.go  TeardownTopology, TeardownNamespace; which ports go with a segment
//	owned.go     ListOwned
//	service.go   LoadBalancer, EnsureLoadBalancer, DeleteLoadBalancer, the Service limit
//	netpol.go    NetworkPolicy, Translate, ApplyNetworkPolicy, DeleteNetworkPolicy
//	membership.go  AddVMToGroups, RemoveVMFromGroups, AddPoolMembers, RemovePoolMembers
//	progress.go  CallOption, WithSink, the phases and operations of progress events
package nsxt
