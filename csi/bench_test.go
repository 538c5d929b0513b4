package csi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"

	"github.com/kubefoundry/kubefoundry/csi"
)

// countingProxy sits between the client and vcsim and counts SOAP calls,
// whichever endpoint (/sdk, /vsanHealth, /pbm) they go to.
func countingProxy(t testing.TB, target *url.URL) (*url.URL, *atomic.Int64) {
	var calls atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the simulator's self-signed certificate
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			calls.Add(1)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	u.Path = target.Path
	u.User = target.User
	return u, &calls
}

// BenchmarkCreateAttach creates 100 volumes and attaches them to 10 VMs,
// 10 at a time, with CNS task delays (create 200 ms, attach 100 ms), and
// reports wall time over the critical path (ceil(100/10) rounds of one
// create and one attach) and SOAP calls per volume, counted at the wire.
func BenchmarkCreateAttach(b *testing.B) {
	const (
		volumes     = 100
		concurrency = 10
		createMS    = 200
		attachMS    = 100
	)
	old := simulator.TaskDelay.MethodDelay
	simulator.TaskDelay.MethodDelay = map[string]int{"CnsCreateVolume": createMS, "CnsAttachVolume": attachMS, "LockHandoff": 0}
	defer func() { simulator.TaskDelay.MethodDelay = old }()

	m := simulator.VPX()
	m.Machine = 10
	require.NoError(b, m.Create())
	m.Service.TLS = new(tls.Config)
	m.Service.RegisterEndpoints = true
	s := m.Service.NewServer()
	defer func() { s.Close(); m.Remove() }()
	proxyURL, calls := countingProxy(b, s.URL)

	ctx := context.Background()
	gc, err := govmomi.NewClient(ctx, proxyURL, true)
	require.NoError(b, err)
	defer gc.Logout(ctx)
	c, err := csi.New(ctx, gc.Client)
	require.NoError(b, err)
	f := find.NewFinder(gc.Client, true)
	dc, err := f.DefaultDatacenter(ctx)
	require.NoError(b, err)
	f.SetDatacenter(dc)
	vms, err := f.VirtualMachineList(ctx, "DC0_C0_RP0_VM*")
	require.NoError(b, err)
	require.GreaterOrEqual(b, len(vms), 10)

	var ratio, perVolume float64
	for i := 0; b.Loop(); i++ {
		before := calls.Load()
		start := time.Now()
		sem := make(chan struct{}, concurrency)
		var wg sync.WaitGroup
		for v := range volumes {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				vol, err := c.CreateVolume(ctx, csi.VolumeSpec{Name: fmt.Sprintf("bench-%d-%d", i, v), SizeMB: 100, Datastore: "LocalDS_0", ClusterID: "bench"})
				if err == nil {
					err = c.AttachVolume(ctx, vol.ID, vms[v%10].Reference())
				}
				if err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		wall := time.Since(start)
		critical := time.Duration(math.Ceil(float64(volumes)/concurrency)) * (createMS + attachMS) * time.Millisecond
		ratio = wall.Seconds() / critical.Seconds()
		perVolume = float64(calls.Load()-before) / volumes
	}
	b.ReportMetric(ratio, "wall/critical-path")
	b.ReportMetric(perVolume, "soap-calls/volume")
}
