// Package kube is kubefoundry's Kubernetes side, built on client-go and
// Cluster API's kubeadm bootstrap code: a cluster's PKI and kubeconfigs,
// the cloud-init user data its nodes boot with, readiness and health,
// drains, add-ons, credentials and the namespace network controller.
//
//	pki, err := kube.NewPKI("c1")
//	admin, err := pki.ClusterCA.IssueClient("admin", []string{"system:masters"}, kube.CertValidity)
//	cfg, err := kube.Kubeconfig("c1", "https://10.0.0.10:8443", kube.CertPEM(pki.ClusterCA.Cert), "admin", admin)
//	c, err := kube.New(restConfig, kube.WithLogger(log))
//	report, err := c.Drain(ctx, "worker-3", kube.DrainOptions{PodTimeout: 5 * time.Minute, Sink: journal})
//
// # PKI and credentials
//
// NewPKI makes the cluster, front-proxy and etcd CAs and the
// service-account key; IssueServing (with APIServerSANs) and IssueClient
// sign certificates, never starting before their CA nor ending after it,
// with subject and authority key identifiers as kubeadm's. Every validity
// must be positive: CertValidity, CAValidity and UserCertValidity are the
// defaults to pass. ExpiryReport lists what expires within a horizon.
// Kubeconfig writes what kubectl reads; UserKubeconfig issues a
// short-lived client certificate; BindTeam gives a group a ClusterRole in
// namespaces (a binding named for team and role, applied server-side; a
// missing role is refused as a *RoleNotFoundError, and a changed role's
// new binding exists before the old one goes). CA rotation goes through
// StartCARotation, then TrustBundle, Signer and Advance over the phases
// trust-both, issue-new and done, so no client meets an unknown CA. CAs,
// key pairs and the PKI print and marshal (JSON, slog, zap) without key
// material; KeyPEM is the way out for a store.
//
// # Bootstrap
//
// InitControlPlaneUserData, JoinControlPlaneUserData and WorkerUserData
// render a node's cloud-init user data with Cluster API's kubeadm code
// (its v1beta2 types converted to kubeadm's API for the Kubernetes
// version); NewBootstrapToken and BootstrapTokenSecret make the join token
// valid. BootstrapSpec.KubeVIP gives a cluster without NSX its
// control-plane load balancer (kube-vip static pods holding the endpoint
// by ARP). BootstrapSpec.Encryption turns on encryption at rest of Secrets
// (TKGI's "etcd encryption"): EncryptionConfig renders the API server's
// EncryptionConfiguration (secretbox, the first key encrypts, identity
// last so that what was stored before stays readable), written root-only
// on control-plane nodes with the flags and read-only mount that use it.
// A spec is checked whole: every problem at once as a
// *kubefoundry.ValidationError. BootstrapSpec and EncryptionKey print and
// marshal (JSON, slog, zap) without their secrets; BootstrapSpec.Secrets
// is the one way out for a store, which is to encrypt it at rest, and
// WithSecrets puts the secrets back into a spec read from its JSON.
//
// # Running clusters
//
// WaitReady (/readyz; refused credentials or permission end it at once),
// WaitNodesReady (a *NotReadyError names each
// laggard and why) and Health (the API server's checks, nodes, kube-system
// pods, and with WithEtcd the etcd members and leader). Cordon, Uncordon,
// DrainPreflight (what a drain with the same options would meet now: each
// PodDisruptionBudget that would refuse and how many of the node's pods,
// and the pods it would leave) and Drain, which evicts through the
// Eviction API, retries PDB refusals with capped backoff until a per-pod
// timeout and names the budget that refused, skips DaemonSet and mirror
// pods, leaves emptyDir pods and pods no controller owns unless asked
// (DeleteEmptyDirData, Force, as kubectl drain's flags), and reports each
// pod's steps as the SDK's kubefoundry.Event (DrainOptions.Sink) as well
// as through DrainOptions.Progress.
//
// # Add-ons
//
// ParseManifests and ApplyAddons apply a named set of add-ons server-side
// in dependency order (CRDs waited on until Established, Namespaces, the
// rest), show a dry run, prune what earlier applies of the set made and
// it no longer has, and wait for rollouts. Every kind and version is
// resolved against discovery before anything is applied, and every object
// that cannot be (or is named twice) is reported at once. Objects are
// known as the server knows them (group, kind, namespace as resolved,
// name; the version aside), so a manifest that changes an object's
// apiVersion or writes out its namespace updates it and never prunes it.
// The set's inventory (a ConfigMap in kube-system) keeps every object the
// set has applied until a prune removes it, and is written before the
// objects are, so what a failed apply made can still be pruned. One
// object that fails does not stop the rest (Action ApplyFailed); then
// nothing is pruned. A *ConflictError names each field and its manager,
// for every conflicting object. A Secret's diff names the keys that
// changed, never their values.
//
// # Clients
//
// Every request waits at most WithRequestTimeout (30s by default) for the
// API server to begin its answer, so a server that accepts and never
// answers fails a call with a *kubefoundry.TimeoutError naming the
// request. The API server's warnings go to the Client's logger, and
// nothing is written through klog.
//
// A Client is safe for concurrent use. Tests run on a real etcd,
// kube-apiserver and kube-controller-manager that package kube/kubetest
// starts, the API server with the flags kubeadm gives the control planes
// this SDK bootstraps (privileged pods allowed, NodeRestriction).
//
// # Namespace networks
//
// The namespace network controller (NCP's role) calls a NetworkProvider
// (package kube/nsxtnet wires in nsxt) to make and delete each namespace's
// network, with a rate-limited workqueue, per-item backoff, resync,
// annotations recording the result, and a finalizer holding a deleted
// namespace until its network is gone.
//
// # Files
//
//	client.go       Client (New on a *rest.Config), options, the per-request answer timeout
//	pki.go          CAs, serving and client certificates, ExpiryReport
//	kubeconfig.go   Kubeconfig
//	credentials.go  UserKubeconfig, BindTeam
//	rotation.go     CA rotation in phases
//	bootstrap.go    kubeadm cloud-init user data (Cluster API's code), bootstrap tokens
//	kubevip.go      kube-vip static pods for a cluster without NSX
//	encryption.go   encryption at rest: keys and EncryptionConfiguration
//	health.go       WaitReady, WaitNodesReady, Health
//	etcd.go         etcd members and health (WithEtcd)
//	drain.go        Cordon, Uncordon, DrainPreflight, Drain
//	addons.go       ParseManifests, ApplyAddons (server-side apply, prune, inventory)
//	nsnetwork.go    the namespace network controller
//
// Not yet here: the front-proxy and etcd CAs rotate as the cluster CA
// does but have no helper of their own; encryption keys on running nodes
// are rotated by the caller replacing the configuration file step by step.
package kube
