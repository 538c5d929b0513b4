// Package csi manages persistent volumes on vSphere Cloud Native Storage
// with govmomi's cns package.
//
// Given the *vim25.Client of a vsphere.Client, New shares its vCenter
// session: CNS and SPBM calls are logged in again with it when vCenter
// ends it, counted in its Stats, kept to its rate limit and bounded by its
// timeouts, so VMs and volumes are one session:
//
//	vs, err := vsphere.New(ctx, vsphere.Config{URL: u, Username: user, Password: pw})
//	c, err := csi.New(ctx, vs.Vim25())
//	vol, err := c.CreateVolume(ctx, csi.VolumeSpec{Name: "pvc-1", SizeMB: 10240,
//		Datastore: "vsanDatastore", ClusterID: "c1"})
//	err = c.AttachVolume(ctx, vol.ID, node)
//
// On any other *vim25.Client the CNS endpoint gets a copy of that
// session's cookie, made once, and the caller owns re-login.
//
// What works: CreateVolume (block, size, datastore or SPBM storage policy,
// CNS metadata naming the cluster, labels; idempotent by name within the
// cluster; resumable: WithSink reports the CNS task before it is waited
// for and WithInFlight hands it back after a crash, so a volume is never
// made twice), CreateVolumes at bounded concurrency, Get, QueryVolumes by
// cluster (the orphan scan), AttachVolume (attached to that VM already is
// success; attached to another is an *AttachedError naming it),
// DetachVolume, ReleaseVolume (frees a volume left on a deleted VM),
// ExtendVolume, DeleteVolume (refused while attached unless forced),
// snapshots, storage policies, and the vSphere CSI driver's configuration
// and StorageClasses. The VM a volume is attached to is recorded in its CNS
// metadata (label kubefoundry.io/attached-to), which is how conflicts name
// their holder.
//
// Errors wrap the SDK's shared sentinels (ErrNotFound, ErrInvalidSpec =
// kubefoundry.ErrInvalid; ErrAttached wraps kubefoundry.ErrInUse); a spec
// is checked whole, every problem at once, cluster ids by
// kubefoundry.ClusterID's rule.
//
// CNS tasks are waited for together: every task the Client waits for is
// read in one PropertyCollector call per interval (a quarter of the time
// the youngest has been waited for, 20 ms to 2 s), in the vsan namespace
// and version as the cns package's own task objects do. Measured
// (BenchmarkCreateAttach, 100 volumes created and attached 10 at a time on
// vcsim): about 8 SOAP calls per volume and 1.4 times the critical path.
//
// # Files
//
//	csi.go       New, options, volumes: create (and resume), query, attach, detach, extend, delete
//	snapshot.go  snapshots
//	policy.go    storage policies (SPBM) and compatible datastores
//	driver.go    the vSphere CSI driver's config Secret and StorageClasses
//
// A Client is safe for concurrent use. Tests run on govmomi's vcsim with
// its CNS simulator; compose_test.go runs vsphere and csi on one session.
package csi
