// Package lifecycle will be kubefoundry's cluster orchestrator: the one
// call that stands up, changes and removes a Kubernetes cluster across
// NSX-T, vSphere, CNS, BOSH, Kubernetes and Harbor, as TKGI does.
//
// What is here today is the cluster's spec and its check, nothing that
// provisions yet:
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
// encryption at rest) and the Harbor project's settings. Validate checks
// a spec against the plans without reaching the foundation, and reports
// every problem at once as a *kubefoundry.ValidationError whose fields
// are paths such as "compute.nodePools[1].taints[0].effect".
//
// Not here yet (issue 17): the primitives, Create, Resize, Update,
// Upgrade, Delete, Repair, the journal, lifecycle/simulator and make
// demo's cluster.
package lifecycle
