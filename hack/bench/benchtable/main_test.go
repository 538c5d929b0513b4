package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/kubefoundry/kubefoundry/vsphere
cpu: Some CPU
BenchmarkProvisionVMs
BenchmarkProvisionVMs-2   	       1	6123456789 ns/op	         1.020 wall100/wall1	         3.000 soap-calls/vm
PASS
ok  	github.com/kubefoundry/kubefoundry/vsphere	70.1s
goos: linux
goarch: amd64
pkg: github.com/kubefoundry/kubefoundry/nsxt
BenchmarkBuildTopology/namespaces=1-2         	       1	  1000 ns/op	         3.000 writes/build
BenchmarkBuildTopology/namespaces=10-2        	       1	  1000 ns/op	         4.000 writes/build
PASS
ok  	github.com/kubefoundry/kubefoundry/nsxt	3.1s
BenchmarkDrain
    kubetest.go:80: no kube-apiserver: run make tools
--- SKIP: BenchmarkDrain
PASS
ok  	github.com/kubefoundry/kubefoundry/kube	0.4s
BenchmarkCreateAttach
    bench_test.go:70: a log line first
    bench_test.go:77: attach timed out
--- FAIL: BenchmarkCreateAttach
FAIL
FAIL	github.com/kubefoundry/kubefoundry/csi	12.0s
FAIL	github.com/kubefoundry/kubefoundry/harbor [build failed]
`

func TestTable(t *testing.T) {
	r, err := parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	targets := []Target{
		{Package: "vsphere", Benchmark: "ProvisionVMs", Metric: "soap-calls/vm", Target: "<= 3", Reason: "r"},
		{Package: "vsphere", Benchmark: "ProvisionVMs", Metric: "wall100/wall1", Target: "<= 1.01", Reason: "r"},
		{Package: "nsxt", Benchmark: "BuildTopology/namespaces=10", Metric: "writes/build", Target: "<= 4", Reason: "r"},
		{Package: "kube", Benchmark: "Drain", Metric: "evictions/s", Target: ">= 20", Reason: "r"},
		{Package: "csi", Benchmark: "CreateAttach", Metric: "soap-calls/volume", Target: "<= 4", Reason: "r"},
		{Package: "harbor", Benchmark: "EnsureProject", Metric: "calls/ensure", Target: "<= 3", Reason: "r"},
		{Package: "vsphere", Benchmark: "ProvisionVMs", Metric: "nope", Target: "<= 3", Reason: "r"},
		{Package: "bosh/director", Benchmark: "RollingUpdate", Metric: "wall/ideal", Target: "<= 1.1", Reason: "r"},
		{Package: "nsxt", Benchmark: "Gone", Metric: "x", Target: "<= 1", Reason: "r"},
		{Package: "nsxt", Benchmark: "BuildTopology/namespaces=1", Metric: "writes/build", Reason: "a yardstick"},
	}
	var out bytes.Buffer
	missed := table(&out, targets, r)
	if missed != 1 {
		t.Errorf("missed = %d, want 1 (wall100/wall1 1.02 > 1.01)", missed)
	}
	for _, line := range []string{"skipped: no kube-apiserver: run make tools", "failed: attach timed out",
		"not run: the package failed: build failed", "not run: the benchmark reported no nope",
		"not run: the package is not in this run", "not run: no such benchmark in the package", "3      -        (yardstick)"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the table lacks %q:\n%s", line, out.String())
		}
	}
	if !strings.Contains(out.String(), "4") || strings.Count(out.String(), " yes") != 2 {
		t.Errorf("want two targets met:\n%s", out.String())
	}
}

func TestParseTarget(t *testing.T) {
	for _, bad := range []string{"", "3", "< 3", "<= x", "<=3"} {
		if _, _, err := parseTarget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	op, v, err := parseTarget(">= 2.5")
	if err != nil || op != ">=" || v != 2.5 {
		t.Errorf("got %q %v %v", op, v, err)
	}
}

// TestTargetsFile: the repository's targets file reads, every entry with
// a reason.
func TestTargetsFile(t *testing.T) {
	ts, err := readTargets("../targets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) < 20 {
		t.Errorf("%d targets: fewer than the figures the SDK promises", len(ts))
	}
}
