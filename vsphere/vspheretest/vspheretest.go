// Package vspheretest starts govmomi's in-process vCenter simulator (vcsim)
// for a test in one call, with what the SDK's vSphere clients need of it:
// HTTPS with a self-signed certificate as vCenter serves, the CNS and SPBM
// endpoints, and credentials it checks. It returns the vsphere.Config that
// reaches it; the server stops when the test ends.
//
//	sim := vspheretest.Start(t)
//	vs, err := vsphere.New(ctx, sim.Config)
//	vols, err := csi.New(ctx, vs.Vim25())
package vspheretest

import (
	"crypto/tls"
	"encoding/pem"
	"net/url"
	"testing"

	_ "github.com/vmware/govmomi/cns/simulator" // the CNS endpoint
	_ "github.com/vmware/govmomi/pbm/simulator" // the SPBM endpoint
	"github.com/vmware/govmomi/simulator"

	"github.com/kubefoundry/kubefoundry/vsphere"
)

// The credentials the simulator accepts (it refuses any others).
const (
	Username = "kf-admin"
	Password = "kf-secret"
)

// Sim is a running simulator.
type Sim struct {
	// Config reaches the simulator with TLS verification off; CACert
	// holds its certificate for a test that verifies it.
	Config vsphere.Config
	// URL is Config.URL with the credentials in it, for govmomi clients.
	URL    *url.URL
	CACert string
	Model  *simulator.Model
	Server *simulator.Server
}

// An Option adjusts the simulator.
type Option func(*options)

type options struct {
	model   []func(*simulator.Model)
	created []func(*simulator.Model)
}

// WithModel edits the model before it is created (more datastores, a
// host count, DelayConfig).
func WithModel(f func(*simulator.Model)) Option {
	return func(o *options) { o.model = append(o.model, f) }
}

// WithCreated edits the created inventory before the server starts (as
// vCenter would have it where vcsim differs).
func WithCreated(f func(*simulator.Model)) Option {
	return func(o *options) { o.created = append(o.created, f) }
}

// Start creates vcsim's VPX model (one datacenter DC0 with cluster DC0_C0,
// datastore LocalDS_0, networks "VM Network" and DC0_DVPG0, VMs such as
// DC0_C0_RP0_VM0 to clone) and serves it until the test ends.
func Start(tb testing.TB, opts ...Option) *Sim {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	m := simulator.VPX()
	for _, f := range o.model {
		f(m)
	}
	if err := m.Create(); err != nil {
		tb.Fatalf("vcsim: %v", err)
	}
	for _, f := range o.created {
		f(m)
	}
	m.Service.TLS = new(tls.Config)    // HTTPS with a self-signed certificate, as vCenter serves
	m.Service.RegisterEndpoints = true // CNS and SPBM
	m.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(Username, Password)}
	s := m.Service.NewServer()
	tb.Cleanup(func() {
		s.Close()
		m.Remove()
	})
	sim := &Sim{URL: s.URL, Model: m, Server: s,
		Config: vsphere.Config{URL: s.URL.String(), Insecure: true}}
	if cert := s.Certificate(); cert != nil {
		sim.CACert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	}
	return sim
}
