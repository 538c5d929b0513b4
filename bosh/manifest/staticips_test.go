package manifest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestStaticIPsAsCloudConfigReadsThem: static_ips are read by the same
// parser as a cloud config's static and reserved entries (and as
// cloudconfig.Allocate reads them): an address with a zone is not an
// entry, and an IPv4-mapped IPv6 address is the IPv4 address it maps.
func TestStaticIPsAsCloudConfigReadsThem(t *testing.T) {
	problems := func(instances int, ips ...string) []string {
		m := valid()
		m.InstanceGroups[0].Instances = instances
		m.InstanceGroups[0].Networks[0].StaticIPs = ips
		if err := m.Validate(); err != nil {
			return reasons(t, err)
		}
		return nil
	}
	const at = "/instance_groups/name=worker/networks/name=nodes/static_ips"
	assert.Equal(t, []string{at + "/0: is not an address, a range (a - b) or a CIDR"}, problems(1, "fe80::1%eth0"))
	assert.Equal(t, []string{at + "/0: is not a range of two addresses (a - b)"}, problems(1, "fe80::1%eth0 - fe80::2"))
	assert.Equal(t, []string{at + "/1: names an address that another entry names too"}, problems(2, "10.0.0.1", "::ffff:10.0.0.1"))
	assert.Nil(t, problems(2, "10.0.0.1 - ::ffff:10.0.0.2"), "one family")
	assert.Nil(t, problems(3, "::ffff:10.0.0.1", "10.0.0.2 - 10.0.0.3"), "no overlap")
}
