package nsxt

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/vmware/vsphere-automation-sdk-go/lib/vapi/std"
	vapierrors "github.com/vmware/vsphere-automation-sdk-go/lib/vapi/std/errors"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data"

	"github.com/kubefoundry/kubefoundry"
)

// Sentinel errors; every error the package returns for an NSX answer wraps
// one of them when it applies, so errors.Is works. They are the SDK's
// shared sentinels (nsxt.ErrNotFound is kubefoundry.ErrNotFound), so one
// errors.Is answers for NSX as for every other layer.
var (
	// ErrNotFound: the object asked for does not exist (HTTP 404).
	ErrNotFound = kubefoundry.ErrNotFound
	// ErrConflict: another writer changed the object since it was read
	// (a stale _revision: HTTP 412, error code 604).
	ErrConflict = kubefoundry.ErrConflict
	// ErrInvalid: NSX refused the request (HTTP 400), or a spec or the
	// Config is wrong (a *kubefoundry.ValidationError or *FieldError says
	// where) and nothing was sent.
	ErrInvalid = kubefoundry.ErrInvalid
	// ErrUnauthorized: NSX refused the credentials or the session, or the
	// request (HTTP 401, 403).
	ErrUnauthorized = kubefoundry.ErrUnauthorized
	// ErrUnavailable: NSX could not serve the request (HTTP 503 past the
	// retries), or no manager answered it.
	ErrUnavailable = kubefoundry.ErrUnavailable
	// ErrLimitExceeded is wrapped by a *LimitError: the request is valid,
	// but the cluster is at a limit its Topology sets.
	ErrLimitExceeded = kubefoundry.ErrLimitExceeded
	// ErrInUse is wrapped when something kubefoundry may not delete is
	// attached to an object it would delete: a VM's NIC on one of the
	// cluster's segments. Nothing was written.
	ErrInUse = kubefoundry.ErrInUse
	// ErrPendingDelete is the Kind of an *APIError for a write to a path
	// whose object is deleted but not purged yet (NSX error code 500045):
	// NSX deletes asynchronously and frees the path at its next purge
	// (every 5 minutes).
	ErrPendingDelete = kubefoundry.ErrPendingDelete
	// ErrProtected is the Kind of an *APIError for a change or delete of
	// what a principal identity made, by anyone else (NSX error code
	// 289): only it may, or an enterprise admin with
	// Config.AllowOverwrite. It is NSX's own, and wraps
	// kubefoundry.ErrForbidden.
	ErrProtected = fmt.Errorf("nsxt: protected: made by another principal identity: %w", kubefoundry.ErrForbidden)
)

// LimitError reports a request refused because the cluster is at a limit
// of its Topology, such as MaxL4LBServices. It wraps ErrLimitExceeded.
type LimitError struct {
	ClusterID string
	Field     string // the Topology field that sets the limit: MaxL4LBServices
	Limit     int
	Count     int    // how many the cluster has
	Object    string // what was refused: "LoadBalancer Service web/frontend"
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("nsxt: %s refused: cluster %s is at its limit Topology.%s=%d (it has %d)",
		e.Object, e.ClusterID, e.Field, e.Limit, e.Count)
}

// Unwrap lets errors.Is(err, ErrLimitExceeded) match.
func (e *LimitError) Unwrap() error { return ErrLimitExceeded }

// revisionConflictCode is NSX's error_code for "The object was modified by
// somebody else", answered with HTTP 412 to a stale _revision.
const revisionConflictCode = 604

// APIError is an error answered by NSX, with what NSX said about it, or
// the failure of a request that got no answer.
type APIError struct {
	Op      string // what the package was doing: "patch /infra", "get /infra/tier-0s/t0"
	Kind    error  // one of the sentinel errors, or nil
	Code    int64  // NSX error_code
	Message string // NSX error_message
	// Related are the error_message of NSX's related_errors, and
	// RelatedCodes their error_code: a hierarchical PATCH that fails
	// reports what failed there, under an error of its own.
	Related      []string
	RelatedCodes []int64
	// Err is what the error was made from: the SDK's error (a type of
	// vsphere-automation-sdk-go's lib/vapi/std/errors, such as
	// errors.NotFound), or, when the request got no answer, the
	// transport's (a *kubefoundry.TimeoutError, a refused connection, a
	// certificate that is not trusted), which the SDK keeps only as text.
	Err error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nsxt: %s: ", e.Op)
	if e.Kind != nil {
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "nsxt: "))
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, " (code %d)", e.Code)
	}
	for _, r := range e.Related {
		fmt.Fprintf(&b, "; %s", r)
	}
	return b.String()
}

// Unwrap lets errors.Is match the sentinel, and errors.As find the
// error it was made from.
func (e *APIError) Unwrap() []error {
	if e == nil {
		return nil
	}
	var out []error
	for _, err := range []error{e.Kind, e.Err} {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// RealizationError reports an intent that NSX accepted but could not
// realize, such as an IP block with no free subnet left.
type RealizationError struct {
	Path    string // the intent path
	State   string // ERROR, or the last state seen when waiting gave up
	Message string
}

func (e *RealizationError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("nsxt: %s not realized (state %s)", e.Path, e.State)
	}
	return fmt.Sprintf("nsxt: %s not realized (state %s): %s", e.Path, e.State, e.Message)
}

// apiError turns what the SDK returned into an *APIError naming op.
// cause is the transport's error for the request, when it got no answer
// (see calls): the SDK turns it into a vapi error that keeps its text only.
func apiError(op string, err, cause error) error {
	if err == nil {
		return nil
	}
	e := &APIError{Op: op, Err: err}
	if cause != nil {
		e.Err = cause
	}
	var d *data.StructValue
	var msgs []std.LocalizableMessage
	var nf vapierrors.NotFound
	var cc vapierrors.ConcurrentChange
	var ir vapierrors.InvalidRequest
	var ua vapierrors.Unauthorized
	var un vapierrors.Unauthenticated
	var su vapierrors.ServiceUnavailable
	var ise vapierrors.InternalServerError
	switch {
	case errors.As(err, &nf):
		e.Kind, d, msgs = ErrNotFound, nf.Data, nf.Messages
	case errors.As(err, &cc):
		e.Kind, d, msgs = ErrConflict, cc.Data, cc.Messages
	case errors.As(err, &ir):
		// NSX answers a stale _revision with 412 and error code 604, which
		// the SDK reports as InvalidRequest; it is a conflict.
		e.Kind, d, msgs = ErrInvalid, ir.Data, ir.Messages
	case errors.As(err, &ua):
		e.Kind, d, msgs = ErrUnauthorized, ua.Data, ua.Messages
	case errors.As(err, &un):
		e.Kind, d, msgs = ErrUnauthorized, un.Data, un.Messages
	case errors.As(err, &su):
		e.Kind, d, msgs = ErrUnavailable, su.Data, su.Messages
	case errors.As(err, &ise):
		d, msgs = ise.Data, ise.Messages
	case cause != nil:
		// The runtime's own error for a transport failure it classes
		// otherwise (a timeout): the transport's says more.
		return fmt.Errorf("nsxt: %s: %w", op, cause)
	default:
		return fmt.Errorf("nsxt: %s: %w", op, err)
	}
	if d != nil {
		e.Message = field(d, "error_message")
		e.Code = intField(d, "error_code")
		if v, err := d.Field("related_errors"); err == nil {
			if lv, ok := unwrapOptional(v).(*data.ListValue); ok {
				for _, r := range lv.List() {
					if sv, ok := r.(*data.StructValue); ok {
						e.Related = append(e.Related, field(sv, "error_message"))
						e.RelatedCodes = append(e.RelatedCodes, intField(sv, "error_code"))
					}
				}
			}
		}
	}
	if e.Kind == ErrInvalid && e.Code == revisionConflictCode {
		e.Kind = ErrConflict
	}
	if e.Kind == ErrInvalid && e.onlyCode(pendingDeleteCode) {
		e.Kind = ErrPendingDelete
	}
	if e.Kind == ErrInvalid && e.hasCode(notOwnerCode) {
		e.Kind = ErrProtected
	}
	if e.Message == "" {
		// A transport failure carries no NSX body, only the runtime's
		// messages (the dial or TLS error).
		var parts []string
		for _, m := range msgs {
			if m.DefaultMessage != "" {
				parts = append(parts, m.DefaultMessage)
			}
		}
		e.Message = strings.Join(parts, ": ")
	}
	return e
}

func field(sv *data.StructValue, name string) string {
	v, err := sv.Field(name)
	if err != nil {
		return ""
	}
	if s, ok := unwrapOptional(v).(*data.StringValue); ok {
		return s.Value()
	}
	return ""
}

func intField(sv *data.StructValue, name string) int64 {
	v, err := sv.Field(name)
	if err != nil {
		return 0
	}
	if iv, ok := unwrapOptional(v).(*data.IntegerValue); ok {
		return iv.Value()
	}
	return 0
}

// blockFullCode is NSX's error_code for a new subnet its IP block has no
// room for, when NSX refuses the subnet at once instead of realizing it
// in state ERROR: "IpAddressBlock with path=[/infra/ip-blocks/b] does not
// have spare capacity to satisfy new block subnet of size 256". NSX
// reports it among the related errors of the failed hierarchical PATCH
// (where nsx-operator looks for it too); it counts in the error itself
// as well, should a version answer so.
const blockFullCode = 520012

var blockPathRe = regexp.MustCompile(`path=\[([^\]]+)\]`)

// fullBlocks reports whether err is NSX refusing a new subnet for want of
// room in its IP block, and the blocks it names (none when it names none).
func fullBlocks(err error) (map[string]bool, bool) {
	var e *APIError
	if !errors.As(err, &e) {
		return nil, false
	}
	blocks := map[string]bool{}
	refused := false
	check := func(code int64, msg string) {
		if code != blockFullCode {
			return
		}
		refused = true
		for _, m := range blockPathRe.FindAllStringSubmatch(msg, -1) {
			blocks[m[1]] = true
		}
	}
	check(e.Code, e.Message)
	for i, msg := range e.Related {
		if i < len(e.RelatedCodes) {
			check(e.RelatedCodes[i], msg)
		}
	}
	return blocks, refused
}

// NSX's error codes for a delete refused because something still holds
// the object: its children or references to it (500030: "The object
// path=[...] cannot be deleted as either it has children or it is being
// referenced by other objects"), or, for a segment, its ports (503040).
// Both come with HTTP 400.
const (
	inUseCode           = 500030
	segmentHasPortsCode = 503040
)

// pendingDeleteCode is NSX's error code for a write to a path whose
// object is marked for deletion and not purged yet: "An object with the
// same path=[...] is marked for deletion. Either use another path or wait
// for the purge cycle (which runs every 5 minutes) for permanent removal
// of the object."
const pendingDeleteCode = 500045

// notOwnerCode is NSX's error code for a change or delete of what a
// principal identity made, by anyone else without X-Allow-Overwrite:
// "Principal 'admin' with role '[enterprise_admin]' attempts to delete or
// modify an object of type Segment it doesn't own."
const notOwnerCode = 289

// refusedInUse reports whether err is NSX refusing a delete because
// something still holds the object, in the error or among its related
// errors.
func refusedInUse(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.hasCode(inUseCode, segmentHasPortsCode)
}

// onlyCode reports whether code is NSX's one reason: the error's code
// when it has no related errors, else every related error's (the error
// itself is then the request's generic failure). A refusal with other
// reasons too is not waited out as if code were the only one.
func (e *APIError) onlyCode(code int64) bool {
	if len(e.RelatedCodes) == 0 {
		return e.Code == code
	}
	for _, c := range e.RelatedCodes {
		if c != code {
			return false
		}
	}
	return true
}

// hasCode reports whether NSX answered one of codes, in the error or
// among its related errors.
func (e *APIError) hasCode(codes ...int64) bool {
	if slices.Contains(codes, e.Code) {
		return true
	}
	for _, c := range e.RelatedCodes {
		if slices.Contains(codes, c) {
			return true
		}
	}
	return false
}

func unwrapOptional(v data.DataValue) data.DataValue {
	if o, ok := v.(*data.OptionalValue); ok {
		return o.Value()
	}
	return v
}
