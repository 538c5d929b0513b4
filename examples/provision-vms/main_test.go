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

// TestRunFailureSaysWhy: a cause every VM shares is printed once, in the
// error -quiet and -json print too, not "2 of 2 VMs failed" alone.
func TestRunFailureSaysWhy(t *testing.T) {
	t.Setenv("GOVC_URL", "")
	for _, mode := range [][]string{nil, {"-quiet"}, {"-json"}} {
		var out, errOut bytes.Buffer
		err := run(append([]string{"-n", "2", "-sim-clone-delay", "10ms", "-template", "nope"}, mode...), &out, &errOut)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `2 of 2 VMs failed: template: virtual machine "nope" not found`, "%v", mode)
		assert.Equal(t, 1, strings.Count(err.Error(), "not found"), "said once: %v", err)
		if mode == nil {
			assert.Equal(t, 2, strings.Count(out.String(), "(below)"), out.String())
			assert.NotContains(t, out.String(), "not found", "not repeated on every row")
		}
		if len(mode) == 1 && mode[0] == "-json" {
			var summary struct {
				Results []struct {
					Name, Error string
				} `json:"results"`
			}
			require.NoError(t, json.Unmarshal(out.Bytes(), &summary))
			require.Len(t, summary.Results, 2)
			assert.Contains(t, summary.Results[0].Error, "not found")
		}
	}
}

func TestRunBadOwner(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run([]string{"-owner", "Prod_1"}, &out, &errOut)
	require.ErrorContains(t, err, "-owner")
	assert.ErrorContains(t, err, "lower-case")
}
