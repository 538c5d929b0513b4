package vsphere

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Config is the plain, serialisable description of a vCenter connection.
// New copies it; the caller's value is never changed.
type Config struct {
	// URL of the vCenter SDK endpoint, such as https://vc.example.com/sdk.
	// A URL without a path gets /sdk. Credentials embedded in the URL are
	// used when Username is empty.
	URL string `json:"url"`
	// Username and Password of the vCenter account.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// Datacenter is the name or inventory path of the default datacenter.
	// It may be empty when the vCenter has exactly one.
	Datacenter string `json:"datacenter,omitempty"`
	// CACert is a PEM bundle of certificate authorities to trust.
	CACert string `json:"caCert,omitempty"`
	// Thumbprint is the SHA-1 or SHA-256 thumbprint of the server
	// certificate, as govc's GOVC_TLS_KNOWN_HOSTS records it.
	Thumbprint string `json:"thumbprint,omitempty"`
	// Insecure turns TLS verification off. It is never implied.
	Insecure bool `json:"insecure,omitempty"`
	// KeepAlive is the idle interval after which the session is pinged so
	// that vCenter does not expire it. Zero means 5 minutes.
	KeepAlive time.Duration `json:"keepAlive,omitempty"`
	// ConnectTimeout bounds a TCP connect to vCenter; zero means 10s.
	ConnectTimeout time.Duration `json:"connectTimeout,omitempty"`
	// TLSHandshakeTimeout bounds the TLS handshake after a connect; zero
	// means 10s. A server that accepts connections and never answers fails
	// here, with a *kubefoundry.TimeoutError naming the stage.
	TLSHandshakeTimeout time.Duration `json:"tlsHandshakeTimeout,omitempty"`
	// CallTimeout bounds one SOAP call, from sending it to reading its
	// answer; zero means 1 minute. (A PropertyCollector wait that asks
	// vCenter to hold it open gets that time on top.)
	CallTimeout time.Duration `json:"callTimeout,omitempty"`
}

// String describes the configuration with every secret redacted, so that a
// Config can be logged or printed safely.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "--- REDACTED ---"
	}
	return fmt.Sprintf("vsphere.Config{URL: %q, Username: %q, Password: %q, Datacenter: %q, CACert: %d bytes, Thumbprint: %q, Insecure: %t, KeepAlive: %s, ConnectTimeout: %s, TLSHandshakeTimeout: %s, CallTimeout: %s}",
		redactURL(c.URL), c.Username, pw, c.Datacenter, len(c.CACert), c.Thumbprint, c.Insecure, c.KeepAlive,
		c.ConnectTimeout, c.TLSHandshakeTimeout, c.CallTimeout)
}

// GoString makes %#v as safe as %v.
func (c Config) GoString() string { return c.String() }

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// An unparsable URL may still carry a password between "//" and "@".
		if i, j := strings.Index(raw, "//"), strings.LastIndex(raw, "@"); i >= 0 && j > i {
			return raw[:i+2] + "--- REDACTED ---" + raw[j:]
		}
		return raw
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "--- REDACTED ---")
		}
	}
	return u.String()
}

// An Option configures a Client's collaborators.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	log         *zap.Logger
	concurrency int
	qps         float64
	burst       int
	limiter     *rate.Limiter
}

func defaultOptions() options {
	return options{
		log:         zap.NewNop(),
		concurrency: 8,
		qps:         100,
		burst:       200,
	}
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l != nil {
			o.log = l
		}
	})
}

// WithConcurrency bounds how many VM operations run at once in one call
// (ProvisionVMs, Destroy of many VMs). The default is 8.
func WithConcurrency(n int) Option {
	return optionFunc(func(o *options) {
		if n > 0 {
			o.concurrency = n
		}
	})
}

// WithRateLimit sets the client-side token bucket on SOAP calls: qps calls
// per second on average with bursts of up to burst. The default is 100 qps,
// burst 200. A qps of zero or less removes the limit.
func WithRateLimit(qps float64, burst int) Option {
	return optionFunc(func(o *options) {
		o.qps = qps
		o.burst = max(burst, 1)
		o.limiter = nil
	})
}

// WithRateLimiter sends every SOAP call through l, a token bucket the
// caller may share with other clients (another vCenter session, an nsxt
// or harbor Client) so that together they keep to one budget. It replaces
// WithRateLimit's bucket.
func WithRateLimiter(l *rate.Limiter) Option {
	return optionFunc(func(o *options) { o.limiter = l })
}
