package kube

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// WithEtcd lets Health read the etcd members directly, at endpoints (such
// as https://10.0.0.11:2379) with tlsConfig (nil for plain http).
func WithEtcd(endpoints []string, tlsConfig *tls.Config) Option {
	return optionFunc(func(c *Client) {
		c.etcdEndpoints = endpoints
		c.etcdTLS = tlsConfig
	})
}

// EtcdMember is one member of the cluster's etcd.
type EtcdMember struct {
	Name       string
	ID         uint64
	PeerURLs   []string
	ClientURLs []string
	Healthy    bool // answered a status request
	Leader     bool
	DBSize     int64 // bytes
	Learner    bool
}

// EtcdMembers lists the members and asks each for its status.
func (c *Client) EtcdMembers(ctx context.Context) ([]EtcdMember, error) {
	if len(c.etcdEndpoints) == 0 {
		return nil, fmt.Errorf("etcd members: no endpoints (use WithEtcd)")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: c.etcdEndpoints, TLS: c.etcdTLS, DialTimeout: 5 * time.Second, Logger: c.log.Named("etcd").WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	defer cli.Close()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("etcd member list: %w", err)
	}
	out := make([]EtcdMember, 0, len(list.Members))
	for _, m := range list.Members {
		em := EtcdMember{Name: m.Name, ID: m.ID, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner}
		for _, u := range m.ClientURLs {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := cli.Status(sctx, u)
			cancel()
			if err == nil {
				em.Healthy, em.Leader, em.DBSize = true, st.Leader == m.ID, st.DbSize
				break
			}
		}
		out = append(out, em)
	}
	return out, nil
}
