// Package agenttest starts, for a test, what BOSH agents need around them
// — the embedded message bus, a blobstore on HTTPS with signed URLs, the
// director's bus client — and in-process agents on them, each under a
// root directory of its own.
package agenttest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/pem"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/blobstore"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

// World is a director's side of agents: the bus, the blobstore and the
// director's client. Everything is closed when the test ends.
type World struct {
	Bus      *mbus.Bus
	Store    *blobstore.Local
	Blobs    *blobstore.Server
	HTTPS    *httptest.Server
	CAPEM    string
	Director *mbus.Client
	// AgentHeartbeat is the heartbeat interval of the agents StartAgent
	// starts; 100ms when 0.
	AgentHeartbeat time.Duration
}

// Start starts a World for t.
func Start(t testing.TB) *World {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bus, err := mbus.StartBus(ctx, mbus.BusConfig{})
	require.NoError(t, err)
	t.Cleanup(bus.Close)
	store, err := blobstore.NewLocal(t.TempDir())
	require.NoError(t, err)
	srv, err := blobstore.NewServer(store, blobstore.ServerConfig{Username: "director", Password: "director-password", Secret: "a-secret-of-32-bytes-for-signing"})
	require.NoError(t, err)
	https := httptest.NewTLSServer(srv)
	t.Cleanup(https.Close)
	director, err := mbus.Dial(ctx, mbus.Config{URL: bus.URL(), Credentials: bus.DirectorCredentials(), CallTimeout: 30 * time.Second,
		PollInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(director.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: https.Certificate().Raw})
	return &World{Bus: bus, Store: store, Blobs: srv, HTTPS: https, CAPEM: string(ca), Director: director}
}

// Settings are what a CPI would write for agentID: the bus with a new
// certificate for it, and the blobstore.
func (w *World) Settings(t testing.TB, agentID string) cpi.AgentSettings {
	t.Helper()
	creds, err := w.Bus.AddAgent(agentID)
	require.NoError(t, err)
	return cpi.AgentSettings{
		AgentID: agentID, VM: cpi.AgentSettingsVM{Name: "vm-" + agentID}, MBus: w.Bus.URL(),
		Env: cpi.Env{"bosh": map[string]any{"mbus": map[string]any{"cert": map[string]any{
			"ca": string(creds.CAPEM), "certificate": string(creds.CertPEM), "private_key": string(creds.KeyPEM)}}}},
		Blobstore: map[string]any{"provider": "dav", "options": map[string]any{"endpoint": w.HTTPS.URL,
			"tls": map[string]any{"cert": map[string]any{"ca": w.CAPEM}}}},
	}
}

// FastSupervisor settles and restarts in milliseconds rather than seconds.
var FastSupervisor = agent.SupervisorConfig{StopTimeout: 5 * time.Second, StableAfter: 100 * time.Millisecond,
	RestartInitial: 20 * time.Millisecond, RestartMax: 100 * time.Millisecond, DieWithSupervisor: true}

// StartAgent starts an in-process agent with settings under root, with
// FastSupervisor and a heartbeat every AgentHeartbeat; it is closed when
// the test ends (closing it before is fine).
func (w *World) StartAgent(t testing.TB, settings cpi.AgentSettings, root string) *agent.Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hb := w.AgentHeartbeat
	if hb == 0 {
		hb = 100 * time.Millisecond
	}
	a, err := agent.Start(ctx, agent.Config{Settings: settings, Root: root, HeartbeatInterval: hb,
		Supervisor: FastSupervisor}, agent.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(a.Close)
	return a
}

// File is a file of a tarball.
type File struct {
	Mode int64
	Body string
}

// TGZ is a gzipped tarball of files.
func TGZ(t testing.TB, files map[string]File) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := files[n]
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: n, Mode: f.Mode, Size: int64(len(f.Body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(f.Body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// Blob puts b in the blobstore and returns its reference, with a signed
// URL good for ten minutes.
func (w *World) Blob(t testing.TB, name, version string, b []byte) agent.BlobRef {
	t.Helper()
	id, d, err := w.Store.Put(context.Background(), bytes.NewReader(b))
	require.NoError(t, err)
	u, err := w.Blobs.Signer().Sign(w.HTTPS.URL, id, "GET", time.Now(), 10*time.Minute)
	require.NoError(t, err)
	return agent.BlobRef{Name: name, Version: version, SHA1: d, BlobstoreID: id, SignedURL: u}
}

// Eventually polls cond every 20ms for up to a minute, failing tb with
// msg if it never holds.
func Eventually(tb testing.TB, cond func() bool, msg string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after a minute: "+msg, args...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
