package harbor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/configure"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/replication"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/retention"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/harbor"
)

// proxy stands between the package and a backend: it records the requests
// the package makes and lets a test step in, as another caller or as a
// failing Harbor would.
type proxy struct {
	URL    string
	target string
	tr     *http.Transport

	mu   sync.Mutex
	reqs []request
	// intercept sees every request first, its body read; when it returns
	// true it has answered and the request goes no further.
	intercept func(w http.ResponseWriter, r *http.Request, body []byte) bool
	// modify may change what the backend answered.
	modify func(*http.Response) error
}

// request is one request the proxy saw.
type request struct {
	Method, Path string
	Body         []byte
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &proxy{target: strings.TrimSuffix(target, "/"), tr: &http.Transport{}}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport: p.tr,
		ModifyResponse: func(resp *http.Response) error {
			p.mu.Lock()
			modify := p.modify
			p.mu.Unlock()
			if modify == nil {
				return nil
			}
			return modify(resp)
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.mu.Lock()
		p.reqs = append(p.reqs, request{r.Method, r.URL.Path, body})
		intercept := p.intercept
		p.mu.Unlock()
		if intercept != nil && intercept(w, r, body) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		p.tr.CloseIdleConnections()
	})
	p.URL = srv.URL
	return p
}

// set replaces the intercept and modify functions; nil removes them.
func (p *proxy) set(intercept func(http.ResponseWriter, *http.Request, []byte) bool, modify func(*http.Response) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intercept, p.modify = intercept, modify
}

// requests returns, and forgets, the requests seen so far whose method
// is method (any when empty) and whose path starts with prefix.
func (p *proxy) requests(method, prefix string) []request {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []request
	for _, r := range p.reqs {
		if (method == "" || r.Method == method) && strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	p.reqs = nil
	return out
}

// createFirst makes the next POST to path lose a race with another
// caller: the proxy sends the same request to the backend itself first,
// so the package's own is answered 409.
func (p *proxy) createFirst(t *testing.T, path string) {
	var once sync.Once
	p.set(func(_ http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Method != http.MethodPost || r.URL.Path != path {
			return false
		}
		once.Do(func() {
			req, err := http.NewRequest(r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
			if err != nil {
				t.Errorf("the other caller's request: %v", err)
				return
			}
			req.Header = r.Header.Clone()
			resp, err := (&http.Client{Transport: p.tr}).Do(req)
			if err != nil {
				t.Errorf("the other caller's create: %v", err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("the other caller's create: %d %s", resp.StatusCode, b)
			}
		})
		return false
	}, nil)
}

// Another caller creating the same registry endpoint, robot or
// replication policy first (Harbor answers 409) is no failure: the one
// that is there is ensured.
func TestConcurrentCreates(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		px := newProxy(t, b.url)
		pc := clientAt(t, px.URL, b.user, b.pw)

		reg := harbor.RegistrySpec{Name: unique("kf-race"), Type: "harbor", URL: strings.Replace(b.url, "127.0.0.1", "localhost", 1),
			Username: b.user, Password: b.pw, Insecure: true}
		px.createFirst(t, "/api/v2.0/registries")
		regID, err := pc.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteRegistry(context.Background(), reg.Name) })
		require.Len(t, px.requests(http.MethodPost, "/api/v2.0/registries"), 1, "ours, answered 409")
		again, err := c.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		require.Equal(t, regID, again)

		pol := harbor.ReplicationSpec{Name: unique("kf-race"), Direction: harbor.Push, Registry: reg.Name,
			NameFilter: unique("kf-none") + "/**", DestNamespace: unique("kf-dst")}
		px.createFirst(t, "/api/v2.0/replication/policies")
		polID, err := pc.EnsureReplication(ctx, pol)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteReplication(context.Background(), pol.Name) })
		require.Len(t, px.requests(http.MethodPost, "/api/v2.0/replication/policies"), 1)
		polAgain, err := c.EnsureReplication(ctx, pol)
		require.NoError(t, err)
		require.Equal(t, polID, polAgain)

		name := unique("kf-race")
		cleanupProject(t, c, name)
		_, err = c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)
		spec := harbor.RobotSpec{Project: name, Name: "pull", Pull: true, Description: "raced"}
		px.createFirst(t, "/api/v2.0/robots")
		r, err := pc.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteRobot(context.Background(), r.ID) })
		require.Len(t, px.requests(http.MethodPost, "/api/v2.0/robots"), 1)
		require.Empty(t, r.Secret, "the other caller's robot: its secret went to the other caller")
		require.Equal(t, spec.FullName(), r.Name)
		rAgain, err := c.EnsureRobot(ctx, spec)
		require.NoError(t, err)
		require.Equal(t, r.ID, rAgain.ID)
	})
}

// EnsureRegistry reads first and sends only what differs.
func TestEnsureRegistryChangesOnlyWhatDiffers(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		px := newProxy(t, b.url)
		c := clientAt(t, px.URL, b.user, b.pw)
		reg := harbor.RegistrySpec{Name: unique("kf-diff"), Type: "harbor", URL: strings.Replace(b.url, "127.0.0.1", "localhost", 1),
			Username: b.user, Password: b.pw, Insecure: true}
		id, err := c.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteRegistry(context.Background(), reg.Name) })

		px.requests("", "")
		again, err := c.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		require.Equal(t, id, again)
		require.Empty(t, px.requests(http.MethodPut, "/api/v2.0/registries"), "nothing differs: no update")

		reg.Insecure = false
		_, err = c.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		puts := px.requests(http.MethodPut, "/api/v2.0/registries")
		require.Len(t, puts, 1)
		require.JSONEq(t, `{"insecure": false}`, string(puts[0].Body))

		reg.URL += "/"
		_, err = c.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		require.Empty(t, px.requests(http.MethodPut, "/api/v2.0/registries"), "a trailing slash is the same URL")

		reg.Type = "docker-registry"
		_, err = c.EnsureRegistry(ctx, reg)
		var fe *harbor.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "registry.type", fe.Field)
		require.Contains(t, err.Error(), "is of type harbor")
		require.Empty(t, px.requests(http.MethodPut, ""))
	})
}

// StartReplication and RunRetention take the execution from the Location
// Harbor answers with; without one they fall back to the newest.
func TestExecutionIDsFromLocation(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		c := b.admin(t)
		px := newProxy(t, b.url)
		pc := clientAt(t, px.URL, b.user, b.pw)

		name := unique("kf-loc")
		cleanupProject(t, c, name)
		_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: name})
		require.NoError(t, err)
		pol, err := c.SetRetention(ctx, name, "", harbor.RetentionRule{Repositories: "**", Tags: "**", LatestPushed: 5})
		require.NoError(t, err)
		reg := harbor.RegistrySpec{Name: unique("kf-loc"), Type: "harbor", URL: strings.Replace(b.url, "127.0.0.1", "localhost", 1),
			Username: b.user, Password: b.pw, Insecure: true}
		_, err = c.EnsureRegistry(ctx, reg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteRegistry(context.Background(), reg.Name) })
		polName := unique("kf-loc")
		polID, err := c.EnsureReplication(ctx, harbor.ReplicationSpec{Name: polName, Direction: harbor.Push, Registry: reg.Name,
			NameFilter: name + "/**", DestNamespace: unique("kf-dst")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.DeleteReplication(context.Background(), polName) })

		newestRetention := func() int64 {
			t.Helper()
			res, err := c.API().Retention.ListRetentionExecutions(ctx, retention.NewListRetentionExecutionsParams().WithID(pol))
			require.NoError(t, err)
			var newest int64
			for _, e := range res.Payload {
				newest = max(newest, e.ID)
			}
			return newest
		}
		newestReplication := func() int64 {
			t.Helper()
			res, err := c.API().Replication.ListReplicationExecutions(ctx, replication.NewListReplicationExecutionsParams().
				WithPolicyID(&polID).WithPageSize(ptr(int64(100))))
			require.NoError(t, err)
			var newest int64
			for _, e := range res.Payload {
				newest = max(newest, e.ID)
			}
			return newest
		}
		for _, strip := range []bool{false, true} {
			if strip {
				px.set(nil, func(resp *http.Response) error {
					if resp.Request.Method == http.MethodPost && strings.HasSuffix(resp.Request.URL.Path, "/executions") {
						resp.Header.Del("Location")
					}
					return nil
				})
			}
			px.requests("", "")
			exec, err := pc.RunRetention(ctx, pol, true)
			require.NoError(t, err)
			require.Equal(t, newestRetention(), exec)
			id, err := pc.StartReplication(ctx, polName)
			require.NoError(t, err)
			require.Equal(t, newestReplication(), id)
			lists := px.requests(http.MethodGet, "")
			var listed []string
			for _, r := range lists {
				if strings.HasSuffix(r.Path, "/executions") {
					listed = append(listed, r.Path)
				}
			}
			if strip {
				require.Len(t, listed, 2, "no Location: the newest execution is looked up")
			} else {
				require.Empty(t, listed, "the Location says which execution started")
			}
			_, err = c.Replicate(ctx, polName, harbor.WithExecution(strconv.FormatInt(id, 10)))
			require.NoError(t, err)
		}
	})
}

// New fails when Harbor cannot tell who the credentials are: a 5xx or no
// answer from the current-user check.
func TestNewFailsWithoutAnAnswer(t *testing.T) {
	b := simulated(t)
	px := newProxy(t, b.url)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		intercept func(w http.ResponseWriter) bool
		status    int
	}{
		{"500", func(w http.ResponseWriter) bool {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNKNOWN","message":"database is down"}]}`)
			return true
		}, http.StatusInternalServerError},
		{"503", func(w http.ResponseWriter) bool {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}, http.StatusServiceUnavailable},
		{"no answer", func(w http.ResponseWriter) bool {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return true
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px.set(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
				return r.URL.Path == "/api/v2.0/users/current" && tc.intercept(w)
			}, nil)
			_, err := harbor.New(ctx, harbor.Config{URL: px.URL, Username: b.user, Password: b.pw, Timeout: 5 * time.Second})
			require.Error(t, err)
			require.Contains(t, err.Error(), "log in as admin")
			var ae *harbor.APIError
			if tc.status == 0 {
				require.False(t, errors.As(err, &ae), "%v", err)
			} else {
				require.ErrorAs(t, err, &ae)
				require.Equal(t, tc.status, ae.Status)
				if tc.status == http.StatusServiceUnavailable {
					require.ErrorIs(t, err, harbor.ErrUnavailable)
				}
			}
		})
	}
	px.set(nil, nil)
	_, err := harbor.New(ctx, harbor.Config{URL: px.URL, Username: b.user, Password: b.pw})
	require.NoError(t, err)
}

// ConfigureLDAP and ConfigureOIDC send what is set and nothing empty, so
// a call without the secrets keeps the ones Harbor holds; LDAP's base
// scope can be chosen.
func TestAuthSettingsSendWhatIsSet(t *testing.T) {
	each(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		px := newProxy(t, b.url)
		c := clientAt(t, px.URL, b.user, b.pw)
		sent := func() map[string]any {
			t.Helper()
			puts := px.requests(http.MethodPut, "/api/v2.0/configurations")
			require.Len(t, puts, 1)
			var m map[string]any
			require.NoError(t, json.Unmarshal(puts[0].Body, &m))
			for k, v := range m {
				require.NotEqual(t, "", v, "%s sent empty", k)
			}
			return m
		}
		ldap := harbor.LDAPConfig{URL: "ldap://127.0.0.1:1", BaseDN: "dc=example,dc=com", SearchDN: "cn=harbor,dc=example,dc=com",
			SearchPassword: "bind-s3cret", Scope: "base"}
		px.requests("", "")
		require.NoError(t, c.ConfigureLDAP(ctx, ldap, false))
		m := sent()
		require.Equal(t, "bind-s3cret", m["ldap_search_password"])
		require.EqualValues(t, 0, m["ldap_scope"])
		cfg, err := c.API().Configure.GetConfigurations(ctx, configure.NewGetConfigurationsParams())
		require.NoError(t, err)
		require.EqualValues(t, 0, cfg.Payload.LdapScope.Value, "base")

		ldap.SearchPassword, ldap.Scope = "", ""
		require.NoError(t, c.ConfigureLDAP(ctx, ldap, false))
		m = sent()
		require.NotContains(t, m, "ldap_search_password", "an empty password keeps the one Harbor holds")
		require.NotContains(t, m, "ldap_group_admin_dn")
		require.EqualValues(t, 2, m["ldap_scope"], "subtree when empty")

		for _, scope := range []string{"onelevel", "subtree"} {
			ldap.Scope = scope
			require.NoError(t, c.ConfigureLDAP(ctx, ldap, false))
			require.EqualValues(t, map[string]int{"onelevel": 1, "subtree": 2}[scope], sent()["ldap_scope"])
		}
		ldap.Scope = "deep"
		var fe *harbor.FieldError
		require.ErrorAs(t, c.ConfigureLDAP(ctx, ldap, false), &fe)
		require.Equal(t, "ldap.scope", fe.Field)
		err = c.ConfigureLDAP(ctx, harbor.LDAPConfig{URL: "http://x", Scope: "deep"}, false)
		for _, field := range []string{"ldap.url", "ldap.baseDN", "ldap.scope"} {
			require.ErrorContains(t, err, field, "every problem at once")
		}

		oidc := harbor.OIDCConfig{Name: "corp", Endpoint: "https://login.example.com", ClientID: "harbor"}
		require.NoError(t, c.ConfigureOIDC(ctx, oidc, false))
		m = sent()
		require.NotContains(t, m, "oidc_client_secret", "an empty secret keeps the one Harbor holds")
		require.Equal(t, "harbor", m["oidc_client_id"])
	})
}

// Vulnerabilities reads the vulnerability report whatever other reports
// the scan overview holds, the same every time.
func TestVulnerabilitiesPicksTheVulnerabilityReport(t *testing.T) {
	b := simulated(t)
	ctx := context.Background()
	c := b.admin(t)
	_, err := c.EnsureProject(ctx, harbor.ProjectSpec{Name: "apps"})
	require.NoError(t, err)
	_, err = b.sim.AddArtifact("apps", "web", "v1")
	require.NoError(t, err)
	require.NoError(t, b.sim.SetVulnerabilities("apps", "web", "v1", map[string]int64{"High": 2}, 1))
	img := harbor.Image{Project: "apps", Repository: "web", Reference: "v1"}
	_, err = c.Scan(ctx, img)
	require.NoError(t, err)

	px := newProxy(t, b.url)
	px.set(nil, func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || !strings.Contains(resp.Request.URL.Path, "/artifacts/") {
			return nil
		}
		var art map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&art); err != nil {
			return err
		}
		resp.Body.Close()
		if ov, ok := art["scan_overview"].(map[string]any); ok {
			ov["application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0"] = map[string]any{
				"scan_status": "Error", "severity": "Critical", "report_id": "old"}
			ov["application/vnd.zz.other.report; version=1.0"] = map[string]any{"scan_status": "Running"}
		}
		body, err := json.Marshal(art)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	})
	pc := clientAt(t, px.URL, b.user, b.pw)
	for range 20 {
		sum, err := pc.Vulnerabilities(ctx, img)
		require.NoError(t, err)
		require.Equal(t, &harbor.ScanSummary{Scanned: true, Status: "Success", Severity: "High", Total: 2, Fixable: 1,
			Counts: map[string]int64{"High": 2}}, sum)
	}
}
