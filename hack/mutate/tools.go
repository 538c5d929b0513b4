//go:build tools

// Package mutate pins gremlins, the mutation tester `make mutate` runs; it
// is a module of its own so its dependencies never move the SDK's or the
// kube tools'.
package mutate

import _ "github.com/go-gremlins/gremlins/cmd/gremlins"
