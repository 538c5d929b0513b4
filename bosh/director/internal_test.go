package director

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

func TestBatches(t *testing.T) {
	no, yes := false, true
	group := func(name string, serial *bool, errand bool) manifest.InstanceGroup {
		g := manifest.InstanceGroup{Name: name}
		if serial != nil {
			g.Update = &manifest.Update{Serial: serial}
		}
		if errand {
			g.Lifecycle = manifest.LifecycleErrand
		}
		return g
	}
	names := func(m *manifest.Manifest) [][]string {
		var out [][]string
		for _, b := range batches(m) {
			var ns []string
			for _, g := range b {
				ns = append(ns, g.Name)
			}
			out = append(out, ns)
		}
		return out
	}
	m := &manifest.Manifest{InstanceGroups: []manifest.InstanceGroup{
		group("a", nil, false), group("b", &no, false), group("c", &no, false), group("smoke", &no, true),
		group("d", &no, false), group("e", &yes, false), group("f", &no, false)}}
	assert.Equal(t, [][]string{{"a"}, {"b", "c", "d"}, {"e"}, {"f"}}, names(m),
		"adjacent serial: false groups together, errands left out")
	m.Update = &manifest.Update{Serial: &no}
	m.InstanceGroups[0].Update = nil
	assert.Equal(t, [][]string{{"a", "b", "c", "d"}, {"e"}, {"f"}}, names(m), "the deployment's serial: false applies to groups without their own")
}

func TestNetmask(t *testing.T) {
	assert.Equal(t, "255.255.255.0", netmask(netip.MustParsePrefix("10.0.0.0/24")))
	assert.Equal(t, "255.255.240.0", netmask(netip.MustParsePrefix("10.0.0.0/20")))
	assert.Equal(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00", netmask(netip.MustParsePrefix("fd00::/120")), "IPv6 too")
}
