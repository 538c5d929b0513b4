package simulator

import (
	"testing"

	"github.com/kubefoundry/kubefoundry/nsxt"
)

// Start runs a simulator for a test in one call: it serves cfg, stops
// when the test ends, and returns the nsxt.Config that reaches it (its
// URL, the user it accepts, its certificate as the CA to trust).
//
//	sim, cfg := simulator.Start(t, simulator.Config{PurgeAfter: time.Minute})
//	c, err := nsxt.New(ctx, cfg)
func Start(tb testing.TB, cfg Config) (*Server, nsxt.Config) {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("nsxt simulator: %v", err)
	}
	tb.Cleanup(s.Close)
	return s, nsxt.Config{URLs: []string{s.URL}, Username: s.Username(), Password: s.Password(),
		CACert: string(s.CertificatePEM())}
}
