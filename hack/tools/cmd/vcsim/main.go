// Command vcsim is a small standalone vCenter simulator for benchmarks
// (hack/bench-govc.sh): govmomi's simulator.VPX() model served on loopback,
// with task delays so that client-side concurrency is visible in wall time.
//
// Upstream's vcsim main lives in a nested module that the Go module proxy does
// not serve, hence this one.
//
// It prints the server URL, credentials included, as one line on stdout (and
// to -url-file if set), then serves until SIGINT or SIGTERM. It counts the
// vim25 SOAP calls it handles by method name: GET /bench/soap-calls on the
// same server returns the running totals as JSON, so a caller can take the
// difference across one run of a client, and the totals are logged to stderr
// (and written to -count-file if set) at exit.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("vcsim: ")

	listen := flag.String("l", "127.0.0.1:0", "listen `address` (loopback only; port 0 picks a free port)")
	useTLS := flag.Bool("tls", true, "serve https with the simulator's self-signed certificate, as vcsim does")
	urlFile := flag.String("url-file", "", "also write the server URL to this `file`")
	countFile := flag.String("count-file", "", "at exit, write SOAP call counts by method as JSON to this `file`")
	cloneMS := flag.Int("clone-ms", 2000, "task delay for CloneVM_Task, in ms (task name CloneVm)")
	reconfigMS := flag.Int("reconfig-ms", 500, "task delay for ReconfigVM_Task, in ms (task name ReconfigVm)")
	powerOnMS := flag.Int("poweron-ms", 500, "task delay for PowerOnVM_Task and for the power-on inside a clone with spec.powerOn, in ms (task name PowerOn)")
	lockHandoff := flag.Int("lock-handoff", 0, "0: a task takes its entity's lock only after its delay; 1: the lock is held through the delay (simulator default)")
	flag.Parse()

	if err := checkLoopback(*listen); err != nil {
		log.Fatal(err)
	}

	// simulator.TaskDelay is keyed by task name, not by SOAP method:
	// CloneVM_Task runs a task named "CloneVm", ReconfigVM_Task "ReconfigVm",
	// and PowerOnVM_Task "PowerOn" (not "PowerOnVm", which matches nothing).
	//
	// "LockHandoff" is not a task: it says whether a task acquires the lock of
	// its entity before its delay (the default, 1) or after it (0). For a clone
	// the entity is the source VM, so with the default a clone holds the
	// template's lock through its whole delay and every clone of one template
	// runs one after another, whatever the client's concurrency (100 clones
	// with 16 govc processes took as long as 100 in a row). With 0 the delays
	// overlap and only the short state change itself is serialised.
	//
	// One serialisation remains even with 0: a clone with spec.powerOn runs its
	// power-on task, delay included, inside the clone while still holding the
	// source VM's lock, so the power-on delays of such clones of one template
	// add up one after another.
	simulator.TaskDelay.MethodDelay = map[string]int{
		"CloneVm":     *cloneMS,
		"ReconfigVm":  *reconfigMS,
		"PowerOn":     *powerOnMS,
		"LockHandoff": *lockHandoff,
	}

	m := simulator.VPX()
	if err := m.Create(); err != nil {
		log.Fatal(err)
	}
	defer m.Remove()

	var calls soapCounter
	m.Map().Handler = func(_ *simulator.Context, method *simulator.Method) (mo.Reference, types.BaseMethodFault) {
		calls.add(method.Name)
		return nil, nil // nil: dispatch to the usual managed object
	}

	m.Service.Listen = &url.URL{Host: *listen}
	if *useTLS {
		m.Service.TLS = new(tls.Config)
	}
	s := m.Service.NewServer()
	defer s.Close()

	m.Service.ServeMux.HandleFunc("/bench/soap-calls", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(calls.snapshot())
	})

	u := s.URL.String()
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(u+"\n"), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(u)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	<-ctx.Done()
	stop()

	c := calls.snapshot()
	log.Printf("handled %d SOAP calls: %v", c.Total, c.ByMethod)
	if *countFile != "" {
		b, _ := json.MarshalIndent(c, "", "  ")
		if err := os.WriteFile(*countFile, append(b, '\n'), 0o600); err != nil {
			log.Print(err)
		}
	}
}

// checkLoopback refuses to serve the simulator, which accepts any credentials,
// on anything but a loopback address.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-l %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-l %q: not a loopback address", addr)
}

// soapCounter counts SOAP calls by method name; safe for concurrent use.
type soapCounter struct {
	mu       sync.Mutex
	byMethod map[string]int
}

type soapCounts struct {
	Total    int            `json:"total"`
	ByMethod map[string]int `json:"by_method"`
}

func (c *soapCounter) add(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byMethod == nil {
		c.byMethod = make(map[string]int)
	}
	c.byMethod[method]++
}

func (c *soapCounter) snapshot() soapCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := soapCounts{ByMethod: maps.Clone(c.byMethod)}
	if out.ByMethod == nil {
		out.ByMethod = map[string]int{}
	}
	for _, n := range out.ByMethod {
		out.Total += n
	}
	return out
}
