// Package kubefoundry is a Go SDK that stands up and runs production-grade
// Kubernetes clusters on vSphere, the way VMware TKGI and vSphere with Tanzu
// do, as importable packages rather than a closed appliance.
//
// The SDK is layered (see DESIGN.md in the project's shared notes):
//
//	examples/*   thin mains: flags -> package calls -> output
//	lifecycle    composable steps and the cluster orchestrator    (planned)
//	bosh kube harbor                                              (kube today)
//	vsphere csi nsxt   infrastructure clients                     (all three today)
//	internal/    retry and backoff
//
// What works today is package [github.com/kubefoundry/kubefoundry/vsphere]:
// sessions with keep-alive and transparent re-login, inventory lookup,
// ProvisionVMs (clones from a stemcell template with placement, hardware,
// cloud-init guestinfo and ownership, in parallel, idempotently), DRS rules,
// power, resize, destroy, the orphan scan, a watch of many VMs over one
// PropertyCollector, and stemcell (OVF/OVA) import; and package
// [github.com/kubefoundry/kubefoundry/kube]: the cluster PKI and
// kubeconfigs, kubeadm bootstrap data rendered by Cluster API's code,
// readiness and health, PDB-aware drains, add-ons by server-side apply, the
// namespace network controller and team RBAC, tested on a real API server
// that package kube/kubetest starts; and package
// [github.com/kubefoundry/kubefoundry/csi]: CNS volumes, snapshots, storage
// policies and the vSphere CSI driver's configuration; and package
// [github.com/kubefoundry/kubefoundry/nsxt]: a cluster's NSX-T network
// (tier-1, segments, SNAT, load balancer, DFW, IPAM) built declaratively in
// hierarchical Policy API PATCHes, torn down by tag, with LoadBalancer
// Services and NetworkPolicies; kube/nsxtnet connects it to the namespace
// controller.
//
// Every package is tested against a simulator that speaks the real wire
// protocol: govmomi's vcsim for vSphere, nsxt/simulator for NSX-T.
package kubefoundry
