package simulator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/harbor/simulator"
)

// The embedded spec is go-client's, byte for byte: go generate copies it.
func TestSpecIsGoClients(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/goharbor/go-client").Output()
	if err != nil {
		t.Skipf("cannot locate the go-client module: %v", err)
	}
	want, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "api", "v2.0", "swagger.yaml"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, simulator.Spec()), "run go generate ./harbor/simulator")
}

func do(t *testing.T, s *simulator.Server, method, path, user, pw, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+"/api/v2.0"+path, strings.NewReader(body))
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp.Header
}

func message(m map[string]any) string {
	errs, _ := m["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	e, _ := errs[0].(map[string]any)
	return e["code"].(string) + ": " + e["message"].(string)
}

func TestRequestsAreValidatedAgainstTheSpec(t *testing.T) {
	s, err := simulator.New(simulator.Config{})
	require.NoError(t, err)
	defer s.Close()
	const admin, pw = "admin", "Harbor12345"

	status, m, _ := do(t, s, "POST", "/projects", admin, pw, `{"project_name": 7}`)
	require.Equal(t, 400, status)
	require.Contains(t, message(m), "project_name")

	status, m, _ = do(t, s, "POST", "/projects", admin, pw, `{"project_name": "Bad_Name"}`)
	require.Equal(t, 400, status)
	require.Contains(t, message(m), "illegal characters")

	status, _, hdr := do(t, s, "POST", "/projects", admin, pw, `{"project_name": "c1", "metadata": {"public": "false"}}`)
	require.Equal(t, 201, status)
	require.Regexp(t, `^/api/v2.0/projects/\d+$`, hdr.Get("Location"))
	status, m, _ = do(t, s, "POST", "/projects", admin, pw, `{"project_name": "c1"}`)
	require.Equal(t, 409, status)
	require.Contains(t, message(m), "CONFLICT")

	status, _, _ = do(t, s, "GET", "/projects/c1", "", "", "")
	require.Equal(t, 401, status, "a private project needs credentials")
	status, _, _ = do(t, s, "GET", "/projects/c1", admin, "wrong", "")
	require.Equal(t, 401, status, "wrong credentials are anonymous")
	status, _, _ = do(t, s, "GET", "/projects/library", "", "", "")
	require.Equal(t, 200, status, "the public library project is open")
	status, _, _ = do(t, s, "GET", "/projects/nope", admin, pw, "")
	require.Equal(t, 403, status, "Harbor's access check answers for a missing project")
	status, _, _ = do(t, s, "HEAD", "/projects?project_name=nope", admin, pw, "")
	require.Equal(t, 404, status)

	status, m, _ = do(t, s, "GET", "/projects?page_size=abc", admin, pw, "")
	require.Equal(t, 400, status)
	require.Contains(t, message(m), "page_size")

	status, m, _ = do(t, s, "GET", "/labels", admin, pw, "")
	require.Equal(t, 501, status)
	require.Contains(t, message(m), "does not implement ListLabels")
}

func TestOnlyLoopback(t *testing.T) {
	_, err := simulator.New(simulator.Config{Addr: "0.0.0.0:0"})
	require.ErrorContains(t, err, "not a loopback")
}
