package kube_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// Tests that an add-on set loses nothing it applied, on a real API server.

func parse(t *testing.T, yaml string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := kube.ParseManifests([]byte(yaml))
	require.NoError(t, err)
	return objs
}

func actions(rep *kube.ApplyReport) map[string]kube.Action {
	m := map[string]kube.Action{}
	if rep == nil {
		return m
	}
	for _, c := range rep.Changes {
		m[c.Kind+" "+c.Namespace+"/"+c.Name] = c.Action
	}
	return m
}

const hpaV1 = `
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: addons-up}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  targetCPUUtilizationPercentage: 80
---
apiVersion: v1
kind: ConfigMap
metadata: {name: upgrade-settings}
data: {level: info}
---
apiVersion: v1
kind: Namespace
metadata: {name: addons-up}
`

// The next version of the same add-ons: the HPA in autoscaling/v2, the
// ConfigMap's namespace written out. The same objects, spelled otherwise.
const hpaV2 = `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: addons-up}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: upgrade-settings, namespace: default}
data: {level: info}
---
apiVersion: v1
kind: Namespace
metadata: {name: addons-up}
`

func TestApplyAddonsUpgradeRespelledObjectsAreNotPruned(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)

	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "upgrade", Objects: parse(t, hpaV1)}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "upgrade", Objects: parse(t, hpaV2)}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	got := actions(rep)
	assert.Equal(t, kube.Updated, got["HorizontalPodAutoscaler addons-up/web"], rep.String())
	assert.Equal(t, kube.Unchanged, got["ConfigMap default/upgrade-settings"], rep.String())
	assert.NotContains(t, rep.String(), "pruned")

	hpa, err := c.Clientset().AutoscalingV2().HorizontalPodAutoscalers("addons-up").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err, "the HPA was pruned by the apply that updated it")
	assert.EqualValues(t, 4, hpa.Spec.MaxReplicas)
	_, err = c.Clientset().CoreV1().ConfigMaps("default").Get(ctx, "upgrade-settings", metav1.GetOptions{})
	require.NoError(t, err, "the ConfigMap was pruned by the apply that kept it")
}

const threeObjects = `
apiVersion: v1
kind: ConfigMap
metadata: {name: keep-a, namespace: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: keep-b, namespace: default}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: dropped, namespace: default}
spec:
  selector: {matchLabels: {app: dropped}}
  template:
    metadata: {labels: {app: dropped}}
    spec:
      containers: [{name: c, image: registry.local/agent:1}]
`

func TestApplyAddonsWithoutPruneKeepsTheRecord(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	all := parse(t, threeObjects)

	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "record", Objects: all}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	// A step without prune drops the DaemonSet from the set...
	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "record", Objects: all[:2]}, kube.ApplyOptions{})
	require.NoError(t, err)
	_, err = c.Clientset().AppsV1().DaemonSets("default").Get(ctx, "dropped", metav1.GetOptions{})
	require.NoError(t, err, "without Prune nothing is deleted")
	// ...and the next one that prunes still knows it was the set's.
	rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "record", Objects: all[:2]}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	assert.Equal(t, kube.Pruned, actions(rep)["DaemonSet default/dropped"], rep.String())
	_, err = c.Clientset().AppsV1().DaemonSets("default").Get(ctx, "dropped", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the DaemonSet dropped in a step without prune stayed: %v", err)
}

const halfWay = `
apiVersion: v1
kind: ConfigMap
metadata: {name: half-1, namespace: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: half-2, namespace: default}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: refused, namespace: default}
spec:
  selector: {matchLabels: {app: refused}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers: [{name: c, image: registry.local/agent:1}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: half-3, namespace: default}
`

func TestApplyAddonsFailedHalfWay(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)

	// An earlier version of the set had half-old; this one drops it.
	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "half", Objects: parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: half-old, namespace: default}\n")}, kube.ApplyOptions{})
	require.NoError(t, err)

	// The DaemonSet's selector does not match its template: the server
	// refuses it. The objects before it and after it still go in.
	rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "half", Objects: parse(t, halfWay)}, kube.ApplyOptions{Prune: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DaemonSet default/refused")
	assert.Contains(t, err.Error(), "1 of 4 objects failed; nothing pruned")
	got := actions(rep)
	assert.Equal(t, kube.ApplyFailed, got["DaemonSet default/refused"])
	for _, name := range []string{"half-1", "half-2", "half-3"} {
		assert.Equal(t, kube.Created, got["ConfigMap default/"+name], rep.String())
	}
	_, err = c.Clientset().CoreV1().ConfigMaps("default").Get(ctx, "half-old", metav1.GetOptions{})
	require.NoError(t, err, "an apply that failed in part pruned what it replaces")

	// Those three are recorded: the next version of the set, without
	// them, prunes them.
	rep, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "half", Objects: parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: half-new, namespace: default}\n")}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	for _, name := range []string{"half-old", "half-1", "half-2", "half-3"} {
		assert.Equal(t, kube.Pruned, actions(rep)["ConfigMap default/"+name], rep.String())
		_, err = c.Clientset().CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "%s applied by a failed apply can never be pruned: %v", name, err)
	}
}

const unknownKinds = `
apiVersion: v1
kind: ConfigMap
metadata: {name: before-typos, namespace: default}
---
apiVersion: v1
kind: ConfgMap
metadata: {name: typo, namespace: default}
---
apiVersion: apps/v1beta1
kind: Deployment
metadata: {name: old-version, namespace: default}
---
apiVersion: example.org/v1
kind: Sprocket
metadata: {name: no-crd, namespace: default}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: before-typos, namespace: default}
`

func TestApplyAddonsUnknownKindsAllReportedBeforeAnyApply(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)

	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "typos", Objects: parse(t, unknownKinds)}, kube.ApplyOptions{Prune: true})
	require.Error(t, err)
	assert.True(t, kubefoundry.IsInvalid(err), "%v", err)
	var verr *kubefoundry.ValidationError
	require.ErrorAs(t, err, &verr)
	fields := map[string]string{}
	for _, p := range verr.Problems {
		fields[p.Field] = p.Reason
	}
	assert.Len(t, fields, 4, "%v", err)
	assert.Contains(t, fields["Objects[1].kind"], "ConfgMap typo")
	assert.Contains(t, fields["Objects[2].apiVersion"], "does not serve this version")
	assert.Contains(t, fields["Objects[3].kind"], "no CustomResourceDefinition of the set")
	assert.Contains(t, fields["Objects[4]"], "the same ConfigMap as Objects[0]")

	_, err = c.Clientset().CoreV1().ConfigMaps("default").Get(ctx, "before-typos", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "an object was applied before the set's kinds were checked: %v", err)
	_, err = c.Clientset().CoreV1().ConfigMaps("kube-system").Get(ctx, "kubefoundry-addons-typos", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "a refused set left an inventory: %v", err)
}

const conflicting = `
apiVersion: v1
kind: ConfigMap
metadata: {name: conflict-1, namespace: default}
data: {a: "1", b: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: conflict-2, namespace: default}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: conflict-free, namespace: default}
data: {a: "1"}
`

func TestApplyAddonsReportsEveryConflict(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	set := kube.AddonSet{Name: "conflicts", Objects: parse(t, conflicting)}
	_, err = c.ApplyAddons(ctx, set, kube.ApplyOptions{})
	require.NoError(t, err)

	out, err := env.Kubectl(ctx, "-n", "default", "patch", "configmap", "conflict-1", "--type=merge", "-p", `{"data":{"a":"2","b":"2"}}`)
	require.NoError(t, err, string(out))
	out, err = env.Kubectl(ctx, "-n", "default", "patch", "configmap", "conflict-2", "--type=merge", "-p", `{"data":{"a":"2"}}`)
	require.NoError(t, err, string(out))

	next := kube.AddonSet{Name: "conflicts", Objects: parse(t, strings.ReplaceAll(conflicting, `"1"`, `"3"`))}
	rep, err := c.ApplyAddons(ctx, next, kube.ApplyOptions{KeepOthers: true})
	require.Error(t, err)
	assert.True(t, kubefoundry.IsConflict(err), "%v", err)

	var conflicts []*kube.ConflictError
	for _, ch := range rep.Changes {
		var ce *kube.ConflictError
		if errors.As(ch.Err, &ce) {
			conflicts = append(conflicts, ce)
		}
	}
	require.Len(t, conflicts, 2, rep.String())
	assert.Equal(t, "conflict-1", conflicts[0].Name)
	var fields []string
	for _, f := range conflicts[0].Conflicts {
		fields = append(fields, f.Field)
		assert.Equal(t, "kubectl-patch", f.Manager)
	}
	assert.ElementsMatch(t, []string{".data.a", ".data.b"}, fields)
	assert.Equal(t, "conflict-2", conflicts[1].Name)
	require.Len(t, conflicts[1].Conflicts, 1)
	assert.Equal(t, ".data.a", conflicts[1].Conflicts[0].Field)
	assert.Contains(t, err.Error(), `.data.a owned by "kubectl-patch"`)
	assert.Equal(t, kube.Updated, actions(rep)["ConfigMap default/conflict-free"], "the object after the conflicts was not applied")
}

func TestApplyAddonsNeverShowsSecretValues(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	secret := func(password, extra string) []*unstructured.Unstructured {
		return parse(t, `
apiVersion: v1
kind: Secret
metadata: {name: csi-config, namespace: default}
stringData:
  password: `+password+extra+`
---
apiVersion: v1
kind: ConfigMap
metadata: {name: csi-settings, namespace: default}
data: {insecure: "false"}
`)
	}
	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "secrets", Objects: secret("hunter2-old", "")}, kube.ApplyOptions{})
	require.NoError(t, err)

	rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "secrets", Objects: secret("s3cret-new", "\n  token: t0ken-added")}, kube.ApplyOptions{DryRun: true})
	require.NoError(t, err)
	out := rep.String()
	assert.Contains(t, out, "updated Secret default/csi-config\n")
	assert.Contains(t, out, "    data.password: changed (value hidden)\n")
	assert.Contains(t, out, "    data.token: added (value hidden)\n")
	for _, v := range []string{"hunter2-old", "s3cret-new", "t0ken-added"} {
		assert.NotContains(t, out, v)
		assert.NotContains(t, out, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	assert.Contains(t, out, "unchanged ConfigMap default/csi-settings", "other kinds are shown as before")

	// Manifests exported with kubectl get -o yaml carry client-side
	// apply's copy of the Secret, values and all, in an annotation: its
	// value is hidden too; a label's is not.
	exported := func(password, tier string) []*unstructured.Unstructured {
		last := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"exported","namespace":"default"},"stringData":{"password":"` + password + `"}}`
		return parse(t, `
apiVersion: v1
kind: Secret
metadata:
  name: exported
  namespace: default
  labels: {tier: `+tier+`}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '`+last+`'
stringData:
  password: `+password+`
`)
	}
	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "exported", Objects: exported("hunter2-old", "gold")}, kube.ApplyOptions{})
	require.NoError(t, err)
	rep, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "exported", Objects: exported("s3cret-new", "silver")}, kube.ApplyOptions{DryRun: true})
	require.NoError(t, err)
	out = rep.String()
	assert.Contains(t, out, "    metadata.annotations.kubectl.kubernetes.io/last-applied-configuration: changed (value hidden)\n", out)
	assert.Contains(t, out, "    metadata.labels.tier: \"gold\" -> \"silver\"\n", "a Secret's other fields are shown: %s", out)
	for _, v := range []string{"hunter2-old", "s3cret-new"} {
		assert.NotContains(t, out, v)
	}
}

// An aggregated API that is down (metrics-server while a cluster comes up)
// fails discovery of its group: the set still applies, and nothing is
// written through klog about it.
func TestApplyAddonsWithAnAggregatedAPIDown(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)

	const apiService = `
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.example.com}
spec:
  group: metrics.example.com
  version: v1beta1
  service: {name: absent-metrics, namespace: kube-system}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
`
	out, err := env.Kubectl(ctx, "apply", "-f", writeTemp(t, apiService))
	require.NoError(t, err, string(out))
	t.Cleanup(func() {
		_, _ = env.Kubectl(context.Background(), "delete", "apiservice", "v1beta1.metrics.example.com")
	})

	var mu sync.Mutex
	var lines []string
	klog.SetLogger(funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 10}))
	defer klog.ClearLogger()

	// The down group is reported as such by discovery once the
	// availability controller has looked at it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.Clientset().Discovery().ServerResourcesForGroupVersion("metrics.example.com/v1beta1")
		if err != nil || time.Now().After(deadline) {
			require.Error(t, err, "the APIService never showed as down")
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "quiet", Objects: parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: quiet, namespace: default}\n")}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, lines, "kube wrote through klog (to stderr when the caller set nothing up)")
}

const privilegedDaemonSet = `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: csi-node, namespace: kube-system}
spec:
  selector: {matchLabels: {app: csi-node}}
  template:
    metadata: {labels: {app: csi-node}}
    spec:
      hostNetwork: true
      containers:
      - name: driver
        image: registry.local/csi:1
        securityContext: {privileged: true, allowPrivilegeEscalation: true}
`

// The harness runs its API server as a cluster of this SDK runs (kubeadm's
// --allow-privileged): a CSI node plugin's privileged DaemonSet applies.
func TestApplyAddonsPrivilegedDaemonSet(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	rep, err := c.ApplyAddons(context.Background(), kube.AddonSet{Name: "csi", Objects: parse(t, privilegedDaemonSet)}, kube.ApplyOptions{})
	require.NoError(t, err)
	assert.Equal(t, kube.Created, actions(rep)["DaemonSet kube-system/csi-node"])
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifest.yaml")
	require.NoError(t, os.WriteFile(f, []byte(content), 0o600))
	return f
}

// limitedClient is a client of a user who may read ConfigMaps everywhere
// and do verbs to them in each namespace listed.
func limitedClient(t *testing.T, admin *kube.Client, user string, verbs map[string][]string) *kube.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rbac := admin.Clientset().RbacV1()
	subjects := []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}
	_, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user}, Subjects: subjects}, metav1.CreateOptions{})
	require.NoError(t, err)
	for ns, v := range verbs {
		_, err = rbac.Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: v}}}, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = rbac.RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: user}, Subjects: subjects}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	kp, err := pki.ClusterCA.IssueClient(user, nil, time.Hour)
	require.NoError(t, err)
	raw, err := kube.Kubeconfig("test", env.Config.Host, env.ServerCA, user, kp)
	require.NoError(t, err)
	cfg, err := kube.RESTConfig(raw)
	require.NoError(t, err)
	c, err := kube.New(cfg)
	require.NoError(t, err)
	return c
}

// TestApplyAddonsInventoryNotSavedIsAnError: the record of what a set
// applies is what a later prune deletes by, so it is written before any
// object; an apply that cannot write it (here a user who may apply the
// set's objects but not write kube-system) fails, naming the inventory,
// and applies nothing a later prune could not find.
func TestApplyAddonsInventoryNotSavedIsAnError(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := kube.New(env.Config)
	require.NoError(t, err)
	limited := limitedClient(t, admin, "addons-no-kube-system", map[string][]string{"default": {"*"}})

	set := kube.AddonSet{Name: "no-record", Objects: parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: no-record, namespace: default}\n")}
	_, err = limited.ApplyAddons(ctx, set, kube.ApplyOptions{Prune: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "save add-on inventory of no-record")
	assert.True(t, apierrors.IsForbidden(err), "the server's refusal is in the chain: %v", err)
	_, err = admin.Clientset().CoreV1().ConfigMaps("default").Get(ctx, "no-record", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "nothing applied: %v", err)
}

// TestApplyAddonsPruneRefusedIsAnError: a prune the server refuses (a user
// who may apply ConfigMaps but not delete them) fails the apply, naming
// the object, which is reported failed and stays in the record: the next
// prune, by one who may, deletes it.
func TestApplyAddonsPruneRefusedIsAnError(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := kube.New(env.Config)
	require.NoError(t, err)
	write := []string{"get", "list", "watch", "create", "update", "patch"}
	limited := limitedClient(t, admin, "addons-no-delete", map[string][]string{"default": write, "kube-system": write})

	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: default}\n"
	v1 := kube.AddonSet{Name: "no-delete", Objects: parse(t, fmt.Sprintf(cm, "keep")+"---\n"+fmt.Sprintf(cm, "drop"))}
	_, err = limited.ApplyAddons(ctx, v1, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	v2 := kube.AddonSet{Name: "no-delete", Objects: parse(t, fmt.Sprintf(cm, "keep"))}
	rep, err := limited.ApplyAddons(ctx, v2, kube.ApplyOptions{Prune: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "prune ConfigMap default/drop")
	assert.True(t, apierrors.IsForbidden(err), "the server's refusal is in the chain: %v", err)
	assert.Equal(t, kube.ApplyFailed, actions(rep)["ConfigMap default/drop"], "%s", rep)
	_, err = admin.Clientset().CoreV1().ConfigMaps("default").Get(ctx, "drop", metav1.GetOptions{})
	require.NoError(t, err, "still there")

	rep, err = admin.ApplyAddons(ctx, v2, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	assert.Equal(t, kube.Pruned, actions(rep)["ConfigMap default/drop"], "still recorded: pruned by one who may")
}

// TestApplyAddonsCRDRefused: a CRD change the server refuses fails the CRD
// and, without applying them, the custom resources of its kind, which the
// older CRD, still served, would otherwise take.
func TestApplyAddonsCRDRefused(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	v1 := strings.NewReplacer("widgets", "sprockets", "Widget", "Sprocket", "widget", "sprocket", "addons-a", "addons-s").Replace(addonsV1)
	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "sprockets", Objects: parse(t, v1)}, kube.ApplyOptions{})
	require.NoError(t, err)

	// No storage version: refused. The Sprocket changes too.
	v2 := strings.NewReplacer("storage: true", "storage: false", "size: 3", "size: 4").Replace(v1)
	rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "sprockets", Objects: parse(t, v2)}, kube.ApplyOptions{})
	require.Error(t, err)
	got := actions(rep)
	assert.Equal(t, kube.ApplyFailed, got["CustomResourceDefinition /sprockets.example.com"], "%s", rep)
	assert.Equal(t, kube.ApplyFailed, got["Sprocket addons-s/w1"], "%s", rep)
	assert.Contains(t, err.Error(), "apply Sprocket addons-s/w1: its CustomResourceDefinition failed")
	s, err := dynamic.NewForConfigOrDie(env.Config).Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "sprockets"}).
		Namespace("addons-s").Get(ctx, "w1", metav1.GetOptions{})
	require.NoError(t, err)
	size, _, _ := unstructured.NestedInt64(s.Object, "spec", "size")
	assert.EqualValues(t, 3, size, "the Sprocket was not applied")
}

// TestApplyAddonsNilObject: a nil among a set's objects is a problem
// reported with its index, not a panic, and nothing is applied.
func TestApplyAddonsNilObject(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	objs := append(parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: before-nil, namespace: default}\n"), nil)
	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "with-nil", Objects: objs}, kube.ApplyOptions{})
	var fe *kubefoundry.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "Objects[1]", fe.Field)
	_, err = c.Clientset().CoreV1().ConfigMaps("default").Get(ctx, "before-nil", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "nothing applied: %v", err)
}

// TestApplyAddonsPruneAfterItsCRDWasDeleted: a set whose CRD was deleted
// by hand (its custom resources with it) still applies and prunes: the
// record of a kind the server no longer serves is dropped, not an error.
func TestApplyAddonsPruneAfterItsCRDWasDeleted(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	v1 := strings.NewReplacer("widgets", "doohickeys", "Widget", "Doohickey", "widget", "doohickey", "addons-a", "addons-d").Replace(addonsV1)
	_, err = c.ApplyAddons(ctx, kube.AddonSet{Name: "doohickeys", Objects: parse(t, v1)}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	out, err := env.Kubectl(ctx, "delete", "crd", "doohickeys.example.com", "--wait=true", "--timeout=30s")
	require.NoError(t, err, string(out))

	// The next version drops the CRD and its Doohickey.
	objs := parse(t, v1)
	var kept []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() != "Doohickey" && u.GetKind() != "CustomResourceDefinition" {
			kept = append(kept, u)
		}
	}
	rep, err := c.ApplyAddons(ctx, kube.AddonSet{Name: "doohickeys", Objects: kept}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err, "%s", rep)
	got := actions(rep)
	assert.Equal(t, kube.Unchanged, got["ConfigMap addons-d/settings"], "%s", rep)
	assert.NotContains(t, got, "Doohickey addons-d/w1", "its kind is gone, and the object with it: %s", rep)
}
