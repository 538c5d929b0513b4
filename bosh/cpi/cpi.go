package cpi

import (
	"context"
	"encoding/json"
)

// CPI is BOSH's Cloud Provider Interface, version 2: what a director asks
// of a cloud. Every cloud id ("cid") is the CPI's own string; the director
// only stores and hands it back. Methods return *Error for the failures
// BOSH gives a type to (VM or disk not found, VM creation failed, not
// implemented); a plain error is reported as Bosh::Clouds::CloudError.
type CPI interface {
	// Info says which stemcell formats the CPI takes and its API version.
	Info(ctx context.Context) (Info, error)

	// CreateStemcell makes a stemcell from the image at imagePath (the
	// stemcell tarball's "image" file, unpacked) and returns its cid.
	CreateStemcell(ctx context.Context, imagePath string, cloudProps CloudProps) (string, error)
	DeleteStemcell(ctx context.Context, stemcellCID string) error

	// CreateVM makes a VM from the stemcell, powered on, on the networks,
	// its agent configured with agentID and env; diskCIDs are the disks it
	// will likely attach (a placement hint). It returns the VM's cid and
	// its networks as configured.
	CreateVM(ctx context.Context, agentID, stemcellCID string, cloudProps CloudProps, networks Networks, diskCIDs []string, env Env) (string, Networks, error)
	DeleteVM(ctx context.Context, vmCID string) error
	HasVM(ctx context.Context, vmCID string) (bool, error)
	RebootVM(ctx context.Context, vmCID string) error
	SetVMMetadata(ctx context.Context, vmCID string, metadata Metadata) error
	// CalculateVMCloudProperties turns vm_resources into cloud properties.
	CalculateVMCloudProperties(ctx context.Context, resources VMResources) (CloudProps, error)

	// CreateDisk makes a persistent disk of sizeMB, near vmCID when set.
	CreateDisk(ctx context.Context, sizeMB int, cloudProps CloudProps, vmCID string) (string, error)
	DeleteDisk(ctx context.Context, diskCID string) error
	HasDisk(ctx context.Context, diskCID string) (bool, error)
	// AttachDisk attaches the disk and returns the hint the agent finds it
	// by (a device path, or a hash such as {"id": ..., "path": ...}).
	AttachDisk(ctx context.Context, vmCID, diskCID string) (DiskHint, error)
	DetachDisk(ctx context.Context, vmCID, diskCID string) error
	ResizeDisk(ctx context.Context, diskCID string, newSizeMB int) error
	SetDiskMetadata(ctx context.Context, diskCID string, metadata Metadata) error
	// GetDisks lists the disks attached to the VM.
	GetDisks(ctx context.Context, vmCID string) ([]string, error)
	SnapshotDisk(ctx context.Context, diskCID string, metadata Metadata) (string, error)
	DeleteSnapshot(ctx context.Context, snapshotCID string) error
}

// APIVersion is the CPI API version this package speaks.
const APIVersion = 2

// Info is what info answers.
type Info struct {
	StemcellFormats []string `json:"stemcell_formats"`
	APIVersion      int      `json:"api_version,omitempty"`
}

// CloudProps are the cloud_properties of a vm_type, disk_type, network,
// az or stemcell: only the CPI knows their meaning.
type CloudProps map[string]any

// Env is a VM's env: the deployment's, with the director's "bosh" hash
// (group, groups, tags) added.
type Env map[string]any

// Metadata are the tags the director sets on a VM or disk.
type Metadata map[string]string

// Network is one of a VM's networks, as the director sends it.
type Network struct {
	Type            string     `json:"type,omitempty"` // manual, dynamic or vip
	IP              string     `json:"ip,omitempty"`
	Netmask         string     `json:"netmask,omitempty"`
	Gateway         string     `json:"gateway,omitempty"`
	DNS             []string   `json:"dns,omitempty"`
	Default         []string   `json:"default,omitempty"` // "dns", "gateway"
	MAC             string     `json:"mac,omitempty"`
	CloudProperties CloudProps `json:"cloud_properties,omitempty"`
}

// Networks are a VM's networks by name.
type Networks map[string]Network

// VMResources are an instance group's vm_resources.
type VMResources struct {
	CPU               int `json:"cpu"`
	RAM               int `json:"ram"`                 // MB
	EphemeralDiskSize int `json:"ephemeral_disk_size"` // MB
}

// DiskHint is how the agent finds an attached disk: a string (a device
// path) or a hash. It is passed through as JSON.
type DiskHint = json.RawMessage

// AgentSettings are an agent's settings as a CPI gives them to the VM and
// BOSH agents read them (bosh-agent's settings.Settings): who the agent
// is, how it reaches the bus and the blobstore, its networks and disks.
type AgentSettings struct {
	AgentID   string             `json:"agent_id"`
	VM        AgentSettingsVM    `json:"vm"`
	Networks  Networks           `json:"networks"`
	Disks     AgentSettingsDisks `json:"disks"`
	MBus      string             `json:"mbus"`
	NTP       []string           `json:"ntp"`
	Blobstore map[string]any     `json:"blobstore,omitempty"`
	Env       Env                `json:"env"`
}

// AgentSettingsVM names the VM.
type AgentSettingsVM struct {
	Name string `json:"name"`
}

// AgentSettingsDisks are the VM's disks: persistent ones by disk cid, with
// the hint the agent finds them by.
type AgentSettingsDisks struct {
	System     string              `json:"system"`
	Ephemeral  string              `json:"ephemeral,omitempty"`
	Persistent map[string]DiskHint `json:"persistent"`
}
