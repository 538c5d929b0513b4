package simulator

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/kubefoundry/kubefoundry/harbor"
)

// Fault makes the simulator misbehave for the requests it matches, as a
// Harbor that is overloaded, behind a failing proxy or slow would: it
// holds the answer back for Delay, then answers Status, with Harbor's
// {"errors": [...]} body, instead of serving the request (or serves it
// when Status is 0).
//
// It applies to the Nth request (counting from 1; 0 is 1) whose method is
// Method ("" for any) and whose URL path matches Path (nil for any), and
// to the Times-1 matching requests after it (Times 0 means 1; a negative
// Times, every one from the Nth on).
type Fault struct {
	Method string
	Path   *regexp.Regexp
	Nth    int
	Times  int
	// Status is answered instead of serving the request; 0 serves it
	// (after Delay).
	Status int
	// Code and Message are the answer's errors[0]; Harbor's code for
	// Status (UNKNOWN when it has none) and a message naming the fault
	// when empty.
	Code    string
	Message string
	// Delay holds the answer back this long, or until the client gives
	// up or the simulator is closed, whichever comes first.
	Delay time.Duration

	seen int
}

// Inject adds a fault; it is checked before any other, from the next
// request on.
func (s *Server) Inject(f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// fault is the fault that applies to r, or nil; it counts r for every
// fault r matches up to the one that applies.
func (s *Server) fault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if (f.Method != "" && f.Method != r.Method) || (f.Path != nil && !f.Path.MatchString(r.URL.Path)) {
			continue
		}
		f.seen++
		nth := max(f.Nth, 1)
		if f.seen >= nth && (f.Times < 0 || f.seen < nth+max(f.Times, 1)) {
			return f
		}
	}
	return nil
}

// serveFault applies f to r, and reports whether it answered (or the
// client or the simulator went away while it waited).
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, f *Fault) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		case <-s.closed:
			return true
		}
	}
	if f.Status == 0 {
		return false
	}
	e := errf(f.Status, "injected fault: %d for %s %s", f.Status, r.Method, r.URL.Path)
	if f.Code != "" {
		e.code = f.Code
	}
	if f.Message != "" {
		e.msg = f.Message
	}
	s.write(w, r, nil, reply{}, e)
	return true
}

// Start starts a simulator for a test, closes it when the test ends, and
// returns it with the Config of a harbor.Client logged in as admin. It
// ends the test when the simulator cannot start.
//
//	sim, cfg := simulator.Start(t, simulator.Config{})
//	c, err := harbor.New(ctx, cfg)
func Start(tb testing.TB, cfg Config) (*Server, harbor.Config) {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("start the Harbor simulator: %v", err)
	}
	tb.Cleanup(s.Close)
	return s, harbor.Config{URL: s.URL, Username: "admin", Password: s.adminPassword}
}
