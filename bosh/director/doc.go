// Package director is kubefoundry's BOSH director: it uploads releases
// and stemcells, deploys manifests onto a cloud through a CPI and the
// agents of the VMs over the message bus, and keeps the deployments as
// BOSH's director does.
//
//	d, err := director.New(director.Config{Store: st, CPI: c, Bus: bus, Agents: client,
//		Blobs: blobs, Signer: srv.Signer(), BlobstoreURL: url, Renderer: template.New()})
//	err = d.UpdateCloudConfig(cloudConfigYAML)
//	_, err = d.UploadStemcell(ctx, "stemcell.tgz")
//	_, err = d.UploadRelease(ctx, "release.tgz") // compiled
//	res, err := d.Deploy(ctx, manifestYAML, director.DeployOptions{Events: sink})
//
// # What a Director does
//
//   - UploadStemcell (create_stemcell), UploadRelease (its jobs kept for
//     rendering, its compiled packages put in the blobstore): idempotent;
//     the same version with other content is ErrConflict. Packages are
//     taken as compiled: there are no compilation VMs, and a deploy that
//     needs a package not compiled for its stemcell fails naming it.
//   - Deploy: the manifest, its releases and stemcells ("latest" is the
//     highest version), its links and the cloud config give each instance
//     its AZ (balanced over the group's AZs; an instance keeps its own),
//     its addresses (cloudconfig.Allocate, with every other instance's
//     held; an instance keeps its own), its VM's cloud properties (the AZ's, the vm_type's or the
//     CPI's for vm_resources, then vm_extensions) and its rendered
//     templates; Plan says what to do with each, and DryRun stops there.
//     Every problem of the manifest is reported at once, before anything
//     changes. Then instances no longer wanted are drained and deleted
//     (their disks orphaned), and group by group, through the updater
//     below, each instance to create or recreate is given a new VM once
//     stopped (create_vm with a new agent id and bus certificate in its
//     env, waited for until its agent answers), or before it is stopped
//     where the group's vm_strategy is create-swap-delete (below), its
//     persistent disk is made what it is to be, and it is applied,
//     started and watched.
//   - Persistent disks (persistent_disk, persistent_disk_type): made near
//     the VM, attached and mounted before the apply; moved with the
//     instance to a new VM (detached before the old one goes, or, in a
//     swap, unmounted and detached once the old one is stopped); migrated
//     by the agent to a new disk when the size or type changes.
//   - Orphaned disks, as BOSH's: a disk no instance has any more is
//     unmounted, detached and kept, listed by OrphanedDisks with its size,
//     disk type and cloud properties, the deployment, group, instance id
//     and index and AZ it belonged to, and when it was orphaned. As BOSH
//     does, a deploy orphans the disks of the instances it deletes (a
//     scale-down, a group removed), of a group that no longer has one, the
//     old disk of a migration once its data moved, and the new disk of a
//     migration cut short. DeleteDeployment deletes the disks unless
//     KeepDisks, which orphans them (BOSH always orphans them).
//     DeleteOrphanedDisk deletes one (bosh delete-disk);
//     CleanUpOrphanedDisks deletes those orphaned longer ago than a
//     duration (0: all, as bosh clean-up --all), what BOSH's director does
//     on its own schedule (every 30 minutes, OrphanedDiskRetention of 5
//     days): nothing here schedules it, the caller does. AttachDisk (bosh
//     attach-disk, for orphans only) gives an instance an orphan as its
//     disk, the instance's own orphaned in its place: a started instance
//     is stopped, the disks exchanged, the spec applied and the instance
//     started; a soft-stopped one stays stopped, a detached one gets the
//     disk at Start; the disk keeps its size and type until a deploy
//     wants another. An orphan outlives its deployment, and is no problem
//     of it for cloud-check. A disk stays named by its instance's record until
//     it is detached, and is recorded orphaned in the transaction that
//     takes it off the record: at every moment one record names it. A
//     disk that fails is an error naming it; the other disks and
//     instances go on. Orphaned snapshots are not here (nor snapshots).
//   - Recreate (by group, group/id or group/index; SkipDrain for dead
//     VMs), Stop (soft; or Hard: the VM deleted, the instance detached
//     with its addresses and disk), Start (a detached instance gets a new
//     VM), Restart, RunErrand (an errand group's VMs made for the run and
//     deleted after unless KeepAlive; or a job's bin/run on every instance
//     with it), DeleteDeployment (idempotent; Force goes on past instances
//     that cannot be drained; KeepDisks orphans the disks).
//   - Resurrector and Watch connect a bosh/health Monitor: a silent
//     instance is recreated without drain. CloudCheck offers recreate_vm.
//
// Every operation is a task on the store holding its deployment's lock
// (DeleteOrphanedDisk and CleanUpOrphanedDisks the lock of the orphaned
// disks, "orphaned-disks"; AttachDisk both), with its events; a task runs in its caller's goroutine and its ctx
// cancels it between steps. Everything is recorded as it happens: an
// instance before its VM is made, a VM's or disk's cid as soon as the CPI
// gives it, and a create_vm once begun is seen through whatever becomes
// of ctx. New ends what a director that stopped left running (the task in
// state error, its lock released); deploying again converges, with no VM
// or disk the store names made twice or left behind. A VM whose create_vm
// was under way when the process died is the one thing the store cannot
// name.
//
// Configs: UpdateConfig records a cloud or runtime config under a name
// as a new version (the same content again records nothing), refusing
// one that does not parse or that the other current configs of its type
// cannot be merged with; DeleteConfig ends one (its versions stay
// readable by id). UpdateCloudConfig and UpdateRuntimeConfig set the
// configs named "default". A deploy merges every current config of each
// type as BOSH does (cloudconfig.MergeCloud, MergeRuntime; named cloud
// configs other than default need no compilation block or networks) and
// records the ids of the versions it used; recreate, stop, start and
// errands use those, not newer ones, until the next deploy.
//
// Variables: a deploy generates what the manifest's variables block
// declares into the deployment's bosh/variables store and interpolates
// every ((placeholder)) from it (recreate, stop, start and errands
// interpolate the recorded manifest again); the manifest is recorded as
// given, placeholders and all. The store is kept in Store, or with
// Config.VariablesDir in a file per deployment there; it is kept when the
// deployment is deleted, as CredHub keeps BOSH's. A runtime config's
// variables are generated into each deployment's store as it is deployed,
// and its ((placeholders)) interpolated from there. Absolute names
// (/dns_ca) are kept per deployment too: unlike CredHub's, they are not
// shared between deployments.
//
// Add-ons: the manifest's, and those of the runtime config
// (UpdateRuntimeConfig), whose releases join the deployment's, are placed
// on the instance groups their rules select (placement rules as BOSH's
// add-on filter: any entry of a list, every list; no include rule, or an
// empty one, means every group, errand groups too; an empty exclude rule
// excludes nothing; lifecycle filters only when named), before the plan. The runtime config a deployment was deployed with is recorded with
// it. Teams are not modelled: a rule that names teams selects nothing. A
// runtime config's tags join the manifest's (the manifest's win) and go,
// with BOSH's own (deployment, instance_group, job, index, id, name), on
// every VM the deploy creates (set_vm_metadata).
//
// Groups are updated in manifest order; adjacent groups whose update says
// serial: false are updated together.
//
// An instance stopped on purpose stays so through a deploy or a recreate:
// a soft-stopped one gets its new spec applied and is not started; a
// hard-stopped (detached) one is planned keep and gets no VM until Start,
// which then applies what the deployment says.
//
// Not here yet: several named persistent disks, variables shared between
// deployments, the IPs of dynamic networks read back from the VMs, and
// DNS (links address instances by IP).
//
// # create-swap-delete
//
// An instance group whose update says vm_strategy: create-swap-delete
// (its own or the deployment's) and that has no static IPs has the
// instances that are to get new VMs (AZ, stemcell, vm_type, networks or
// env changed, DeployOptions.Recreate, Recreate without SkipDrain)
// swapped, as BOSH does: the new VM is made first (Change.Create; event
// stage "Creating missing vms") while the old one runs its jobs; then the
// old one is drained and stopped as ever (BeforeStop, pre-stop with
// BOSH_VM_NEXT_STATE=delete, drain shutdown, stop, post-stop), its
// persistent disk unmounted by its agent and detached, the new VM made
// the instance's in one record (the swap), the disk attached and mounted
// there, and the new VM applied, started and watched. The VMs swapped
// out are deleted once their group's update ends (BOSH orphans them and
// deletes them within minutes). A failure before the swap (create_vm,
// the new agent's wait, BeforeStop, a drain) leaves the old instance on
// its VM, and the new VM is deleted at the group's end.
//
// The new VM cannot have the old one's addresses while the old one holds
// them: a swapped instance is given new ones (on manual and vip
// networks), the old ones held until the old VM is deleted, as BOSH
// gives such an instance new reservations. Every template is rendered
// once, before anything changes, with the addresses each instance will
// have: a link consumer whose template changes is updated in its group's
// turn (Recreate updates such instances too), so until then a consumer
// in a later group names the old address, one in an earlier group the
// new one before its VM runs. A network without a free address for each
// instance swapped fails the deploy before anything changes. An instance
// group with static IPs is recreated delete-create, as BOSH does, and the
// plan's reasons say so; so are the resurrector's and cloud-check's
// recreations (SkipDrain: the old VM is gone or dead). The plan marks a
// swapped instance (InstanceChange.Swap).
//
// The VM made ahead is recorded as the instance's next VM
// (InstanceRecord.NextVMCID, NextAgentID, NextIPs) as it is made, and the
// one swapped out as its old VM (OldVMCID, OldAgentID, OldIPs) until it
// is deleted; the swap also records the VM's part of Applied, so that a
// deploy cut short after the swap finishes it as an update. A deploy
// (and Recreate, Start, Restart, for their instances) first deletes
// whatever of these a director that stopped left, and deleting an
// instance deletes them too. Unlike BOSH, the new VMs are made in each
// instance's turn (canaries first, max_in_flight at once), not all at
// the start of the deploy, and a next VM a director that died left is
// deleted and made again, not adopted.
//
// # Rolling updates
//
// UpdateGroup orders the instances by AZ, then index. The first
// update.canaries are the canaries, updated first (at most that many, and
// at most max_in_flight, at once) and watched for canary_watch_time; the
// rest follow AZ by AZ, max_in_flight at once within an AZ (a window: a new
// one begins as soon as one ends), each watched for update_watch_time. One
// instance is taken through BOSH's steps:
//
//	Change.Create         when set: the new VM made ahead (create-swap-delete)
//	Change.BeforeStop     when set and it runs (a platform's own step: lifecycle drains the
//	                      instance's Kubernetes node; DeployOptions.BeforeStop)
//	run_script pre-stop   only when it runs (Instance.Running), with BOSH_VM_NEXT_STATE=keep
//	                      (delete when it is to get a new VM)
//	drain update <spec>   likewise; the agent waits what the drain scripts ask
//	stop                  likewise
//	run_script post-stop  likewise
//	Change.Replace        when set: a new VM (delete-create), or the swap to the one made ahead
//	Change.Prepare        when set: the persistent disk made what it is to be
//	apply <spec>          the agent fetches and lays out the new packages and jobs
//	run_script pre-start
//	start
//	watch                 get_state until job_state is running: a single watch time is
//	                      waited, then checked once; a min-max range waits min, then checks
//	                      every ninth of the range (at least a second) until max, as
//	                      BOSH's watch_schedule
//	run_script post-start
//	Change.AfterStart     when set (a platform's own check: lifecycle waits for the
//	                      instance's Kubernetes node to be Ready and uncordons it;
//	                      DeployOptions.AfterStart)
//
// A failed instance stops the update: nothing new begins, what is in
// flight finishes, and the error is an *UpdateError listing every failed
// instance (each error wraps the agent's *mbus.AgentError or a
// *NotRunningError) and how many were left untouched. A failed canary
// thus leaves every other instance as it was. Events, in the shape of
// BOSH's event log (stage "Updating instance", tags [group], task
// "group/id (index) (canary)", started then finished or failed with the
// error), go to an EventSink.
//
// # State
//
// Store is the director's state behind an interface; OpenStore keeps it
// in one bbolt file: deployments (the manifest last deployed and the
// ids of the config versions it was deployed with), every version of
// every config, each deployment's variables, their instances (group,
// index, id, AZ, IPs, bootstrap, VM cid, agent id, disk cid, the hash of
// the spec applied, the state asked
// for, the VMs of a swap under way), the orphaned disks (outliving their
// deployments), tasks (kind, deployment, state, result) with their events in
// order, and a lock per deployment naming the task that holds it (a
// *LockedError, errors.Is kubefoundry.ErrConflict, for any other). All of
// it survives a restart; a lock left by a director that died names the
// task to resume or release.
//
// # Plan
//
// Plan compares what a deploy wants of each instance (Desired: AZ,
// stemcell, jobs, configuration hash, networks, vm_type, env, persistent
// disk) with what the last deploy gave it (InstanceRecord.Applied) and
// says per instance create, recreate, update, keep or delete, with BOSH's
// reasons ("stemcell changed (a -> b)", "properties changed", ...), as
// the diff shown before anything changes; Deploy builds the Desired
// instances, and says of each recreate whether it is a swap.
//
// # Cloud-check
//
// CloudCheck.Scan compares a deployment's records with the cloud and the
// agents, as `bosh cloud-check` does: missing_vm (has_vm false),
// unresponsive_agent (the VM is there, its agent does not answer a ping
// within PingTimeout), missing_disk (has_disk false) and
// mount_info_mismatch (the disk is not among the VM's get_disks). Each
// Problem lists its resolutions; Resolve applies one: ignore,
// delete_vm_reference, reboot_vm, delete_vm, delete_disk_reference,
// reattach_disk, and recreate_vm with a Director, after checking that the
// record still names the VM and disk the scan saw (ErrConflict otherwise).
// Only the disks instances have are checked: an orphaned disk is not the
// deployment's. BOSH's unbound_instance_vm and inactive_disk are not here.
//
// # Files
//
//	director.go    Director, Config, New (ending a dead director's tasks), UploadStemcell, UploadRelease
//	configs.go     UpdateConfig, DeleteConfig, Configs, UpdateCloudConfig, UpdateRuntimeConfig: named configs by version, merged
//	deploy.go      Deploy: building the instances (addresses, a swap's new ones), rendering, applying; tasks; VMs made, swapped, deleted; DeleteDeployment
//	disk.go        persistent disks: create, attach, mount, migrate, orphan; OrphanedDisks, DeleteOrphanedDisk, CleanUpOrphanedDisks, AttachDisk
//	recreate.go    Recreate, Resurrector, Watch
//	state.go       Stop, Start, Restart
//	errand.go      RunErrand
//	vars.go        variables: generated, then interpolated into the manifest; kept in Store or VariablesDir
//	addons.go      add-ons placed on instance groups
//	update.go      Updater, UpdateGroup, Instance, Change, Result, UpdateError, NotRunningError
//	event.go       Event in BOSH's event log shape, EventSink
//	store.go       Store, OpenStore (bbolt): deployments, instances, orphaned disks, releases, stemcells, config versions, variables, tasks and their events, locks
//	cloudcheck.go  CloudCheck: Scan for problems, Resolve them
//	plan.go        Plan: Desired against InstanceRecord.Applied, with reasons
package director
