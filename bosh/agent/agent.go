package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/blobstore"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

// Config configures an Agent.
type Config struct {
	// Settings are the agent's settings, as the CPI wrote them
	// (LoadSettings, DecodeGuestinfoSettings).
	Settings cpi.AgentSettings
	// Root stands for /var/vcap: a sandbox directory for an agent that is
	// not alone on its machine.
	Root string
	// Supervisor tunes the process supervisor.
	Supervisor SupervisorConfig
	// HeartbeatInterval is how often the agent publishes a heartbeat; 30s
	// when 0.
	HeartbeatInterval time.Duration
	// MaxBlobSize bounds what one package or rendered archive unpacks to;
	// 10 GiB when 0.
	MaxBlobSize int64
	// Mounter mounts persistent disks; without one, mount_disk,
	// unmount_disk and migrate_disk fail saying so.
	Mounter Mounter
	// ReloadSettings, when set, reads the settings again as the CPI
	// wrote them last: mount_disk finds a disk just attached in them.
	ReloadSettings func(ctx context.Context) (cpi.AgentSettings, error)
}

// Agent is a BOSH agent: it serves the director's methods on the bus,
// lays out and runs the jobs the director applies, and publishes
// heartbeats. Start one with Start; Close stops its jobs and leaves the
// bus.
type Agent struct {
	cfg    Config
	layout Layout
	sup    *Supervisor
	blobs  Blobs
	srv    *mbus.Server
	pub    atomic.Pointer[mbus.Server] // srv, for the supervisor's goroutines
	log    *zap.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	specMu    sync.Mutex  // held by apply and prepare; guards the spec on disk
	stopped   atomic.Bool // stop was asked, and no start since
	dnsMu     sync.Mutex  // sync_dns one at a time
	diskMu    sync.Mutex  // disk methods one at a time
	closeOnce sync.Once
}

// Option configures an Agent.
type Option func(*Agent)

// WithLogger sets the logger; the default logs nothing.
func WithLogger(l *zap.Logger) Option {
	return func(a *Agent) {
		if l != nil {
			a.log = l
		}
	}
}

// Start connects the agent to the bus its settings name, with the
// certificate in env.bosh.mbus.cert, and serves until Close.
func Start(ctx context.Context, cfg Config, opts ...Option) (*Agent, error) {
	a := &Agent{cfg: cfg, log: zap.NewNop()}
	for _, o := range opts {
		o(a)
	}
	var ve kubefoundry.ValidationError
	if cfg.Root == "" {
		ve.Add("Root", "", "required (/var/vcap on a VM)")
	}
	if cfg.HeartbeatInterval < 0 {
		ve.Add("HeartbeatInterval", cfg.HeartbeatInterval.String(), "must not be negative")
	}
	var fe *kubefoundry.FieldError
	if errors.As(mbus.ValidateAgentID(cfg.Settings.AgentID), &fe) {
		ve.Add("settings.agent_id", cfg.Settings.AgentID, "%s", fe.Reason)
	}
	creds, err := mbusCredentials(cfg.Settings.Env)
	if err != nil {
		ve.Merge("settings.env.bosh.mbus.cert", err)
	}
	blobs, err := blobClients(cfg.Settings.Blobstore, a.log)
	if err != nil {
		ve.Merge("settings.blobstore", err)
	}
	if err := ve.Err(); err != nil {
		ve.Object = "agent.Config"
		return nil, err
	}
	if a.cfg.HeartbeatInterval == 0 {
		a.cfg.HeartbeatInterval = 30 * time.Second
	}
	if a.cfg.MaxBlobSize <= 0 {
		a.cfg.MaxBlobSize = 10 << 30
	}
	a.log = a.log.With(zap.String("agent", cfg.Settings.AgentID))
	a.layout = Layout{Root: cfg.Root}
	sc := cfg.Supervisor
	sc.OnFailure = a.processFailed
	a.sup = NewSupervisor(a.layout, sc, a.log)
	a.blobs = blobs
	a.ctx, a.cancel = context.WithCancel(context.Background())
	srv, err := mbus.StartServer(ctx, mbus.ServerConfig{URL: cfg.Settings.MBus, AgentID: cfg.Settings.AgentID, Credentials: creds},
		a.methods(), mbus.WithLogger(a.log))
	if err != nil {
		a.cancel()
		a.blobs.close()
		return nil, err
	}
	a.srv = srv
	a.pub.Store(srv)
	a.wg.Add(1)
	go a.heartbeats()
	return a, nil
}

// Close leaves the bus, stops the heartbeats and every job's processes
// (each within its stop timeout), in that order. Closing again does
// nothing.
func (a *Agent) Close() {
	a.closeOnce.Do(func() {
		a.srv.Close()
		a.cancel()
		a.wg.Wait()
		_ = a.sup.StopAll(context.Background())
		a.blobs.close()
	})
}

// Layout is the agent's directory layout.
func (a *Agent) Layout() Layout { return a.layout }

// ID is the agent's id, from its settings.
func (a *Agent) ID() string { return a.cfg.Settings.AgentID }

// Supervisor is the agent's process supervisor.
func (a *Agent) Supervisor() *Supervisor { return a.sup }

func (b Blobs) close() {
	for _, c := range []*blobstore.Client{b.Signed, b.ByID} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// mbusCredentials reads env.bosh.mbus.cert {ca, certificate, private_key},
// where the director puts an agent's bus certificate.
func mbusCredentials(env cpi.Env) (mbus.Credentials, error) {
	var e struct {
		Bosh struct {
			MBus struct {
				Cert struct {
					CA          string `json:"ca"`
					Certificate string `json:"certificate"`
					PrivateKey  string `json:"private_key"`
				} `json:"cert"`
			} `json:"mbus"`
		} `json:"bosh"`
	}
	b, err := json.Marshal(env)
	if err != nil {
		return mbus.Credentials{}, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return mbus.Credentials{}, &kubefoundry.FieldError{Field: "", Reason: err.Error()}
	}
	c := e.Bosh.MBus.Cert
	var ve kubefoundry.ValidationError
	if c.Certificate == "" {
		ve.Add("certificate", "", "required")
	}
	if c.PrivateKey == "" {
		ve.Add("private_key", "", "required")
	}
	if err := ve.Err(); err != nil {
		return mbus.Credentials{}, err
	}
	return mbus.Credentials{CAPEM: []byte(c.CA), CertPEM: []byte(c.Certificate), KeyPEM: []byte(c.PrivateKey)}, nil
}

// blobClients reads the settings' blobstore {provider: dav, options:
// {endpoint, user, password, tls: {cert: {ca}}}}: a client for signed URLs
// always, and one by id when there are credentials.
func blobClients(settings map[string]any, log *zap.Logger) (Blobs, error) {
	var s struct {
		Provider string `json:"provider"`
		Options  struct {
			Endpoint string `json:"endpoint"`
			User     string `json:"user"`
			Password string `json:"password"`
			TLS      struct {
				Cert struct {
					CA string `json:"ca"`
				} `json:"cert"`
			} `json:"tls"`
		} `json:"options"`
	}
	b, err := json.Marshal(settings)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		return Blobs{}, &kubefoundry.FieldError{Reason: err.Error()}
	}
	var ve kubefoundry.ValidationError
	if s.Provider != "dav" {
		ve.Add("provider", s.Provider, "only dav is supported")
	}
	if u, err := url.Parse(s.Options.Endpoint); err != nil || u.Host == "" {
		ve.Add("options.endpoint", s.Options.Endpoint, "not a URL")
	}
	if err := ve.Err(); err != nil {
		return Blobs{}, err
	}
	ca := s.Options.TLS.Cert.CA
	signed, err := blobstore.New(blobstore.Config{URL: s.Options.Endpoint, CACert: ca}, blobstore.WithLogger(log))
	if err != nil {
		return Blobs{}, err
	}
	out := Blobs{Signed: signed}
	if s.Options.User != "" {
		out.ByID, err = blobstore.New(blobstore.Config{URL: s.Options.Endpoint, Username: s.Options.User, Password: s.Options.Password, CACert: ca},
			blobstore.WithLogger(log))
		if err != nil {
			_ = signed.Close()
			return Blobs{}, err
		}
	}
	return out, nil
}

// LoadSettings reads settings from a JSON file (bosh-agent's
// settings.json, or what a CPI wrote).
func LoadSettings(path string) (cpi.AgentSettings, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return cpi.AgentSettings{}, err
	}
	var s cpi.AgentSettings
	if err := json.Unmarshal(b, &s); err != nil {
		return cpi.AgentSettings{}, fmt.Errorf("agent: settings %s: %w", path, err)
	}
	return s, nil
}

// DecodeGuestinfoSettings decodes guestinfo.bosh.settings as the vSphere
// CPI writes it: JSON, base64 when guestinfo.bosh.settings.encoding says
// "base64".
func DecodeGuestinfoSettings(value, encoding string) (cpi.AgentSettings, error) {
	raw := []byte(value)
	switch encoding {
	case "":
	case "base64":
		b, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			return cpi.AgentSettings{}, fmt.Errorf("agent: guestinfo settings: %w", err)
		}
		raw = b
	default:
		return cpi.AgentSettings{}, &kubefoundry.FieldError{Field: "guestinfo.bosh.settings.encoding", Value: encoding, Reason: "want base64 or none"}
	}
	var s cpi.AgentSettings
	if err := json.Unmarshal(raw, &s); err != nil {
		return cpi.AgentSettings{}, fmt.Errorf("agent: guestinfo settings: %w", err)
	}
	return s, nil
}

// heartbeats publishes a heartbeat at once and then every interval.
func (a *Agent) heartbeats() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(a.ctx, a.cfg.HeartbeatInterval)
		if err := a.srv.PublishHeartbeat(ctx, a.heartbeat()); err != nil && a.ctx.Err() == nil {
			a.log.Warn("heartbeat not sent", zap.Error(err))
		}
		cancel()
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeat is the agent's heartbeat now: its instance, job state and
// vitals.
// processFailed publishes an alert for a process that failed, as
// bosh-agent forwards monit's: severity 1 (alert), "<job>/<process> -
// Does not exist - restart", and what happened.
func (a *Agent) processFailed(job, process, why string) {
	srv := a.pub.Load()
	if srv == nil || a.ctx.Err() != nil {
		return
	}
	alert := mbus.Alert{ID: uuid.NewString(), Severity: 1, Title: fmt.Sprintf("%s/%s - Does not exist - restart", job, process),
		Summary: fmt.Sprintf("process %s of job %s %s; it is started again", process, job, why), CreatedAt: time.Now().Unix()}
	ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
	defer cancel()
	if err := srv.PublishAlert(ctx, alert); err != nil {
		a.log.Warn("alert not sent", zap.String("title", alert.Title), zap.Error(err))
	}
}

func (a *Agent) heartbeat() mbus.Heartbeat {
	ps := a.sup.Status()
	hb := mbus.Heartbeat{JobState: a.jobState(ps), NumberOfProcesses: len(ps), Vitals: vitals(a.layout)}
	spec, err := a.loadSpec()
	if err != nil {
		a.log.Warn("applied spec unreadable", zap.Error(err))
	}
	if spec != nil {
		hb.Deployment, hb.NodeID = spec.Deployment, spec.ID
		if spec.Job.Name != "" {
			job, index := spec.Job.Name, spec.Index
			hb.Job, hb.Index = &job, &index
		}
	}
	return hb
}

var errNoSpec = errors.New("no spec applied")

// jobState is the agent's job_state: "stopped" after stop until start,
// else the processes' (JobState).
func (a *Agent) jobState(ps []ProcessStatus) string {
	if a.stopped.Load() {
		return StateStopped
	}
	return JobState(ps)
}
