package kube_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// A server that completes TLS and then never answers: every call made
// without a deadline ends with a timeout naming the request.
func TestCallsWithoutDeadlineEndOnASilentServer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	c, err := kube.New(cfg, kube.WithRequestTimeout(300*time.Millisecond))
	require.NoError(t, err)
	ctx := context.Background() // no deadline: the client's bound is all there is

	objs := parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\n")
	calls := map[string]func() error{
		"DrainPreflight": func() error { _, err := c.DrainPreflight(ctx, "node-1", kube.DrainOptions{}); return err },
		"ApplyAddons": func() error {
			_, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "s", Objects: objs}, kube.ApplyOptions{})
			return err
		},
		"BindTeam": func() error { return c.BindTeam(ctx, "team-a", "view", nil) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { done <- call() }()
			select {
			case err := <-done:
				require.Error(t, err)
				assert.True(t, kubefoundry.IsTimeout(err), "%v", err)
				var te *kubefoundry.TimeoutError
				require.ErrorAs(t, err, &te)
				assert.Equal(t, kubefoundry.StageCall, te.Stage)
				assert.Equal(t, 300*time.Millisecond, te.After)
				assert.Contains(t, err.Error(), "GET /", "the error names the request")
			case <-time.After(time.Minute):
				t.Fatalf("%s was still waiting on a silent server after a minute", name)
			}
		})
	}
	t.Run("Health", func(t *testing.T) {
		// Health reports an API that does not answer in its report.
		done := make(chan *kube.HealthReport, 1)
		go func() {
			r, err := c.Health(ctx)
			assert.NoError(t, err)
			done <- r
		}()
		select {
		case r := <-done:
			require.NotNil(t, r)
			assert.False(t, r.API.Ready)
			assert.Contains(t, r.API.Err, "GET /readyz")
			assert.Contains(t, r.API.Err, "no answer within 300ms")
		case <-time.After(time.Minute):
			t.Fatal("Health was still waiting on a silent server after a minute")
		}
	})
}

// The bound is on the start of an answer only: a slow body is read whole.
func TestRequestTimeoutDoesNotCutAnAnswer(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"major":"1",`))
		w.(http.Flusher).Flush()
		time.Sleep(600 * time.Millisecond)
		_, _ = w.Write([]byte(`"minor":"36","gitVersion":"v1.36.0"}`))
	}))
	defer srv.Close()
	c, err := kube.New(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, kube.WithRequestTimeout(300*time.Millisecond))
	require.NoError(t, err)
	v, err := c.Clientset().Discovery().ServerVersion()
	require.NoError(t, err)
	assert.Equal(t, "v1.36.0", v.GitVersion)
}

// The API server's warnings go to the Client's logger, not through klog
// to the process's stderr.
func TestServerWarningsGoToTheLogger(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	core, logs := observer.New(zap.WarnLevel)
	c, err := kube.New(env.Config, kube.WithLogger(zap.New(core)))
	require.NoError(t, err)

	var mu sync.Mutex
	var klogLines []string
	klog.SetLogger(funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		klogLines = append(klogLines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10}))
	defer klog.ClearLogger()

	// Pod Security warns about a privileged DaemonSet in a namespace
	// that asks for warnings at the restricted level.
	set := kube.AddonSet{Name: "warned", Objects: parse(t, `
apiVersion: v1
kind: Namespace
metadata:
  name: addons-warned
  labels: {pod-security.kubernetes.io/warn: restricted}
---
`+strings.Replace(privilegedDaemonSet, "namespace: kube-system", "namespace: addons-warned", 1))}
	_, err = c.ApplyAddons(ctx, set, kube.ApplyOptions{})
	require.NoError(t, err)

	var warnings []string
	for _, e := range logs.FilterMessage("API server warning").All() {
		warnings = append(warnings, e.ContextMap()["warning"].(string))
	}
	require.NotEmpty(t, warnings, "no warning reached the logger")
	assert.Contains(t, strings.Join(warnings, "\n"), "privileged")
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, klogLines, "kube wrote through klog (to stderr when the caller set nothing up)")
}

// The namespace network controller's informer, refused its watch, logs
// that to the Client's logger, not through klog.
func TestControllerLogsGoToTheLogger(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	// A user the API server knows and RBAC gives nothing.
	cfg, err := kube.UserKubeconfig(pki.ClusterCA, "test", env.Config.Host, env.ServerCA, "nobody", nil, time.Hour)
	require.NoError(t, err)
	rc, err := clientcmd.RESTConfigFromKubeConfig(cfg)
	require.NoError(t, err)
	core, logs := observer.New(zap.DebugLevel)
	c, err := kube.New(rc, kube.WithLogger(zap.New(core)))
	require.NoError(t, err)

	var mu sync.Mutex
	var klogLines []string
	klog.SetLogger(funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		klogLines = append(klogLines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10}))
	defer klog.ClearLogger()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = c.NewNamespaceNetworkController(newRecordingNetworks()).Run(ctx, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the cache never syncs without the right to list")
	forbidden := 0
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.ContextMap()), "forbidden") || strings.Contains(e.Message, "forbidden") {
			forbidden++
		}
	}
	assert.NotZero(t, forbidden, "the refused list reached the logger: %v", logs.All())
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, klogLines, "the informer wrote through klog")
}
