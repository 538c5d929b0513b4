package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunOnEmbeddedSimulator(t *testing.T) {
	t.Setenv("GOVC_URL", "")
	var out, errOut bytes.Buffer
	require.NoError(t, run([]string{"-n", "3", "-sim-clone-delay", "10ms"}, &out, &errOut))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 5, out.String())
	assert.Regexp(t, `^NAME\s+REF\s+IP\s+CREATED`, lines[0])
	for i, l := range lines[1:4] {
		assert.Regexp(t, `^demo-00`+string(rune('0'+i))+`\s+vm-\d+\s+10\.10\.0\.\d+\s+true`, l)
	}
	assert.Contains(t, lines[4], "3 VMs in")
	assert.Contains(t, errOut.String(), "] 3/3", "the progress bar reaches the end")
}

func TestRunJSON(t *testing.T) {
	t.Setenv("GOVC_URL", "")
	var out, errOut bytes.Buffer
	require.NoError(t, run([]string{"-n", "2", "-sim-clone-delay", "10ms", "-json"}, &out, &errOut))
	var summary struct {
		Wall  float64 `json:"wall_seconds"`
		Calls int     `json:"soap_calls"`
		VMs   int     `json:"vms"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &summary))
	assert.Equal(t, 2, summary.VMs)
	assert.Positive(t, summary.Calls)
	assert.Positive(t, summary.Wall)
}

func TestRunBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Error(t, run([]string{"-n", "0"}, &out, &errOut))
}
