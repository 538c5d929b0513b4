// Package kubefoundry is a Go SDK that stands up and runs production-grade
// Kubernetes clusters on vSphere, the way VMware TKGI and vSphere with
// Tanzu do, as importable packages rather than a closed appliance.
//
// This root package is the vocabulary every layer shares, so that they
// compose without translating:
//
//   - errors.go: the error sentinels (ErrNotFound, ErrAlreadyExists,
//     ErrConflict, ErrInvalid, ErrInUse, ErrUnauthorized, ErrForbidden,
//     ErrUnavailable, ErrPendingDelete, ErrLimitExceeded, ErrTimeout) that
//     every package's errors wrap, so one errors.Is answers for any layer;
//     FieldError and ValidationError, which list every problem of a spec at
//     once, each with its field path; TimeoutError, which names the stage
//     (connect, TLS handshake, call) and the host that did not answer.
//   - cluster.go: ClusterID, the one cluster id rule every backend accepts,
//     checked once before anything is created.
//   - progress.go: Event and Sink, the one shape of progress every long
//     call reports: operation, object, phase, step i of n, and the
//     server-side handle it started (a task, an NSX path, an execution),
//     which a journal stores to resume after a crash.
//
// # Ownership
//
// Everything kubefoundry creates records the ClusterID that owns it, in
// the place each system keeps for it, and each package answers "what does
// this cluster own", so an orphan scan across layers is a loop:
//
//	vsphere  VMs: extraConfig kubefoundry.cluster (and the kubefoundry.owner
//	         attribute); folders and pools: the kubefoundry.cluster attribute;
//	         persistent disks: the FCD name "<cluster>.<name>"
//	         -> ListVMs, ListContainers, ListDisks
//	csi      CNS volumes: the container cluster id     -> QueryVolumes
//	nsxt     NSX objects: the tag scope kubefoundry/cluster -> ListOwned
//	harbor   projects: the label kubefoundry.io/cluster; robots: a tag in
//	         their description                          -> ListOwned
//
// The layers (see DESIGN.md in the project's shared notes):
//
//	examples/*       thin mains: flags -> package calls -> output
//	lifecycle        composable steps and the cluster orchestrator   (not built yet)
//	bosh kube harbor releases, Kubernetes, registry                  (kube and harbor)
//	vsphere csi nsxt infrastructure clients                          (all three)
//	internal/        the one vCenter session, TLS and timeouts, retries, pools
//
// [github.com/kubefoundry/kubefoundry/vsphere] provisions VMs from stemcells;
// [github.com/kubefoundry/kubefoundry/csi] manages CNS volumes on the same
// vCenter session (csi.New(ctx, vs.Vim25())); [github.com/kubefoundry/kubefoundry/nsxt]
// builds a cluster's NSX-T network; [github.com/kubefoundry/kubefoundry/kube]
// bootstraps, checks, drains and configures Kubernetes;
// [github.com/kubefoundry/kubefoundry/harbor] runs a cluster's registry
// projects. Each package's doc.go maps its files.
//
// Every package is tested against a simulator that speaks the real wire
// protocol: govmomi's vcsim for vSphere and CNS, nsxt/simulator for NSX-T,
// harbor/simulator for Harbor (and a real Harbor in CI), and a real
// kube-apiserver with etcd for Kubernetes.
package kubefoundry
