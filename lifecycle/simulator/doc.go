// Package simulator starts a whole simulated vSphere foundation in this
// process, in one call: what lifecycle's examples run on by default, and
// what a platform team's own tests start with the same call.
//
//	f, err := simulator.Start(ctx, simulator.Config{Clusters: 3})
//	if err != nil {
//		return err
//	}
//	defer f.Close()
//	// f.VCenter, f.NSX and f.Harbor are the endpoints a caller would
//	// configure for a real foundation; f.Director is a BOSH director on it.
//
// A Foundation is:
//   - vCenter with CNS and SPBM: govmomi's vcsim (VPX model: datacenter
//     DC0, one vSphere cluster per Config.Clusters, datastore LocalDS_0,
//     network "VM Network") on HTTPS with a certificate the returned
//     vsphere.Config trusts, and a random administrator password;
//   - NSX-T: nsxt/simulator seeded with a tier-0, an edge cluster, an
//     overlay transport zone, IP blocks and a floating IP pool (Inventory);
//     the node block and the floating pool are loopback addresses of the
//     foundation's own (127.(16+n).0.0/16 and 127.(128+n).0.0/20, n the
//     slot it holds, by a lock file, among 64: foundations running at
//     once, in one process or several, never share an address), so a cluster's VMs and its load balancers' addresses
//     are addresses this machine can listen on, and its load balancers'
//     virtual servers forward TCP to their pool members
//     (nsxt/simulator's ForwardLoadBalancers);
//   - Harbor: harbor/simulator;
//   - a BOSH director (bosh/director) with its store (bbolt), its
//     blobstore on HTTPS, the embedded NATS message bus, the vSphere CPI
//     (bosh/cpi/vspherecpi, owning its VMs as "bosh" in folder bosh/vms)
//     and an agent (bosh/agent/agentsim) for every powered-on VM the CPI
//     makes. Jobs run as real processes of this machine under their
//     agents; each VM's address comes from the cloud config's networks,
//     so with a manual network on a loopback subnet (Subnet gives some
//     for a caller's own cloud config) every VM has its own loopback
//     address and its jobs listen there.
//
// Stemcell writes a light stemcell vcsim imports, for UploadStemcell.
// Close stops every part, the job processes included, and leaves no
// goroutine, port or file behind (the directory Start made is removed; a
// Config.Dir given is kept). Ruby must be installed: the director renders
// job templates with Ruby's ERB, as bosh-cli does.
//
// lifecycle/kuberelease is the Kubernetes release that runs on it: the
// real control-plane binaries as job processes, and kwok as each worker's
// simulated kubelet.
package simulator
