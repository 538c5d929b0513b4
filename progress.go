package kubefoundry

import (
	"encoding/json"
	"errors"
	"time"
)

// Event is one step of a long operation, in the one shape every package
// reports: what a progress bar draws and what a journal stores to resume.
// An event whose Handle is set names server-side work that was started
// before it is waited for; handing the handle back to the next call (each
// package says how) resumes that work instead of starting it again.
type Event struct {
	Time time.Time `json:"time"`
	// Op is the operation: "provision", "create volume", "apply topology".
	Op string `json:"op"`
	// Object is what the step is about: a VM, volume or namespace name.
	Object string `json:"object,omitempty"`
	// Phase is the step reached: "started", "clone-started", "powered-on",
	// "waiting", "done", "failed". Each package lists its phases.
	Phase string `json:"phase"`
	// Step of Steps counts the objects of the operation that have ended so
	// far (Step) out of all of them (Steps), when the operation knows.
	Step  int `json:"step,omitempty"`
	Steps int `json:"steps,omitempty"`
	// Handle is the server-side work this step started or waits for: a
	// vSphere task ("task-123"), an NSX path, a Harbor execution id.
	Handle string `json:"handle,omitempty"`
	// Err is why the step failed, when Phase says it did.
	Err error `json:"-"`
	// Message is a human-readable detail (never a secret).
	Message string `json:"message,omitempty"`
}

// MarshalJSON writes Err as its message under "error".
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	var msg string
	if e.Err != nil {
		msg = e.Err.Error()
	}
	return json.Marshal(struct {
		plain
		Error string `json:"error,omitempty"`
	}{plain(e), msg})
}

// UnmarshalJSON reads what MarshalJSON writes: an "error" becomes an Err
// with its message.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var v struct {
		plain
		Error string `json:"error,omitempty"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = Event(v.plain)
	if v.Error != "" {
		e.Err = errors.New(v.Error)
	}
	return nil
}

// A Sink receives progress events. Packages call it from one goroutine at a
// time per operation, so a sink need not lock for one operation; a sink
// shared by operations running at once must be safe for concurrent use.
// A sink must not block for long: the work waits for it.
type Sink interface {
	Event(Event)
}

// SinkFunc turns a function into a Sink.
type SinkFunc func(Event)

// Event calls f(e).
func (f SinkFunc) Event(e Event) { f(e) }

// Emit sends e to s with its Time set to now when unset; a nil Sink
// discards it.
func Emit(s Sink, e Event) {
	if s == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.Event(e)
}
