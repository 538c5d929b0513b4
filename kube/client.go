package kube

import (
	"crypto/tls"
	"fmt"

	"golang.org/x/time/rate"

	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Client talks to one cluster's API server. It is safe for concurrent use.
type Client struct {
	cs  kubernetes.Interface
	cfg *rest.Config
	log *zap.Logger

	etcdEndpoints []string
	etcdTLS       *tls.Config
}

// An Option configures a Client.
type Option interface {
	apply(*Client)
}

type optionFunc func(*Client)

func (f optionFunc) apply(c *Client) { f(c) }

// WithLogger sets the logger; the default discards everything.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(c *Client) {
		if l != nil {
			c.log = l
		}
	})
}

// New returns a Client for cfg. The config is copied.
func New(cfg *rest.Config, opts ...Option) (*Client, error) {
	c := &Client{cfg: rest.CopyConfig(cfg), log: zap.NewNop()}
	// client-go's token bucket stays, at rates for a drain of many pods
	// rather than its default 5 per second.
	if c.cfg.QPS == 0 {
		c.cfg.QPS, c.cfg.Burst = 50, 100
	}
	for _, o := range opts {
		o.apply(c)
	}
	c.log = c.log.Named("kube")
	cs, err := kubernetes.NewForConfig(c.cfg)
	if err != nil {
		return nil, fmt.Errorf("kube client for %s: %w", cfg.Host, err)
	}
	c.cs = cs
	return c, nil
}

// Clientset returns the underlying client-go clientset.
func (c *Client) Clientset() kubernetes.Interface { return c.cs }

func newLimiter(qps float64, burst int) *rate.Limiter { return rate.NewLimiter(rate.Limit(qps), burst) }
