// Package director is kubefoundry's BOSH director, built up in pieces.
// What works today: the updater, which rolls new specs out to the
// instances of an instance group through their agents on the message bus
// as BOSH's director does; the state store; and cloud-check.
//
//	u := director.NewUpdater(busClient, log)
//	results, err := u.UpdateGroup(ctx, changes, m.UpdateFor(group), sink)
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
//	run_script pre-stop   only when it runs (Instance.Running), with BOSH_VM_NEXT_STATE=keep
//	drain update <spec>   likewise; the agent waits what the drain scripts ask
//	stop                  likewise
//	run_script post-stop  likewise
//	apply <spec>          the agent fetches and lays out the new packages and jobs
//	run_script pre-start
//	start
//	watch                 get_state until job_state is running: a single watch time is
//	                      waited, then checked once; a min-max range waits min, then checks
//	                      every ninth of the range (at least a second) until max, as
//	                      BOSH's watch_schedule
//	run_script post-start
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
// in one bbolt file: deployments (the manifest and cloud config last
// deployed), their instances (group, index, id, AZ, IPs, bootstrap, VM
// cid, agent id, disk cid, the hash of the spec applied, the state asked
// for), tasks (kind, deployment, state, result) with their events in
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
// the diff shown before anything changes. Building the Desired instances
// from a manifest, its releases and the cloud config is the deploy's, not
// here yet.
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
// reattach_disk, after checking that the record still names the VM and
// disk the scan saw (ErrConflict otherwise). recreate_vm, and BOSH's
// unbound_instance_vm and inactive_disk, come with the deploy.
//
// Not here yet: the deploy itself (Desired instances from the manifest,
// rendering, VMs and disks through the CPI), running tasks on the store, recreate,
// scale, errands and delete (issue 15); the health monitor and resurrector
// are package bosh/health. Packages are taken as compiled: there are no
// compilation VMs.
//
// # Files
//
//	update.go      Updater, UpdateGroup, Instance, Change, Result, UpdateError, NotRunningError
//	event.go       Event in BOSH's event log shape, EventSink
//	store.go       Store, OpenStore (bbolt): deployments, instances, tasks and their events, locks
//	cloudcheck.go  CloudCheck: Scan for problems, Resolve them
//	plan.go        Plan: Desired against InstanceRecord.Applied, with reasons
package director
