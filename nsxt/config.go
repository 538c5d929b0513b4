package nsxt

import (
	"fmt"
	"time"

	"go.uber.org/zap"
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
	// Thumbprint is the SHA-256 thumbprint (hex, colons optional) of the
	// managers' certificate, trusted instead of a CA.
	Thumbprint string `json:"thumbprint,omitempty"`
	// Insecure turns TLS verification off. It is never implied.
	Insecure bool `json:"insecure,omitempty"`
	// Timeout bounds one HTTP request; 2 minutes when zero.
	Timeout time.Duration `json:"timeout,omitempty"`
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
	return fmt.Sprintf("nsxt.Config{URLs: %q, Username: %q, Password: %q, ClientCert: %d bytes, ClientKey: %q, CACert: %d bytes, Thumbprint: %q, Insecure: %t, Timeout: %s, AllowOverwrite: %t, NoSession: %t}",
		c.URLs, c.Username, pw, len(c.ClientCert), key, len(c.CACert), c.Thumbprint, c.Insecure, c.Timeout, c.AllowOverwrite, c.NoSession)
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
	return optionFunc(func(o *options) { o.qps, o.burst = qps, max(burst, 1) })
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
