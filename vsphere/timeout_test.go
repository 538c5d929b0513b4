package vsphere_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/simulator"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/transport/transporttest"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

// silentServer is a vCenter whose front end accepts connections and
// never answers.
func silentServer(t *testing.T) string {
	return "https://kf:secret@" + transporttest.SilentListener(t) + "/sdk"
}

// TestNewTimesOutOnSilentServer: New against a server that accepts the
// connection and never answers fails with a TimeoutError naming the TLS
// stage (it hung forever before), with the default bound too.
func TestNewTimesOutOnSilentServer(t *testing.T) {
	u := silentServer(t)
	for _, tc := range []struct {
		name string
		tls  time.Duration
		want time.Duration
	}{
		{"set", 300 * time.Millisecond, 300 * time.Millisecond},
		{"default", 0, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := vsphere.New(ctx, vsphere.Config{URL: u, Insecure: true, TLSHandshakeTimeout: tc.tls})
			require.Error(t, err)
			require.NoError(t, ctx.Err(), "the handshake bound ended New, not the test's")
			var te *kubefoundry.TimeoutError
			require.ErrorAs(t, err, &te, "%v", err)
			assert.Equal(t, kubefoundry.StageTLS, te.Stage)
			assert.Equal(t, tc.want, te.After)
			assert.NotContains(t, err.Error(), "secret")
		})
	}
}

// TestCallTimeout: a call vCenter does not answer within CallTimeout fails
// with a TimeoutError naming the SOAP method.
func TestCallTimeout(t *testing.T) {
	s := newSim(t, func(m *simulator.Model) {
		m.DelayConfig.MethodDelay = map[string]int{"RetrieveServiceContent": 3000}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := vsphere.New(ctx, vsphere.Config{URL: s.url, Insecure: true, CallTimeout: 200 * time.Millisecond})
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te, "%v", err)
	assert.Equal(t, kubefoundry.StageCall, te.Stage)
	assert.Equal(t, "RetrieveServiceContent", te.Op)

	s = newSim(t, func(m *simulator.Model) {
		m.DelayConfig.MethodDelay = map[string]int{"CreateFolder": 3000}
	})
	c, err := vsphere.New(ctx, vsphere.Config{URL: s.url, Insecure: true, CallTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close(ctx)
	_, err = c.ProvisionVMs(ctx, specs("c1", 1))
	require.ErrorAs(t, err, &te, "%v", err)
	assert.Equal(t, "CreateFolder", te.Op)
	assert.True(t, kubefoundry.IsTimeout(err))
}

func TestConfigValidationListsEveryProblem(t *testing.T) {
	_, err := vsphere.New(context.Background(), vsphere.Config{URL: "https://vc/sdk", CACert: "nope", Thumbprint: "zz", CallTimeout: -time.Second})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"username", "caCert", "thumbprint", "callTimeout"}, fields)
}
