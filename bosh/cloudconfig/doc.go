// Package cloudconfig reads and checks BOSH's cloud config and runtime
// config, and assigns instances their IP addresses on the cloud config's
// networks as the director does.
//
// The cloud config is the IaaS side of every deployment: AZs (on
// vSphere, a datacenter and clusters each), VM types, VM extensions,
// disk types, networks (manual with subnets, ranges, gateways, reserved
// and static lists; dynamic; vip) and how packages are compiled. The
// runtime config holds the add-ons placed on every deployment, their
// releases, variables and tags; its parts have bosh/manifest's types.
//
//	c, err := cloudconfig.Parse(data)
//	if err != nil {
//		return err // a *kubefoundry.ValidationError: every problem, with path and line
//	}
//	addrs, err := c.Allocate(cloudconfig.Request{
//		Network:   "nodes",
//		AZs:       []string{"z1", "z2"},
//		Instances: []cloudconfig.Instance{{ID: id0, AZ: "z1", IP: lastIP0}, {ID: id1, AZ: "z2"}},
//		Taken:     inUse, // addresses held by other groups and deployments
//	})
//	// addrs[i].IP, addrs[i].Subnet.Gateway, addrs[i].Subnet.CloudProperties
//
// # Reading and checking
//
// Parse and ParseRuntime walk the YAML node tree and report every
// problem at once as a *kubefoundry.ValidationError (errors.Is(err,
// kubefoundry.ErrInvalid)), each at its ops-file path, with name=
// selectors where the element has a unique name and its index otherwise
// (/networks/name=default/subnets/0/range, /addons/name=bosh-dns/jobs/
// name=bosh-dns/release), and the YAML line of its key or list element.
// An unknown key is a problem naming the key; one that belongs in another
// config says so. cloud_properties, env and properties are free-form.
// CloudConfig.Validate and RuntimeConfig.Validate apply the same rules
// to configs built in Go; their doc comments list them. Bad input is an
// error, never a panic: size, nesting and alias expansion are bounded
// (MaxSize, MaxDepth).
//
// # Addresses
//
// Allocate gives an instance group's instances their addresses on one
// network: static_ips as listed, checked against the subnets' static
// lists and the group's AZs; the others the lowest free address of a
// subnet of their AZ, never the range's first or last address, the
// gateway, a reserved or static address, or one in Request.Taken. An
// instance keeps the address it had (Instance.IP) while it may, so that
// addresses are stable across deploys. A network with no address left
// is an *ExhaustedError (errors.Is(err, kubefoundry.ErrLimitExceeded))
// saying which subnets are full and how their addresses are used.
// Allocate keeps no record: the caller (the director) keeps the
// addresses it returned and passes them back as Instance.IP and Taken.
//
// # Concurrency
//
// Parse, ParseRuntime, Validate and Allocate keep no state between calls
// and may run concurrently on the same configs. The configs are plain
// data: share them read-only, or guard changes to them.
//
// # Files
//
//	cloudconfig.go  the cloud config's types (CloudConfig, AZ, VMType, Network, Subnet, Compilation) and lookups
//	parse.go        Parse: the cloud config's keys, read from the node tree
//	validate.go     Validate: names, subnets (ranges, gateways, reserved and static lists, AZs), compilation
//	runtime.go      RuntimeConfig, ParseRuntime and its Validate: releases, add-ons and their rules, variables, tags
//	allocate.go     Allocate: static and dynamic addresses, vip and dynamic networks, ExhaustedError
//	span.go         address entries (bosh/internal/yamltree's Span) as the allocator uses them, subnet ranges, the lowest free address among blocked ranges
//	decode.go       what Parse and ParseRuntime share: limits, reading with yamltree's Decoder, the checker
package cloudconfig
