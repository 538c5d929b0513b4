// Package vsphere is kubefoundry's vCenter client, built on govmomi.
//
// It owns sessions (keep-alive, transparent re-login when vCenter answers
// NotAuthenticated, credentials rotated under a running Client with
// SetCredentials, a client-side rate limit, a count of SOAP calls),
// inventory lookup whose errors list what does exist, and the VM work a
// Kubernetes foundation needs: ProvisionVMs clones VMs from a stemcell
// template (full or linked clones, with the stemcell replicated once to each
// datastore linked clones are asked for on) into a folder and a resource
// pool per cluster, with CPU, memory, extra disks, NICs, cloud-init
// guestinfo metadata and userdata, and ownership recorded on every VM; DRS
// anti-affinity and VM/host rules; power; resize of CPU, memory and disks;
// destroy, which detaches and keeps the disks that are not the VM's own
// (persistent volumes) so that vSphere does not delete them with it; ListVMs, the orphan scan; WatchVMs, one PropertyCollector for
// many VMs; and ImportStemcell for OVF/OVA images, DeleteStemcell with
// its replicas.
//
// The shortest use:
//
//	c, err := vsphere.New(ctx, vsphere.Config{URL: "https://vc.example.com/sdk",
//		Username: user, Password: pw}, vsphere.WithLogger(log), vsphere.WithConcurrency(16))
//	if err != nil { ... }
//	defer c.Close(ctx)
//	res, err := c.ProvisionVMs(ctx, []vsphere.VMSpec{{
//		Name: "c1-worker-0", Owner: vsphere.Owner{Cluster: "c1", Group: "worker"},
//		Template: "stemcell-ubuntu-jammy", Folder: "kubefoundry/c1", Cluster: "Cluster-A",
//		ResourcePool: "c1", NICs: []vsphere.NIC{{Network: "k8s-nodes"}}, IPTimeout: 10 * time.Minute,
//	}})
//
// ProvisionVMs folds hardware, guestinfo, ownership and power-on into the
// clone task itself and reads the state of all its pending tasks and VMs in
// one RetrievePropertiesEx every 100 ms, so a VM costs about two SOAP calls
// (the clone and the owner custom attribute) plus a share of the batched
// reads (2.7-2.8 per VM for 100 VMs in BenchmarkProvisionVMs). Once only
// VMs waiting for their guests' IPs are left, reads back off to one every
// 10 s while nothing changes (BenchmarkIPWait: reads of 3 VMs over a
// 5-minute wait). WatchVMs,
// for long-lived watches, uses one PropertyCollector and ListView with
// WaitForUpdatesEx instead. It is idempotent:
// called again with the same specs it returns the same VMs and creates
// nothing; a VM of the same name with another owner is an ErrAlreadyExists.
// Each clone task is reported (PhaseCloneStarted) before it is waited for;
// a caller that journals those and crashes passes them to the next call
// (WithInFlight), which waits for the clones still running instead of
// starting them again.
// Each VM's outcome is its own: one failing clone does not stop the others.
// WithSink reports every step of ProvisionVMs and DestroyVMs as the SDK's
// shared kubefoundry.Event; the tasks they start (clone, destroy) are
// reported before they are waited for, and WithInFlight hands them back
// to the next call after a crash.
//
// Ownership is written into each VM's extraConfig (kubefoundry.cluster,
// kubefoundry.group, kubefoundry.index) in the same task that creates it,
// so no VM exists without it, and repeated in the custom attribute
// "kubefoundry.owner" for the vSphere Client. The folders and resource
// pools ProvisionVMs creates carry the cluster in the custom attribute
// "kubefoundry.cluster": ListContainers lists them and RemoveContainers
// removes the empty ones, so what a cluster's runs created goes with it. A
// spec whose template, compute cluster, datastore, storage policy or
// network does not exist fails before anything is created for it. Owner
// clusters follow kubefoundry.ClusterID's rule.
//
// # Sessions
//
// The session (internal/vimsession) is shared with package csi:
// csi.New(ctx, c.Vim25()) sends CNS and SPBM calls through the same
// re-login, rate limit (WithRateLimit, or WithRateLimiter to share a bucket
// with other clients), call counting (Stats) and timeouts. Connect, TLS
// handshake and each call are bounded (Config.ConnectTimeout,
// TLSHandshakeTimeout, CallTimeout: 10 s, 10 s, 1 minute by default), and a
// bound that strikes is a *kubefoundry.TimeoutError naming the stage.
//
// # Errors
//
// Errors wrap the SDK's shared sentinels (ErrNotFound, ErrAlreadyExists,
// ErrInvalidSpec = kubefoundry.ErrInvalid, ErrInUse); validation lists every
// problem at once as a *kubefoundry.ValidationError; task failures are
// *TaskError values whose vSphere fault govmomi's fault.Is and fault.As see.
//
// # Files
//
//	client.go      New, Close, SetCredentials, Stats, Vim25
//	config.go      Config and Options
//	inventory.go   Find* lookups whose not-found errors list what exists
//	spec.go        VMSpec, Owner and their validation
//	provision.go   ProvisionVMs: the per-VM flow (find, resume, clone, power, wait for IP), progress
//	clonespec.go   the clone spec: placement, hardware, NICs, disks, guestinfo and ownership
//	template.go    clone sources: linked-clone bases, stemcell replicas per datastore, snapshots
//	containers.go  folders and pools: EnsureFolder, EnsureResourcePool, and those a cluster's runs
//	               created (ListContainers, RemoveContainers)
//	disk.go        what a BOSH CPI calls one object at a time: CreateVM, DeleteVM, and persistent
//	               disks as First Class Disks (CreateDisk, AttachDisk, DetachDisk, DeleteDisk, ListDisks)
//	owner.go       ownership keys and attributes, ListVMs (the orphan scan)
//	attributes.go  a guest's extraConfig (SetExtraConfig, ExtraConfig) and custom attributes (SetAttributes)
//	power.go       power, resize, DestroyVMs
//	placement.go   DRS anti-affinity and VM/host rules
//	watch.go       one PropertyCollector (WatchVMs) and the batched poller of ProvisionVMs
//	stemcell.go    ImportStemcell, DeleteStemcell
//
// A Client is safe for concurrent use by many goroutines.
//
// Tests run against govmomi's in-process vCenter simulator (vcsim);
// package vsphere/vspheretest starts it for a test in one call, with the
// CNS and SPBM endpoints, and returns the Config that reaches it. A clone
// with extra disks makes vcsim log "*types.FileAlreadyExists:
// .../<vm>/<vm>.vmdk": the disks are created without a file name, as
// vCenter names them (<vm>_1.vmdk, ...) in the VM's directory, and vcsim
// logs each name it finds taken while it looks for a free one.
package vsphere
