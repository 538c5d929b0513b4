package vsphere_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const defaultIPTimeout = 30 * time.Second

func TestProvisionVMs(t *testing.T) {
	s := newSim(t)
	c := s.client(t)
	ctx := context.Background()

	res, err := c.ProvisionVMs(ctx, specs("alpha", 5))
	require.NoError(t, err)
	require.Len(t, res, 5)
	for i, r := range res {
		assert.True(t, r.Created, r.Name)
		assert.NotEmpty(t, r.Ref.Value)
		assert.Equal(t, specs("alpha", 5)[i].Name, r.Name)
		assert.NotEmpty(t, r.IP)
	}
	t.Logf("stats: %+v", c.Stats())
}
