// Package kube is kubefoundry's Kubernetes side, built on client-go.
//
// What works today: the PKI of a cluster (NewPKI: cluster, front-proxy and
// etcd CAs and the service-account key; IssueServing with the API server's
// SANs from APIServerSANs; IssueClient for users and groups; ExpiryReport)
// and Kubeconfig, which kubectl accepts (tested against a real
// kube-apiserver that trusts the cluster CA).
//
//	pki, err := kube.NewPKI("c1")
//	admin, err := pki.ClusterCA.IssueClient("admin", []string{"system:masters"}, 0)
//	cfg, err := kube.Kubeconfig("c1", "https://10.0.0.10:8443", kube.CertPEM(pki.ClusterCA.Cert), "admin", admin)
//
// Keys print as names only (String), never as key material.
//
// Client (New, on a *rest.Config) drains nodes: Cordon, Uncordon,
// DrainPreflight (the PodDisruptionBudgets that would refuse an eviction
// now, and the pods they hold) and Drain, which evicts through the
// Eviction API, retries PDB refusals with backoff up to a per-pod timeout,
// skips DaemonSet and mirror pods, leaves emptyDir pods unless asked, and
// returns an outcome per pod. Tested on a real API server and
// controller-manager (kubetest), PDB refusals and their release included.
//
// Package kubetest starts a real etcd, kube-apiserver and
// kube-controller-manager for tests.
//
// Readiness and health: WaitReady (/readyz), WaitNodesReady (a
// *NotReadyError names each laggard and why), Health (the API server's
// readiness checks, etcd among them; nodes and conditions; kube-system
// pods; with WithEtcd, the etcd members, their health and leader, or why
// etcd could not be reached). Credentials: UserKubeconfig (a short-lived
// client certificate from the cluster CA) and BindTeam (a group's
// ClusterRole in namespaces, applied server-side, idempotent).
//
// Add-ons: ParseManifests (multi-document YAML) and ApplyAddons, which
// applies a named set server-side under FieldManager in dependency order
// (CRDs, waited on until Established; Namespaces; the rest), labels every
// object with its set, shows a dry run as per-object actions, prunes what
// an earlier apply of the set had (recorded in a ConfigMap inventory in
// kube-system) and waits for rollouts.
//
// Bootstrap: InitControlPlaneUserData, JoinControlPlaneUserData and
// WorkerUserData render the cloud-init user data a stemcell VM runs, with
// Cluster API's own kubeadm bootstrap code (its v1beta2 types converted to
// kubeadm's API for the Kubernetes version, its cloud-init templates);
// NewBootstrapToken and BootstrapTokenSecret make the join token valid.
// BootstrapSpec.KubeVIP gives a cluster without NSX its control-plane load
// balancer: kube-vip as a static pod on every control-plane node, holding
// the endpoint's address by ARP with leader election (on super-admin.conf
// during the first node's init from Kubernetes 1.29, then admin.conf);
// its manifests are Pods the real API server accepts.
//
// Encryption at rest (TKGI's "etcd encryption" profile):
// BootstrapSpec.Encryption gives every control-plane node the API
// server's EncryptionConfiguration (EncryptionConfig: the secretbox
// provider with the keys, the first of which encrypts, then identity so
// that what was stored before stays readable) in EncryptionConfigPath,
// root only, and the API server the flags (with automatic reload from
// Kubernetes 1.26) and the read-only mount that use it; joining nodes
// take the flags from the cluster's kubeadm-config and get the file only;
// workers get nothing of it. Every control-plane node needs the same
// keys. Tested on a real API server: Secrets are stored in etcd under
// "k8s:enc:secretbox:v1:<key>:" and read back in plain, and an API server
// given [new, old] reads what the old key wrote and writes under the new
// one. NewEncryptionKey makes keys; they, like BootstrapSpec, print
// without their secrets.
//
// The namespace network controller (NCP's role): an informer on Namespaces
// and a rate-limited workqueue call a NetworkProvider (lifecycle wires in
// nsxt) to make and delete each namespace's network, record the result in
// annotations, retry failures with per-item backoff, resync, and hold
// deleted namespaces with a finalizer until their network is gone, across
// restarts of the controller.
//
// CA rotation: StartCARotation, then TrustBundle, Signer and Advance
// through the phases trust-both, issue-new and done, so that no client
// meets an unknown CA; tested on the real API server, whose client CA
// bundle is swapped phase by phase.
//
// Drain reports each pod's steps as the SDK's shared kubefoundry.Event
// through DrainOptions.Sink (Op "drain", a step per pod to evict), as well
// as through DrainOptions.Progress.
//
// # Files
//
//	client.go       Client (New on a *rest.Config)
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
// Not yet here: rotation of the front-proxy and etcd CAs goes the same way
// as the cluster CA's but has no helper of its own yet; nor has the
// rotation of encryption keys on running nodes, whose configuration file
// the caller replaces step by step (see EncryptionAtRest).
package kube
