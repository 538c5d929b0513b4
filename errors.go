package kubefoundry

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The error sentinels every package wraps, so that one errors.Is answers
// for any layer: errors.Is(err, kubefoundry.ErrNotFound) holds for a VM, a
// CNS volume, an NSX segment or a Harbor project that does not exist. The
// packages re-export them under the same names (vsphere.ErrNotFound is
// kubefoundry.ErrNotFound) and wrap them in their own typed errors, which
// keep the system's own cause in the chain too.
var (
	// ErrNotFound: the object asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object of that name exists and may not be
	// reused, such as a VM owned by another cluster.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: another writer changed the object since it was read.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request or spec is wrong; nothing was changed. A
	// *ValidationError or *FieldError says where.
	ErrInvalid = errors.New("invalid")
	// ErrInUse: the object cannot go, or go there, because something else
	// holds it (a volume attached to another VM, a segment with a VM NIC).
	ErrInUse = errors.New("in use")
	// ErrUnauthorized: the credentials were refused.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the credentials are good but may not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: the server could not serve the request now; trying
	// again later may succeed.
	ErrUnavailable = errors.New("unavailable")
	// ErrPendingDelete: the object is deleted but the server has not freed
	// its name or path yet (NSX's asynchronous purge).
	ErrPendingDelete = errors.New("pending delete")
	// ErrLimitExceeded: the request is valid but a configured limit is
	// reached.
	ErrLimitExceeded = errors.New("limit exceeded")
	// ErrTimeout: a server did not answer in time. A *TimeoutError says
	// which stage (connect, TLS handshake, a call) and how long it waited.
	ErrTimeout = errors.New("timed out")
)

// IsNotFound reports whether err wraps ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsInvalid reports whether err wraps ErrInvalid.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }

// IsConflict reports whether err wraps ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsTimeout reports whether err wraps ErrTimeout.
func IsTimeout(err error) bool { return errors.Is(err, ErrTimeout) }

// FieldError is one problem with one field of a spec or configuration.
// It wraps ErrInvalid.
type FieldError struct {
	// Field is the path of the field, in the spelling of the spec's JSON
	// or of the Go field: "specs[3].template", "Topology.ClusterID".
	Field string `json:"field"`
	// Value is the value at fault, when showing it helps (never a secret).
	Value string `json:"value,omitempty"`
	// Reason says what is wrong and what would be accepted.
	Reason string `json:"reason"`
	// Line is the line of the field in the document it was read from
	// (YAML, JSON), when it was read from one; 0 otherwise.
	Line int `json:"line,omitempty"`
}

func (e *FieldError) Error() string {
	at := ""
	if e.Line > 0 {
		at = fmt.Sprintf(" (line %d)", e.Line)
	}
	if e.Value == "" {
		return e.Field + at + ": " + e.Reason
	}
	return fmt.Sprintf("%s%s %q: %s", e.Field, at, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// ValidationError lists every problem found at once, each naming its field.
// It wraps ErrInvalid, and errors.As finds each *FieldError in it.
type ValidationError struct {
	// Object names what was checked ("vsphere.Config", "nsxt.Topology");
	// it may be empty.
	Object   string       `json:"object,omitempty"`
	Problems []FieldError `json:"problems"`
}

func (e *ValidationError) Error() string {
	s := make([]string, len(e.Problems))
	for i := range e.Problems {
		s[i] = e.Problems[i].Error()
	}
	prefix := "invalid"
	if e.Object != "" {
		prefix = "invalid " + e.Object
	}
	return prefix + ": " + strings.Join(s, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) true, and errors.As find the
// first *FieldError.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, 0, len(e.Problems)+1)
	errs = append(errs, ErrInvalid)
	for i := range e.Problems {
		errs = append(errs, &e.Problems[i])
	}
	return errs
}

// Add records a problem; the reason is formatted with args.
func (e *ValidationError) Add(field, value, format string, args ...any) {
	e.Problems = append(e.Problems, FieldError{Field: field, Value: value, Reason: fmt.Sprintf(format, args...)})
}

// Merge adds the problems of err, if it is a *ValidationError or a
// *FieldError, under prefix (joined with "."), and reports whether it was
// one. A nil err adds nothing and reports true.
func (e *ValidationError) Merge(prefix string, err error) bool {
	if err == nil {
		return true
	}
	join := func(f string) string {
		switch {
		case prefix == "":
			return f
		case f == "":
			return prefix
		case strings.HasPrefix(f, "["):
			return prefix + f
		}
		return prefix + "." + f
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			p.Field = join(p.Field)
			e.Problems = append(e.Problems, p)
		}
		return true
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		p := *fe
		p.Field = join(p.Field)
		e.Problems = append(e.Problems, p)
		return true
	}
	return false
}

// Err returns e when it holds a problem, and nil otherwise (a nil error,
// not a nil *ValidationError in an error).
func (e *ValidationError) Err() error {
	if e == nil || len(e.Problems) == 0 {
		return nil
	}
	return e
}

// Stage names what a client was doing when a TimeoutError struck.
type Stage string

// The stages of reaching a server.
const (
	StageConnect Stage = "connect"       // TCP connect
	StageTLS     Stage = "TLS handshake" // after connect, before the first byte of HTTP
	StageCall    Stage = "call"          // a request sent, waiting for the answer
)

// TimeoutError says which stage of reaching which server did not finish in
// time. It wraps ErrTimeout and the underlying error.
type TimeoutError struct {
	Host  string        // host:port
	Stage Stage         // connect, TLS handshake, call
	Op    string        // the call, when Stage is StageCall: "RetrieveServiceContent", "GET /policy/api/v1/infra"
	After time.Duration // the limit that was reached
	Err   error         // the underlying error
}

func (e *TimeoutError) Error() string {
	what := string(e.Stage)
	if e.Op != "" {
		what += " " + e.Op
	}
	return fmt.Sprintf("%s to %s: no answer within %s (%s)", what, e.Host, e.After, e.Stage.hint())
}

func (s Stage) hint() string {
	switch s {
	case StageConnect:
		return "is the host up and the port open?"
	case StageTLS:
		return "the port accepts connections but does not speak TLS in time"
	}
	return "the server accepted the request but did not answer"
}

// Unwrap makes errors.Is(err, ErrTimeout) true and keeps the cause.
func (e *TimeoutError) Unwrap() []error { return []error{ErrTimeout, e.Err} }
