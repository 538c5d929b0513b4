package nsxt

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/transport"
)

// Config is the plain, serialisable description of an NSX-T manager
// connection. New copies it; the caller's value is never changed.
type Config struct {
	// URLs of the NSX managers (or of the cluster VIP), such as
	// https://nsx-1.example.com. Requests go to the first that answers;
	// when one stops answering the next takes over.
	URLs []string `json:"urls"`
	// Username and Password authenticate a user: through one NSX session
	// per manager (POST /api/session/create, then its cookie and XSRF
	// token on every request; a session that expires is made again), or
	// with NoSession through HTTP basic auth on every request.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// NoSession sends the user and password with every request instead
	// of opening a session: for managers whose cookie-based
	// authentication is turned off. A session is faster, as NSX checks a
	// remote (LDAP, vIDM) user's password once rather than on every call.
	NoSession bool `json:"noSession,omitempty"`
	// ClientCert and ClientKey (PEM) authenticate as a principal identity
	// instead of a user, as NCP and TKGI do.
	ClientCert string `json:"clientCert,omitempty"`
	ClientKey  string `json:"clientKey,omitempty"`
	// CACert is a PEM bundle of certificate authorities to trust.
	CACert string `json:"caCert,omitempty"`
	// Thumbprint is the SHA-256 (or SHA-1) thumbprint (hex, colons
	// optional) of the managers' certificate, trusted instead of a CA.
	Thumbprint string `json:"thumbprint,omitempty"`
	// Insecure turns TLS verification off. It is never implied.
	Insecure bool `json:"insecure,omitempty"`
	// Timeout bounds one call, from sending the request to reading the
	// answer, with the retries of a busy manager and the moves to the
	// next manager it takes; 2 minutes (DefaultTimeout) when zero. A call
	// that runs out of it fails with a *kubefoundry.TimeoutError (Stage
	// call) and is not sent again.
	Timeout time.Duration `json:"timeout,omitempty"`
	// ConnectTimeout bounds the TCP connect to a manager, and
	// TLSHandshakeTimeout the TLS handshake after it; 10 seconds each
	// when zero. A manager that does not make it in time (a
	// *kubefoundry.TimeoutError, Stage connect or TLS handshake) gives way
	// to the next.
	ConnectTimeout      time.Duration `json:"connectTimeout,omitempty"`
	TLSHandshakeTimeout time.Duration `json:"tlsHandshakeTimeout,omitempty"`
	// AllowOverwrite sends X-Allow-Overwrite: true with every write, so
	// that an enterprise admin may change and delete what a principal
	// identity made (NSX protects it from everyone else: error code 289,
	// ErrProtected), as when taking over a cluster built under a
	// certificate that is gone. It is never implied.
	AllowOverwrite bool `json:"allowOverwrite,omitempty"`
}

// String describes the configuration with every secret redacted.
func (c Config) String() string {
	pw, key := "", ""
	if c.Password != "" {
		pw = "--- REDACTED ---"
	}
	if c.ClientKey != "" {
		key = "--- REDACTED ---"
	}
	urls := make([]string, len(c.URLs))
	for i, raw := range c.URLs {
		urls[i] = raw
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			urls[i] = u.Redacted()
		}
	}
	return fmt.Sprintf("nsxt.Config{URLs: %q, Username: %q, Password: %q, ClientCert: %d bytes, ClientKey: %q, CACert: %d bytes, Thumbprint: %q, Insecure: %t, Timeout: %s, ConnectTimeout: %s, TLSHandshakeTimeout: %s, AllowOverwrite: %t, NoSession: %t}",
		urls, c.Username, pw, len(c.ClientCert), key, len(c.CACert), c.Thumbprint, c.Insecure, c.Timeout, c.ConnectTimeout, c.TLSHandshakeTimeout, c.AllowOverwrite, c.NoSession)
}

// check returns the managers' URLs and the TLS configuration of c, or a
// *kubefoundry.ValidationError (Object "nsxt.Config") naming every wrong
// field.
func (c Config) check() ([]*url.URL, *tls.Config, error) {
	v := kubefoundry.ValidationError{Object: "nsxt.Config"}
	if len(c.URLs) == 0 {
		v.Add("Config.URLs", "", "needs the URL of at least one NSX manager")
	}
	var managers []*url.URL
	for i, raw := range c.URLs {
		f := fmt.Sprintf("Config.URLs[%d]", i)
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			// Not shown: it may hold a password url.Parse cannot find.
			v.Add(f, "", "is not a URL")
		case u.User != nil:
			v.Add(f, u.Redacted(), "carries credentials; set Username and Password instead")
		case u.Scheme != "https" || u.Host == "":
			v.Add(f, raw, "is not an https URL")
		default:
			managers = append(managers, u)
		}
	}
	if c.Username == "" && c.ClientCert == "" && c.ClientKey == "" {
		v.Add("Config.Username", "", "needs Username/Password or ClientCert/ClientKey")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Timeout", c.Timeout}, {"ConnectTimeout", c.ConnectTimeout}, {"TLSHandshakeTimeout", c.TLSHandshakeTimeout}} {
		if d.v < 0 {
			v.Add("Config."+d.name, d.v.String(), "must be 0 (the default) or more")
		}
	}
	tlsCfg, err := transport.Config(transport.TLS{CACert: c.CACert, Thumbprint: c.Thumbprint, Insecure: c.Insecure,
		ClientCert: c.ClientCert, ClientKey: c.ClientKey})
	if err != nil {
		var tv kubefoundry.ValidationError
		if !tv.Merge("", err) {
			return nil, nil, fmt.Errorf("nsxt: Config: %w", err)
		}
		for _, p := range tv.Problems {
			if name, ok := tlsFields[p.Field]; ok {
				p.Field = name
			}
			v.Problems = append(v.Problems, p)
		}
	}
	if err := v.Err(); err != nil {
		return nil, nil, err
	}
	return managers, tlsCfg, nil
}

// tlsFields are the Config fields of transport.Config's field names.
var tlsFields = map[string]string{
	"caCert": "Config.CACert", "thumbprint": "Config.Thumbprint",
	"clientCert": "Config.ClientCert", "clientKey": "Config.ClientKey",
}

// GoString makes %#v as safe as %v.
func (c Config) GoString() string { return c.String() }

// An Option configures a Client's collaborators.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	log      *zap.Logger
	qps      float64
	burst    int
	limiter  *rate.Limiter // WithRateLimiter; replaces qps and burst
	attempts int
	backoff  time.Duration
	// purgeFirst and purgeMax: WithPurgeWait.
	purgeFirst, purgeMax time.Duration
}

func defaultOptions() options {
	return options{log: zap.NewNop(), qps: 50, burst: 100, attempts: 6, backoff: 250 * time.Millisecond,
		purgeFirst: 2 * time.Second, purgeMax: 10 * time.Minute}
}

// WithLogger sets the logger. The NSX runtime's own log lines are routed to
// it too, at debug level.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l != nil {
			o.log = l
		}
	})
}

// WithRateLimit limits requests to qps per second with bursts of burst
// (50 and 100 by default). qps <= 0 removes the limit.
func WithRateLimit(qps float64, burst int) Option {
	return optionFunc(func(o *options) { o.qps, o.burst, o.limiter = qps, max(burst, 1), nil })
}

// WithRateLimiter sends every request through l, a token bucket the caller
// may share with other clients (another NSX Client, a vsphere or harbor
// Client) so that together they keep to one budget. It replaces
// WithRateLimit's bucket.
func WithRateLimiter(l *rate.Limiter) Option {
	return optionFunc(func(o *options) { o.limiter = l })
}

// WithRetry sets how many times a request answered 503 or 429 is tried in
// all (6 by default) and the first backoff delay (250ms by default; it
// doubles, with jitter, up to 10s; a Retry-After header is honoured).
func WithRetry(attempts int, firstDelay time.Duration) Option {
	return optionFunc(func(o *options) { o.attempts, o.backoff = max(attempts, 1), firstDelay })
}

// WithPurgeWait sets how an apply (BuildTopology, EnsureNamespace,
// EnsureLoadBalancer, ApplyNetworkPolicy) waits when NSX refuses a path
// it writes because what was deleted there is not purged yet (error
// code 500045, ErrPendingDelete), as right after a teardown: NSX deletes
// asynchronously and purges every 5 minutes. It tries again after about
// first (2s by default; each wait is drawn between half of it and it),
// doubling up to 30s, and gives up once max has passed (10 minutes by
// default: two purge cycles), which may be one wait after max; max 0
// returns the error at once. The context bounds the wait too.
func WithPurgeWait(first, max time.Duration) Option {
	return optionFunc(func(o *options) { o.purgeFirst, o.purgeMax = first, max })
}
