package kube_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

// kubernetesManifests returns the directory of the k8s.io/kubernetes module
// that hack/tools builds the test control plane from: its cluster add-ons
// and e2e manifests are real, public ones (the external-snapshotter's CRDs
// and controller, the CSI hostpath driver).
func kubernetesManifests(t *testing.T) string {
	t.Helper()
	mod, err := os.ReadFile("../hack/tools/go.mod")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/kubernetes (v\S+)`).FindSubmatch(mod)
	require.NotNil(t, m, "hack/tools/go.mod names no k8s.io/kubernetes")
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	require.NoError(t, err)
	dir := filepath.Join(strings.TrimSpace(string(out)), "k8s.io", "kubernetes@"+string(m[1]))
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv(kubetest.RequireEnv) == "1" {
			t.Fatalf("%s: %v (make tools downloads it)", dir, err)
		}
		t.Skipf("%s is not in the module cache: make tools downloads it", dir)
	}
	return dir
}

func readManifests(t *testing.T, dir string, globs ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, g := range globs {
		files, err := filepath.Glob(filepath.Join(dir, g))
		require.NoError(t, err)
		require.NotEmpty(t, files, g)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			o, err := kube.ParseManifests(raw)
			require.NoError(t, err, f)
			objs = append(objs, o...)
		}
	}
	return objs
}

// Real, public add-on manifests go in, stay unchanged when applied again,
// lose exactly what a later version drops, and go out whole.
func TestApplyAddonsRealManifests(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	dir := kubernetesManifests(t)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)

	objs := readManifests(t, dir,
		"cluster/addons/volumesnapshots/crd/*.yaml",
		"cluster/addons/volumesnapshots/volume-snapshot-controller/*.yaml",
		"test/e2e/testing-manifests/storage-csi/hostpath/hostpath/csi-hostpath-driverinfo.yaml",
		"test/e2e/testing-manifests/storage-csi/hostpath/hostpath/csi-hostpath-plugin.yaml",
		"test/e2e/testing-manifests/storage-csi/hostpath/hostpath/csi-hostpath-snapshotclass.yaml",
	)
	set := kube.AddonSet{Name: "csi-hostpath", Objects: objs}

	rep, err := c.ApplyAddons(ctx, set, kube.ApplyOptions{Prune: true})
	require.NoError(t, err, rep.String())
	require.Len(t, rep.Changes, len(objs))
	for _, ch := range rep.Changes {
		assert.Equal(t, kube.Created, ch.Action, "%s %s", ch.Kind, ch.Name)
	}
	for _, opts := range []kube.ApplyOptions{{Prune: true}, {Prune: true, DryRun: true}} {
		rep, err = c.ApplyAddons(ctx, set, opts)
		require.NoError(t, err)
		for _, ch := range rep.Changes {
			assert.Equal(t, kube.Unchanged, ch.Action, "dry run %t: %s %s: %v", opts.DryRun, ch.Kind, ch.Name, ch.Diff)
		}
	}

	// The next version drops the snapshot class and the controller's
	// StatefulSet; the driver's StatefulSet stays.
	var next []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() != "VolumeSnapshotClass" && o.GetKind() != "StatefulSet" || o.GetName() == "csi-hostpathplugin" {
			next = append(next, o)
		}
	}
	rep, err = c.ApplyAddons(ctx, kube.AddonSet{Name: set.Name, Objects: next}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	var pruned []string
	for _, ch := range rep.Changes {
		if ch.Action == kube.Pruned {
			pruned = append(pruned, ch.Kind+" "+ch.Name)
		} else {
			assert.Equal(t, kube.Unchanged, ch.Action, "%s %s", ch.Kind, ch.Name)
		}
	}
	assert.ElementsMatch(t, []string{"VolumeSnapshotClass csi-hostpath-snapclass", "StatefulSet volume-snapshot-controller"}, pruned)

	// An empty set takes everything out, the CRDs last.
	rep, err = c.ApplyAddons(ctx, kube.AddonSet{Name: set.Name}, kube.ApplyOptions{Prune: true})
	require.NoError(t, err)
	assert.Len(t, rep.Changes, len(next))
	assert.Equal(t, "CustomResourceDefinition", rep.Changes[len(rep.Changes)-1].Kind)
	_, err = c.Clientset().AppsV1().StatefulSets("default").Get(ctx, "csi-hostpathplugin", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "%v", err)
}
