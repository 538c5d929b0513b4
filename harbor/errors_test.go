package harbor

import (
	"errors"
	"net/http"
	"testing"

	"github.com/go-openapi/runtime"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/artifact"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/label"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/project"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

// The sentinels are the SDK's own, so one errors.Is answers for Harbor as
// for every other package.
func TestSentinelsAreShared(t *testing.T) {
	for _, tc := range []struct{ harbor, shared error }{
		{ErrNotFound, kubefoundry.ErrNotFound}, {ErrConflict, kubefoundry.ErrConflict},
		{ErrInvalid, kubefoundry.ErrInvalid}, {ErrUnauthorized, kubefoundry.ErrUnauthorized},
		{ErrForbidden, kubefoundry.ErrForbidden}, {ErrUnavailable, kubefoundry.ErrUnavailable},
		{ErrTimeout, kubefoundry.ErrTimeout}, {ErrAlreadyExists, kubefoundry.ErrAlreadyExists},
	} {
		require.Same(t, tc.shared, tc.harbor)
	}
	err := apiError("get project c1", project.NewDeleteProjectNotFound())
	require.ErrorIs(t, err, kubefoundry.ErrNotFound)
	require.True(t, kubefoundry.IsNotFound(err))
}

// Every error status go-client has a response type for is reported, not
// only a chosen few.
func TestAPIErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		kind   error
		msg    string
	}{
		{"401", project.NewGetProjectUnauthorized(), http.StatusUnauthorized, ErrUnauthorized, ""},
		{"405", &artifact.CreateTagMethodNotAllowed{Payload: &models.Errors{Errors: []*models.Error{{Code: "METHOD_NOT_ALLOWED", Message: "no"}}}},
			http.StatusMethodNotAllowed, nil, "METHOD_NOT_ALLOWED: no"},
		{"415", label.NewCreateLabelUnsupportedMediaType(), http.StatusUnsupportedMediaType, nil, ""},
		{"409", artifact.NewCreateTagConflict(), http.StatusConflict, ErrConflict, ""},
		{"500", project.NewGetProjectInternalServerError(), http.StatusInternalServerError, nil, ""},
		{"unlisted 502", runtime.NewAPIError("unknown error", nil, http.StatusBadGateway), http.StatusBadGateway, ErrUnavailable, ""},
		{"unlisted 503", runtime.NewAPIError("unknown error", nil, http.StatusServiceUnavailable), http.StatusServiceUnavailable, ErrUnavailable, ""},
		{"unlisted 504", runtime.NewAPIError("unknown error", nil, http.StatusGatewayTimeout), http.StatusGatewayTimeout, ErrUnavailable, ""},
		{"unlisted 429", runtime.NewAPIError("unknown error", nil, http.StatusTooManyRequests), http.StatusTooManyRequests, ErrUnavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := apiError("do it", tc.err)
			var ae *APIError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tc.status, ae.Status)
			require.Equal(t, tc.msg, ae.Message)
			if tc.kind != nil {
				require.ErrorIs(t, err, tc.kind)
			}
			for _, k := range []error{ErrNotFound, ErrConflict, ErrInvalid, ErrUnauthorized, ErrForbidden, ErrUnavailable} {
				if k != tc.kind {
					require.False(t, errors.Is(err, k), "%v is not %v", err, k)
				}
			}
		})
	}
}

// An APIError keeps go-client's error in its chain beside the sentinel.
func TestAPIErrorKeepsTheCause(t *testing.T) {
	notFound := &project.DeleteProjectNotFound{Payload: &models.Errors{Errors: []*models.Error{{Code: "NOT_FOUND", Message: "project c1 not found"}}}}
	err := apiError("delete project c1", notFound)
	require.ErrorIs(t, err, ErrNotFound)
	var got *project.DeleteProjectNotFound
	require.ErrorAs(t, err, &got)
	require.Same(t, notFound, got)

	unlisted := runtime.NewAPIError("unknown error", nil, http.StatusServiceUnavailable)
	err = apiError("get project c1", unlisted)
	require.ErrorIs(t, err, ErrUnavailable)
	var rae *runtime.APIError
	require.ErrorAs(t, err, &rae)
	require.Same(t, unlisted, rae)

	// Made by the package itself: the kind alone, and nil-safe.
	made := &APIError{Op: "start replication p", Status: http.StatusNotFound, Kind: ErrNotFound}
	require.Equal(t, []error{ErrNotFound}, made.Unwrap())
	require.Empty(t, (&APIError{Status: http.StatusMethodNotAllowed}).Unwrap())
	require.Nil(t, (*APIError)(nil).Unwrap())
}
