package kube_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

func TestReadinessAndHealth(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	require.NoError(t, c.WaitReady(ctx, 10*time.Second))

	cs := c.Clientset()
	for _, name := range []string{"health-a", "health-b"} {
		_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	setReady := func(name string, status corev1.ConditionStatus) {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}}
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	setReady("health-a", corev1.ConditionTrue)
	setReady("health-b", corev1.ConditionFalse)

	err = c.WaitNodesReady(ctx, []string{"health-a", "health-b", "health-c"}, 3*time.Second)
	var nre *kube.NotReadyError
	require.ErrorAs(t, err, &nre)
	assert.Equal(t, []string{"health-b", "health-c"}, nre.Nodes)
	assert.Equal(t, "not registered", nre.Reasons["health-c"])

	go func() { time.Sleep(300 * time.Millisecond); setReady("health-b", corev1.ConditionTrue) }()
	require.NoError(t, c.WaitNodesReady(ctx, []string{"health-a", "health-b"}, 10*time.Second))

	rep, err := c.Health(ctx)
	require.NoError(t, err)
	assert.True(t, rep.API.Ready)
	assert.True(t, rep.API.Checks["etcd"], "the API server's etcd check is reported: %v", rep.API.Checks)
	var names []string
	for _, n := range rep.Nodes {
		names = append(names, n.Name)
		if n.Name == "health-a" {
			assert.True(t, n.Ready)
			assert.Equal(t, corev1.ConditionTrue, n.Conditions[corev1.NodeReady])
		}
	}
	assert.Subset(t, names, []string{"health-a", "health-b"})
	assert.Empty(t, rep.Etcd, "no etcd access was given")

	t.Run("etcd members", func(t *testing.T) {
		c, err := kube.New(env.Config, kube.WithEtcd([]string{env.EtcdURL}, nil))
		require.NoError(t, err)
		rep, err := c.Health(ctx)
		require.NoError(t, err)
		require.Empty(t, rep.EtcdErr)
		require.Len(t, rep.Etcd, 1)
		assert.Equal(t, "kubetest", rep.Etcd[0].Name)
		assert.True(t, rep.Etcd[0].Healthy)
		assert.True(t, rep.Etcd[0].Leader)
		assert.Positive(t, rep.Etcd[0].DBSize)

		down, err := kube.New(env.Config, kube.WithEtcd([]string{"http://127.0.0.1:1"}, nil))
		require.NoError(t, err)
		short, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		rep, err = down.Health(short)
		require.NoError(t, err, "an unreachable etcd is reported, not fatal")
		assert.NotEmpty(t, rep.EtcdErr)
		assert.True(t, rep.API.Ready)
	})
}

func TestCredentialsAndTeamBindings(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	for _, ns := range []string{"team-a-dev", "team-a-prod", "other"} {
		_, err := c.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, c.BindTeam(ctx, "team-a", "view", []string{"team-a-dev", "team-a-prod"}))
	require.NoError(t, c.BindTeam(ctx, "team-a", "edit", []string{"team-a-dev"}), "role changed")
	require.NoError(t, c.BindTeam(ctx, "team-a", "edit", []string{"team-a-dev"}), "idempotent")

	cfg, err := kube.UserKubeconfig(pki.ClusterCA, "test", env.Config.Host, env.ServerCA, "alice", []string{"team-a"}, time.Hour)
	require.NoError(t, err)
	rc, err := kube.RESTConfig(cfg)
	require.NoError(t, err)
	alice := kubernetes.NewForConfigOrDie(rc)

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	// The RBAC authorizer sees new bindings through an informer: moments later.
	require.Eventually(t, func() bool {
		_, err = alice.CoreV1().ConfigMaps("team-a-dev").Create(ctx, cm, metav1.CreateOptions{})
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "edit in team-a-dev: %v", err)
	_, err = alice.CoreV1().ConfigMaps("team-a-prod").List(ctx, metav1.ListOptions{})
	assert.NoError(t, err, "view in team-a-prod")
	_, err = alice.CoreV1().ConfigMaps("team-a-prod").Create(ctx, cm, metav1.CreateOptions{})
	assert.True(t, apierrors.IsForbidden(err), "no edit in team-a-prod: %v", err)
	_, err = alice.CoreV1().ConfigMaps("other").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "nothing in other: %v", err)
}

// TestWaitReadyEndsOnRefusal: credentials the API server refuses (a
// client certificate from a CA it does not trust, a token it does not
// know) or a permission it denies (impersonation without the right to)
// end WaitReady at once with the server's answer, not at the timeout with
// a message about the client's rate limiter; a server that cannot be
// reached is reported with why, not with the wait's own deadline.
func TestWaitReadyEndsOnRefusal(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	certConfig := func(ca *kube.CA, user string) *rest.Config {
		kp, err := ca.IssueClient(user, nil, time.Hour)
		require.NoError(t, err)
		cfg, err := kube.Kubeconfig("test", env.Config.Host, env.ServerCA, user, kp)
		require.NoError(t, err)
		rc, err := kube.RESTConfig(cfg)
		require.NoError(t, err)
		return rc
	}
	untrusted, err := kube.NewCA("untrusted", time.Hour)
	require.NoError(t, err)
	badToken := rest.AnonymousClientConfig(env.Config)
	badToken.BearerToken = "not-a-token-the-server-knows"
	impersonating := certConfig(pki.ClusterCA, "no-impersonation")
	impersonating.Impersonate = rest.ImpersonationConfig{UserName: "someone-else"}

	for _, tc := range []struct {
		name  string
		cfg   *rest.Config
		is    error
		check func(error) bool
	}{
		{"certificate from an untrusted CA", certConfig(untrusted, "kf-admin"), kubefoundry.ErrUnauthorized, apierrors.IsUnauthorized},
		{"unknown token", badToken, kubefoundry.ErrUnauthorized, apierrors.IsUnauthorized},
		{"forbidden", impersonating, kubefoundry.ErrForbidden, apierrors.IsForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kube.New(tc.cfg)
			require.NoError(t, err)
			start := time.Now()
			err = c.WaitReady(ctx, 20*time.Second)
			assert.Less(t, time.Since(start), 5*time.Second, "ends at once, not at the timeout: %v", err)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.is)
			assert.True(t, tc.check(err), "the server's answer is in the chain: %v", err)
			assert.NotContains(t, err.Error(), "rate limiter")
			assert.Contains(t, err.Error(), env.Config.Host)
		})
	}

	t.Run("a server that does not answer: the last failure, not the deadline", func(t *testing.T) {
		c, err := kube.New(&rest.Config{Host: "https://127.0.0.1:1", TLSClientConfig: rest.TLSClientConfig{CAData: env.ServerCA}})
		require.NoError(t, err)
		// The last poll meets the deadline more often than not with
		// these (multiples of the poll interval): each must still name
		// the server's failure.
		for _, timeout := range []time.Duration{400 * time.Millisecond, 600 * time.Millisecond, 800 * time.Millisecond, time.Second, 1200 * time.Millisecond} {
			err = c.WaitReady(ctx, timeout)
			require.Error(t, err)
			assert.ErrorContains(t, err, "connection refused", timeout)
			assert.NotContains(t, err.Error(), "rate limiter", timeout)
		}
	})
}
