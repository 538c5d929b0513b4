//go:build tools

// Package harbor pins what hack/harbor/build.sh builds into bin/harbor.
//
//   - github.com/goharbor/harbor/src is Harbor's own Go module (core,
//     jobservice, registryctl). Its commands do not build from the module
//     cache: the API server under src/server/v2.0/{restapi,models} is
//     generated at build time (`make gen_apis`). build.sh copies the module
//     to a scratch directory, drops its vendor directory, generates that code
//     and builds there with Harbor's own go.mod and go.sum; the import below
//     only pins the version (and its go.sum lines) for that copy.
//   - github.com/go-swagger/go-swagger generates that API server, with the
//     templates of github.com/goharbor/harbor@v2.4.0+incompatible, the
//     repository root at the same release (swagger.yaml, templates, SQL
//     migrations; it holds no Go package, so build.sh pins it itself).
//   - github.com/distribution/distribution/v3 is the registry behind core.
//
// golang.org/x/tools is raised to v0.51.0 (the version hack/tools uses): the
// version go-swagger v0.25.0 would get here, v0.22.0, does not compile with
// current Go ("invalid array length" in internal/tokeninternal).
package harbor

import (
	_ "github.com/distribution/distribution/v3/cmd/registry"
	_ "github.com/go-swagger/go-swagger/cmd/swagger"
	_ "github.com/goharbor/harbor/src/lib/log"
)
