package simulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The simulator's safety net: an answer swagger.yaml does not allow never
// reaches a client as if it were Harbor's; it becomes the documented 500
// naming the violation. A valid answer passes unchanged.
func TestResponsesValidatedAgainstSwagger(t *testing.T) {
	s, err := New(Config{})
	require.NoError(t, err)
	defer s.Close()
	// getHealth is not one the simulator implements; give it a handler
	// whose answer is set by the test.
	var answer map[string]any
	handlers["getHealth"] = func(*Server, *call) (reply, error) { return reply{body: answer}, nil }
	defer delete(handlers, "getHealth")

	get := func() (int, map[string]any) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v2.0/health", nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var body map[string]any
		require.NoError(t, json.Unmarshal(b, &body), string(b))
		return res.StatusCode, body
	}

	answer = map[string]any{"status": "healthy", "components": []any{map[string]any{"name": "core", "status": "healthy"}}}
	status, body := get()
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "healthy", body["status"])

	// OverallHealthStatus.status is a string, components a list.
	answer = map[string]any{"status": 42, "components": "core"}
	status, body = get()
	assert.Equal(t, http.StatusInternalServerError, status, "an answer the spec forbids is a 500: %v", body)
	errs, _ := body["errors"].([]any)
	require.Len(t, errs, 1, "%v", body)
	e := errs[0].(map[string]any)
	assert.Equal(t, "UNKNOWN", e["code"])
	assert.Contains(t, e["message"], "simulator answer violates swagger.yaml")
	assert.Contains(t, e["message"], "status", "the violation names the field")
}
