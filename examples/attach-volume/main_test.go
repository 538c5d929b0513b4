package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunOnEmbeddedSimulator(t *testing.T) {
	t.Setenv("GOVC_URL", "")
	var out bytes.Buffer
	require.NoError(t, run([]string{"-n", "3"}, &out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 5, out.String())
	assert.Regexp(t, `^NAME\s+ID\s+SIZE \(MB\)\s+ATTACHED TO`, lines[0])
	// csi's calls go through vsphere's session and are counted there.
	assert.Regexp(t, `^\d+ SOAP calls on one session \([1-9]\d* CNS\), 0 re-logins$`, lines[4])
	for _, l := range lines[1:4] {
		assert.Regexp(t, `^demo-pv-\d\s+\S+\s+1024\s+vm-\d+$`, l)
	}
}
