package mbus

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
)

// Option sets a collaborator of a Bus, Client or Server.
type Option interface{ apply(*options) }

type options struct {
	log      *zap.Logger
	natsOpts []nats.Option // tests: extra connection options
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithLogger sets the logger; the default discards.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l != nil {
			o.log = l
		}
	})
}

func newOptions(opts []Option) options {
	o := options{log: zap.NewNop()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	return o
}

// defaultConnectTimeout bounds starting the bus, connecting, and waiting
// for the bus to confirm a subscription or a message, when ctx has no
// earlier deadline.
const defaultConnectTimeout = 10 * time.Second

// untilDeadline is d, or less if ctx's deadline comes sooner (then it may
// be negative: the deadline has passed).
func untilDeadline(ctx context.Context, d time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return min(d, time.Until(dl))
	}
	return d
}

// connect opens a NATS connection to url with creds. A connection that
// drops reconnects until the Client or Server closes, however long the bus
// is away (a director VM that is recreated, a NATS cluster that is
// upgraded): an agent that gave up would never hear its director again.
// extra options come before the test options in o.
func connect(ctx context.Context, rawURL, name string, creds Credentials, o options, extra ...nats.Option) (*nats.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, &kubefoundry.FieldError{Field: "URL", Value: redactURL(rawURL), Reason: "not a NATS URL (tls://host:port)"}
	}
	tlsCfg, err := creds.tlsConfig()
	if err != nil {
		return nil, err
	}
	timeout := untilDeadline(ctx, defaultConnectTimeout)
	log := o.log
	nopts := []nats.Option{
		nats.Name(name),
		nats.Secure(tlsCfg),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("mbus async error", zap.String("subject", subject), zap.Error(err))
		}),
	}
	nopts = append(nopts, extra...)
	nopts = append(nopts, o.natsOpts...)
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(rawURL, nopts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("mbus: connect to %s as %s: %w", u.Host, name, r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("mbus: connect to %s: %w", u.Host, ctx.Err())
	}
}

// flush waits until the bus has processed what nc sent, bounded by ctx and,
// when ctx has no deadline (NATS's FlushWithContext refuses such a ctx), by
// defaultConnectTimeout.
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultConnectTimeout)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}

// redactURL hides the password of a URL (nats://user:password@host:port),
// for String and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil && strings.Contains(raw, "@"):
		return "[redacted]"
	case err == nil && u.User != nil:
		return u.Redacted()
	}
	return raw
}
