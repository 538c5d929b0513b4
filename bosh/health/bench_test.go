package health_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/bosh/health"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

// BenchmarkHeartbeats: 10,000 agents (fewer when the open-file limit
// cannot hold both ends of as many connections), each a bare NATS
// connection with its own certificate publishing the agent's heartbeat,
// every interval, through the embedded bus to the health monitor. Each
// iteration is one interval's round of heartbeats. It reports the CPU
// time of the whole process (bus, publishers and monitor: an upper bound
// of the monitor's) per heartbeat received, and, for an agent silenced at
// the end, the time from its last heartbeat to its time-out alert, in
// intervals (target <= 2).
func BenchmarkHeartbeats(b *testing.B) {
	// 10,000 agents, or as many as the open-file limit allows: both ends
	// of each connection are in this process.
	heartbeatAgents := 10000
	if n, err := strconv.Atoi(os.Getenv("KF_HEARTBEAT_AGENTS")); err == nil && n > 0 {
		heartbeatAgents = n // a smaller run
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(2*heartbeatAgents+512) {
		heartbeatAgents = int(rl.Cur-512) / 2
	}
	const interval = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bus, err := mbus.StartBus(ctx, mbus.BusConfig{})
	require.NoError(b, err)
	defer bus.Close()
	director, err := mbus.Dial(ctx, mbus.Config{URL: bus.URL(), Credentials: bus.DirectorCredentials()})
	require.NoError(b, err)
	defer director.Close()

	alerts := make(chan health.Alert, heartbeatAgents)
	m, err := health.Start(ctx, director, health.Config{Interval: interval, Alerts: func(a health.Alert) { alerts <- a }}, nil)
	require.NoError(b, err)
	defer m.Close()

	ids := make([]string, heartbeatAgents)
	for i := range ids {
		ids[i] = fmt.Sprintf("hb-%05d", i)
	}
	setup := time.Now()
	creds, err := bus.AddAgents(ids...)
	require.NoError(b, err)
	b.Logf("%d agents added in %s", len(ids), time.Since(setup))
	conns := make([]*nats.Conn, len(ids))
	for i, c := range creds {
		conns[i], err = connect(bus.URL(), c)
		require.NoError(b, err)
		defer conns[i].Close()
		m.Watch(health.Instance{Deployment: "bench", Group: "g", ID: ids[i], Index: i, AgentID: ids[i]})
	}
	b.Logf("%d agents connected in %s", len(ids), time.Since(setup))
	job, index := "g", 0
	body, err := json.Marshal(mbus.Heartbeat{Deployment: "bench", Job: &job, Index: &index, JobState: "running", NumberOfProcesses: 1})
	require.NoError(b, err)
	// round publishes one heartbeat per agent, spread over an interval.
	round := func(skip int) (time.Time, error) {
		start := time.Now()
		var last time.Time
		for i, nc := range conns {
			if i == skip {
				continue
			}
			if d := time.Until(start.Add(interval * time.Duration(i) / time.Duration(len(conns)))); d > 0 {
				time.Sleep(d)
			}
			if err := nc.Publish(mbus.HMSubject(mbus.TopicHeartbeat, ids[i]), body); err != nil {
				return last, err
			}
			if i == 0 {
				last = time.Now()
			}
		}
		return last, nil
	}

	before := m.Heartbeats()
	cpu0 := cpuTime()
	b.ResetTimer()
	var last0 time.Time
	for range b.N {
		last0, err = round(-1)
		require.NoError(b, err)
	}
	b.StopTimer()
	// Let the round's last heartbeats arrive before counting.
	time.Sleep(interval / 10)
	got := m.Heartbeats() - before
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(max(got, 1)), "cpu-µs/heartbeat")
	b.ReportMetric(float64(got)/float64(b.N*len(conns)), "received/sent")
	b.ReportMetric(float64(len(conns)), "agents")

	// Silence agent 0 (its last heartbeat was last0), keep the rest.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := round(0); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	deadline := time.After(10 * interval)
	for {
		select {
		case a := <-alerts:
			if a.Kind != health.KindTimeout {
				continue
			}
			require.Equal(b, ids[0], a.Instance.AgentID, "only the silenced agent times out")
			b.ReportMetric(time.Since(last0).Seconds()/interval.Seconds(), "detect-intervals")
			return
		case <-deadline:
			b.Fatal("the silenced agent did not time out within 10 intervals")
		}
	}
}

// connect is an agent's bare connection: TLS with its certificate.
func connect(url string, c mbus.Credentials) (*nats.Conn, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		return nil, err
	}
	return nats.Connect(url, nats.Secure(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
