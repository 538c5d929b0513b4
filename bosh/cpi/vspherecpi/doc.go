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
//     VMFolder, owned by ClusterID, with a NIC per network on the vSphere
//     network its cloud_properties.name names, with a MAC derived from
//     the agent id and the static address of a manual network; the
//     agent's settings (Settings: agent_id, vm, networks, disks, mbus,
//     ntp, blobstore, env) as base64 JSON in guestinfo.bosh.settings. A
//     VM that cannot be made is a VMCreationFailed error, and nothing of
//     it is left.
//   - delete_vm, has_vm, reboot_vm, set_vm_metadata (custom attributes);
//     a VM that is not there is VMNotFound. delete_vm first takes the VM
//     out of its DRS rules, VM groups and NSX-T groups and server pools.
//   - Persistent disks are CNS volumes of ClusterID (cid: the volume id):
//     create_disk (cloud_properties datastore or storage_policy),
//     delete_disk, has_disk, attach_disk (the hint {"id": <volume id>} is
//     written into the agent's settings), detach_disk, resize_disk,
//     get_disks, snapshot_disk and delete_snapshot (cid
//     "<volume id>:<snapshot id>"); a disk that is not there is
//     DiskNotFound. set_disk_metadata is NotImplemented: CNS volumes carry
//     no free tags.
//
// # VM cloud_properties
//
// As the vSphere CPI names them (keys it does not know are left alone):
//
//   - cpu, ram (MB, a multiple of 4), disk (the ephemeral disk, MB).
//   - datacenters: [{name, clusters: [{<cluster>: {resource_pool,
//     drs_rules, host_group}}]}]: one datacenter, the CPI's; the VM goes
//     to one of the clusters (Config.Cluster and Config.ResourcePool
//     without them), into its resource_pool, which must exist.
//   - datastores: exact names, or /regular expressions/ (this CPI's
//     addition); Config.Datastore without them. Of the datastores
//     accessible from the clusters that match and have room for the
//     ephemeral disk plus 1 GB, the VM goes to the one with the most
//     free space (the vSphere CPI draws at random weighted by free
//     space); a tie goes to the cluster listed first. Datastore clusters
//     ({clusters: [...]}) are refused.
//   - drs_rules: [{name, type: separate_vms}], one per cluster: the VM
//     joins the cluster's anti-affinity rule of that name, made by its
//     first VM; a VM deleted leaves it, and the rule goes with its last.
//   - host_group: a name or {name, drs_rule: MUST|SHOULD}: the VM joins
//     the VM group "<name><MUST|SHOULD>_vm_group", bound to the host
//     group (which must exist) by the VM/host rule "<that>_rule".
//   - vm_group: the VM joins that VM group of its cluster, made when
//     missing; members are added, never replaced. A VM group a deleted
//     VM leaves empty goes, with the VM/host rules that name it, as the
//     vSphere CPI deletes it.
//   - nsxt: {ns_groups, lb: {server_pools: [{name, port}]}}: through the
//     NSXT given with WithNSXT (the VM's name to the groups, its static
//     address, or else the one its guest reports, to the pools); refused
//     without one. NSXTPolicy makes one of an nsxt.Client: groups in
//     the domain "default" and pools under /infra/lb-pools, by display
//     name or id, the VM joined as the vSphere CPI's Policy API mode
//     joins it (see nsxt.Client.AddVMToGroups and AddPoolMembers).
//
// Bad cloud_properties, and a datacenter, cluster, resource pool, host
// group or datastore they name that is not there, are one CloudError
// naming every field at fault, with what there is (errors.Is
// kubefoundry.ErrInvalid; errors.As finds the *kubefoundry.ValidationError).
// Datastores that match but have no room are a VMCreationFailed saying
// how much each has.
//
// # Concurrency
//
// A CPI is safe for concurrent use. A cluster's DRS rules and groups are
// rewritten whole by vCenter with no revision to refuse a stale write, so
// every change of them is made under a lock, as the vSphere CPI makes
// it: a mutex in the process, and, because a CPI executable is a process
// per call, the custom attribute definition drs_lock (rules) or
// drs_lock_vm_group (VM groups) on vCenter, which only one caller can
// add; the others try again every 500 ms for up to 10 minutes (or ctx's
// end). The names are the vSphere CPI's, so the two keep out of each
// other's way; one left by a killed CPI is removed by hand.
//
// Not here yet: the vSphere CPI's other cloud_properties (vmx_options,
// storage_policy, tags, cpu_hot_add_enabled, nested_hardware_virtualization,
// disable_drs, pci_passthroughs, vgpus, ...) and its automatic
// anti-affinity rule per BOSH group. examples/vsphere-cpi is the CPI as
// an executable. Tested on vcsim with its CNS simulator.
//
// # Files
//
//	vspherecpi.go  Config, New, the CPI methods; create_vm and delete_vm
//	props.go       the VM cloud_properties, read and checked
//	placement.go   the cluster, resource pool and datastore of a VM
//	drs.go         DRS rules and VM groups, and the locks they change under
//	nsxt.go        the NSXT interface and the Options
package vspherecpi
