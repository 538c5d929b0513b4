// Package lifecycle is kubefoundry's cluster orchestrator: the one call
// that stands up, changes and removes a Kubernetes cluster across NSX-T,
// vSphere, CNS, BOSH and Kubernetes, as TKGI does (Harbor's part is to
// come).
//
// # Specs and plans
//
//	plans := lifecycle.DefaultPlans() // or the platform team's own
//	spec := lifecycle.ClusterSpec{Name: "prod-1", Plan: "medium", KubernetesVersion: "1.36.3",
//		Network: lifecycle.NetworkProfile{Tier0Path: "/infra/tier-0s/t0",
//			PodIPBlockPaths: []string{"/infra/ip-blocks/pods"}, FloatingIPPoolPaths: []string{"/infra/ip-pools/fip"}}}
//	err := spec.Validate(plans) // every problem at once, at its path
//
// Plans are data, as TKGI's: a Plan gives the control-plane nodes (1, 3
// or 5) and the workers, with their VM sizes and etcd's persistent disk;
// DefaultPlans has TKGI-like small, medium and large ones. A ClusterSpec
// names its plan and carries the profiles TKGI's users set: a
// NetworkProfile (the nsxt.Topology fields TKGI exposes: tier-0, pod IP
// blocks, floating IP pools, load-balancer size, single tier, routable
// pods, a cap on LoadBalancer Services), a ComputeProfile (AZs mapped to
// vSphere clusters, resource pools and host groups, and worker node pools
// with sizes, counts, AZs, labels and taints), a KubernetesProfile (extra
// API server and kubelet flags, never those the SDK sets itself; OIDC;
// encryption at rest), a worker count overriding the plan's, and the
// Harbor project's settings. Validate checks
// a spec against the plans without reaching the foundation, and reports
// every problem at once as a *kubefoundry.ValidationError whose fields
// are paths such as "compute.nodePools[1].taints[0].effect".
//
// # Clusters
//
// A Manager builds clusters on a Foundation (a BOSH director with the
// vSphere CPI, an NSX client, the platform team's NSX objects and AZs, a
// stemcell and the Kubernetes binaries), keeping their records in a Store
// (OpenStore: one bbolt file):
//
//	m, err := lifecycle.New(lifecycle.Config{Foundation: f, Store: st, Events: sink})
//	c, err := m.Create(ctx, spec)       // network, cloud config, stemcell, release, deploy, API, nodes
//	kubeconfig, err := m.Credentials(ctx, "prod-1")
//	c, err = m.Resize(ctx, "prod-1", map[string]int{"worker": 5})
//	c, err = m.Upgrade(ctx, "prod-1")   // to the Foundation's stemcell and release
//	err = m.Delete(ctx, "prod-1")
//
// Create builds the cluster's NSX topology (tier-1, node segment and
// subnet, SNAT, a load balancer whose API virtual server fronts the
// control plane's static addresses), a named cloud config of its own (its
// AZs, VM types, etcd's disk type, its node network), uploads the stemcell
// and the Kubernetes release (lifecycle/kuberelease, built once from the
// binaries into CacheDir), deploys it through the director (the control
// plane's members all at once, then the workers), and waits until the API
// answers through the load balancer and every node is Ready. Every step
// converges, so Create run again finishes what a failed one began; another
// spec under the same name is refused (kubefoundry.ErrConflict). Resize
// sets the worker count (spec.Workers, or the node pools' counts): a
// worker that goes is drained first through the Eviction API (its
// PodDisruptionBudgets hold), its VM deleted, its Node removed.
//
// A cluster keeps the stemcell and release it was created with
// (Cluster.Stemcell and Release) until it is upgraded: a Manager whose
// Foundation has a newer stemcell or other binaries shows
// Cluster.UpgradeAvailable, and its Resize changes nothing else. Upgrade
// moves the cluster to the Foundation's (the release compiled against
// the new stemcell is added to the same release version on the director)
// and rolls the deployment: the control plane one member at a time, then
// each worker pool with a canary. Each node is drained before its VM is
// stopped (a preflight reports the budgets that refuse now; a pod still
// there after Config.DrainTimeout makes the drain a *DrainError, the node
// left running and schedulable),
// and once its VM runs again the director waits until the node's new
// kubelet holds its Lease and the node is Ready, then uncordons it,
// before it touches the next; a node left cordoned by an operation that
// stopped half-way is uncordoned by the next that converges. The
// Kubernetes version moves one minor at a time, never back. Delete
// removes the deployment, the network and the cloud config, then the
// record; it finishes what is half gone and is a no-op on what is gone.
// Credentials issues an admin kubeconfig (system:masters, a day) from the
// cluster's CA, its server the load balancer's address.
//
// Orphans lists what on the foundation was made for a cluster no record
// knows (a lost record, a deletion that never finished): the director's
// deployments and cloud configs named for it and the NSX objects tagged
// with its ID; DeleteOrphans removes them as Delete would. It does not
// scan vSphere for VMs the director does not know, nor CNS or Harbor
// (lifecycle makes nothing there yet).
//
// # Tasks
//
// Every operation is a task: recorded in the Store with an ID, its
// request, its state (running, done, failed) and a journal of its events,
// and the only one changing its cluster while it runs (another is a
// *BusyError naming it, kubefoundry.ErrConflict). Create, Resize, Upgrade
// and Delete run theirs in the caller's goroutine; Start runs one in the
// background and returns it at once:
//
//	t, err := m.Start(lifecycle.Request{Op: lifecycle.OpUpgrade, Cluster: "prod-1"})
//	t, err = m.Wait(ctx, t.ID)
//	events, err := m.Events(t.ID, 0) // its journal, from an index on
//
// A request wrong on its face (an invalid spec) is refused before any
// task is recorded. A task whose process ended before it did (killed,
// its Manager closed, or its Config.Context ended) stays running in the
// Store; Resume, on a Manager started again, runs each such task again in
// the background. Every operation converges, so a second run finds done
// what the first did and finishes the rest; the journal holds every run
// ("task" events started, resumed, done or failed, around the stages). A
// create killed as each of its stages begins, in turn, and resumed each
// time, converges (TestTaskKilledAndResumed). Of several tasks an ended
// process left running on one cluster only the newest is resumed, and a
// new task on a cluster ends those left running there: each is failed,
// superseded. One Manager uses a Store at a time; after Close it begins
// nothing (ErrClosed).
//
// Every operation reports one stream of kubefoundry events: its stages
// (Op "create cluster", "resize cluster", "upgrade cluster" or "delete cluster", Object the
// stage, Step of Steps), the director's steps within the deploy (Op
// "deploy" or "delete deployment", Object the instance), and each pod a
// drain evicts (Op "drain"; Phase "waiting" for a budget its preflight
// found refusing).
//
// Cancel stops a task this Manager runs: it ends failed, its error
// wrapping ErrCanceled, and is not resumed.
//
// The control plane's members are spread over the cluster's AZs (their
// static addresses are of one subnet of every AZ, and the director
// balances them as BOSH does).
//
// Not here yet (issue 17): kills within a stage (a kill as each stage
// begins is tested); Update of profiles, Repair, Health, List and Plan;
// certificates from package kube's PKI put as the deployment's variables
// (the director generates them today); the CSI driver, the NCP
// controllers (namespace networks, LoadBalancer Services,
// NetworkPolicies) and Harbor's project, robot and pull secret as
// add-ons; the orphan scan's vSphere, CNS and Harbor parts. A resize of
// the control plane is refused by the plan, not handled.
package lifecycle
