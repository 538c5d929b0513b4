package simulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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

	status, m, _ = do(t, s, "GET", "/statistics", admin, pw, "")
	require.Equal(t, 501, status)
	require.Contains(t, message(m), "does not implement getStatistic")
}

func TestOnlyLoopback(t *testing.T) {
	_, err := simulator.New(simulator.Config{Addr: "0.0.0.0:0"})
	require.ErrorContains(t, err, "not a loopback")
}

// A Fault answers its status with Harbor's error body on the matching
// requests it counts, Nth to Nth+Times-1, and leaves the rest alone.
func TestFaults(t *testing.T) {
	s, cfg := simulator.Start(t, simulator.Config{})
	require.Equal(t, s.URL, cfg.URL)
	const admin, pw = "admin", "Harbor12345"
	require.Equal(t, admin, cfg.Username)
	require.Equal(t, pw, cfg.Password)

	s.Inject(&simulator.Fault{Method: http.MethodGet, Path: regexp.MustCompile(`^/api/v2\.0/projects/library$`), Nth: 2, Times: 2,
		Status: http.StatusServiceUnavailable})
	s.Inject(&simulator.Fault{Path: regexp.MustCompile(`^/api/v2\.0/systeminfo$`), Times: -1, Status: http.StatusTooManyRequests,
		Code: "TOO_MANY_REQUESTS", Message: "slow down"})
	var got []int
	for range 5 {
		status, m, _ := do(t, s, "GET", "/projects/library", admin, pw, "")
		got = append(got, status)
		if status == http.StatusServiceUnavailable {
			require.Equal(t, "UNKNOWN: injected fault: 503 for GET /api/v2.0/projects/library", message(m))
		}
	}
	require.Equal(t, []int{200, 503, 503, 200, 200}, got)
	status, _, _ := do(t, s, "HEAD", "/projects?project_name=library", admin, pw, "")
	require.Equal(t, 200, status, "another path")
	for range 3 {
		status, m, _ := do(t, s, "GET", "/systeminfo", "", "", "")
		require.Equal(t, http.StatusTooManyRequests, status, "every one")
		require.Equal(t, "TOO_MANY_REQUESTS: slow down", message(m))
	}
}

// A delayed answer comes after its delay; one still held back when the
// client gives up, or when the simulator closes, ends then.
func TestFaultDelay(t *testing.T) {
	s, err := simulator.New(simulator.Config{})
	require.NoError(t, err)
	defer s.Close()
	s.Inject(&simulator.Fault{Path: regexp.MustCompile(`^/api/v2\.0/ping$`), Times: 2, Delay: 200 * time.Millisecond})
	start := time.Now()
	status, _, _ := do(t, s, "GET", "/ping", "", "", "")
	require.Equal(t, 200, status, "served after the delay")
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

	// Held back for an hour, but not past Close: the simulator's close
	// ends the wait (the client would give up only after a minute).
	held := make(chan error, 1)
	s.Inject(&simulator.Fault{Path: regexp.MustCompile(`^/api/v2\.0/systeminfo$`), Delay: time.Hour, Status: 500})
	hctx, hcancel := context.WithTimeout(context.Background(), time.Minute)
	defer hcancel()
	go func() {
		req, err := http.NewRequestWithContext(hctx, http.MethodGet, s.URL+"/api/v2.0/systeminfo", nil)
		if err == nil {
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		held <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the request reach the fault
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for an answer held back")
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the request held back did not end with the simulator")
	}
	require.NoError(t, hctx.Err(), "the simulator ended it, not the client")
}

// Start's simulator is closed when its test ends.
func TestStartClosesWithTheTest(t *testing.T) {
	var url string
	t.Run("test", func(t *testing.T) {
		_, cfg := simulator.Start(t, simulator.Config{AdminPassword: "Other-Passw0rd"})
		require.Equal(t, "Other-Passw0rd", cfg.Password)
		url = cfg.URL
		resp, err := http.Get(url + "/api/v2.0/ping")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
	_, err := http.Get(url + "/api/v2.0/ping")
	require.Error(t, err, "closed")
}
