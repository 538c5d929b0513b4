//go:build tools

// Package tools pins the versions of the tools this module builds.
//
// The kube binaries come from k8s.io/kubernetes, whose go.mod points every
// k8s.io staging module at a path inside its own repository
// (./staging/src/k8s.io/...). Those replace directives are ignored outside
// that repository, so go.mod here replaces each staging module with its
// published v0.36.3 release, the one cut from the same commit as v1.36.3.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "honnef.co/go/tools/cmd/staticcheck"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
