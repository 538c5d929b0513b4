package lifecycle

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
