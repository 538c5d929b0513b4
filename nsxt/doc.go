// Package nsxt builds the NSX-T network of Kubernetes clusters through the
// NSX-T Policy API, with vsphere-automation-sdk-go over REST.
//
// New connects to one or more managers (a request goes to the next when one
// refuses the connection or does not answer it within 10 seconds), with a
// user and password or a client certificate (a principal identity),
// trusting a CA bundle or a SHA-256 thumbprint, or nothing at all only when
// Config.Insecure says so. A request answered 503 or 429 is retried with
// backoff; NSX errors come back as *APIError wrapping ErrNotFound,
// ErrConflict, ErrInvalid, ErrUnauthorized or ErrUnavailable; a wrong spec
// field is a *FieldError (wrapping ErrInvalid) naming it. The runtime logs
// through one logger per process: it is routed, at debug level, to the
// logger of the most recently created Client.
//
// BuildTopology makes NSX hold a cluster's Topology as TKGI lays it out: a
// tier-1 gateway on the tier-0 with route advertisement and a locale
// service on the edge cluster; a node segment with a subnet carved from the
// node IP block; SNAT for it with an address from the floating pool; a load
// balancer with the Kubernetes API virtual server (port 8443), its pool and
// an active health monitor; a DFW policy (node to node, API from anywhere,
// default deny when asked); and per namespace a segment with a subnet from
// the pod IP block, an SNAT address and a DFW policy. Single-tier puts the
// segments and SNAT on the tier-0. Every object carries the tags
// kubefoundry/cluster (and kubefoundry/namespace where it applies).
//
//	c, err := nsxt.New(ctx, nsxt.Config{URLs: []string{"https://nsx.example.com"},
//		Username: "admin", Password: pw, CACert: ca}, nsxt.WithLogger(log))
//	net, err := c.BuildTopology(ctx, nsxt.Topology{ClusterID: "c1", Tier0Path: "/infra/tier-0s/t0", ...})
//	fmt.Println(net.APIAddress, net.Namespaces["default"].Subnet)
//
// BuildTopology reads what is tagged with the cluster through the search
// API (NSX updates its index a little after each write: a conflict from a
// stale read is met by reading again, with backoff; an update carries the
// _revision read from the object itself just before), computes the
// difference and sends it as hierarchical PATCHes of /infra with Child*
// objects and revision checks, never one call per object: one PATCH
// allocates the subnets and addresses that are missing (NSX's
// IpAddressPoolBlockSubnet and IpAddressAllocation objects), and after NSX
// has realized them, one PATCH creates, updates and deletes the rest. A
// rebuild with no change writes nothing; a change that needs no new address
// is one PATCH. A conflict (another writer changed an object since it was
// read) is met by reading again and re-applying. It waits for NSX to
// realize what it wrote and returns a *RealizationError naming the object
// and NSX's reason otherwise (an exhausted pool, say). PlanTopology is the
// same computation as a dry run.
//
// TeardownTopology and TeardownNamespace delete, in one PATCH, every object
// tagged with the cluster (or the namespace), found by tag, so they work
// after the caller has lost every id; the subnets and addresses go back to
// their block and pool. They search again after deleting, until the index
// shows nothing of theirs. TeardownNamespace takes the namespace's
// LoadBalancer Services and NetworkPolicies with it.
//
// EnsureNamespace and TeardownNamespace handle one namespace of a built
// cluster, for a namespace controller (kube/nsxtnet wires one to
// kube.NamespaceNetworkController); Topology.NamespacesManagedElsewhere
// keeps BuildTopology off those namespaces.
//
// EnsureLoadBalancer serves a Service of type LoadBalancer on the cluster's
// load balancer: an address from the floating pool (or the one asked for)
// and per port a virtual server whose pool is the nodes' NodePort;
// DeleteLoadBalancer releases it. ApplyNetworkPolicy enforces a
// NetworkPolicy (a mirror of networking/v1; kube/nsxtnet converts one) as
// DFW groups and rules: label selectors become conditions on segment port
// tags (see NamespaceLabelScope for the tags the CNI must set), ipBlocks IP
// address expressions, rules ALLOW rules before the namespaces' own, and an
// isolation policy drops the rest for the selected pods while letting the
// nodes in. What NSX cannot express (ipBlock except, named ports, SCTP,
// more than 5 OR-ed selector criteria) is a *FieldError naming the field.
// Translate shows the objects without writing.
//
// Services and policies are converged like the topology (by their own tags
// kubefoundry/service and kubefoundry/network-policy), and the topology
// leaves them alone; TeardownTopology removes them with the cluster.
//
// A Client is safe for concurrent use. Tested against nsxt/simulator over
// HTTPS.
package nsxt
