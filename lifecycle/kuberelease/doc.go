// Package kuberelease is the BOSH release that puts Kubernetes on a
// cluster's VMs, as TKGI's kubo release does, and the deployment manifest
// that deploys it.
//
//	var out bytes.Buffer
//	_, err := kuberelease.Build(ctx, kuberelease.Binaries{Etcd: "bin/etcd", KubeAPIServer: "bin/kube-apiserver",
//		KubeControllerManager: "bin/kube-controller-manager", KubeScheduler: "bin/kube-scheduler",
//		Kubectl: "bin/kubectl", Kubelet: "bin/kwok"}, "1.36.3", "ubuntu-jammy/1.108", "", &out)
//	manifest, err := kuberelease.Deployment{Name: "k8s-1", ...}.Manifest()
//	// director.UploadRelease, then director.Deploy(ctx, manifest, ...)
//
// Build makes the release from the binaries the caller supplies and
// compiles it for the stemcell asked (bosh/release.Compile: the packages
// hold the binaries as given). Its jobs:
//   - etcd: a member on the instance's address, TLS between members and
//     for clients, data on the persistent disk (/var/vcap/store/etcd);
//   - kube-apiserver: on the instance's address and port 8443, its etcd
//     the deployment's members; Node,RBAC authorization, NodeRestriction;
//     extra flags and an encryption config from properties. Its
//     post-start waits up to 2 minutes for the server to be ready and
//     grants the kubelets (group system:nodes) their rights;
//   - kube-controller-manager and kube-scheduler: each on its instance's
//     address, talking to the API server of its own instance, leader
//     elected; the controller manager signs with the cluster CA and gives
//     each node a /24 pod CIDR;
//   - kubelet: a simulated kubelet, kwok (sigs.k8s.io/kwok, which `make
//     tools` builds): it registers the VM as a Node named for its address
//     (with the pool's labels and taints, its AZ and instance group), keeps
//     it Ready and its Lease fresh while it runs, and moves the pods bound
//     to it to Running. It stops when its VM stops, and the control plane
//     then marks the Node NotReady.
//
// Every job's processes take their paths from bpm.yml (which the agent
// maps under its root), so the same release runs on a VM's /var/vcap and
// on lifecycle/simulator, where every VM's jobs listen on its own loopback
// address.
//
// Deployment.Manifest writes a cluster's manifest: a master instance group
// (1, 3 or 5 instances on static IPs, each running etcd, the control plane
// and a kubelet whose Node is labelled node-role.kubernetes.io/control-plane
// and tainted NoSchedule, as kubeadm's are) and an instance group per
// worker pool. Every certificate and key
// is a BOSH variable (the Var* names) the director generates unless a
// value was put first, and names exactly the addresses it must: the API
// server's the load balancer, the masters and the kubernetes Service's
// IP; etcd's the masters. The kubelets reach the API at the load
// balancer's address.
//
// Not done: the release has no real kubelet and container runtime, so on
// a real foundation its workers register but run no containers; a real
// foundation's workers need a kubelet job with containerd (kubo-release
// packages both) and binaries built for the stemcell. The kubelets share
// one client certificate (group system:nodes, granted by RBAC) rather than
// one per node, so NodeRestriction does not confine them to their own
// Node. A change of the control plane's size (1 to 3) is not an etcd
// member change: plans fix it.
package kuberelease
