package mbus

import (
	"context"
	"fmt"
	"net/url"
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

// defaultConnectTimeout bounds connecting when ctx has no earlier deadline.
const defaultConnectTimeout = 10 * time.Second

// connect opens a NATS connection to url with creds. It does not reconnect
// for ever: a client that loses the bus for good reports it.
func connect(ctx context.Context, rawURL, name string, creds Credentials, o options) (*nats.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, &kubefoundry.FieldError{Field: "URL", Value: rawURL, Reason: "not a NATS URL (tls://host:port)"}
	}
	tlsCfg, err := creds.tlsConfig()
	if err != nil {
		return nil, err
	}
	timeout := defaultConnectTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	log := o.log
	nopts := []nats.Option{
		nats.Name(name),
		nats.Secure(tlsCfg),
		nats.Timeout(timeout),
		nats.MaxReconnects(60),
		nats.ReconnectWait(time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("mbus async error", zap.String("subject", subject), zap.Error(err))
		}),
	}
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
