//go:build tools

// Package tools pins benchstat, which compares two runs of make bench.
package tools

import _ "golang.org/x/perf/cmd/benchstat"
