// Package bosh is kubefoundry's BOSH: the formats, templates, cloud and
// director that deploy and keep alive the VMs of a cluster, compatible with
// BOSH's own (its manifests, releases, stemcells, CPI and agent protocol),
// so that a BOSH user recognises every piece.
//
// It is built in subpackages:
//
//	bosh/cpi             the CPI v2 interface, BOSH's CPI errors, and the external CPI wire protocol
//	bosh/cpi/vspherecpi  the vSphere CPI on kubefoundry's vsphere and csi clients
//	bosh/stemcell        stemcell tarballs: stemcell.MF, the image, light stemcells from an OVF
//	bosh/release         release tarballs: release.MF, job and package specs, create with BOSH's fingerprints, read and verify
//	bosh/manifest        the deployment manifest v2: parse, validate (every problem with its path and line), write
//	bosh/opsfile         ops-files (replace, remove, go-patch's path syntax) and ((variable)) interpolation
//	bosh/variables       the variables store: generated passwords, users, RSA and SSH keys, certificates; CA rotation, converge
//	bosh/cloudconfig     cloud and runtime configs: parse, validate (every problem with its path and line), IP allocation
//	bosh/links           links resolved as the director resolves them
//	bosh/template        ERB job templates rendered by Ruby with BOSH's evaluation context; property binding
//	bosh/mbus            the message bus: embedded NATS with per-agent certificates, BOSH's agent protocol both ways
//	bosh/blobstore       BOSH's DAV blobstore: server, client, signed URLs, multi-digests
//	bosh/agent           the agent: settings, apply and the VM layout, a bpm process supervisor, drain and scripts, heartbeats
//	bosh/agent/agentsim  an in-process agent for every powered-on VM of a (simulated) vCenter
//	bosh/director        the director, in part: rolling updates with canaries through the agents; its state store; cloud-check
//	bosh/health          the health monitor: time-outs from heartbeats, the resurrector and its meltdown guard
//
// Not here yet: the director's deploy (plan, VMs and disks through the
// CPI, tasks), recreate, scale, errands and delete (issue 15).
package bosh
