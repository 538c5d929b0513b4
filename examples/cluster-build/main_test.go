package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example as make demo runs it, smaller: it builds a cluster on the
// simulated foundation, kubectl lists its nodes Ready through the load
// balancer, and the deletion leaves nothing.
func TestClusterBuild(t *testing.T) {
	bin, err := filepath.Abs("../../bin")
	require.NoError(t, err)
	if _, _, err := binaries(t.Context(), bin); err != nil {
		if os.Getenv("KUBEFOUNDRY_REQUIRE_KUBE") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	state := t.TempDir()
	// Three control-plane nodes, as the demo has: one in each AZ, up
	// together (etcd's quorum needs two), upgraded one at a time.
	err = run(ctx, []string{"-name", "ex", "-control-plane", "3", "-workers", "1", "-resize", "2", "-bin", bin, "-state", state}, &out, &errOut)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	s := out.String()
	for _, stage := range []string{"network", "cloud config", "stemcell", "release", "deploy", "api", "nodes"} {
		assert.Regexp(t, `\[\d/7\] `+stage+` done`, s)
	}
	for i, az := range []string{"az1", "az2", "az3"} {
		assert.Regexp(t, fmt.Sprintf(`(?m)^127\.\d+\.\d+\.\d+\s+master/%d\s+%s\s`, i, az), s, "the control plane spread over the AZs")
	}
	assert.GreaterOrEqual(t, len(regexp.MustCompile(`(?m)^127\.\d+\.\d+\.\d+\s+Ready\s+control-plane`).FindAllString(s, -1)), 3,
		"kubectl shows the control-plane nodes Ready")
	assert.Len(t, regexp.MustCompile(`(?m)^127\.\d+\.\d+\.\d+\s+Ready\s+<none>`).FindAllString(s, -1), 5,
		"and the worker, then the two after the resize, then the two after the upgrade")
	assert.Contains(t, s, "resized in")
	assert.Contains(t, s, "deployment.apps/web created")
	assert.Contains(t, s, "runs ubuntu-jammy/1.0 (upgrade available: true)")
	assert.Regexp(t, `upgraded to ubuntu-jammy/1\.1 in .*; web kept at least [34] of 4 pods ready`, s)
	assert.Contains(t, s, "drain: evicted default/web-", "a worker drained before its VM was replaced")
	assert.Regexp(t, `\[\d/7\] deploy done`, s)
	assert.Regexp(t, `API at https://127\.\d+\.\d+\.\d+:8443 through the load balancer`, s)
	assert.Contains(t, s, "Left behind: 0 VMs, 0 NSX objects")
	assert.Contains(t, s, "of clusters no record knows): 0 found")
	assert.FileExists(t, filepath.Join(state, "kubeconfig"))
	assert.FileExists(t, filepath.Join(state, "foundation.log"))
	assert.NotContains(t, s, "FileAlreadyExists", "vcsim's own log goes to the log file")
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-name", "Bad_Name"}, {"-workers", "-1"}, {"-resize", "-1"}, {"extra"}} {
		_, err := parse(args, &bytes.Buffer{})
		assert.Error(t, err, "%q", args)
	}
	err := run(t.Context(), []string{"-bin", t.TempDir()}, &bytes.Buffer{}, &bytes.Buffer{})
	require.ErrorContains(t, err, "make tools")
}
