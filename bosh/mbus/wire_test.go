package mbus

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

func TestAgentIDFromSubject(t *testing.T) {
	for _, tc := range []struct {
		subject, id string
		ok          bool
	}{
		{"hm.agent.heartbeat.3f2c1a6e", "3f2c1a6e", true},
		{"hm.agent.alert.a", "a", true},
		{"hm.agent.heartbeat.", "", false},
		{"hm.agent.heartbeat", "", false},
		{"hm.agent.heartbeat.a.b", "", false},
		{"hx.agent.heartbeat.a", "", false},
		{"hm.agents.heartbeat.a", "", false},
		{"agent.a", "", false},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			id, ok := AgentIDFromSubject(tc.subject)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.id, id)
		})
	}
}

func TestValidateAgentID(t *testing.T) {
	// Each end of each allowed range, and the character just outside it.
	for _, id := range []string{"a", "z", "A", "Z", "0", "9", "-", "az-AZ-09", "3f2c1a6e-0b1d-4c4e-9f6a-2d1b7c9e8a10",
		strings.Repeat("a", 63)} {
		assert.NoError(t, ValidateAgentID(id), "%q", id)
	}
	for _, id := range []string{"", "`", "{", "@", "[", "/", ":", ",", ".", "a.b", "a*", ">", "a b", "é",
		strings.Repeat("a", 64)} {
		err := ValidateAgentID(id)
		require.ErrorIs(t, err, kubefoundry.ErrInvalid, "%q", id)
		var fe *kubefoundry.FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, "agentID", fe.Field)
	}
}

func TestRunningTask(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		running bool
	}{
		{`{"agent_task_id":"t1","state":"running"}`, true},
		{`{"agent_task_id":"t1","state":"done"}`, false},
		{`{"state":"running"}`, false}, // no task to poll
		{`{"agent_task_id":"","state":"running"}`, false},
		{`"running"`, false},
		{`["running"]`, false},
		{`{"state":1}`, false},
		{``, false},
		{`null`, false},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			tv, ok := runningTask(json.RawMessage(tc.raw))
			assert.Equal(t, tc.running, ok)
			if ok {
				assert.Equal(t, "t1", tv.AgentTaskID)
			}
		})
	}
}

// TestCredentialsTLS: which credentials make which client TLS settings. The
// server is always verified; a certificate needs its key and a key its
// certificate.
func TestCredentialsTLS(t *testing.T) {
	ca, err := NewCA("t")
	require.NoError(t, err)
	creds, err := ca.Issue(DirectorName)
	require.NoError(t, err)
	for _, tc := range []struct {
		name      string
		creds     Credentials
		roots     bool // the CA, not the system roots
		certs     int
		invalid   string // the field at fault
		stringKey string
	}{
		{name: "nothing", stringKey: "Key: none"},
		{name: "CA only", creds: Credentials{CAPEM: creds.CAPEM}, roots: true, stringKey: "Key: none"},
		{name: "certificate without CA", creds: Credentials{CertPEM: creds.CertPEM, KeyPEM: creds.KeyPEM}, certs: 1,
			stringKey: "Key: [redacted]"},
		{name: "all", creds: creds, roots: true, certs: 1, stringKey: "Key: [redacted]"},
		{name: "CA not PEM", creds: Credentials{CAPEM: []byte("junk")}, invalid: "CAPEM", stringKey: "Key: none"},
		{name: "certificate without key", creds: Credentials{CAPEM: creds.CAPEM, CertPEM: creds.CertPEM}, invalid: "CertPEM",
			stringKey: "Key: none"},
		{name: "key without certificate", creds: Credentials{CAPEM: creds.CAPEM, KeyPEM: creds.KeyPEM}, invalid: "CertPEM",
			stringKey: "Key: [redacted]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Contains(t, tc.creds.String(), tc.stringKey)
			cfg, err := tc.creds.tlsConfig()
			if tc.invalid != "" {
				var fe *kubefoundry.FieldError
				require.ErrorAs(t, err, &fe)
				assert.Equal(t, tc.invalid, fe.Field)
				return
			}
			require.NoError(t, err)
			assert.False(t, cfg.InsecureSkipVerify)
			assert.Equal(t, tc.roots, cfg.RootCAs != nil)
			assert.Len(t, cfg.Certificates, tc.certs)
		})
	}
}

func TestShorten(t *testing.T) {
	encoded := func(msg string) int {
		b, err := json.Marshal(exception(msg))
		require.NoError(t, err)
		return len(b)
	}
	const max = 4096
	t.Run("ASCII fills the answer exactly, head and tail half each", func(t *testing.T) {
		msg := "head " + strings.Repeat("x", 10000) + " tail"
		short, ok := shorten(msg, max)
		require.True(t, ok)
		assert.Equal(t, max, encoded(short))
		head, tail, found := strings.Cut(short, truncationMarker)
		require.True(t, found)
		assert.Equal(t, msg[:len(head)], head)
		assert.Equal(t, msg[len(msg)-len(tail):], tail)
		assert.InDelta(t, len(head), len(tail), 1)
	})
	t.Run("escaped characters", func(t *testing.T) {
		msg := strings.Repeat(`<"\`, 3000) // 6, 2 and 2 bytes of JSON each
		short, ok := shorten(msg, max)
		require.True(t, ok)
		assert.LessOrEqual(t, encoded(short), max)
		assert.Greater(t, encoded(short), max-8, "no more cut than escaping needs")
	})
	t.Run("runes are not split", func(t *testing.T) {
		for pad := range 3 {
			msg := strings.Repeat("x", pad) + strings.Repeat("日", 3000)
			short, ok := shorten(msg, max)
			require.True(t, ok)
			assert.LessOrEqual(t, encoded(short), max)
			assert.Greater(t, encoded(short), max-6)
			assert.NotContains(t, short, "\uFFFD", "pad %d", pad)
			head, tail, _ := strings.Cut(short, truncationMarker)
			assert.Equal(t, msg[:len(head)], head)
			assert.Equal(t, msg[len(msg)-len(tail):], tail)
		}
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		// Binary output in an error: every byte a continuation byte, which
		// JSON encodes as \ufffd (6 bytes).
		for _, msg := range []string{strings.Repeat("\x80", 5000), "a" + strings.Repeat("\x80", 5000) + "z"} {
			short, ok := shorten(msg, max)
			require.True(t, ok)
			assert.LessOrEqual(t, encoded(short), max)
			assert.Contains(t, short, truncationMarker)
		}
	})
	t.Run("nothing fits", func(t *testing.T) {
		_, ok := shorten(strings.Repeat("x", 100), encoded(truncationMarker))
		assert.False(t, ok)
	})
}

// TestStartBusDeadline: StartBus waits for the server at most until ctx's
// deadline, and needs none.
func TestStartBusDeadline(t *testing.T) {
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := StartBus(ctx, BusConfig{})
	require.ErrorIs(t, err, kubefoundry.ErrTimeout)
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, kubefoundry.StageConnect, te.Stage)

	b, err := StartBus(context.Background(), BusConfig{})
	require.NoError(t, err)
	b.Close()
}
