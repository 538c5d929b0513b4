// Package simulator is an NSX-T Policy API server for tests and demos: a
// real HTTPS server on loopback, used in-process like httptest (New, URL,
// CertificatePEM, Close) or on its own as examples/nsxt-simulator.
//
// It serves the paths package nsxt uses, as NSX does:
//
//   - the hierarchical PATCH /policy/api/v1/infra with Child* wrappers and
//     ChildResourceReference, applied atomically (all or nothing), with
//     enforce_revision_check;
//   - GET, PATCH, PUT and DELETE of single objects and GET of collections
//     (paged with page_size and a cursor) under /policy/api/v1/infra: tier-0s, tier-1s, locale-services,
//     segments and their ports, nat and nat-rules, lb-services, lb-pools,
//     lb-virtual-servers, lb-monitor-profiles, lb-app-profiles, domains,
//     groups, security-policies, rules, ip-blocks, ip-pools, ip-subnets,
//     ip-allocations, and the read-only sites, enforcement points, edge
//     clusters and transport zones;
//   - GET /policy/api/v1/infra/realized-state/realized-entities and
//     GET /policy/api/v1/search/query (field:value clauses joined by AND,
//     (a OR b) alternatives, escapes, prefix*, paging with a cursor).
//
// Bodies are decoded and encoded through the SDK's own bindings (the model
// package of vsphere-automation-sdk-go), so wire shapes are the SDK's.
// NSX's rules hold: path, parent_path and _revision are set by the server
// and _revision grows on each write; a stale or missing _revision where
// one is required is refused with 412 and error code 604 as NSX does; a
// missing object is 404; a missing parent or a policy path that points
// nowhere is 400; a delete is refused while children or references remain
// (400 with error code 500030, or 503040 for a segment with ports; a
// tier-1 with locale services, a segment a rule refers to), but a security
// policy goes with its rules, as NSX deletes them with it; NAT sections
// and the like that NSX creates by itself are owned by the system. IP blocks hand out aligned subnets that never overlap and pools
// addresses that never repeat; running out leaves the intent in realized
// state ERROR with the reason, as NSX does. Basic auth (wrong credentials:
// 403), a session (POST /api/session/create with the user and password
// as a form, answered with a JSESSIONID cookie and an X-XSRF-TOKEN
// header that later requests send; it ends with POST
// /api/session/destroy or after Config.SessionTimeout idle, and
// Server.ExpireSessions ends them all) or a client certificate chaining
// to Config.ClientCAs: a principal
// identity, named by the certificate's common name. What a principal
// identity makes is protected, as NSX protects what an is_protected
// principal makes: its _protection is NOT_PROTECTED to it and
// REQUIRE_OVERRIDE to everyone else, whose changes and deletes (plain or
// hierarchical) are refused with 400 and error code 289 unless they send
// X-Allow-Overwrite: true.
//
// A group's expression is checked as NSX checks it whenever a write
// leaves it changed: odd length, expressions and ConjunctionOperators
// alternating, NestedExpressions of Conditions joined by AND, whole
// Conditions with NSX's member types, keys and operators, unique ids
// (given to expressions sent without one), and NSX's limits: 5 criteria
// ORed, 15 conditions in one and 35 in all, 500 listed members. A load
// balancer pool's members need an address and a port in range, no address
// and port twice, and a pool has members or a member_group, not both. A refusal is 400 naming the
// path and what is wrong.
//
// NSX's search index trails its writes. Server.FreezeSearch makes the
// search API answer from the state as it was when it was called, until
// Server.ThawSearch makes the index catch up: what the index shows is then
// up to the test, not to the clock. Config.SearchLag makes the search API
// answer from the state as it was a while ago, by the clock, for demos.
//
// Config.RefuseFullBlocks makes a block with no room refuse a new subnet
// when it is written (400, with error code 520012 naming the block among
// the related errors), as some NSX versions do, instead of realizing it in
// state ERROR.
//
// Config.PurgeAfter makes deletes asynchronous, as NSX's are: a deleted
// object is marked_for_delete until the purge (NSX's runs every 5
// minutes; Server.Purge runs one at once). Meanwhile GET answers 404 and
// lists leave it out, but the search shows it with marked_for_delete
// true, it keeps the subnet or address it allocated, and a write to its
// path is refused (400, error code 500045: "An object with the same
// path=[...] is marked for deletion").
//
// Config.ForwardLoadBalancers makes the load balancer carry traffic, as
// an NSX edge does for an L4 (fast TCP) virtual server, so that a
// kubeconfig can point at a cluster's API virtual server on a simulated
// foundation. Each virtual server that is enabled (NSX's default), has
// an ip_address, ports and a pool_path whose pool has members, on a load
// balancer service that is enabled and attached (it has a
// connectivity_path), listens on its address at each of its ports, and
// every TCP connection it accepts goes to a member of its pool: at the
// member's port, or else the virtual server's default_pool_member_ports
// (the one at the same place in the list when there are as many as
// ports, else the first), or else the port the client connected to.
// Members are taken round-robin among those whose admin_state is ENABLED
// (DISABLED and GRACEFUL_DISABLED ones get no new connection) and not
// backup_member; one that refuses the connection is skipped for the
// next, as an active TCP monitor would have taken it out; the backup
// members are tried when no other accepts; when none does, the client's
// connection is closed. Bytes pass both ways untouched (TLS goes through
// to the member) and a half-close is passed on. The listeners follow
// every write, whatever makes it (a PATCH or PUT, the hierarchical
// PATCH, Put, Patch, Delete, a purge), before the write is answered: a
// virtual server starts listening when it comes to qualify, moves when
// its address or ports change, and stops, with the connections it
// carries, when it is deleted or disabled or its pool or service no
// longer qualifies; a change of members holds from the next connection
// on, while those already made go on. An address that cannot be bound
// (in use, not local: on Linux all of 127.0.0.0/8 is local, so a
// floating pool such as 127.200.0.0/24 serves) does not fail the write:
// Server.Forwarding reports the error, and the next write tries again.
// Not simulated: port ranges (reported, not listened on), UDP, L7 (an
// HTTP application profile is forwarded as TCP), the algorithms other
// than ROUND_ROBIN, weights, min_active_members, persistence, SNAT (a
// member sees the client's own address), connection limits, the access
// list, a pool's member_group (its pool has no members: it does not
// listen), and health monitors other than a refused connection (or no
// answer in 3 s). Close closes every listener and forwarded connection
// and waits for them.
//
// Tests steer it with Inject (a status, and an error code, on the Nth
// authenticated request matching a method, a path and a query, or a
// Before hook that writes in between as another client would), Patch, Put and Delete (as another client), Purge, and
// read it with Requests, Writes, Paths, Object, Marked, Sessions, Allocated
// (what each IP block and pool has handed out) and Forwarding (where
// each virtual server listens, or why it cannot).
// DefaultInventory is what it starts with: a tier-0, an edge cluster, an
// overlay transport zone, node and pod IP blocks and a floating pool;
// Config.Inventory changes it, with small blocks and pools to run out of,
// or more pod blocks and floating pools (Inventory.MorePodBlocks,
// MoreFloatingPools).
//
// A Server is safe for concurrent use.
//
// # Files
//
//	checks.go     NSX's checks of a group's expression and a pool's members
//	start.go      Start: a simulator for a test in one call, and the nsxt.Config that reaches it
//	simulator.go  Config, Inventory, New, Close; serving: authentication, faults, objects and lists, encoding, errors
//	control.go    what tests steer and read it with: Fault and Inject, Patch, Put, Delete, Purge, FreezeSearch,
//	              ThawSearch, ExpireSessions; Requests, Writes, Paths, Object, Marked, Sessions, Allocated
//	              (Forwarding is in forward.go)
//	store.go      the objects, transactions, protection, asynchronous delete and purge
//	hapi.go       the hierarchical PATCH of /infra
//	kinds.go      the resource types served, their collections, parents and SDK bindings
//	ipam.go       IP blocks and pools: subnets and addresses, exhaustion
//	forward.go    the load balancer's data plane: listeners per virtual server, round-robin to the pool's members
//	realized.go   realized state
//	search.go     the search API and its query syntax
//	session.go    user sessions
//	seed.go       the inventory it starts with
package simulator
