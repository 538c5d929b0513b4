package harbor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/retry"
)

// The operations Replicate, RunGC and Scan report as kubefoundry.Event.Op.
const (
	OpReplicate = "replicate" // Object: the policy's name
	OpGC        = "gc"        // Object: empty
	OpScan      = "scan"      // Object: the image, project/repository:tag
)

// The phases of their events (kubefoundry.Event.Phase).
const (
	// PhaseStarted: Harbor runs the work; Handle is its id (a replication
	// or GC execution id, a scan report id), sent before it is waited
	// for. Journal it: WithExecution hands it back after a crash.
	PhaseStarted = "started"
	// PhaseRunning: what a read of the work found, each time it changed;
	// Step of Steps counts the replication tasks ended of all of them
	// (Harbor counts no steps of GC or a scan). Message is Harbor's status.
	PhaseRunning = "running"
	// PhaseDone: the work ended well.
	PhaseDone = "done"
	// PhaseFailed: the work ended badly, could not be started, or could no
	// longer be followed (ctx ended); Err says why, Handle is set once known.
	PhaseFailed = "failed"
)

// A RunOption adjusts one Replicate, RunGC or Scan call.
type RunOption interface{ applyRun(*runOptions) }

type runOptions struct {
	sink   kubefoundry.Sink
	handle string
}

type runOptionFunc func(*runOptions)

func (f runOptionFunc) applyRun(o *runOptions) { f(o) }

// WithSink sends the call's progress events to s: PhaseStarted with the
// handle before the wait, PhaseRunning on every change, then PhaseDone or
// PhaseFailed.
func WithSink(s kubefoundry.Sink) RunOption {
	return runOptionFunc(func(o *runOptions) { o.sink = s })
}

// WithExecution resumes work an earlier call started: handle is the
// Handle of its PhaseStarted event. The call waits for that work instead
// of starting another, and reports how it ended, well or not; work Harbor
// no longer knows is ErrNotFound.
func WithExecution(handle string) RunOption {
	return runOptionFunc(func(o *runOptions) { o.handle = handle })
}

// run reports the progress of one operation.
type run struct {
	sink   kubefoundry.Sink
	op     string
	object string
	handle string // once known
	resume string // WithExecution's handle
}

func newRun(op, object string, opts []RunOption) *run {
	var o runOptions
	for _, opt := range opts {
		if opt != nil {
			opt.applyRun(&o)
		}
	}
	return &run{sink: o.sink, op: op, object: object, resume: o.handle}
}

func (r *run) emit(e kubefoundry.Event) {
	e.Op, e.Object = r.op, r.object
	if e.Handle == "" {
		e.Handle = r.handle
	}
	kubefoundry.Emit(r.sink, e)
}

// what names the operation in errors: "replicate mirror", "gc".
func (r *run) what() string {
	if r.object == "" {
		return r.op
	}
	return r.op + " " + r.object
}

// started records the handle and reports it; resumed work says so.
func (r *run) started(handle string, resumed bool) {
	r.handle = handle
	e := kubefoundry.Event{Phase: PhaseStarted}
	if resumed {
		e.Message = "resumed"
	}
	r.emit(e)
}

// finish reports err, if any, as PhaseFailed, and passes it on.
func (r *run) finish(err error) error {
	if err != nil {
		r.emit(kubefoundry.Event{Phase: PhaseFailed, Err: err})
	}
	return err
}

// resumeID is the WithExecution handle of an operation whose ids are
// numbers; 0 when there is none.
func (r *run) resumeID() (int64, error) {
	if r.resume == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(r.resume, 10, 64)
	if err != nil || id <= 0 {
		return 0, &ValidationError{Object: r.op, Problems: []FieldError{
			{Field: "execution", Value: r.resume, Reason: "must be the Handle of a " + r.op + " PhaseStarted event: a positive number"}}}
	}
	return id, nil
}

// state is what one read of running work says.
type state struct {
	status      string // Harbor's
	ended       bool
	failure     error // why it ended badly; nil when it ended well
	step, steps int
}

func (s state) same(o state) bool {
	return s.status == o.status && s.ended == o.ended && s.step == o.step && s.steps == o.steps
}

// follow reads the work until it ends or ctx does, reporting each change.
// A read Harbor cannot serve now (ErrUnavailable, ErrTimeout) is tried
// again at the next poll. It returns the failure of work that ended badly.
func (c *Client) follow(ctx context.Context, r *run, read func(context.Context) (state, error)) error {
	bo := retry.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	var last state
	seen := false
	for {
		st, err := read(ctx)
		switch {
		case err == nil:
			if st.ended && st.failure != nil {
				return st.failure // finish reports it
			}
			if st.ended {
				r.emit(kubefoundry.Event{Phase: PhaseDone, Step: st.step, Steps: st.steps, Message: st.status})
				return nil
			}
			if !seen || !st.same(last) {
				r.emit(kubefoundry.Event{Phase: PhaseRunning, Step: st.step, Steps: st.steps, Message: st.status})
			}
			last, seen = st, true
		case errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout):
			c.log.Info("harbor could not say how the work goes; asking again", zap.String("op", r.op),
				zap.String("handle", r.handle), zap.Error(err))
		default:
			return err
		}
		if !bo.Sleep(ctx) {
			cause := context.Cause(ctx)
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			if err != nil {
				cause = errors.Join(cause, err)
			}
			status := "not ended"
			if seen {
				status = "still " + last.status
			}
			return fmt.Errorf("harbor: %s: %s %s: %w", r.what(), r.handle, status, cause)
		}
	}
}
