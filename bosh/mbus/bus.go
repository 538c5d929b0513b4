package mbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
)

// BusConfig configures the embedded NATS server.
type BusConfig struct {
	// Host is the loopback address to listen on; 127.0.0.1 when empty.
	// Any other than a loopback address is refused: the embedded bus is
	// for one machine (a simulated foundation); a real foundation runs a
	// NATS cluster and the clients connect to it by URL.
	Host string
	// Port to listen on; 0 picks a free port.
	Port int
	// CA signs the server's, the director's and the agents' certificates;
	// a new one is generated when nil.
	CA *CA
	// MaxPayload is the largest message the bus carries, in bytes; NATS's
	// default (1 MiB) when 0.
	MaxPayload int32
	// Agents are allowed from the start, as AllowAgents would allow them
	// (a restarted director's bus, with the agents its store names):
	// their clients reconnecting at once find them allowed. Allowing them
	// after the start instead is a reload that can race, inside NATS,
	// with a client's failing authentication.
	Agents []string
}

// Bus is an embedded NATS server with TLS and per-agent authorization:
// every client presents a certificate from the bus's CA, and the DNS name
// in it is its user (NATS verify_and_map). The director may publish to
// agent.> and subscribe to director.> and hm.>; an agent may subscribe only
// to agent.<its id> and publish only to director.*.<its id>.* (answers to
// requests sent to it) and hm.agent.*.<its id>. Agents are added and
// removed while the bus runs, by a configuration reload (no restart, no
// dropped connections but a removed agent's). A Bus is safe for
// concurrent use.
type Bus struct {
	ca       *CA
	log      *zap.Logger
	srv      *server.Server
	opts     server.Options // template, cloned for every (re)load
	director Credentials

	mu     sync.Mutex
	agents map[string]bool
}

// StartBus starts the embedded NATS server and waits until it accepts
// connections (bounded by ctx and 10 s); if it does not in time, the
// server is shut down and the error is a *kubefoundry.TimeoutError.
func StartBus(ctx context.Context, cfg BusConfig, opts ...Option) (*Bus, error) {
	o := newOptions(opts)
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	var ve kubefoundry.ValidationError
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		ve.Add("Host", host, "must be a loopback IP address")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		ve.Add("Port", strconv.Itoa(cfg.Port), "must be 0 (any free port) to 65535")
	}
	if cfg.MaxPayload < 0 {
		ve.Add("MaxPayload", strconv.Itoa(int(cfg.MaxPayload)), "must not be negative")
	}
	for i, id := range cfg.Agents {
		var fe *kubefoundry.FieldError
		if errors.As(ValidateAgentID(id), &fe) {
			ve.Add(fmt.Sprintf("Agents[%d]", i), id, "%s", fe.Reason)
		}
	}
	if err := ve.Err(); err != nil {
		ve.Object = "mbus.BusConfig"
		return nil, err
	}
	ca := cfg.CA
	if ca == nil {
		var err error
		if ca, err = NewCA("kubefoundry bosh mbus CA"); err != nil {
			return nil, err
		}
	}
	serverCert, err := ca.issueServer([]net.IP{ip}, "localhost")
	if err != nil {
		return nil, err
	}
	director, err := ca.Issue(DirectorName)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	b := &Bus{
		ca:       ca,
		log:      o.log,
		director: director,
		agents:   map[string]bool{},
		opts: server.Options{
			Host:       host,
			Port:       port,
			NoSigs:     true,
			MaxPayload: cfg.MaxPayload,
			TLS:        true,
			TLSVerify:  true,
			TLSMap:     true,
			TLSTimeout: 5,
			TLSConfig: &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{serverCert},
				ClientCAs:    pool,
				ClientAuth:   tls.RequireAndVerifyClientCert,
			},
			// No HTTP monitoring, no cluster, no JetStream.
		},
	}
	for _, id := range cfg.Agents {
		b.agents[id] = true
	}
	srv, err := server.NewServer(b.options())
	if err != nil {
		return nil, fmt.Errorf("mbus: new NATS server: %w", err)
	}
	srv.SetLoggerV2(natsLogger{o.log.Named("nats")}, false, false, false)
	b.srv = srv
	go srv.Start()
	wait := untilDeadline(ctx, defaultConnectTimeout)
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, &kubefoundry.TimeoutError{Host: net.JoinHostPort(host, strconv.Itoa(cfg.Port)),
			Stage: kubefoundry.StageConnect, After: wait, Err: fmt.Errorf("mbus: NATS server not ready")}
	}
	b.log.Info("mbus started", zap.String("url", b.URL()))
	return b, nil
}

// options builds the server options for the current agents. The server
// takes ownership of what it is given, so every call builds anew.
func (b *Bus) options() *server.Options {
	o := b.opts.Clone()
	o.Users = append(o.Users, &server.User{
		Username: DirectorName,
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"agent.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"director.>", "hm.>"}},
		},
	})
	ids := make([]string, 0, len(b.agents))
	for id := range b.agents {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		o.Users = append(o.Users, &server.User{
			Username: AgentName(id),
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"director.*." + id + ".*", "hm.agent.*." + id}},
				Subscribe: &server.SubjectPermission{Allow: []string{AgentSubject(id)}},
			},
		})
	}
	return o
}

// URL is the bus's client URL: tls://host:port.
func (b *Bus) URL() string {
	addr := b.srv.Addr().(*net.TCPAddr)
	return "tls://" + net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port))
}

// CA returns the bus's CA.
func (b *Bus) CA() *CA { return b.ca }

// MaxPayload is the largest message the bus carries, in bytes.
func (b *Bus) MaxPayload() int32 {
	if b.opts.MaxPayload > 0 {
		return b.opts.MaxPayload
	}
	return server.MAX_PAYLOAD_SIZE
}

// DirectorCredentials are the director's: its client certificate and the
// CA, for a Client's Config.
func (b *Bus) DirectorCredentials() Credentials { return b.director }

// BusStats are counts of a bus's traffic since it started.
type BusStats struct {
	// InMsgs are the messages the bus received from its clients (each
	// request, answer, heartbeat and alert once); OutMsgs those it
	// delivered.
	InMsgs, OutMsgs int64
	// Connections are the clients connected now.
	Connections int
}

// Stats reads the bus's traffic counters.
func (b *Bus) Stats() (BusStats, error) {
	v, err := b.srv.Varz(nil)
	if err != nil {
		return BusStats{}, fmt.Errorf("mbus: read the bus's counters: %w", err)
	}
	return BusStats{InMsgs: v.InMsgs, OutMsgs: v.OutMsgs, Connections: v.Connections}, nil
}

// AddAgent allows agentID on the bus and issues its client certificate.
// The running server reloads its authorization; nothing is restarted.
// Adding an agent again issues a new certificate; the old one stays valid.
func (b *Bus) AddAgent(agentID string) (Credentials, error) {
	creds, err := b.AddAgents(agentID)
	if err != nil {
		return Credentials{}, err
	}
	return creds[0], nil
}

// AddAgents is AddAgent for many agents with one reload of the server's
// authorization (a reload costs in proportion to every agent allowed, so
// adding thousands one by one costs in proportion to their square). It
// returns their credentials in order; bad ids are one
// *kubefoundry.ValidationError and add nothing.
func (b *Bus) AddAgents(agentIDs ...string) ([]Credentials, error) {
	var ve kubefoundry.ValidationError
	for i, id := range agentIDs {
		var fe *kubefoundry.FieldError
		if errors.As(ValidateAgentID(id), &fe) {
			ve.Add(fmt.Sprintf("agentIDs[%d]", i), id, "%s", fe.Reason)
		}
	}
	if err := ve.Err(); err != nil {
		ve.Object = "mbus.AddAgents"
		return nil, err
	}
	out := make([]Credentials, len(agentIDs))
	for i, id := range agentIDs {
		creds, err := b.ca.Issue(AgentName(id))
		if err != nil {
			return nil, err
		}
		out[i] = creds
	}
	if err := b.allow(agentIDs); err != nil {
		return nil, err
	}
	return out, nil
}

// AllowAgents allows agents on the bus without issuing certificates:
// agents that hold certificates of the bus's CA already, as a director
// that restarts on its store allows the agents it recorded (the bus must
// have the same CA: BusConfig). Bad ids are one
// *kubefoundry.ValidationError and allow nothing.
func (b *Bus) AllowAgents(agentIDs ...string) error {
	var ve kubefoundry.ValidationError
	for i, id := range agentIDs {
		var fe *kubefoundry.FieldError
		if errors.As(ValidateAgentID(id), &fe) {
			ve.Add(fmt.Sprintf("agentIDs[%d]", i), id, "%s", fe.Reason)
		}
	}
	if err := ve.Err(); err != nil {
		ve.Object = "mbus.AllowAgents"
		return err
	}
	return b.allow(agentIDs)
}

// allow adds agents to the server's authorization with one reload.
func (b *Bus) allow(agentIDs []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var added []string
	for _, id := range agentIDs {
		if !b.agents[id] {
			b.agents[id] = true
			added = append(added, id)
		}
	}
	if len(added) == 0 {
		return nil
	}
	if err := b.srv.ReloadOptions(b.options()); err != nil {
		for _, id := range added {
			delete(b.agents, id)
		}
		return fmt.Errorf("mbus: add agents %s: reload NATS authorization: %w", strings.Join(added, ", "), err)
	}
	for _, id := range added {
		b.log.Info("mbus agent added", zap.String("agent", id))
	}
	return nil
}

// RemoveAgent revokes agentID: its connections are closed and its
// certificates are refused from then on. Removing an unknown agent is not
// an error.
func (b *Bus) RemoveAgent(agentID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.agents[agentID] {
		return nil
	}
	delete(b.agents, agentID)
	if err := b.srv.ReloadOptions(b.options()); err != nil {
		b.agents[agentID] = true
		return fmt.Errorf("mbus: remove agent %s: reload NATS authorization: %w", agentID, err)
	}
	b.log.Info("mbus agent removed", zap.String("agent", agentID))
	return nil
}

// Close shuts the server down and waits until it has.
func (b *Bus) Close() {
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// natsLogger routes the NATS server's log to zap.
type natsLogger struct{ l *zap.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Info(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n natsLogger) Tracef(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
