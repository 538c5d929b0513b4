package lifecycle

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// A cluster moves to the same version, a later patch or the next minor;
// never back, and never over a minor.
func TestUpgradable(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{"1.36.3", "1.36.3", true},
		{"1.36.3", "1.36.4", true},
		{"1.36.3", "1.37.0", true},
		{"1.36.3", "1.38.0", false},
		{"1.36.3", "1.36.2", false},
		{"1.36.3", "1.35.9", false},
		{"1.36.3", "2.0.0", false},
		{"1.36.3", "v1.37.1", true},
		{"1.36", "1.37.0", false},
		{"1.36.3", "latest", false},
	} {
		err := upgradable(c.from, c.to)
		assert.Equal(t, c.ok, err == nil, "%s to %s: %v", c.from, c.to, err)
	}
}

// The release cache keeps the newest built releases and removes the rest,
// and leaves other files alone.
func TestPruneReleases(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var names []string
	for i := range 6 {
		name := filepath.Join(dir, fmt.Sprintf("kubefoundry-kubernetes-1.36.3+kf.%08d-ubuntu-jammy-1.0.tgz", i))
		require.NoError(t, os.WriteFile(name, nil, 0o644))
		require.NoError(t, os.Chtimes(name, now, now.Add(time.Duration(i)*time.Minute)))
		names = append(names, name)
	}
	other := filepath.Join(dir, ".building-123")
	require.NoError(t, os.WriteFile(other, nil, 0o644))
	pruneReleases(dir, 4, zap.NewNop())
	for i, n := range names {
		_, err := os.Stat(n)
		assert.Equal(t, i >= 2, err == nil, "%s: the 4 newest are kept", filepath.Base(n))
	}
	assert.FileExists(t, other)
	pruneReleases(dir, 4, zap.NewNop())
	left, err := filepath.Glob(filepath.Join(dir, "*.tgz"))
	require.NoError(t, err)
	assert.Len(t, left, 4)
}
