package yamltree_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

func TestChecker(t *testing.T) {
	k := yamltree.NewChecker(nil)
	assert.False(t, k.Unread("/a"))
	seen := map[string]bool{}
	for i, name := range []string{"a", "", " ", "b", "a", "a"} {
		at := yamltree.Index("/things", i) + "/name"
		k.Required(at, name)
		k.Unique(seen, at, name, "the thing")
	}
	k.Add("/x", "v", "is %d too many", 2)
	assert.Equal(t, []kubefoundry.FieldError{
		{Field: "/things/1/name", Reason: "is required"},
		{Field: "/things/2/name", Reason: "is required"},
		{Field: "/things/4/name", Value: "a", Reason: "the thing is defined more than once"},
		{Field: "/things/5/name", Value: "a", Reason: "the thing is defined more than once"},
		{Field: "/x", Value: "v", Reason: "is 2 too many"},
	}, k.Problems)

	k = yamltree.NewChecker(func(p string) bool { return p == "/a" })
	assert.True(t, k.Unread("/a"))
	assert.False(t, k.Unread("/b"))
}

func TestSelectorsPretty(t *testing.T) {
	sel := yamltree.Selectors{}
	groups := []string{"master", "worker", "", "worker", "a/b~c"}
	sel.Add("/instance_groups", "name", len(groups), func(i int) string { return groups[i] })
	sel.Add("/instance_groups/1/jobs", "name", 1, func(int) string { return "kubelet" })
	sel.Add("/stemcells", "alias", 1, func(int) string { return "default" })
	for _, tc := range []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/name", "/name"},
		{"/instance_groups", "/instance_groups"},
		{"/instance_groups/0/instances", "/instance_groups/name=master/instances"},
		{"/instance_groups/1/jobs/0/release", "/instance_groups/name=worker/jobs/name=kubelet/release"},
		{"/instance_groups/2/name", "/instance_groups/2/name"},               // no name
		{"/instance_groups/3/name", "/instance_groups/3/name"},               // a second worker
		{"/instance_groups/4/azs/0", "/instance_groups/name=a~1b~0c/azs/0"},  // escaped as ops-files do
		{"/instance_groups/5/name", "/instance_groups/5/name"},               // past the list
		{"/instance_groups/x/name", "/instance_groups/x/name"},               // not an index
		{"/stemcells/0/os", "/stemcells/alias=default/os"},                   // another key
		{"/instance_groups/3/jobs/0/name", "/instance_groups/3/jobs/0/name"}, // lists under an unnamed element keep indexes
		{"/other/0/instance_groups/0", "/other/0/instance_groups/0"},         // only the list's own path
	} {
		assert.Equal(t, tc.want, sel.Pretty(tc.in), tc.in)
	}
}

func TestFinish(t *testing.T) {
	require.NoError(t, yamltree.Finish("thing", nil, nil, yamltree.Selectors{}))

	sel := yamltree.Selectors{}
	sel.Add("/networks", "name", 2, func(i int) string { return []string{"a", "b"}[i] })
	lines := map[string]int{"": 1, "/networks": 3, "/networks/0": 4, "/networks/1": 9, "/networks/1/range": 10}
	err := yamltree.Finish("cloud config", []kubefoundry.FieldError{
		{Field: "/networks/1/range", Reason: "first by line 10"},
		{Field: "/networks/1/gateway", Reason: "its parent's line"},
		{Field: "/networks/0/name", Reason: "has a line", Line: 5},
		{Field: "/", Reason: "the root"},
		{Field: "/compilation", Reason: "nowhere: the root's line"},
	}, lines, sel)
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	var ve *kubefoundry.ValidationError
	require.True(t, errors.As(err, &ve))
	assert.Equal(t, "cloud config", ve.Object)
	assert.Equal(t, []kubefoundry.FieldError{
		{Field: "/", Reason: "the root", Line: 1},
		{Field: "/compilation", Reason: "nowhere: the root's line", Line: 1},
		{Field: "/networks/name=a/name", Reason: "has a line", Line: 5},
		{Field: "/networks/name=b/gateway", Reason: "its parent's line", Line: 9},
		{Field: "/networks/name=b/range", Reason: "first by line 10", Line: 10},
	}, ve.Problems, "in line order, the same line in the order found")

	err = yamltree.Finish("cloud config", []kubefoundry.FieldError{{Field: "/networks/0/name", Reason: "built in Go"}}, nil, sel)
	require.True(t, errors.As(err, &ve))
	assert.Equal(t, []kubefoundry.FieldError{{Field: "/networks/name=a/name", Reason: "built in Go"}}, ve.Problems)
}
