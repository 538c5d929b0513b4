package template

import (
	"fmt"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/release"
)

// Instance is what a template knows of the instance it is rendered for:
// spec.deployment, spec.name (the instance group), spec.id, spec.index,
// spec.az, spec.bootstrap, spec.address, spec.ip, spec.networks and
// spec.persistent_disk.
type Instance struct {
	Deployment string
	Group      string
	ID         string
	Index      int
	AZ         string
	Bootstrap  bool
	// Address is the instance's address on its default network: its DNS
	// name when the deployment uses DNS addresses, else its IP.
	Address string
	// IP is the instance's IP on its default network.
	IP string
	// Networks are the instance's networks by name.
	Networks map[string]Network
	// PersistentDisk is the size of its persistent disk in MB, 0 for none.
	PersistentDisk int
}

// Network is the instance's place on one network (spec.networks.<name>).
type Network struct {
	IP      string   `json:"ip"`
	Netmask string   `json:"netmask"`
	Gateway string   `json:"gateway"`
	Default []string `json:"default,omitempty"`
	// DNSRecordName is the instance's long DNS name on this network.
	DNSRecordName string `json:"dns_record_name,omitempty"`
}

// Job is one job to render on an instance.
type Job struct {
	// Spec is the job's spec; its Templates say which templates to render
	// and where each goes.
	Spec *release.JobSpec
	// Release names the release the job comes from (spec.release).
	Release, ReleaseVersion string
	// Templates are the job's template sources by the names its spec uses.
	Templates map[string][]byte
	// Properties are the job's properties for this instance, as Properties
	// merges them.
	Properties map[string]any
	// Links are the links the job consumes, by the names its spec uses; a
	// nil Link is an optional link with no provider (if_link takes its
	// else branch, link raises).
	Links map[string]*Link
}

// Link is a consumed link as a template sees it (link("name")).
type Link struct {
	// InstanceGroup, DefaultNetwork, DeploymentName and Domain name the
	// provider and make its group DNS address.
	InstanceGroup  string
	DefaultNetwork string
	DeploymentName string
	Domain         string // "bosh" when empty
	// Instances are the provider's instances.
	Instances []LinkInstance
	// Properties are the properties the provider shares.
	Properties map[string]any
	// AZIDs number the AZs for addresses filtered by AZ (q-a1s0...),
	// as BOSH numbers them.
	AZIDs map[string]int
	// Address overrides the group address link("x").address returns
	// without criteria (a manual link's address).
	Address string
}

// LinkInstance is one instance of a link's provider
// (link("name").instances[i]).
type LinkInstance struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	Index     int    `json:"index"`
	AZ        string `json:"az"`
	Address   string `json:"address"`
	Bootstrap bool   `json:"bootstrap"`
}

// File is one rendered template.
type File struct {
	Job string
	// Template is the template's name in its job; Path is where it goes
	// under /var/vcap/jobs/<job>/.
	Template, Path string
	Content        []byte
}

// TemplateError is a template that could not be rendered: a Ruby error it
// raised (UnknownProperty for a property its job does not have,
// UnknownLink, NameError, a SyntaxError...) at Line of the template.
type TemplateError struct {
	Job, Template string
	Class         string
	Message       string
	Line          int
}

func (e *TemplateError) Error() string {
	where := e.Job + "/templates/" + e.Template
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", where, e.Line)
	}
	return fmt.Sprintf("render %s: %s: %s", where, e.Class, e.Message)
}

// Unwrap makes a TemplateError a kubefoundry.ErrInvalid.
func (e *TemplateError) Unwrap() error { return kubefoundry.ErrInvalid }

// context is the spec the Ruby side builds its evaluation context from.
func (inst Instance) context(j *Job) map[string]any {
	props := j.Properties
	if props == nil {
		props = map[string]any{}
	}
	nets := map[string]any{}
	for name, n := range inst.Networks {
		nets[name] = n
	}
	links := map[string]any{}
	for name, l := range j.Links {
		if l == nil {
			continue
		}
		domain := l.Domain
		if domain == "" {
			domain = "bosh"
		}
		address := l.Address
		if address == "" {
			address = fmt.Sprintf("q-s0.%s.%s.%s.%s", l.InstanceGroup, l.DefaultNetwork, l.DeploymentName, domain)
		}
		instances := l.Instances
		if instances == nil {
			instances = []LinkInstance{}
		}
		lp := l.Properties
		if lp == nil {
			lp = map[string]any{}
		}
		links[name] = map[string]any{
			"instances":       instances,
			"properties":      lp,
			"instance_group":  l.InstanceGroup,
			"default_network": l.DefaultNetwork,
			"deployment_name": l.DeploymentName,
			"domain":          domain,
			"address":         address,
			"az_ids":          l.AZIDs,
		}
	}
	var az any
	if inst.AZ != "" {
		az = inst.AZ
	}
	return map[string]any{
		"deployment":      inst.Deployment,
		"name":            inst.Group,
		"id":              inst.ID,
		"index":           inst.Index,
		"az":              az,
		"bootstrap":       inst.Bootstrap,
		"address":         inst.Address,
		"ip":              inst.IP,
		"networks":        nets,
		"persistent_disk": inst.PersistentDisk,
		"job":             map[string]any{"name": j.Spec.Name},
		"release":         map[string]any{"name": j.Release, "version": j.ReleaseVersion},
		"properties":      props,
		"links":           links,
	}
}
