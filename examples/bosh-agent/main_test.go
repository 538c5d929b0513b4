package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

// TestMain makes this test binary the bosh-agent executable when asked, so
// the test runs it as a process of its own.
func TestMain(m *testing.M) {
	if os.Getenv("KF_RUN_BOSH_AGENT") != "" {
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Stderr)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bosh-agent:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAgentProcess: the agent as a process, from a settings file, answers
// the director on the bus, heartbeats, and exits cleanly on SIGTERM.
func TestAgentProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bus, err := mbus.StartBus(ctx, mbus.BusConfig{})
	require.NoError(t, err)
	defer bus.Close()
	const id = "agent-process"
	creds, err := bus.AddAgent(id)
	require.NoError(t, err)
	settings := cpi.AgentSettings{AgentID: id, MBus: bus.URL(), VM: cpi.AgentSettingsVM{Name: "vm-1"},
		Env: cpi.Env{"bosh": map[string]any{"mbus": map[string]any{"cert": map[string]any{
			"ca": string(creds.CAPEM), "certificate": string(creds.CertPEM), "private_key": string(creds.KeyPEM)}}}},
		Blobstore: map[string]any{"provider": "dav", "options": map[string]any{"endpoint": "https://127.0.0.1:1"}}}
	b, err := json.Marshal(settings)
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, "settings.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))

	director, err := mbus.Dial(ctx, mbus.Config{URL: bus.URL(), Credentials: bus.DirectorCredentials(), CallTimeout: 5 * time.Second})
	require.NoError(t, err)
	defer director.Close()
	beats := make(chan mbus.Heartbeat, 100)
	require.NoError(t, director.Heartbeats(ctx, func(agentID string, hb mbus.Heartbeat) {
		if agentID == id {
			select {
			case beats <- hb:
			default:
			}
		}
	}))

	cmd := exec.Command(os.Args[0], "-settings", path, "-root", filepath.Join(dir, "vcap"), "-heartbeat", "100ms")
	cmd.Env = append(os.Environ(), "KF_RUN_BOSH_AGENT=1")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	waited := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	defer func() {
		_ = cmd.Process.Kill()
		select {
		case <-waited:
		case <-time.After(30 * time.Second):
		}
	}()

	select {
	case hb := <-beats:
		assert.Equal(t, "running", hb.JobState, "no job yet, nothing failing")
		assert.Nil(t, hb.Job)
	case err := <-exited:
		t.Fatalf("the agent exited: %v\n%s", err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("no heartbeat in a minute\n%s", stderr.String())
	}
	v, err := director.Call(ctx, id, "ping")
	require.NoError(t, err, stderr.String())
	assert.JSONEq(t, `"pong"`, string(v))
	assert.NotContains(t, stderr.String(), "PRIVATE KEY", "the key is not logged")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("the agent did not exit within a minute of SIGTERM\n%s", stderr.String())
	}
	assert.Contains(t, stderr.String(), "stopping")

	// Without settings it says what it needs.
	err = run(ctx, nil, &bytes.Buffer{})
	assert.ErrorContains(t, err, "-settings or -guestinfo is required")
}
