package vsphere

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry"
)

// Owner identifies who a VM belongs to. It is recorded on the VM when it
// is created, so that a VM can always be traced to its cluster, even when
// the caller has lost every other record of it.
type Owner struct {
	Cluster string `json:"cluster"`
	Group   string `json:"group"` // instance group, such as "master" or "worker"
	Index   int    `json:"index"`
}

func (o Owner) String() string { return fmt.Sprintf("%s/%s/%d", o.Cluster, o.Group, o.Index) }

// VMSpec describes one VM to clone from a template (a stemcell).
type VMSpec struct {
	// Name of the VM, unique within its folder.
	Name  string `json:"name"`
	Owner Owner  `json:"owner"`

	// Template is the name or inventory path of the VM or template to clone.
	Template string `json:"template"`
	// LinkedClone clones from the template's current snapshot with a delta
	// disk instead of copying the whole disk. A source VM without a snapshot
	// gets one, once; a template without one is an error. When Datastore
	// names a datastore the source is not on, the source is first
	// replicated there (once, as "<template>.replica.<datastore id>" beside
	// it, then snapshotted), as the BOSH vSphere CPI does, so each delta
	// disk sits beside its base.
	LinkedClone bool `json:"linkedClone,omitempty"`

	// Folder is the VM folder, relative to the datacenter's vm folder or an
	// absolute inventory path. Missing folders are created.
	Folder string `json:"folder"`
	// Cluster is the compute cluster to place the VM in.
	Cluster string `json:"cluster"`
	// ResourcePool is a child pool of the cluster's root pool, created if
	// missing, or an absolute inventory path of an existing pool. Empty means
	// the cluster's root pool.
	ResourcePool string `json:"resourcePool,omitempty"`
	// Datastore for the VM's files and disks; empty keeps the template's.
	Datastore string `json:"datastore,omitempty"`
	// StoragePolicy is the name of an SPBM policy applied to the VM's home
	// and to its new disks.
	StoragePolicy string `json:"storagePolicy,omitempty"`

	CPUs     int32  `json:"cpus,omitempty"`     // zero keeps the template's
	MemoryMB int64  `json:"memoryMB,omitempty"` // zero keeps the template's
	Disks    []Disk `json:"disks,omitempty"`    // extra disks
	NICs     []NIC  `json:"nics,omitempty"`     // empty keeps the template's NICs

	// UserData is handed to cloud-init's VMware datasource as
	// guestinfo.userdata (base64).
	UserData []byte `json:"userData,omitempty"`
	// ExtraConfig entries are added to the VM's configuration as they are.
	ExtraConfig map[string]string `json:"extraConfig,omitempty"`

	// PoweredOff leaves the VM off after the clone.
	PoweredOff bool `json:"poweredOff,omitempty"`
	// IPTimeout is how long to wait for the guest to report an IP address.
	// Zero does not wait.
	IPTimeout time.Duration `json:"ipTimeout,omitempty"`
}

// Disk is an extra, thin-provisioned disk.
type Disk struct {
	SizeGB int64 `json:"sizeGB"`
}

// NIC is a network card on a named network. An empty IP means DHCP.
type NIC struct {
	// Network is the name or inventory path of a standard portgroup, a
	// distributed portgroup or an NSX segment.
	Network string `json:"network"`
	// IP is a static address with its prefix length, such as 10.0.0.5/24.
	IP      string   `json:"ip,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
	// MAC sets a manual MAC address. It is required for static addresses
	// on VMs with more than one NIC, so that the guest can tell them apart.
	MAC string `json:"mac,omitempty"`
}

// VMResult is the outcome of one VMSpec.
type VMResult struct {
	Name    string                       `json:"name"`
	Ref     types.ManagedObjectReference `json:"ref"`
	IP      string                       `json:"ip,omitempty"`
	Created bool                         `json:"created"` // false when the VM existed already
	// KeptDisks, from DestroyVMs, are the files of the disks that were
	// not the VM's own, detached and kept (see DestroyVMs).
	KeptDisks []string `json:"keptDisks,omitempty"`
	Err       error    `json:"-"`
}

var (
	vmNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,78}[A-Za-z0-9])?$`)
	macRE    = regexp.MustCompile(`^00:50:56:[0-3][0-9a-fA-F]:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}$`)
)

// validate checks every spec and returns all problems at once.
func validateSpecs(specs []VMSpec) error {
	verr := &ValidationError{Object: "spec"}
	seen := map[string]int{}
	for i, s := range specs {
		f := fmt.Sprintf("specs[%d]", i)
		switch {
		case s.Name == "":
			verr.Add(f+".name", "", "required")
		case !vmNameRE.MatchString(s.Name):
			verr.Add(f+".name", "", "%q: letters, digits, '.', '_' and '-', at most 80, starting and ending with a letter or digit", s.Name)
		}
		key := s.Folder + "/" + s.Name
		if j, dup := seen[key]; dup && s.Name != "" {
			verr.Add(f+".name", "", "%q repeats specs[%d] in the same folder", s.Name, j)
		}
		seen[key] = i
		var fe *FieldError
		if errors.As(kubefoundry.ClusterID(s.Owner.Cluster).Validate(), &fe) {
			verr.Add(f+".owner.cluster", s.Owner.Cluster, "%s", fe.Reason)
		}
		if strings.Contains(s.Owner.Group, "/") {
			verr.Add(f+".owner.group", "", "must not contain '/'")
		}
		if s.Owner.Index < 0 {
			verr.Add(f+".owner.index", "", "must not be negative")
		}
		if s.Template == "" {
			verr.Add(f+".template", "", "required")
		}
		if s.Cluster == "" {
			verr.Add(f+".cluster", "", "required")
		}
		if s.Folder == "" {
			verr.Add(f+".folder", "", "required")
		}
		if s.CPUs < 0 {
			verr.Add(f+".cpus", "", "must not be negative")
		}
		if s.MemoryMB < 0 || s.MemoryMB%4 != 0 {
			verr.Add(f+".memoryMB", "", "must be a non-negative multiple of 4")
		}
		for j, d := range s.Disks {
			if d.SizeGB <= 0 {
				verr.Add(fmt.Sprintf("%s.disks[%d].sizeGB", f, j), "", "must be positive")
			}
		}
		static := 0
		for j, n := range s.NICs {
			nf := fmt.Sprintf("%s.nics[%d]", f, j)
			if n.Network == "" {
				verr.Add(nf+".network", "", "required")
			}
			if n.IP != "" {
				static++
				if _, err := netip.ParsePrefix(n.IP); err != nil {
					verr.Add(nf+".ip", "", "%q is not an address with a prefix length, such as 10.0.0.5/24", n.IP)
				}
			}
			if n.Gateway != "" {
				if _, err := netip.ParseAddr(n.Gateway); err != nil {
					verr.Add(nf+".gateway", "", "%q is not an IP address", n.Gateway)
				}
			}
			for k, d := range n.DNS {
				if _, err := netip.ParseAddr(d); err != nil {
					verr.Add(fmt.Sprintf("%s.dns[%d]", nf, k), "", "%q is not an IP address", d)
				}
			}
			if n.MAC != "" && !macRE.MatchString(n.MAC) {
				verr.Add(nf+".mac", "", "%q is not in VMware's manual range 00:50:56:00:00:00-00:50:56:3f:ff:ff", n.MAC)
			}
		}
		if static > 0 && len(s.NICs) > 1 {
			for j, n := range s.NICs {
				if n.MAC == "" {
					verr.Add(fmt.Sprintf("%s.nics[%d].mac", f, j), "", "required when a VM with several NICs has a static IP")
				}
			}
		}
		if s.IPTimeout < 0 {
			verr.Add(f+".ipTimeout", "", "must not be negative")
		}
		if s.IPTimeout > 0 && s.PoweredOff {
			verr.Add(f+".ipTimeout", "", "a VM left powered off never reports an IP")
		}
		for k := range s.ExtraConfig {
			if strings.HasPrefix(k, ownerKeyPrefix) || strings.HasPrefix(k, "guestinfo.metadata") || strings.HasPrefix(k, "guestinfo.userdata") {
				verr.Add(f+".extraConfig["+k+"]", "", "reserved: set by ProvisionVMs")
			}
		}
	}
	return verr.Err()
}
