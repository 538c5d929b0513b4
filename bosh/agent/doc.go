// Package agent is kubefoundry's BOSH agent: the process on every VM that
// the director talks to over the message bus (package bosh/mbus). It reads
// the settings the CPI wrote, downloads the packages and rendered jobs the
// director applies from the blobstore (package bosh/blobstore), checks
// their digests, lays them out as BOSH does, runs each job's processes
// from its bpm.yml under its own supervisor, runs the jobs' lifecycle
// scripts, and publishes heartbeats. The same code runs as a process
// (examples/bosh-agent) and in-process, an Agent per simulated VM, each
// under a root directory of its own.
//
//	settings, err := agent.LoadSettings("/var/vcap/bosh/settings.json") // or DecodeGuestinfoSettings
//	a, err := agent.Start(ctx, agent.Config{Settings: settings, Root: "/var/vcap"})
//	defer a.Close()
//
// # Settings
//
// cpi.AgentSettings, as the vSphere CPI writes them to
// guestinfo.bosh.settings: agent_id; mbus, the bus's URL, with the agent's
// certificate in env.bosh.mbus.cert {ca, certificate, private_key} (the
// embedded bus authenticates agents by certificate); blobstore {provider:
// dav, options: {endpoint, user, password, tls: {cert: {ca}}}} (without
// user the agent fetches only by the signed URLs in the spec). Bad
// settings are one *kubefoundry.ValidationError naming every field.
//
// # Methods
//
// BOSH's agent methods, and which this agent serves (Implemented):
//
//	ping                  yes: "pong"
//	get_state [full]      yes: the applied spec, agent_id, bosh_protocol, job_state,
//	                      processes [{name, state, uptime}], vm; vitals with "full"
//	apply [spec]          yes, a task: prepare, then point packages/<name> and
//	                      jobs/<job> at the spec's versions, drop jobs it no longer
//	                      has, record the spec (it survives a restart): "applied"
//	prepare [spec]        yes, a task: fetch and unpack without switching: "prepared"
//	start                 yes: start every job's bpm processes (pre_start hooks
//	                      first): "started"
//	stop                  yes, a task: stop every process: "stopped"
//	drain [type, spec]    yes, a task: every job's bin/drain at once; update,
//	                      shutdown or status; a script's integer answer is waited
//	                      (n >= 0: n seconds; n < 0: -n seconds, then asked again
//	                      with job_check_status); the value is 0
//	run_script [name, {}] yes, a task: bin/<name> of every job that has it, at once
//	                      (pre-start, post-start, post-deploy, pre-stop): {}, or
//	                      "1 of 2 <name> scripts failed. Failed Jobs: ..."
//	run_errand [job]      yes, a task: the job's bin/run (the first job that has
//	                      one when none is named) to completion: {exit_code, stdout,
//	                      stderr} (the last 64 KiB of each; all in sys/log/<job>/errand.*.log);
//	                      a non-zero exit is a result, not an error
//	fetch_logs [type, filters]
//	                      yes, a task: sys/log ("job") or bosh/log ("agent") as a gzipped
//	                      tarball, put with the agent's blobstore credentials:
//	                      {blobstore_id, sha1}; filters are not applied
//	fetch_logs_with_signed_url [{signed_url, log_type, filters}]
//	                      yes, a task: the same tarball to the director's signed URL: {sha1}
//	sync_dns [blobstore_id, sha1, version], sync_dns_with_signed_url [{signed_url,
//	multi_digest, version}]
//	                      yes, a task: the records blob, digest-checked and JSON, written
//	                      whole to instance/dns/records.json unless that has the version
//	                      or a newer one: "synced"
//	get_task, cancel_task yes (package mbus)
//	mount_disk [cid]      yes, a task: the disk (its hint from the settings, read again
//	                      through Config.ReloadSettings) mounted by Config.Mounter at store,
//	                      or at store_migration_target when store has another; a disk
//	                      mounted already is left: {}
//	unmount_disk [cid]    yes, a task: {"message": "Unmounted partition of <cid>"}, or
//	                      "Partition of <cid> is not mounted"
//	migrate_disk [old, new]
//	                      yes, a task: store's files copied (modes, links) to the migration
//	                      target, both unmounted, the new disk mounted at store: {}
//	list_disk             yes: the mounted disks' cids
//	update_settings [settings]
//	                      yes, a task: recorded in bosh/update_settings.json; trusted_certs
//	                      are not installed: "updated"
//	compile_package       no (packages are taken as compiled): "unknown message <method>"
//
// # Layout and processes
//
// Layout is BOSH's directory layout under a root that stands for
// /var/vcap: data/packages/<name>/<version>, packages/<name> (a link),
// data/jobs/<job>/<version>-<digest>, jobs/<job> (a link), sys/log/<job>,
// data/sys/run/<job>, store, bosh (the agent's state). A versioned
// directory appears whole or not at all (unpacked beside it, then moved),
// so an apply cut short is taken up again by the next one. After an apply,
// the versions the spec no longer names are removed, and the links of
// packages it dropped (bosh-agent's KeepOnly). Tarballs are
// unpacked refusing absolute names, "..", links that leave the directory,
// other entry types, and more than Config.MaxBlobSize bytes.
//
// The Supervisor runs each process of a job's config/bpm.yml (executable,
// args, env, workdir, hooks.pre_start, limits, shutdown_signal; bpm's
// volumes, capabilities and unsafe are read but not applied: there are no
// containers) in a process group of its own, its output appended to
// sys/log/<job>/<process>.stdout.log and .stderr.log, and starts it again
// with backoff (1s to 30s) whenever it exits. Stop sends the shutdown
// signal (TERM, or INT) to the group and SIGKILL after 20s. limits
// open_files and processes are set with prlimit as the process starts;
// limits.memory is not enforced (bpm uses a cgroup). A process is
// "starting" until it has been up a second, then "running"; "failing"
// after it exits. job_state sums them up as bosh-agent sums up monit:
// "failing" if any fails, "starting" if any starts, else "running" (also
// with no process at all: jobs of scripts only), and "stopped" after stop
// until start. A Stop while Start runs the hooks wins; what a process
// leaves in its group when it exits or stops is killed. Paths
// under /var/vcap in bpm.yml (executable, args, env values, workdir,
// hooks) are mapped into the root, so releases run in a sandbox unchanged;
// paths inside scripts are not.
//
// # Heartbeats
//
// Every Config.HeartbeatInterval (30s) the agent publishes
// hm.agent.heartbeat.<agent-id>: deployment, job (the instance group),
// index, node_id (the instance id), job_state, number_of_processes, and
// vitals (load, mem, swap, uptime, and disk use of the root, data and
// store; no CPU percentages). A process that exits unasked, or cannot be
// started, is an alert on hm.agent.alert.<agent-id> (severity 1,
// "<job>/<process> - Does not exist - restart", what happened), as
// bosh-agent forwards monit's.
//
// # Persistent disks
//
// A Mounter mounts them; which disk is mounted where is kept in
// bosh/disks.json, so it survives a restart of the agent. DirMounter is
// the stand-in for block devices in a sandbox: a disk is a directory of
// its own under a directory shared by the agents (it outlives the VM, as a
// cloud disk does), mounted by a link at store; mounting over a store
// that holds data of its own is refused. A Mounter for real block devices
// (finding the device by the vSphere hint, partitioning, formatting,
// mount(2)) is not here yet.
//
// The package does not read guestinfo itself: the
// caller passes its value to DecodeGuestinfoSettings (examples/bosh-agent
// -guestinfo reads it with vmware-rpctool).
//
// # Files
//
//	agent.go       Config, Start, Close; settings: bus credentials, blobstore clients, LoadSettings, DecodeGuestinfoSettings; heartbeats
//	methods.go     the director's methods: ping, get_state, apply, prepare, start, stop, drain, run_script
//	disks.go       Mounter, DirMounter; mount_disk, unmount_disk, migrate_disk, list_disk, update_settings
//	apply.go       ApplySpec, BlobRef; fetching with digests, unpacking, the versioned layout, the recorded spec
//	layout.go      Layout: BOSH's directories under a root
//	bpm.go         BPMConfig, Process, ParseBPM
//	supervisor.go  Supervisor: processes in groups, logs, restarts with backoff, stop then kill; JobState
//	errand.go      run_errand, fetch_logs, fetch_logs_with_signed_url
//	vitals.go      the vitals of heartbeats and get_state
package agent
