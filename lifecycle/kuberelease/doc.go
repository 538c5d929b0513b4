// Package kuberelease is the BOSH release that puts Kubernetes on a
// cluster's VMs, as TKGI's kubo release does, and the deployment manifest
// that deploys it: Build makes the release from Kubernetes binaries the
// caller supplies, and Deployment.Manifest writes a cluster's manifest.
//
// Not here yet (issue 17): the workers' kubelet job.
package kuberelease
