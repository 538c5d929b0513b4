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
)

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
		{"unlisted 502", runtime.NewAPIError("unknown error", nil, http.StatusBadGateway), http.StatusBadGateway, nil, ""},
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
			for _, k := range []error{ErrNotFound, ErrConflict, ErrInvalid, ErrUnauthorized, ErrForbidden} {
				if k != tc.kind {
					require.False(t, errors.Is(err, k), "%v is not %v", err, k)
				}
			}
		})
	}
}
