package health

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	assert.Equal(t, 30*time.Second, c.Interval)
	assert.Equal(t, 45*time.Second, c.Timeout, "one and a half intervals")
	assert.Equal(t, MeltdownGuard{Count: 5, Percent: 20, Window: 10 * time.Minute}, c.Meltdown, "BOSH's defaults")
	c = Config{Interval: 2 * time.Second}.withDefaults()
	assert.Equal(t, 3*time.Second, c.Timeout)
	given := Config{Interval: time.Second, Timeout: time.Minute, Meltdown: MeltdownGuard{Count: 1, Percent: 50, Window: time.Hour}}
	assert.Equal(t, given, given.withDefaults(), "what is given is kept")
}
