//go:build tools

// Package kwok pins the version of kwok (Kubernetes WithOut Kubelet) that
// `make tools` builds into bin/kwok: the controller that plays the kubelet
// of simulated worker nodes (Node status and Lease, pods to Running).
//
// It is a module of its own, not part of hack/tools: kwok v0.8.0 requires
// google.golang.org/grpc v1.81.1 and go.opentelemetry.io/otel v1.44.0,
// newer than Kubernetes v1.36.3 and etcd v3.6.8 are released with; in one
// module those would be upgraded under kube-apiserver and etcd too.
package kwok

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
