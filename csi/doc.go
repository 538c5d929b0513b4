// Package csi manages persistent volumes on vSphere Cloud Native Storage
// with govmomi's cns package, over a vSphere session it shares (New takes
// the *vim25.Client of vsphere.Client.Vim25).
//
// What works today: CreateVolume (block, size, datastore, CNS metadata
// naming the cluster, labels; idempotent by name within the cluster), Get,
// QueryVolumes by cluster (the orphan scan), AttachVolume (attached to that
// VM already is success; attached to another VM is an *AttachedError naming
// it), DetachVolume, ReleaseVolume (frees a volume left on a VM that no
// longer exists), ExtendVolume and DeleteVolume (refused while attached
// unless forced). The VM a volume is attached to is recorded in the
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
// Not yet here (issue 4): storage policies (SPBM) for volumes, snapshots,
// the vSphere CSI driver's configuration Secret and StorageClasses, volume
// topology, BenchmarkCreateAttach and examples/attach-volume.
package csi
