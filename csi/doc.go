// Package csi manages persistent volumes on vSphere Cloud Native Storage
// with govmomi's cns package, over a vSphere session it shares (New takes
// the *vim25.Client of vsphere.Client.Vim25).
//
// What works today: CreateVolume (block, size, datastore or SPBM storage
// policy by name, CNS metadata
// naming the cluster, labels; idempotent by name within the cluster), Get,
// QueryVolumes by cluster (the orphan scan), AttachVolume (attached to that
// VM already is success; attached to another VM is an *AttachedError naming
// it), DetachVolume, ReleaseVolume (frees a volume left on a VM that no
// longer exists), ExtendVolume and DeleteVolume (refused while attached
// unless forced); snapshots (create, list, delete); the vSphere CSI
// driver's configuration (csi-vsphere.conf in its Secret, password
// redacted from String) and storage.k8s.io/v1 StorageClasses for storage
// policies, one default at most, with zone topology. The VM a volume is
// attached to is recorded in the
// volume's CNS metadata (label kubefoundry.io/attached-to), which is how
// conflicts name their holder.
//
//	c, err := csi.New(ctx, vs.Vim25())
//	vol, err := c.CreateVolume(ctx, csi.VolumeSpec{Name: "pvc-1", SizeMB: 10240,
//		Datastore: "vsanDatastore", ClusterID: "c1"})
//	err = c.AttachVolume(ctx, vol.ID, node)
//
// A Client is safe for concurrent use. Tested on govmomi's vcsim with its
// CNS simulator.
//
// Storage policies: StoragePolicies, StoragePolicyID (an unknown name
// lists those there are) and CompatibleDatastores.
//
// CreateVolumes creates many at bounded concurrency (WithConcurrency), one
// outcome per volume. WithLogger and WithRateLimit (a token bucket on CNS
// calls) are the vsphere package's options.
//
// CNS tasks are waited for together: every task the Client waits for is
// read in one PropertyCollector call per interval (a quarter of the time
// the youngest has been waited for, 20 ms to 2 s), not with a collector and
// filter of its own; a datastore is resolved once per Client. Measured
// (BenchmarkCreateAttach, 100 volumes created and attached 10 at a time on
// vcsim): about 8 SOAP calls per volume created and attached (was 28) and
// 1.4 times the critical path (was 2.0). The price is paid by a task
// waited for alone: its reads grow with the logarithm of its length, about
// 15 for a 1 s task and 22 for a 5 s one (measured on vcsim), where a
// collector of its own costs about 5 calls whatever the length; tasks that
// overlap share them. The reads go to /sdk in the vsan namespace and
// version, as the cns package's own task objects do (vCenter leaves CNS
// results out of a task read as plain vim25).
package csi
