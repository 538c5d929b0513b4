package nsxt

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kubefoundry/kubefoundry"
)

// The phases of the progress events of the calls that take a CallOption
// (kubefoundry.Event.Phase).
const (
	// PhaseStarted: the call began.
	PhaseStarted = "started"
	// PhaseWaiting: NSX refused a path the call writes because what was
	// deleted there is not purged yet (ErrPendingDelete), and the call
	// waits for NSX's purge cycle before trying again (see WithPurgeWait).
	// Handle is that path; Message says how long it has waited. One is
	// sent before each wait.
	PhaseWaiting = "waiting"
	// PhaseDone: the call succeeded; Message counts its write requests
	// ("writes: 2").
	PhaseDone = "done"
	// PhaseFailed: the call failed; Err is the error it returns.
	PhaseFailed = "failed"
)

// The operations of the progress events (kubefoundry.Event.Op).
const (
	OpApplyTopology      = "apply topology"        // BuildTopology; Object: the cluster id
	OpTeardownTopology   = "teardown topology"     // TeardownTopology; Object: the cluster id
	OpEnsureNamespace    = "ensure namespace"      // EnsureNamespace; Object: "<cluster>/<namespace>"
	OpTeardownNamespace  = "teardown namespace"    // TeardownNamespace; Object: "<cluster>/<namespace>"
	OpEnsureLoadBalancer = "ensure load balancer"  // EnsureLoadBalancer; Object: "<cluster>/<namespace>/<name>"
	OpDeleteLoadBalancer = "delete load balancer"  // DeleteLoadBalancer; Object: "<cluster>/<namespace>/<name>"
	OpApplyPolicy        = "apply network policy"  // ApplyNetworkPolicy; Object: "<cluster>/<namespace>/<name>"
	OpDeletePolicy       = "delete network policy" // DeleteNetworkPolicy; Object: "<cluster>/<namespace>/<name>"
)

// A CallOption adjusts one call of BuildTopology, TeardownTopology,
// EnsureNamespace, TeardownNamespace, EnsureLoadBalancer,
// DeleteLoadBalancer, ApplyNetworkPolicy or DeleteNetworkPolicy.
type CallOption interface {
	applyCall(*callOptions)
}

type callOptions struct {
	sink kubefoundry.Sink
}

type callOptionFunc func(*callOptions)

func (f callOptionFunc) applyCall(o *callOptions) { f(o) }

// WithSink sends the call's progress to s as the SDK's shared
// kubefoundry.Event: Op one of the Op constants, Object what the call is
// about, PhaseStarted, then PhaseWaiting before each wait for NSX's purge
// (Handle the path NSX refused), then PhaseDone or PhaseFailed. The
// events of one call are sent one at a time, from the calling goroutine.
func WithSink(s kubefoundry.Sink) CallOption {
	return callOptionFunc(func(o *callOptions) { o.sink = s })
}

// progress sends the events of one call.
type progress struct {
	sink   kubefoundry.Sink
	op     string
	object string
	writes int // reported with PhaseDone
}

// newProgress applies opts and sends PhaseStarted.
func newProgress(opts []CallOption, op, object string) *progress {
	var o callOptions
	for _, opt := range opts {
		opt.applyCall(&o)
	}
	p := &progress{sink: o.sink, op: op, object: object}
	p.emit(kubefoundry.Event{Phase: PhaseStarted})
	return p
}

func (p *progress) emit(e kubefoundry.Event) {
	if p == nil || p.sink == nil {
		return
	}
	e.Op, e.Object = p.op, p.object
	kubefoundry.Emit(p.sink, e)
}

// waiting reports a wait for NSX's purge of what err names.
func (p *progress) waiting(err error, waited, limit time.Duration) {
	if p == nil || p.sink == nil {
		return
	}
	paths := pendingPaths(err)
	var handle, also string
	if len(paths) > 0 {
		handle = paths[0]
		if len(paths) > 1 {
			also = fmt.Sprintf(" (and %d more paths)", len(paths)-1)
		}
	}
	p.emit(kubefoundry.Event{Phase: PhaseWaiting, Handle: handle,
		Message: fmt.Sprintf("NSX has not purged what was deleted at this path%s: pending purge; waiting for its purge cycle (every 5 minutes), %s so far, up to %s",
			also, waited.Round(time.Second), limit)})
}

// end sends PhaseDone, or PhaseFailed with err.
func (p *progress) end(err error) {
	if err != nil {
		p.emit(kubefoundry.Event{Phase: PhaseFailed, Err: err})
		return
	}
	if p != nil {
		p.emit(kubefoundry.Event{Phase: PhaseDone, Message: fmt.Sprintf("writes: %d", p.writes)})
	}
}

// pendingPaths are the paths NSX names in a refusal for what is marked
// for deletion (error code 500045: "An object with the same path=[...] is
// marked for deletion"), in the error or its related errors, in order.
func pendingPaths(err error) []string {
	var e *APIError
	if !errors.As(err, &e) {
		return nil
	}
	var out []string
	add := func(code int64, msg string) {
		if code != pendingDeleteCode {
			return
		}
		for _, m := range blockPathRe.FindAllStringSubmatch(msg, -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	}
	add(e.Code, e.Message)
	for i, msg := range e.Related {
		if i < len(e.RelatedCodes) {
			add(e.RelatedCodes[i], msg)
		}
	}
	return out
}
