package kube_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

const addonsV1 = `
# the CR comes first in the file; ApplyAddons still applies the CRD first
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  namespace: addons-a
spec:
  size: 3
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: addons-a
data:
  level: info
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: idle
  namespace: addons-a
spec:
  replicas: 0
  selector:
    matchLabels: {app: idle}
  template:
    metadata:
      labels: {app: idle}
    spec:
      containers:
      - name: c
        image: registry.local/idle:1
---
apiVersion: v1
kind: Namespace
metadata:
  name: addons-a
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`

func TestParseManifests(t *testing.T) {
	objs, err := kube.ParseManifests([]byte(addonsV1 + "\n---\n\n---\n"))
	require.NoError(t, err)
	require.Len(t, objs, 5)
	assert.Equal(t, "Widget", objs[0].GetKind())

	_, err = kube.ParseManifests([]byte("apiVersion: v1\nkind: ConfigMap\n---\nkind: [oops"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "document 0")

	// Each of apiVersion, kind and name is required on its own, and the
	// error names the document's position.
	const good = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n"
	for missing, doc := range map[string]string{
		"apiVersion": "kind: ConfigMap\nmetadata: {name: x}\n",
		"kind":       "apiVersion: v1\nmetadata: {name: x}\n",
		"name":       "apiVersion: v1\nkind: ConfigMap\n",
	} {
		_, err := kube.ParseManifests([]byte(good + "---\n" + good + "---\n" + doc))
		require.Error(t, err, "without %s", missing)
		assert.Contains(t, err.Error(), "manifest document 2: ", "without %s", missing)
	}
}

// TestConflictErrorMessage: a conflict names each field and its manager;
// one whose fields the server's answer did not name shows that answer.
func TestConflictErrorMessage(t *testing.T) {
	server := errors.New(`Apply failed with 1 conflict: conflict with "kubectl-edit"`)
	bare := &kube.ConflictError{Kind: "ConfigMap", Namespace: "a", Name: "x", Err: server}
	assert.Equal(t, "apply ConfigMap a/x: fields owned by other managers: "+server.Error(), bare.Error())
	assert.ErrorIs(t, bare, kubefoundry.ErrConflict)
	assert.ErrorIs(t, bare, server)
	named := &kube.ConflictError{Kind: "ConfigMap", Namespace: "a", Name: "x", Err: server,
		Conflicts: []kube.FieldConflict{{Field: ".data.level", Manager: "kubectl-edit"}, {Field: ".data.mode", Manager: "operator"}}}
	assert.Equal(t, `apply ConfigMap a/x: fields owned by other managers: .data.level owned by "kubectl-edit"; .data.mode owned by "operator"`, named.Error())
}

func TestApplyAddons(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	objs, err := kube.ParseManifests([]byte(addonsV1))
	require.NoError(t, err)
	set := kube.AddonSet{Name: "demo", Objects: objs}

	rep, err := c.ApplyAddons(ctx, set, kube.ApplyOptions{Prune: true, RolloutTimeout: 30 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, "created CustomResourceDefinition widgets.example.com\ncreated Namespace addons-a\n", strings.Join(strings.SplitAfter(rep.String(), "\n")[:2], ""), "CRDs first, then namespaces")
	for _, ch := range rep.Changes {
		assert.Equal(t, kube.Created, ch.Action, ch.Name)
	}

	dyn := dynamic.NewForConfigOrDie(env.Config)
	widget, err := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}).Namespace("addons-a").Get(ctx, "w1", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "demo", widget.GetLabels()[kube.AddonSetLabel])

	rep, err = c.ApplyAddons(ctx, set, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	for _, ch := range rep.Changes {
		assert.Equal(t, kube.Unchanged, ch.Action, ch.Name)
	}

	t.Run("a dry run of a set whose CRD is new", func(t *testing.T) {
		v := strings.NewReplacer("widgets", "gadgets", "Widget", "Gadget", "widget", "gadget", "addons-a", "addons-c").Replace(addonsV1)
		objs, err := kube.ParseManifests([]byte(v))
		require.NoError(t, err)
		rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "dry", Objects: objs}, kube.ApplyOptions{DryRun: true})
		require.NoError(t, err)
		assert.Len(t, rep.Changes, 5)
		assert.Contains(t, rep.String(), "created Gadget addons-c/w1")
		_, err = c.Clientset().CoreV1().Namespaces().Get(ctx, "addons-c", metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "nothing was made")
	})

	t.Run("dry run shows the change and makes none", func(t *testing.T) {
		v2 := strings.Replace(addonsV1, "level: info", "level: debug", 1)
		objs, err := kube.ParseManifests([]byte(v2))
		require.NoError(t, err)
		rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "demo", Objects: objs}, kube.ApplyOptions{DryRun: true})
		require.NoError(t, err)
		assert.Contains(t, rep.String(), "updated ConfigMap addons-a/settings\n    data.level: \"info\" -> \"debug\"\n")
		cm, err := c.Clientset().CoreV1().ConfigMaps("addons-a").Get(ctx, "settings", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "info", cm.Data["level"])
	})

	t.Run("fields another manager changed", func(t *testing.T) {
		// An operator edits the ConfigMap with kubectl (its own field manager).
		out, err := env.Kubectl(ctx, "-n", "addons-a", "patch", "configmap", "settings", "--type=merge", "-p", `{"data":{"level":"warn"}}`)
		require.NoError(t, err, string(out))

		_, err = c.ApplyAddons(ctx, set, kube.ApplyOptions{KeepOthers: true})
		var ce *kube.ConflictError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "settings", ce.Name)
		require.NotEmpty(t, ce.Conflicts)
		assert.Equal(t, ".data.level", ce.Conflicts[0].Field)
		assert.Contains(t, ce.Conflicts[0].Manager, "kubectl")

		rep, err := c.ApplyAddons(ctx, set, kube.ApplyOptions{})
		require.NoError(t, err, "by default the set's values win")
		assert.Contains(t, rep.String(), "updated ConfigMap addons-a/settings")
		cm, err := c.Clientset().CoreV1().ConfigMaps("addons-a").Get(ctx, "settings", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, "info", cm.Data["level"])
	})

	t.Run("a later version without an object prunes it", func(t *testing.T) {
		var keep = objs[:0:0]
		for _, o := range objs {
			if o.GetKind() != "ConfigMap" {
				keep = append(keep, o)
			}
		}
		rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "demo", Objects: keep}, kube.ApplyOptions{Prune: true})
		require.NoError(t, err)
		assert.Contains(t, rep.String(), "pruned ConfigMap addons-a/settings")
		_, err = c.Clientset().CoreV1().ConfigMaps("addons-a").Get(ctx, "settings", metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "%v", err)
	})

	t.Run("an object another set took over is not pruned", func(t *testing.T) {
		// Another set (or an operator) takes the Deployment over: its set
		// label now names someone else.
		out, err := env.Kubectl(ctx, "-n", "addons-a", "label", "deployment", "idle", "--overwrite", kube.AddonSetLabel+"=other")
		require.NoError(t, err, string(out))
		var rest = objs[:0:0]
		for _, o := range objs {
			if o.GetKind() != "ConfigMap" && o.GetKind() != "Deployment" {
				rest = append(rest, o)
			}
		}
		rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "demo", Objects: rest}, kube.ApplyOptions{Prune: true})
		require.NoError(t, err)
		assert.NotContains(t, rep.String(), "pruned Deployment", "the Deployment is no longer the set's to prune")
		_, err = c.Clientset().AppsV1().Deployments("addons-a").Get(ctx, "idle", metav1.GetOptions{})
		assert.NoError(t, err, "the taken-over Deployment was deleted")
	})
}

func TestApplyAddonsRolloutTimeout(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	// One replica that never becomes available: there is no scheduler.
	objs, err := kube.ParseManifests([]byte(strings.NewReplacer("replicas: 0", "replicas: 1", "addons-a", "addons-b").Replace(addonsV1)))
	require.NoError(t, err)
	objs = objs[1:] // the Widget is not needed here
	_, err = c.ApplyAddons(context.Background(), kube.AddonSet{Name: "stuck", Objects: objs}, kube.ApplyOptions{RolloutTimeout: 2 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rollout of Deployment addons-b/idle")
	assert.Contains(t, err.Error(), "0 of 1 updated and available")

	// Pruning as well, the rollout is still waited for.
	_, err = c.ApplyAddons(context.Background(), kube.AddonSet{Name: "stuck", Objects: objs}, kube.ApplyOptions{Prune: true, RolloutTimeout: 2 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rollout of Deployment addons-b/idle")
}
