package harbor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-openapi/runtime"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"

	"github.com/kubefoundry/kubefoundry"
)

// Sentinel errors; every error answered by Harbor wraps the one that
// applies, so errors.Is works. They are the SDK's shared sentinels
// (harbor.ErrNotFound is kubefoundry.ErrNotFound), so one errors.Is
// answers for Harbor as for every other layer.
var (
	// ErrNotFound: the object asked for does not exist (HTTP 404).
	ErrNotFound = kubefoundry.ErrNotFound
	// ErrConflict: the object exists already, or changed (HTTP 409).
	ErrConflict = kubefoundry.ErrConflict
	// ErrAlreadyExists: the project or robot exists and belongs to
	// another cluster (OwnerLabel); nothing was changed.
	ErrAlreadyExists = kubefoundry.ErrAlreadyExists
	// ErrInvalid: Harbor refused the request (HTTP 400, 422), or a spec
	// or the Config is wrong (a *ValidationError says where) and nothing
	// was sent.
	ErrInvalid = kubefoundry.ErrInvalid
	// ErrUnauthorized: Harbor refused the credentials (HTTP 401, or an
	// anonymous registry token).
	ErrUnauthorized = kubefoundry.ErrUnauthorized
	// ErrForbidden: the credentials are good but may not do this (HTTP
	// 403; Harbor answers it for a missing project too).
	ErrForbidden = kubefoundry.ErrForbidden
	// ErrUnavailable: Harbor, or the proxy in front of it, could not
	// serve the request now (HTTP 502, 503, 504) or asks the client to
	// slow down (429); trying again later may succeed.
	ErrUnavailable = kubefoundry.ErrUnavailable
	// ErrTimeout: Harbor did not answer in time; a *kubefoundry.TimeoutError
	// says at which stage (connect, TLS handshake, call) and after how long.
	ErrTimeout = kubefoundry.ErrTimeout
)

// FieldError is one problem with one field of a spec or of the Config:
// the SDK's shared kubefoundry.FieldError. It wraps ErrInvalid.
type FieldError = kubefoundry.FieldError

// ValidationError lists every problem of a spec or of the Config at once,
// each naming its field: the SDK's shared kubefoundry.ValidationError. It
// wraps ErrInvalid, and errors.As finds a *FieldError in it.
type ValidationError = kubefoundry.ValidationError

// APIError is an error answered by Harbor.
type APIError struct {
	Op      string // what the package was doing: "create project c1"
	Status  int    // the HTTP status
	Kind    error  // one of the sentinel errors, or nil
	Message string // Harbor's errors[].code: message
	// Err is go-client's error the APIError was made from: the
	// operation's response type (*project.GetProjectNotFound), or a
	// *runtime.APIError for a status the spec does not list. Nil when
	// the package made the APIError itself.
	Err error
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("harbor: %s: %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap lets errors.Is match the sentinel, and errors.As find go-client's
// error.
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

// statusKind is the sentinel an HTTP status from Harbor wraps, or nil.
func statusKind(status int) error {
	switch status {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ErrInvalid
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return ErrUnavailable
	}
	return nil
}

// responseError is what every error response of go-client implements.
type responseError interface {
	error
	IsCode(int) bool
}

type withPayload interface {
	GetPayload() *models.Errors
}

// apiError turns what go-client returned into an *APIError naming op.
func apiError(op string, err error) error {
	if err == nil {
		return nil
	}
	e := &APIError{Op: op, Err: err}
	var re responseError
	var rae *runtime.APIError
	switch {
	case errors.As(err, &re):
		// Each response type knows its own status only by IsCode: ask
		// for every error status rather than a list that misses some.
		for s := 400; s < 600; s++ {
			if re.IsCode(s) {
				e.Status = s
				break
			}
		}
		if p, ok := re.(withPayload); ok && p.GetPayload() != nil {
			e.Message = messages(p.GetPayload())
		}
	case errors.As(err, &rae):
		// A status the spec does not list for the operation: go-client
		// keeps the response; Harbor's body is still in it.
		e.Status = rae.Code
		if cr, ok := rae.Response.(runtime.ClientResponse); ok && cr.Body() != nil {
			b, _ := io.ReadAll(io.LimitReader(cr.Body(), 64<<10))
			var body models.Errors
			if json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
				e.Message = messages(&body)
			} else {
				e.Message = strings.TrimSpace(string(b))
			}
		}
	default:
		return fmt.Errorf("harbor: %s: %w", op, err)
	}
	e.Kind = statusKind(e.Status)
	return e
}

// messages joins Harbor's errors[] as "code: message; ...".
func messages(body *models.Errors) string {
	var parts []string
	for _, m := range body.Errors {
		if m != nil {
			parts = append(parts, strings.TrimSpace(m.Code+": "+m.Message))
		}
	}
	return strings.Join(parts, "; ")
}

func isKind(err, kind error) bool { return errors.Is(err, kind) }
