// Package cpi is BOSH's Cloud Provider Interface, version 2, in Go: the
// CPI interface a director plans onto (info; create_stemcell,
// delete_stemcell; create_vm, delete_vm, has_vm, reboot_vm,
// set_vm_metadata, calculate_vm_cloud_properties; create_disk,
// delete_disk, has_disk, attach_disk, detach_disk, resize_disk,
// set_disk_metadata, get_disks, snapshot_disk, delete_snapshot), BOSH's
// typed CPI errors, and the external CPI wire protocol in both directions:
//
//   - External calls any CPI executable (a CPI release's bin/cpi) as the
//     director does: a process per call, one JSON request on its stdin
//     ({"method", "arguments", "context", "api_version": 2}), one JSON
//     response read from its stdout ({"result", "error": {"type",
//     "message", "ok_to_retry"}, "log"}) whatever its exit status.
//   - Serve answers one such request with a CPI, so a Go CPI is a BOSH CPI
//     executable: func main() { cpi.Serve(ctx, myCPI, os.Stdin, os.Stdout) }.
//
// The request's context (director_uuid, request_id, the stemcell's API
// version, and the CPI config's properties) reaches the CPI's methods
// through their ctx (RequestContextFrom); External sends the one a call's
// ctx carries (WithRequestContext), or its own.
//
//	c := &cpi.External{Path: "/var/vcap/jobs/vsphere_cpi/bin/cpi"}
//	vm, nets, err := c.CreateVM(ctx, agentID, stemcellCID, cpi.CloudProps{"cpu": 2, "ram": 4096}, networks, nil, env)
//	var ce *cpi.Error
//	if errors.As(err, &ce) && ce.OKToRetry { ... }
//
// Errors: *Error carries BOSH's type (Bosh::Clouds::VMNotFound,
// DiskNotFound, VMCreationFailed, NotImplemented, ...); VMNotFound and
// DiskNotFound match kubefoundry.ErrNotFound with errors.Is.
//
// External is safe for concurrent use (each call is its own process).
//
// # Files
//
//	cpi.go       the CPI interface and the types its methods take
//	errors.go    *Error and BOSH's error types
//	protocol.go  the wire protocol: Request, Response, Serve, External
//
// The vSphere CPI is package bosh/cpi/vspherecpi.
package cpi
