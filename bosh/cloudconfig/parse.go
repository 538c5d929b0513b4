package cloudconfig

import (
	"github.com/kubefoundry/kubefoundry"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

// cloudObject names a cloud config in a *kubefoundry.ValidationError.
const cloudObject = "cloud config"

// Parse reads a cloud config and checks it: its keys, the kinds and
// syntax of its values, required fields, duplicate names, references
// between its parts and the director's rules for subnets (see Validate).
// It returns every problem at once as a *kubefoundry.ValidationError
// whose problems carry the ops-file path of the field
// (/networks/name=default/subnets/0/range) and its line.
func Parse(data []byte) (*CloudConfig, error) {
	return read(data, cloudObject, cloudHint, (*decoder).cloudConfig, checkCloud, (*CloudConfig).selectors)
}

// ParsePart reads one named cloud config of several, which MergeCloud
// merges as BOSH's director does: as Parse, except that it need have no
// network or compilation block and its subnets may name the AZs of
// another part (the merged config is checked for all of that).
func ParsePart(data []byte) (*CloudConfig, error) {
	check := func(c *CloudConfig, unread func(string) bool) []kubefoundry.FieldError {
		return checkCloudConfig(c, unread, true)
	}
	return read(data, cloudObject, cloudHint, (*decoder).cloudConfig, check, (*CloudConfig).selectors)
}

// cloudHint explains an unknown top-level key that belongs elsewhere.
func cloudHint(path, key string) string {
	if path != "" {
		return ""
	}
	switch key {
	case "releases", "addons", "variables", "tags":
		return ": it belongs in a runtime config"
	case "name", "stemcells", "update", "instance_groups", "features":
		return ": it belongs in a deployment manifest"
	case "resource_pools":
		return ": a v1 key (a cloud config has vm_types)"
	case "disk_pools":
		return ": a v1 key (a cloud config has disk_types)"
	}
	return ""
}

func (d *decoder) cloudConfig(root *yaml.Node) *CloudConfig {
	c := &CloudConfig{}
	f, ok := d.Root(root, "azs", "vm_types", "vm_extensions", "disk_types", "networks", "compilation")
	if !ok {
		return c
	}
	for i, e := range d.List("/azs", f["azs"]) {
		at := yamltree.Index("/azs", i)
		var az AZ
		if g, ok := d.Fields(at, e, 1, "name", "cpi", "cloud_properties"); ok {
			az = AZ{Name: d.Str(at+"/name", g["name"]), CPI: d.Str(at+"/cpi", g["cpi"]),
				CloudProperties: d.free(at+"/cloud_properties", g["cloud_properties"], 2)}
		}
		c.AZs = append(c.AZs, az)
	}
	for i, e := range d.List("/vm_types", f["vm_types"]) {
		at := yamltree.Index("/vm_types", i)
		var v VMType
		if g, ok := d.Fields(at, e, 1, "name", "cloud_properties"); ok {
			v = VMType{Name: d.Str(at+"/name", g["name"]), CloudProperties: d.free(at+"/cloud_properties", g["cloud_properties"], 2)}
		}
		c.VMTypes = append(c.VMTypes, v)
	}
	for i, e := range d.List("/vm_extensions", f["vm_extensions"]) {
		at := yamltree.Index("/vm_extensions", i)
		var v VMExtension
		if g, ok := d.Fields(at, e, 1, "name", "cloud_properties"); ok {
			v = VMExtension{Name: d.Str(at+"/name", g["name"]), CloudProperties: d.free(at+"/cloud_properties", g["cloud_properties"], 2)}
		}
		c.VMExtensions = append(c.VMExtensions, v)
	}
	for i, e := range d.List("/disk_types", f["disk_types"]) {
		at := yamltree.Index("/disk_types", i)
		var v DiskType
		if g, ok := d.Fields(at, e, 1, "name", "disk_size", "cloud_properties"); ok {
			v = DiskType{Name: d.Str(at+"/name", g["name"]), DiskSize: d.integer(at+"/disk_size", g["disk_size"]),
				CloudProperties: d.free(at+"/cloud_properties", g["cloud_properties"], 2)}
		}
		c.DiskTypes = append(c.DiskTypes, v)
	}
	for i, e := range d.List("/networks", f["networks"]) {
		c.Networks = append(c.Networks, d.network(yamltree.Index("/networks", i), e))
	}
	if d.Present(f, "compilation") {
		c.Compilation = d.compilation("/compilation", f["compilation"])
	}
	return c
}

// network reads a network with the keys of every type; checkCloud
// reports the keys its type does not take.
func (d *decoder) network(path string, n *yaml.Node) Network {
	var nw Network
	f, ok := d.Fields(path, n, 1, "name", "type", "subnets", "dns", "cloud_properties")
	if !ok {
		return nw
	}
	nw.Name = d.Str(path+"/name", f["name"])
	nw.Type = NetworkType(d.Str(path+"/type", f["type"]))
	for i, e := range d.List(path+"/subnets", f["subnets"]) {
		nw.Subnets = append(nw.Subnets, d.subnet(yamltree.Index(path+"/subnets", i), e))
	}
	nw.DNS = d.Strs(path+"/dns", f["dns"])
	nw.CloudProperties = d.free(path+"/cloud_properties", f["cloud_properties"], 2)
	return nw
}

func (d *decoder) subnet(path string, n *yaml.Node) Subnet {
	var s Subnet
	f, ok := d.Fields(path, n, 2, "range", "gateway", "dns", "reserved", "static", "az", "azs", "cloud_properties")
	if !ok {
		return s
	}
	s.Range = d.Str(path+"/range", f["range"])
	s.Gateway = d.Str(path+"/gateway", f["gateway"])
	s.DNS = d.Strs(path+"/dns", f["dns"])
	s.Reserved = d.Strs(path+"/reserved", f["reserved"])
	s.Static = d.Strs(path+"/static", f["static"])
	s.AZ = d.Str(path+"/az", f["az"])
	s.AZs = d.Strs(path+"/azs", f["azs"])
	if s.AZs == nil && d.Present(f, "azs") && !d.Unread(path+"/azs") {
		s.AZs = []string{} // azs: [] names no AZ, which checkCloud reports
	}
	s.CloudProperties = d.free(path+"/cloud_properties", f["cloud_properties"], 3)
	return s
}

func (d *decoder) compilation(path string, n *yaml.Node) *Compilation {
	c := &Compilation{}
	f, ok := d.Fields(path, n, 1, "workers", "az", "vm_type", "vm_resources", "vm_extensions", "cloud_properties",
		"network", "reuse_compilation_vms", "orphan_workers", "env")
	if !ok {
		return c
	}
	c.Workers = d.integer(path+"/workers", f["workers"])
	c.AZ = d.Str(path+"/az", f["az"])
	c.VMType = d.Str(path+"/vm_type", f["vm_type"])
	if d.Present(f, "vm_resources") {
		at := path + "/vm_resources"
		c.VMResources = &manifest.VMResources{}
		if g, ok := d.Fields(at, f["vm_resources"], 2, "cpu", "ram", "ephemeral_disk_size"); ok {
			c.VMResources.CPU = d.integer(at+"/cpu", g["cpu"])
			c.VMResources.RAM = d.integer(at+"/ram", g["ram"])
			c.VMResources.EphemeralDiskSize = d.integer(at+"/ephemeral_disk_size", g["ephemeral_disk_size"])
		}
	}
	c.VMExtensions = d.Strs(path+"/vm_extensions", f["vm_extensions"])
	c.CloudProperties = d.free(path+"/cloud_properties", f["cloud_properties"], 2)
	c.Network = d.Str(path+"/network", f["network"])
	c.ReuseCompilationVMs = d.boolean(path+"/reuse_compilation_vms", f["reuse_compilation_vms"])
	c.OrphanWorkers = d.boolean(path+"/orphan_workers", f["orphan_workers"])
	c.Env = d.free(path+"/env", f["env"], 2)
	return c
}
