package vsphere

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry"
)

// The package's errors wrap the SDK's shared sentinels, re-exported here
// under the same names: vsphere.ErrNotFound is kubefoundry.ErrNotFound.
var (
	// ErrNotFound is wrapped by every error about a missing object.
	ErrNotFound = kubefoundry.ErrNotFound
	// ErrAlreadyExists is wrapped when an object exists and may not be
	// reused, such as a VM of the requested name owned by another cluster.
	ErrAlreadyExists = kubefoundry.ErrAlreadyExists
	// ErrInvalidSpec is wrapped by validation errors: kubefoundry.ErrInvalid.
	ErrInvalidSpec = kubefoundry.ErrInvalid
	// ErrInUse is wrapped when an object cannot go because others still
	// depend on it, such as a stemcell that VMs are linked clones of.
	ErrInUse = kubefoundry.ErrInUse
)

// NotFoundError names what was looked for, where, and what exists there.
type NotFoundError struct {
	Kind      string   // "datacenter", "datastore", "network", ...
	Name      string   // the name or path asked for
	Where     string   // the inventory path searched
	Available []string // names that do exist there (possibly truncated)
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q not found", e.Kind, e.Name)
	if e.Where != "" {
		fmt.Fprintf(&b, " in %s", e.Where)
	}
	if len(e.Available) == 0 {
		b.WriteString(" (there are none)")
	} else {
		fmt.Fprintf(&b, " (available: %s)", strings.Join(e.Available, ", "))
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// TaskError is a vSphere task that ended in error.
type TaskError struct {
	Op    string                       // what the task did: "clone", "power on", ...
	Ref   types.ManagedObjectReference // the task
	Fault types.BaseMethodFault        // the fault vSphere reported, if any
	Err   error                        // the underlying error
}

func (e *TaskError) Error() string {
	if e.Ref.Value == "" { // the call that would start the task failed
		return fmt.Sprintf("%s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s: task %s: %v", e.Op, e.Ref.Value, e.Err)
}

// Unwrap returns the underlying error, so govmomi's fault.Is and fault.As
// reach the vSphere fault.
func (e *TaskError) Unwrap() error { return e.Err }

// ValidationError lists every problem found in a spec, each naming its
// field: the SDK's shared kubefoundry.ValidationError.
type ValidationError = kubefoundry.ValidationError

// FieldError is one problem in one field: kubefoundry.FieldError.
type FieldError = kubefoundry.FieldError

// IsNotFound reports whether err says an object does not exist, either as
// one of this package's errors or as a vSphere ManagedObjectNotFound fault.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || fault.Is(err, &types.ManagedObjectNotFound{})
}

// typeName is the bare type name of a fault, such as "DuplicateName".
func typeName(v any) string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "nil"
	}
	return t.Name()
}
