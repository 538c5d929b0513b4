package director

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Desired is what a deploy wants of one instance, each part in a form
// that compares as a whole (name/version, a hash, a canonical string).
type Desired struct {
	Group    string `json:"group"`
	Index    int    `json:"index"`
	AZ       string `json:"az,omitempty"`
	Stemcell string `json:"stemcell"` // os/version
	// Jobs are the instance's jobs as release/job/version, in order.
	Jobs []string `json:"jobs"`
	// ConfigurationHash is the hash of its rendered templates.
	ConfigurationHash string `json:"configuration_hash"`
	// Networks is its networks and addresses in a canonical form.
	Networks string `json:"networks"`
	// VMType is its vm_type, or its vm_resources in a canonical form,
	// with its vm_extensions and its AZ's cloud properties: what the VM
	// is made with.
	VMType string `json:"vm_type"`
	// DiskSize (MB) and DiskType are its persistent disk; 0 for none.
	DiskSize int    `json:"disk_size,omitempty"`
	DiskType string `json:"disk_type,omitempty"`
	Env      string `json:"env,omitempty"` // its env in a canonical form
	// Recreate asks for a new VM whatever changed (bosh deploy --recreate).
	Recreate bool `json:"-"`
}

// The actions of a plan.
const (
	ActionCreate   = "create"
	ActionRecreate = "recreate" // a new VM: AZ, stemcell, vm_type, networks or env changed, or asked
	ActionUpdate   = "update"   // the same VM: jobs, properties or the disk changed
	ActionDelete   = "delete"
	ActionKeep     = "keep"
)

// InstanceChange is one line of a plan: an instance, what is to be done to
// it, and why.
type InstanceChange struct {
	Group   string
	Index   int
	ID      string // "" for an instance to create
	Action  string
	Reasons []string
	// DiskChanged: the persistent disk is to be made anew (and the data
	// migrated) or made for the first time, or deleted.
	DiskChanged bool
	// Swap: the instance's new VM is made, with new addresses, before its
	// old one is stopped (vm_strategy create-swap-delete); a recreate
	// without it is delete-create.
	Swap bool
}

func (c InstanceChange) String() string {
	id := c.ID
	if id == "" {
		id = "?"
	}
	s := fmt.Sprintf("%s %s/%s (%d)", c.Action, c.Group, id, c.Index)
	if len(c.Reasons) > 0 {
		s += ": " + strings.Join(c.Reasons, ", ")
	}
	return s
}

// Plan compares what is wanted with what the director recorded (each
// record's Applied) and says, per instance, what the deploy must do and
// why, as BOSH's director decides it: an instance wanted and not recorded
// is created; one recorded and not wanted is deleted (a group scaled down
// loses its highest indexes); a change of AZ, stemcell, vm_type, networks or
// env, or --recreate, makes a new VM; a change of jobs or properties
// updates the VM in place; a change of the persistent disk's size or type
// makes a new disk. The plan is ordered by group, then index, deletions
// last.
func Plan(want []Desired, have []InstanceRecord) []InstanceChange {
	type key struct {
		group string
		index int
	}
	recorded := map[key]InstanceRecord{}
	for _, r := range have {
		recorded[key{r.Group, r.Index}] = r
	}
	wanted := map[key]bool{}
	var out []InstanceChange
	for _, d := range want {
		k := key{d.Group, d.Index}
		wanted[k] = true
		r, ok := recorded[k]
		if !ok {
			out = append(out, InstanceChange{Group: d.Group, Index: d.Index, Action: ActionCreate, Reasons: []string{"new instance"},
				DiskChanged: d.DiskSize > 0})
			continue
		}
		out = append(out, compare(d, r))
	}
	slices.SortStableFunc(out, func(a, b InstanceChange) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Index, b.Index))
	})
	var gone []InstanceChange
	for _, r := range have {
		if !wanted[key{r.Group, r.Index}] {
			gone = append(gone, InstanceChange{Group: r.Group, Index: r.Index, ID: r.ID, Action: ActionDelete,
				Reasons: []string{"not in the manifest"}, DiskChanged: r.DiskCID != ""})
		}
	}
	slices.SortStableFunc(gone, func(a, b InstanceChange) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(b.Index, a.Index))
	})
	return append(out, gone...)
}

func compare(d Desired, r InstanceRecord) InstanceChange {
	c := InstanceChange{Group: d.Group, Index: d.Index, ID: r.ID, Action: ActionKeep}
	a := r.Applied
	if a == nil || r.VMCID == "" {
		// Nothing known to be on a VM: make it.
		c.Action = ActionRecreate
		c.Reasons = append(c.Reasons, "no VM")
		c.DiskChanged = d.DiskSize > 0 && r.DiskCID == ""
		return c
	}
	recreate := func(why string) {
		c.Action = ActionRecreate
		c.Reasons = append(c.Reasons, why)
	}
	update := func(why string) {
		if c.Action == ActionKeep {
			c.Action = ActionUpdate
		}
		c.Reasons = append(c.Reasons, why)
	}
	if d.Recreate {
		recreate("recreate asked")
	}
	if r.Dirty {
		update("an update of it did not finish")
	}
	if d.AZ != a.AZ {
		recreate(fmt.Sprintf("az changed (%s -> %s)", a.AZ, d.AZ))
	}
	if d.Stemcell != a.Stemcell {
		recreate(fmt.Sprintf("stemcell changed (%s -> %s)", a.Stemcell, d.Stemcell))
	}
	if d.VMType != a.VMType {
		recreate("vm_type changed")
	}
	if d.Networks != a.Networks {
		recreate("networks changed")
	}
	if d.Env != a.Env {
		recreate("env changed")
	}
	if !slices.Equal(d.Jobs, a.Jobs) {
		update("jobs changed")
	}
	if d.ConfigurationHash != a.ConfigurationHash {
		update("properties changed")
	}
	if d.DiskSize != a.DiskSize || d.DiskType != a.DiskType {
		update("persistent disk changed")
		c.DiskChanged = true
	}
	return c
}
