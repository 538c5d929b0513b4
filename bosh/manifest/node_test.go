package manifest_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
)

// TestParseNodeAfterOpsFile: a manifest changed by an ops-file and
// interpolated is read from the node tree, and a problem the ops-file
// brought in names the ops-file's line, not a line of bytes written again.
func TestParseNodeAfterOpsFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "tkgi.yml"))
	require.NoError(t, err)
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(b, &doc))
	want, err := manifest.Parse(b)
	require.NoError(t, err)
	got, err := manifest.ParseNode(&doc)
	require.NoError(t, err)
	assert.Equal(t, want, got, "the same manifest from bytes and from the tree")

	ops, err := opsfile.ParseOps([]byte(`# add an instance group, with a bad count
- type: replace
  path: /instance_groups/-
  value:
    name: ingress
    instances: -3
    azs: [z1]
    jobs: []
    vm_type: small
    stemcell: jammy
    networks: [{name: node-network}]
`))
	require.NoError(t, err)
	require.NoError(t, opsfile.Apply(&doc, ops))
	_, err = manifest.ParseNode(&doc)
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 1)
	assert.Equal(t, "/instance_groups/name=ingress/instances", ve.Problems[0].Field)
	assert.Equal(t, 6, ve.Problems[0].Line, "the line in the ops-file that brought it")

	_, err = manifest.ParseNode(&yaml.Node{Kind: yaml.DocumentNode})
	require.ErrorAs(t, err, &ve)
}
