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
)

// Sentinel errors; every error answered by Harbor wraps one of them when
// it applies, so errors.Is works.
var (
	ErrNotFound     = errors.New("harbor: not found")
	ErrConflict     = errors.New("harbor: conflict")
	ErrInvalid      = errors.New("harbor: invalid request")
	ErrUnauthorized = errors.New("harbor: unauthorized")
	ErrForbidden    = errors.New("harbor: forbidden")
)

// APIError is an error answered by Harbor.
type APIError struct {
	Op      string // what the package was doing: "create project c1"
	Status  int    // the HTTP status
	Kind    error  // one of the sentinel errors, or nil
	Message string // Harbor's errors[].code: message
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("harbor: %s: %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Unwrap lets errors.Is match the sentinel.
func (e *APIError) Unwrap() error { return e.Kind }

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
	e := &APIError{Op: op}
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
			var parts []string
			for _, m := range p.GetPayload().Errors {
				if m != nil {
					parts = append(parts, strings.TrimSpace(m.Code+": "+m.Message))
				}
			}
			e.Message = strings.Join(parts, "; ")
		}
	case errors.As(err, &rae):
		// A status the spec does not list for the operation: go-client
		// keeps the response; Harbor's body is still in it.
		e.Status = rae.Code
		if cr, ok := rae.Response.(runtime.ClientResponse); ok && cr.Body() != nil {
			b, _ := io.ReadAll(io.LimitReader(cr.Body(), 64<<10))
			var body models.Errors
			if json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
				var parts []string
				for _, m := range body.Errors {
					if m != nil {
						parts = append(parts, strings.TrimSpace(m.Code+": "+m.Message))
					}
				}
				e.Message = strings.Join(parts, "; ")
			} else {
				e.Message = strings.TrimSpace(string(b))
			}
		}
	default:
		return fmt.Errorf("harbor: %s: %w", op, err)
	}
	switch e.Status {
	case http.StatusNotFound:
		e.Kind = ErrNotFound
	case http.StatusConflict:
		e.Kind = ErrConflict
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		e.Kind = ErrInvalid
	case http.StatusUnauthorized:
		e.Kind = ErrUnauthorized
	case http.StatusForbidden:
		e.Kind = ErrForbidden
	}
	return e
}

func isKind(err, kind error) bool { return errors.Is(err, kind) }
