package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/transport/transporttest"
)

func TestTLSHandshakeTimeout(t *testing.T) {
	addr := transporttest.SilentListener(t)
	d := NewDialer(Timeouts{TLSHandshake: 200 * time.Millisecond}, &tls0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := d.DialTLSContext(ctx, "tcp", addr)
	require.Error(t, err)
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te, "got %v", err)
	assert.Equal(t, kubefoundry.StageTLS, te.Stage)
	assert.Equal(t, addr, te.Host)
	assert.Less(t, time.Since(start), 20*time.Second, "the handshake bound ended the dial, not the test's")

	// The caller's own deadline is the caller's, not a TLS timeout.
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err = NewDialer(Timeouts{TLSHandshake: time.Minute}, &tls0).DialTLSContext(short, "tcp", addr)
	require.Error(t, err)
	assert.False(t, kubefoundry.IsTimeout(err), "got %v", err)
}

func TestConnectTimeout(t *testing.T) {
	addr := transporttest.SilentListener(t)
	d := NewDialer(Timeouts{Connect: 50 * time.Millisecond}, nil)
	// Hold the connect up past its bound, as a host that drops SYNs does.
	d.net.Control = func(string, string, syscall.RawConn) error { time.Sleep(200 * time.Millisecond); return nil }
	_, err := d.DialContext(context.Background(), "tcp", addr)
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te, "got %v", err)
	assert.Equal(t, kubefoundry.StageConnect, te.Stage)
	assert.Contains(t, err.Error(), "connect to "+addr+": no answer within 50ms")
}

var tls0 = *mustConfig(TLS{Insecure: true})

func mustConfig(t TLS) *tls.Config {
	c, err := Config(t)
	if err != nil {
		panic(err)
	}
	return c
}

func TestCallTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/half" {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("part"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	hc := &http.Client{Transport: &CallTimeout{Next: http.DefaultTransport, Timeout: 200 * time.Millisecond}}

	_, err := hc.Get(srv.URL + "/never")
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te, "got %v", err)
	assert.Equal(t, kubefoundry.StageCall, te.Stage)
	assert.Equal(t, "GET /never", te.Op)

	res, err := hc.Get(srv.URL + "/half")
	require.NoError(t, err)
	_, err = io.ReadAll(res.Body)
	_ = res.Body.Close()
	require.ErrorAs(t, err, &te, "a body cut short by the bound says so: %v", err)

	// A caller's cancel is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/never", nil)
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = (&http.Client{Transport: &CallTimeout{Next: http.DefaultTransport, Timeout: time.Minute}}).Do(req)
	require.Error(t, err)
	assert.False(t, kubefoundry.IsTimeout(err))
	assert.True(t, errors.Is(err, context.Canceled))
}

func TestConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	cert := srv.Certificate()
	get := func(cfg *tls.Config) error {
		hc := &http.Client{Transport: NewHTTPTransport(NewDialer(Timeouts{}, cfg))}
		res, err := hc.Get(srv.URL)
		if err == nil {
			_ = res.Body.Close()
		}
		return err
	}
	for _, size := range []int{32, 20} {
		require.NoError(t, get(mustConfig(TLS{Thumbprint: Thumbprint(cert, size)})), "thumbprint of %d bytes", size)
	}
	require.NoError(t, get(mustConfig(TLS{Thumbprint: "  " + colons(Thumbprint(cert, 32))})))
	err := get(mustConfig(TLS{Thumbprint: Thumbprint(cert, 32)[2:] + "00"}))
	require.ErrorContains(t, err, "does not match")
	require.Error(t, get(mustConfig(TLS{})), "verification is on unless asked off")

	_, err = Config(TLS{CACert: "nope", Thumbprint: "zz", ClientCert: "x"})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"caCert", "thumbprint", "clientCert"}, fields, "every problem at once")
}

func colons(h string) string {
	var out []byte
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, h[i:i+2]...)
	}
	return string(out)
}
