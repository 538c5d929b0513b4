package cpi

import (
	"fmt"

	"github.com/kubefoundry/kubefoundry"
)

// The error types BOSH gives a meaning to (Bosh::Clouds::...): the
// director acts on them (a VM not found is recreated, a disk not found is
// forgotten).
const (
	CloudError       = "Bosh::Clouds::CloudError"
	VMNotFound       = "Bosh::Clouds::VMNotFound"
	DiskNotFound     = "Bosh::Clouds::DiskNotFound"
	VMCreationFailed = "Bosh::Clouds::VMCreationFailed"
	NotImplemented   = "Bosh::Clouds::NotImplemented"
	NoDiskSpace      = "Bosh::Clouds::NoDiskSpace"
	NotSupported     = "Bosh::Clouds::NotSupported"
)

// Error is a CPI error as the protocol carries it.
type Error struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	OKToRetry bool   `json:"ok_to_retry"`
}

func (e *Error) Error() string {
	s := e.Type + ": " + e.Message
	if e.OKToRetry {
		s += " (ok to retry)"
	}
	return s
}

// Unwrap lets errors.Is match the SDK's sentinels: VMNotFound and
// DiskNotFound are kubefoundry.ErrNotFound; NotImplemented and
// NotSupported are kubefoundry.ErrInvalid.
func (e *Error) Unwrap() error {
	switch e.Type {
	case VMNotFound, DiskNotFound:
		return kubefoundry.ErrNotFound
	case NotImplemented, NotSupported:
		return kubefoundry.ErrInvalid
	}
	return nil
}

// Errorf makes an *Error of type typ.
func Errorf(typ string, okToRetry bool, format string, args ...any) *Error {
	return &Error{Type: typ, Message: fmt.Sprintf(format, args...), OKToRetry: okToRetry}
}
