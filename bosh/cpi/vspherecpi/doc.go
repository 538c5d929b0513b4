// Package vspherecpi is BOSH's vSphere CPI (a cpi.CPI) on kubefoundry's
// vsphere and csi clients, which share one vCenter session:
//
//	vs, err := vsphere.New(ctx, vsphere.Config{URL: u, Username: user, Password: pw})
//	vols, err := csi.New(ctx, vs.Vim25())
//	c, err := vspherecpi.New(vs, vols, vspherecpi.Config{ClusterID: "bosh-1",
//		VMFolder: "bosh/vms", StemcellFolder: "bosh/stemcells", Cluster: "C1", Datastore: "ds1",
//		Agent: vspherecpi.AgentConfig{MBus: "nats://nats:pw@10.0.0.4:4222"}})
//	err = cpi.Serve(ctx, c, os.Stdin, os.Stdout) // as a CPI executable
//
// What each method does:
//
//   - create_stemcell imports the image (a vSphere stemcell's image file,
//     a gzipped tar of an OVF and its disks, unpacked refusing anything
//     but plain files at its top; or an .ova or .ovf) into StemcellFolder
//     as vsphere.ImportStemcell does; delete_stemcell deletes it with its
//     replicas.
//   - create_vm makes a linked clone named by its cid ("vm-<random>") in
//     VMFolder, owned by ClusterID: cloud_properties cpu, ram (MB), disk
//     (ephemeral, MB), datastores and datacenters/clusters/resource_pool as
//     the vSphere CPI names them; a NIC per network on the vSphere network
//     its cloud_properties.name names, with a MAC derived from the agent id
//     and the static address of a manual network; the agent's settings
//     (Settings: agent_id, vm, networks, disks, mbus, ntp, blobstore, env)
//     as base64 JSON in guestinfo.bosh.settings. A VM that cannot be made
//     is a VMCreationFailed error, and nothing of it is left.
//   - delete_vm, has_vm, reboot_vm, set_vm_metadata (custom attributes);
//     a VM that is not there is VMNotFound.
//   - Persistent disks are CNS volumes of ClusterID (cid: the volume id):
//     create_disk (cloud_properties datastore or storage_policy),
//     delete_disk, has_disk, attach_disk (the hint {"id": <volume id>} is
//     written into the agent's settings), detach_disk, resize_disk,
//     get_disks, snapshot_disk and delete_snapshot (cid
//     "<volume id>:<snapshot id>"); a disk that is not there is
//     DiskNotFound. set_disk_metadata is NotImplemented: CNS volumes carry
//     no free tags.
//
// Not here yet: drs_rules, vm_group, nsxt groups and the other
// cloud_properties of the vSphere CPI, and examples/vsphere-cpi as an
// executable. A CPI is safe for concurrent use. Tested on vcsim with its
// CNS simulator.
package vspherecpi
