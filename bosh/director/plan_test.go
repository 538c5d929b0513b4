package director_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kubefoundry/kubefoundry/bosh/director"
)

func TestPlan(t *testing.T) {
	base := director.Desired{Group: "web", AZ: "z1", Stemcell: "ubuntu-jammy/1.100", Jobs: []string{"nginx/nginx/1"},
		ConfigurationHash: "c1", Networks: "default:10.0.0.10", VMType: "small", DiskSize: 1024, DiskType: "fast"}
	at := func(i int, f func(*director.Desired)) director.Desired {
		d := base
		d.Index = i
		d.Networks = "default:10.0.0.1" + string(rune('0'+i))
		if f != nil {
			f(&d)
		}
		return d
	}
	record := func(i int) director.InstanceRecord {
		applied := at(i, nil)
		return director.InstanceRecord{Deployment: "d", Group: "web", Index: i, ID: "w" + string(rune('0'+i)), VMCID: "vm", DiskCID: "disk", Applied: &applied}
	}
	have := []director.InstanceRecord{record(0), record(1), record(2), record(3), record(4), record(5), record(6), record(7),
		{Deployment: "d", Group: "web", Index: 8, ID: "w8"},                              // never got a VM
		{Deployment: "d", Group: "web", Index: 10, ID: "w10", VMCID: "vm", DiskCID: "d"}, // scaled away
		{Deployment: "d", Group: "web", Index: 11, ID: "w11", VMCID: "vm"},
		{Deployment: "d", Group: "old", Index: 0, ID: "o0", VMCID: "vm"}, // a group removed
	}
	want := []director.Desired{
		at(0, nil),
		at(1, func(d *director.Desired) { d.Stemcell = "ubuntu-jammy/1.200" }),
		at(2, func(d *director.Desired) { d.ConfigurationHash = "c2" }),
		at(3, func(d *director.Desired) { d.Jobs = append(d.Jobs, "syslog/forwarder/2"); d.ConfigurationHash = "c2" }),
		at(4, func(d *director.Desired) { d.DiskSize = 2048 }),
		at(5, func(d *director.Desired) { d.Recreate = true }),
		at(6, func(d *director.Desired) {
			d.VMType = "large"
			d.Networks = "default:10.0.0.99"
			d.AZ = "z2"
			d.Env = "x"
		}),
		at(7, func(d *director.Desired) { d.DiskType = "slow"; d.Stemcell = "ubuntu-jammy/1.200" }),
		at(8, nil),
		at(9, nil), // scaled up
	}
	var got []string
	disk := map[string]bool{}
	for _, c := range director.Plan(want, have) {
		got = append(got, c.String())
		disk[c.String()] = c.DiskChanged
	}
	assert.Equal(t, []string{
		"keep web/w0 (0)",
		"recreate web/w1 (1): stemcell changed (ubuntu-jammy/1.100 -> ubuntu-jammy/1.200)",
		"update web/w2 (2): properties changed",
		"update web/w3 (3): jobs changed, properties changed",
		"update web/w4 (4): persistent disk changed",
		"recreate web/w5 (5): recreate asked",
		"recreate web/w6 (6): az changed (z1 -> z2), vm_type changed, networks changed, env changed",
		"recreate web/w7 (7): stemcell changed (ubuntu-jammy/1.100 -> ubuntu-jammy/1.200), persistent disk changed",
		"recreate web/w8 (8): no VM",
		"create web/? (9): new instance",
		"delete old/o0 (0): not in the manifest",
		"delete web/w11 (11): not in the manifest",
		"delete web/w10 (10): not in the manifest",
	}, got, "by group and index; deletions last, highest index first")
	assert.True(t, disk["update web/w4 (4): persistent disk changed"])
	assert.True(t, disk["create web/? (9): new instance"])
	assert.True(t, disk["recreate web/w8 (8): no VM"], "no disk recorded: one is made")
	assert.True(t, disk["delete web/w10 (10): not in the manifest"])
	assert.False(t, disk["delete web/w11 (11): not in the manifest"], "no disk to delete")
	assert.False(t, disk["update web/w2 (2): properties changed"])

	assert.Empty(t, director.Plan(nil, nil))

	dirty := record(0)
	dirty.Dirty = true
	assert.Equal(t, "update web/w0 (0): an update of it did not finish", director.Plan([]director.Desired{at(0, nil)},
		[]director.InstanceRecord{dirty})[0].String(), "an instance whose update did not finish is updated though nothing changed")
}
