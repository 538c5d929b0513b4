package nsxt

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/vsphere-automation-sdk-go/lib/vapi/std"
	vapierrors "github.com/vmware/vsphere-automation-sdk-go/lib/vapi/std/errors"

	"github.com/kubefoundry/kubefoundry"
)

// A refusal is waited out as a path pending deletion only when that is
// NSX's one reason: alone, or every related error of a failed
// hierarchical PATCH; one with another reason too is returned as it is.
func TestOnlyCode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    int64
		related []int64
		want    bool
	}{
		{"the error itself", pendingDeleteCode, nil, true},
		{"another error", 500012, nil, false},
		{"every related error", 500127, []int64{pendingDeleteCode, pendingDeleteCode}, true},
		{"one related error of two", 500127, []int64{pendingDeleteCode, 500012}, false},
		{"the wrapper only", pendingDeleteCode, []int64{500012}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &APIError{Code: tc.code, RelatedCodes: tc.related}
			require.Equal(t, tc.want, e.onlyCode(pendingDeleteCode))
			require.True(t, e.hasCode(tc.code))
		})
	}
}

// An *APIError keeps what it was made from: errors.Is finds its kind
// (nsxt's sentinel, which is the SDK's), errors.As the SDK's own error,
// or the transport's for a request that got no answer.
func TestAPIErrorChain(t *testing.T) {
	nf := vapierrors.NotFound{Messages: []std.LocalizableMessage{{DefaultMessage: "no such segment"}}}
	err := fmt.Errorf("build: %w", apiError("get /infra/segments/s", nf, nil))
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, err, kubefoundry.ErrNotFound)
	var got vapierrors.NotFound
	require.ErrorAs(t, err, &got)
	require.Equal(t, "no such segment", got.Messages[0].DefaultMessage)
	var e *APIError
	require.ErrorAs(t, err, &e)
	require.Equal(t, "nsxt: get /infra/segments/s: not found: no such segment", e.Error())

	timeout := &kubefoundry.TimeoutError{Host: "nsx:443", Stage: kubefoundry.StageTLS, After: time.Second, Err: context.DeadlineExceeded}
	err = apiError("patch /infra", vapierrors.ServiceUnavailable{}, fmt.Errorf("nsxt: no manager answered: %w", timeout))
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorIs(t, err, kubefoundry.ErrTimeout)
	var te *kubefoundry.TimeoutError
	require.ErrorAs(t, err, &te)
	require.Equal(t, kubefoundry.StageTLS, te.Stage)

	require.Nil(t, (*APIError)(nil).Unwrap())
	require.Empty(t, (&APIError{}).Unwrap())
	require.Equal(t, []error{ErrConflict}, (&APIError{Kind: ErrConflict}).Unwrap())
}
