package manifest

// Manifest is a BOSH deployment manifest (v2, with a cloud config): what a
// deployment runs (releases, stemcells, instance groups), how it is
// updated, what credentials it declares and where add-ons go. The fields
// are in the order BOSH documents the keys, which is the order Marshal
// writes them.
type Manifest struct {
	// Name is the deployment's name, unique on a director.
	Name string `json:"name" yaml:"name"`
	// DirectorUUID is the legacy director_uuid key; CLI v2 ignores it.
	DirectorUUID string `json:"director_uuid,omitempty" yaml:"director_uuid,omitempty"`
	// Features opts into director features for this deployment.
	Features *Features `json:"features,omitempty" yaml:"features,omitempty"`
	// Releases lists the releases the jobs come from.
	Releases []Release `json:"releases" yaml:"releases"`
	// Stemcells lists the stemcells instance groups use, by alias.
	Stemcells []Stemcell `json:"stemcells" yaml:"stemcells"`
	// Update says how instances are updated; an instance group's own
	// update block overrides it key by key.
	Update *Update `json:"update,omitempty" yaml:"update,omitempty"`
	// InstanceGroups are the VMs of the deployment and the jobs on them.
	InstanceGroups []InstanceGroup `json:"instance_groups" yaml:"instance_groups"`
	// Addons are jobs placed on the instance groups their include and
	// exclude rules select.
	Addons []Addon `json:"addons,omitempty" yaml:"addons,omitempty"`
	// Properties are the deprecated global properties.
	Properties Map `json:"properties,omitzero" yaml:"properties,omitempty"`
	// Variables are the credentials the director generates when its
	// config server does not have them yet.
	Variables []Variable `json:"variables,omitempty" yaml:"variables,omitempty"`
	// Tags are sent to the CPI to tag every VM.
	Tags map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
}

// Features are the director features a deployment opts into. A nil field
// leaves the director's default.
type Features struct {
	ConvergeVariables    *bool `json:"converge_variables,omitempty" yaml:"converge_variables,omitempty"`
	RandomizeAZPlacement *bool `json:"randomize_az_placement,omitempty" yaml:"randomize_az_placement,omitempty"`
	UseDNSAddresses      *bool `json:"use_dns_addresses,omitempty" yaml:"use_dns_addresses,omitempty"`
	UseShortDNSAddresses *bool `json:"use_short_dns_addresses,omitempty" yaml:"use_short_dns_addresses,omitempty"`
	UseLinkDNSNames      *bool `json:"use_link_dns_names,omitempty" yaml:"use_link_dns_names,omitempty"`
	UseTmpfsConfig       *bool `json:"use_tmpfs_config,omitempty" yaml:"use_tmpfs_config,omitempty"`
	// Other holds feature keys this package does not know, as written;
	// Marshal writes them after the known ones.
	Other Map `json:"-" yaml:"-"`
}

// Release is one entry of the releases block.
type Release struct {
	Name string `json:"name" yaml:"name"`
	// Version is a version or "latest".
	Version string `json:"version" yaml:"version"`
	// URL and SHA1 let the CLI upload the release when the director lacks
	// it; SHA1 may be "sha256:<hex>".
	URL  string `json:"url,omitempty" yaml:"url,omitempty"`
	SHA1 string `json:"sha1,omitempty" yaml:"sha1,omitempty"`
	// Stemcell is the stemcell a compiled release was compiled against.
	Stemcell *ReleaseStemcell `json:"stemcell,omitempty" yaml:"stemcell,omitempty"`
	// ExportedFrom lists the stemcells whose compiled packages may serve
	// other stemcells of the same OS line.
	ExportedFrom []ReleaseStemcell `json:"exported_from,omitempty" yaml:"exported_from,omitempty"`
}

// ReleaseStemcell names a stemcell by OS and version (a compiled
// release's stemcell, exported_from).
type ReleaseStemcell struct {
	OS      string `json:"os" yaml:"os"`
	Version string `json:"version" yaml:"version"`
}

// Stemcell is one entry of the stemcells block: an alias for a stemcell
// matched by OS (IaaS-agnostic) or by full name.
type Stemcell struct {
	Alias string `json:"alias" yaml:"alias"`
	// OS and Name: exactly one is set.
	OS   string `json:"os,omitempty" yaml:"os,omitempty"`
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Version is a version or "latest".
	Version string `json:"version" yaml:"version"`
}

// Lifecycle is the kind of workload of an instance group.
type Lifecycle string

// The lifecycles BOSH knows; the empty Lifecycle is LifecycleService.
const (
	LifecycleService Lifecycle = "service" // runs and is restarted when it fails
	LifecycleErrand  Lifecycle = "errand"  // runs when asked, to completion
)

// InstanceGroup is one entry of instance_groups: N identical VMs with the
// same jobs.
type InstanceGroup struct {
	Name      string    `json:"name" yaml:"name"`
	Lifecycle Lifecycle `json:"lifecycle,omitempty" yaml:"lifecycle,omitempty"`
	Instances int       `json:"instances" yaml:"instances"`
	AZs       []string  `json:"azs,omitempty" yaml:"azs,omitempty"`
	Jobs      []Job     `json:"jobs" yaml:"jobs"`
	// VMType (a cloud config vm_type) and VMResources: exactly one is set.
	VMType       string       `json:"vm_type,omitempty" yaml:"vm_type,omitempty"`
	VMResources  *VMResources `json:"vm_resources,omitempty" yaml:"vm_resources,omitempty"`
	VMExtensions []string     `json:"vm_extensions,omitempty" yaml:"vm_extensions,omitempty"`
	// Stemcell is an alias from the stemcells block.
	Stemcell string `json:"stemcell" yaml:"stemcell"`
	// PersistentDisk (size in MB), PersistentDiskType (a cloud config
	// disk_type) and PersistentDisks: at most one is set.
	PersistentDisk     *int             `json:"persistent_disk,omitempty" yaml:"persistent_disk,omitempty"`
	PersistentDiskType string           `json:"persistent_disk_type,omitempty" yaml:"persistent_disk_type,omitempty"`
	PersistentDisks    []PersistentDisk `json:"persistent_disks,omitempty" yaml:"persistent_disks,omitempty"`
	Networks           []Network        `json:"networks" yaml:"networks"`
	// Update overrides the deployment's update block for this group.
	Update       *Update        `json:"update,omitempty" yaml:"update,omitempty"`
	MigratedFrom []MigratedFrom `json:"migrated_from,omitempty" yaml:"migrated_from,omitempty"`
	// Env is the agent's configuration (bosh.password, persistent_disk_fs…).
	Env Map `json:"env,omitzero" yaml:"env,omitempty"`
	// Properties are the deprecated instance-group properties.
	Properties Map `json:"properties,omitzero" yaml:"properties,omitempty"`
}

// Job is a release job placed on an instance group (or by an add-on).
type Job struct {
	Name    string `json:"name" yaml:"name"`
	Release string `json:"release" yaml:"release"`
	// Consumes and Provides configure the job's links by link name.
	Consumes Map `json:"consumes,omitzero" yaml:"consumes,omitempty"`
	Provides Map `json:"provides,omitzero" yaml:"provides,omitempty"`
	// CustomProviderDefinitions declare links the release job does not.
	CustomProviderDefinitions []CustomProvider `json:"custom_provider_definitions,omitempty" yaml:"custom_provider_definitions,omitempty"`
	// Properties are the job's properties. An empty, non-nil map differs
	// from nil: BOSH then ignores the instance group's properties.
	Properties Map `json:"properties,omitzero" yaml:"properties,omitempty"`
}

// CustomProvider is a link provider declared in the manifest rather than
// in the job's spec.
type CustomProvider struct {
	Name string `json:"name" yaml:"name"`
	Type string `json:"type" yaml:"type"`
	// Properties names the job properties the link shares.
	Properties []string `json:"properties,omitempty" yaml:"properties,omitempty"`
}

// VMResources sizes a VM without a cloud config vm_type.
type VMResources struct {
	CPU               int `json:"cpu" yaml:"cpu"`
	RAM               int `json:"ram" yaml:"ram"`                                 // MB
	EphemeralDiskSize int `json:"ephemeral_disk_size" yaml:"ephemeral_disk_size"` // MB
}

// PersistentDisk is one of several named persistent disks.
type PersistentDisk struct {
	Name string `json:"name" yaml:"name"`
	Type string `json:"type" yaml:"type"`
}

// Network places an instance group on a cloud config network.
type Network struct {
	Name string `json:"name" yaml:"name"`
	// StaticIPs are addresses, ranges ("10.0.0.10 - 10.0.0.12") or CIDRs;
	// when given they must add up to exactly one address per instance.
	StaticIPs []string `json:"static_ips,omitempty" yaml:"static_ips,omitempty"`
	// Default names what this network is the default for: dns, gateway,
	// addressable. Required for dns and gateway when a group has several
	// networks.
	Default []string `json:"default,omitempty" yaml:"default,omitempty"`
}

// MigratedFrom names an instance group (and optionally its AZ) whose
// instances this group takes over.
type MigratedFrom struct {
	Name string `json:"name" yaml:"name"`
	AZ   string `json:"az,omitempty" yaml:"az,omitempty"`
}

// VariableType is the type of a generated variable.
type VariableType string

// The variable types BOSH generates.
const (
	VariablePassword    VariableType = "password"
	VariableCertificate VariableType = "certificate"
	VariableSSH         VariableType = "ssh"
	VariableRSA         VariableType = "rsa"
	VariableUser        VariableType = "user"
)

// Variable is one entry of the variables block.
type Variable struct {
	Name string       `json:"name" yaml:"name"`
	Type VariableType `json:"type" yaml:"type"`
	// UpdateMode "converge" lets the config server regenerate the value
	// when its options change.
	UpdateMode string `json:"update_mode,omitempty" yaml:"update_mode,omitempty"`
	// Options are the generation options (is_ca, ca, common_name,
	// alternative_names, extended_key_usage, duration, length…).
	Options Map `json:"options,omitzero" yaml:"options,omitempty"`
	// Consumes takes certificate names from links (common_name,
	// alternative_name: {from: link}).
	Consumes Map `json:"consumes,omitzero" yaml:"consumes,omitempty"`
}

// Addon is one entry of the addons block: jobs placed on every instance
// group that Include selects and Exclude does not.
type Addon struct {
	Name string `json:"name" yaml:"name"`
	Jobs []Job  `json:"jobs" yaml:"jobs"`
	// Properties apply to the add-on's jobs that have none of their own.
	Properties Map            `json:"properties,omitzero" yaml:"properties,omitempty"`
	Include    *PlacementRule `json:"include,omitempty" yaml:"include,omitempty"`
	Exclude    *PlacementRule `json:"exclude,omitempty" yaml:"exclude,omitempty"`
}

// PlacementRule is an add-on's include or exclude rule. Within a list any
// entry matches (or); across lists all must match. Deployments and Teams
// only apply in a runtime config: a deployment manifest's add-ons may not
// filter on deployments, and BOSH ignores their teams.
type PlacementRule struct {
	Deployments    []string       `json:"deployments,omitempty" yaml:"deployments,omitempty"`
	Jobs           []JobRef       `json:"jobs,omitempty" yaml:"jobs,omitempty"`
	InstanceGroups []string       `json:"instance_groups,omitempty" yaml:"instance_groups,omitempty"`
	Stemcell       []StemcellRule `json:"stemcell,omitempty" yaml:"stemcell,omitempty"`
	Networks       []string       `json:"networks,omitempty" yaml:"networks,omitempty"`
	Teams          []string       `json:"teams,omitempty" yaml:"teams,omitempty"`
	AZs            []string       `json:"azs,omitempty" yaml:"azs,omitempty"`
	Lifecycle      Lifecycle      `json:"lifecycle,omitempty" yaml:"lifecycle,omitempty"`
}

// JobRef matches a job by name and release.
type JobRef struct {
	Name    string `json:"name" yaml:"name"`
	Release string `json:"release" yaml:"release"`
}

// StemcellRule matches a stemcell by operating system.
type StemcellRule struct {
	OS string `json:"os" yaml:"os"`
}

// Map is a free-form YAML mapping (BOSH's docs say "Hash"): job
// properties, env, variable options, links. Values are nil, bool, int,
// uint64 (integers past int64), float64, string, []any and map[string]any.
// A nil Map is absent; an empty one is written as {}.
type Map map[string]any

// IsZero reports whether m is absent (nil), so that an empty map is kept.
func (m Map) IsZero() bool { return m == nil }

// InstanceGroup returns the instance group of that name, or nil.
func (m *Manifest) InstanceGroup(name string) *InstanceGroup {
	for i := range m.InstanceGroups {
		if m.InstanceGroups[i].Name == name {
			return &m.InstanceGroups[i]
		}
	}
	return nil
}

// Release returns the release of that name, or nil.
func (m *Manifest) Release(name string) *Release {
	for i := range m.Releases {
		if m.Releases[i].Name == name {
			return &m.Releases[i]
		}
	}
	return nil
}

// Stemcell returns the stemcell of that alias, or nil.
func (m *Manifest) Stemcell(alias string) *Stemcell {
	for i := range m.Stemcells {
		if m.Stemcells[i].Alias == alias {
			return &m.Stemcells[i]
		}
	}
	return nil
}

// Job returns the job of that name on the group, or nil.
func (g *InstanceGroup) Job(name string) *Job {
	for i := range g.Jobs {
		if g.Jobs[i].Name == name {
			return &g.Jobs[i]
		}
	}
	return nil
}

// UpdateFor returns the update settings that apply to the instance group:
// its own update block with every key it leaves out taken from the
// deployment's. It returns nil when neither has one.
func (m *Manifest) UpdateFor(g *InstanceGroup) *Update {
	switch {
	case g.Update == nil && m.Update == nil:
		return nil
	case g.Update == nil:
		u := *m.Update
		return &u
	case m.Update == nil:
		u := *g.Update
		return &u
	}
	u := *g.Update
	d := m.Update
	if u.Canaries.IsZero() {
		u.Canaries = d.Canaries
	}
	if u.MaxInFlight.IsZero() {
		u.MaxInFlight = d.MaxInFlight
	}
	if u.CanaryWatchTime.IsZero() {
		u.CanaryWatchTime = d.CanaryWatchTime
	}
	if u.UpdateWatchTime.IsZero() {
		u.UpdateWatchTime = d.UpdateWatchTime
	}
	if u.Serial == nil {
		u.Serial = d.Serial
	}
	if u.VMStrategy == "" {
		u.VMStrategy = d.VMStrategy
	}
	if u.InitialDeployAZUpdateStrategy == "" {
		u.InitialDeployAZUpdateStrategy = d.InitialDeployAZUpdateStrategy
	}
	return &u
}
