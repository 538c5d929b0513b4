// Package transport holds what every client of the SDK builds its
// connections with: one TLS configuration builder (CA bundle, SHA-1 or
// SHA-256 certificate thumbprint, insecure only when asked by name, client
// certificates), dialers that bound the TCP connect and the TLS handshake
// separately, and a per-call timeout, each failing with a
// *kubefoundry.TimeoutError that names the stage and the host.
//
// A server that accepts the TCP connection and never answers therefore
// fails the call in seconds, with an error that says so, instead of
// hanging.
package transport

import (
	"context"
	"crypto/sha1" //nolint:gosec // vCenter thumbprints are still given as SHA-1 by govc users
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kubefoundry/kubefoundry"
)

// Default timeouts: a server that does not answer fails in seconds.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultTLSTimeout     = 10 * time.Second
	DefaultCallTimeout    = time.Minute
)

// Timeouts bound the stages of reaching a server. A zero field takes its
// default; a negative one turns that bound off.
type Timeouts struct {
	// Connect bounds the TCP connect.
	Connect time.Duration `json:"connect,omitempty"`
	// TLSHandshake bounds the TLS handshake once connected.
	TLSHandshake time.Duration `json:"tlsHandshake,omitempty"`
	// Call bounds one request, from sending it to reading its answer.
	Call time.Duration `json:"call,omitempty"`
}

// WithDefaults returns t with every zero field set to its default.
func (t Timeouts) WithDefaults() Timeouts {
	if t.Connect == 0 {
		t.Connect = DefaultConnectTimeout
	}
	if t.TLSHandshake == 0 {
		t.TLSHandshake = DefaultTLSTimeout
	}
	if t.Call == 0 {
		t.Call = DefaultCallTimeout
	}
	return t
}

// TLS is how a client trusts its server, as every Config of the SDK spells it.
type TLS struct {
	// CACert is a PEM bundle of certificate authorities to trust.
	CACert string
	// Thumbprint is the server certificate's SHA-256 (or SHA-1) digest in
	// hex, with or without colons: the certificate is trusted when it
	// matches, whoever signed it.
	Thumbprint string
	// Insecure turns verification off. It is never implied.
	Insecure bool
	// ClientCert and ClientKey are a PEM certificate and key to present.
	ClientCert, ClientKey string
}

// Config builds the tls.Config for t. Bad input is a
// *kubefoundry.ValidationError naming each field at fault ("caCert",
// "thumbprint", "clientCert").
func Config(t TLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	var verr kubefoundry.ValidationError
	if t.ClientCert != "" || t.ClientKey != "" {
		pair, err := tls.X509KeyPair([]byte(t.ClientCert), []byte(t.ClientKey))
		if err != nil {
			verr.Add("clientCert", "", "not a PEM certificate and key that belong together: %v", err)
		} else {
			cfg.Certificates = []tls.Certificate{pair}
		}
	}
	if t.CACert != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CACert)) {
			verr.Add("caCert", "", "holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.Insecure:
		cfg.InsecureSkipVerify = true
	case t.Thumbprint != "":
		want, err := ParseThumbprint(t.Thumbprint)
		if err != nil {
			verr.Add("thumbprint", t.Thumbprint, "%v", err)
			break
		}
		// Verified against the thumbprint instead of a chain.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			if got := Thumbprint(cs.PeerCertificates[0], len(want)); got != hex.EncodeToString(want) {
				return fmt.Errorf("the server's certificate thumbprint %s does not match the configured %s", got, t.Thumbprint)
			}
			return nil
		}
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ParseThumbprint decodes a SHA-256 or SHA-1 thumbprint in hex, with or
// without colons.
func ParseThumbprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil || (len(b) != sha256.Size && len(b) != sha1.Size) {
		return nil, errors.New("not a SHA-256 or SHA-1 thumbprint in hex")
	}
	return b, nil
}

// Thumbprint is cert's digest in lower-case hex without colons: SHA-1 when
// size is 20, SHA-256 otherwise.
func Thumbprint(cert *x509.Certificate, size int) string {
	if size == sha1.Size {
		sum := sha1.Sum(cert.Raw) //nolint:gosec // matching a thumbprint the user gave
		return hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Dialer connects with the Connect bound and shakes hands with the
// TLSHandshake bound, each failing with a *kubefoundry.TimeoutError.
type Dialer struct {
	Timeouts Timeouts    // with defaults applied by NewDialer
	TLS      *tls.Config // for DialTLSContext
	net      net.Dialer
}

// NewDialer returns a Dialer for t (defaults applied) and tlsCfg.
func NewDialer(t Timeouts, tlsCfg *tls.Config) *Dialer {
	t = t.WithDefaults()
	d := &Dialer{Timeouts: t, TLS: tlsCfg}
	d.net.KeepAlive = 30 * time.Second
	return d
}

// DialContext connects to addr within the Connect bound.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.Timeouts.Connect <= 0 {
		return d.net.DialContext(ctx, network, addr)
	}
	cctx, cancel := context.WithTimeoutCause(ctx, d.Timeouts.Connect, errConnectTimeout)
	defer cancel()
	conn, err := d.net.DialContext(cctx, network, addr)
	if err != nil && ctx.Err() == nil && context.Cause(cctx) == errConnectTimeout {
		return nil, &kubefoundry.TimeoutError{Host: addr, Stage: kubefoundry.StageConnect, After: d.Timeouts.Connect, Err: err}
	}
	return conn, err
}

var errConnectTimeout = errors.New("connect timeout")

// DialTLSContext connects within the Connect bound and completes the TLS
// handshake within the TLSHandshake bound.
func (d *Dialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.TLS
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		host, _, serr := net.SplitHostPort(addr)
		if serr != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	hctx := ctx
	if d.Timeouts.TLSHandshake > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, d.Timeouts.TLSHandshake)
		defer cancel()
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(hctx); err != nil {
		_ = raw.Close()
		if hctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return nil, &kubefoundry.TimeoutError{Host: addr, Stage: kubefoundry.StageTLS, After: d.Timeouts.TLSHandshake, Err: err}
		}
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return conn, nil
}

// NewHTTPTransport returns an http.Transport that dials with d.
func NewHTTPTransport(d *Dialer) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		DialTLSContext:        d.DialTLSContext,
		TLSClientConfig:       d.TLS,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// WithCallTimeout bounds one call by d (none when d <= 0), unless ctx ends
// sooner. done turns the call's error into a *kubefoundry.TimeoutError
// naming host and op when it was this bound that ended it, and releases
// the bound.
func WithCallTimeout(ctx context.Context, d time.Duration) (context.Context, func(err error, host, op string) error) {
	if d <= 0 {
		return ctx, func(err error, _, _ string) error { return err }
	}
	parent := ctx
	cctx, cancel := context.WithTimeoutCause(ctx, d, errCallTimeout)
	return cctx, func(err error, host, op string) error {
		defer cancel()
		if err != nil && parent.Err() == nil && context.Cause(cctx) == errCallTimeout {
			return &kubefoundry.TimeoutError{Host: host, Stage: kubefoundry.StageCall, Op: op, After: d, Err: err}
		}
		return err
	}
}

var errCallTimeout = errors.New("call timeout")

// CallTimeout is an http.RoundTripper that bounds each request by Timeout,
// the response body's reading included.
type CallTimeout struct {
	Next    http.RoundTripper
	Timeout time.Duration
}

// RoundTrip sends req within the bound.
func (c *CallTimeout) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.Timeout <= 0 {
		return c.Next.RoundTrip(req)
	}
	ctx, done := WithCallTimeout(req.Context(), c.Timeout)
	res, err := c.Next.RoundTrip(req.WithContext(ctx))
	op := req.Method + " " + req.URL.Path
	if err != nil {
		return nil, done(err, req.URL.Host, op)
	}
	res.Body = &boundBody{ReadCloser: res.Body, done: func(err error) error { return done(err, req.URL.Host, op) }}
	return res, nil
}

// boundBody releases the call's bound when the body is closed, and names
// the bound when it cut a read short.
type boundBody struct {
	io.ReadCloser
	done func(error) error
}

func (b *boundBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = b.done(err)
	}
	return n, err
}

func (b *boundBody) Close() error {
	err := b.ReadCloser.Close()
	b.done(nil)
	return err
}
