//go:build tools

// Package tools pins the versions of the tools this module builds.
package tools

import (
	_ "honnef.co/go/tools/cmd/staticcheck"
)
