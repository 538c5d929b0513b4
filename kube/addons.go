package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	corev1 "k8s.io/api/core/v1"
)

// AddonSetLabel marks every object of an add-on set with the set's name.
const AddonSetLabel = "kubefoundry.io/addon-set"

// ParseManifests reads multi-document YAML (or JSON) into objects. Empty
// documents are skipped; a document without apiVersion, kind or name is an
// error naming its position.
func ParseManifests(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("manifest document %d: apiVersion, kind and metadata.name are required", i)
		}
		out = append(out, u)
	}
}

// AddonSet is a named, versioned set of manifests applied together.
type AddonSet struct {
	Name    string
	Objects []*unstructured.Unstructured
}

// ApplyOptions adjust ApplyAddons.
type ApplyOptions struct {
	// DryRun computes what would change, on the server, and changes nothing.
	DryRun bool
	// Prune deletes the objects an earlier apply of the same set made and
	// this one no longer has.
	Prune bool
	// RolloutTimeout, when set, waits for the set's Deployments,
	// DaemonSets and StatefulSets to finish rolling out.
	RolloutTimeout time.Duration
	// KeepOthers refuses to take over fields another field manager set
	// (kubectl edit, an operator): such an apply fails with a *ConflictError
	// naming them. By default the set's values win, as with kubectl apply
	// --server-side --force-conflicts.
	KeepOthers bool
}

// ConflictError is an apply refused because other field managers own
// fields the set would change.
type ConflictError struct {
	Kind, Namespace, Name string
	Conflicts             []string // "field owned by manager", as the server words them
	Err                   error
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("apply %s %s/%s: fields owned by others: %s", e.Kind, e.Namespace, e.Name, strings.Join(e.Conflicts, "; "))
}

func (e *ConflictError) Unwrap() error { return e.Err }

// Action is what applying did, or would do, to one object.
type Action string

const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
	Pruned    Action = "pruned"
)

// ObjectChange is one object's Action.
type ObjectChange struct {
	Kind, Namespace, Name string
	Action                Action
	// Diff lists, for an update, each changed field as
	// "path: old -> new" (with <none> for a field added or removed).
	Diff []string
}

// ApplyReport lists every object's change, in apply order, prunes last.
type ApplyReport struct {
	Changes []ObjectChange
}

// inventory records, per set, what the last apply made, so that the next
// one can prune what it dropped even if the caller has lost the old
// manifests. It lives in a ConfigMap in kube-system.
func inventoryName(set string) string { return "kubefoundry-addons-" + set }

// ApplyAddons applies a set with server-side apply under FieldManager, in
// dependency order: CustomResourceDefinitions first (waited on until
// Established), then Namespaces, then everything else. Every object is
// labelled with AddonSetLabel. See ApplyOptions for dry runs, pruning and
// rollout waits.
func (c *Client) ApplyAddons(ctx context.Context, set AddonSet, o ApplyOptions) (*ApplyReport, error) {
	if set.Name == "" {
		return nil, errors.New("apply add-ons: the set needs a name")
	}
	dyn, err := dynamic.NewForConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.cs.Discovery()))

	objs := make([]*unstructured.Unstructured, len(set.Objects))
	for i, u := range set.Objects {
		objs[i] = u.DeepCopy()
		l := objs[i].GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[AddonSetLabel] = set.Name
		objs[i].SetLabels(l)
	}
	sort.SliceStable(objs, func(i, j int) bool { return applyRank(objs[i]) < applyRank(objs[j]) })

	report := &ApplyReport{}
	// Kinds whose CRD, and namespaces, this set brings and the server does
	// not have yet.
	newKinds := map[schema.GroupKind]bool{}
	newNamespaces := map[string]bool{}
	if o.DryRun {
		for _, u := range objs {
			if applyRank(u) == 1 {
				if _, err := c.cs.CoreV1().Namespaces().Get(ctx, u.GetName(), metav1.GetOptions{}); apierrors.IsNotFound(err) {
					newNamespaces[u.GetName()] = true
				}
			}
			if applyRank(u) != 0 {
				continue
			}
			group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(u.Object, "spec", "names", "kind")
			gk := schema.GroupKind{Group: group, Kind: kind}
			if _, err := mapper.RESTMapping(gk); meta.IsNoMatchError(err) {
				newKinds[gk] = true
			}
		}
	}
	crdsDone := false
	for _, u := range objs {
		if applyRank(u) > 0 && !crdsDone {
			crdsDone = true
			mapper.Reset() // the new kinds are served now
		}
		if o.DryRun && (newKinds[u.GroupVersionKind().GroupKind()] || newNamespaces[u.GetNamespace()]) {
			// Its CRD or namespace is only being dry-run too: the server
			// cannot check it.
			report.Changes = append(report.Changes, ObjectChange{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(), Action: Created})
			continue
		}
		change, err := c.applyOne(ctx, dyn, mapper, u, o)
		if err != nil {
			return report, err
		}
		report.Changes = append(report.Changes, change)
		if applyRank(u) == 0 && !o.DryRun {
			if err := c.waitEstablished(ctx, dyn, u.GetName()); err != nil {
				return report, err
			}
		}
	}

	if o.Prune {
		pruned, err := c.prune(ctx, dyn, mapper, set.Name, objs, o.DryRun)
		report.Changes = append(report.Changes, pruned...)
		if err != nil {
			return report, err
		}
	}
	if !o.DryRun {
		if err := c.saveInventory(ctx, set.Name, objs); err != nil {
			return report, err
		}
		if o.RolloutTimeout > 0 {
			if err := c.waitRollouts(ctx, dyn, objs, o.RolloutTimeout); err != nil {
				return report, err
			}
		}
	}
	return report, nil
}

// applyRank orders CRDs, then Namespaces, then the rest.
func applyRank(u *unstructured.Unstructured) int {
	switch u.GroupVersionKind().GroupKind() {
	case schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return 0
	case schema.GroupKind{Kind: "Namespace"}:
		return 1
	}
	return 2
}

func (c *Client) resource(dyn dynamic.Interface, mapper meta.RESTMapper, gvk schema.GroupVersionKind, ns string) (dynamic.ResourceInterface, error) {
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		return dyn.Resource(m.Resource).Namespace(ns), nil
	}
	return dyn.Resource(m.Resource), nil
}

func (c *Client) applyOne(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, u *unstructured.Unstructured, o ApplyOptions) (ObjectChange, error) {
	ch := ObjectChange{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
	ri, err := c.resource(dyn, mapper, u.GroupVersionKind(), u.GetNamespace())
	if meta.IsNoMatchError(err) {
		// A kind from a CRD of this set may take a moment to be served.
		perr := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
			if r, ok := mapper.(interface{ Reset() }); ok {
				r.Reset()
			}
			ri, err = c.resource(dyn, mapper, u.GroupVersionKind(), u.GetNamespace())
			return err == nil, nil
		})
		if perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return ch, err
	}
	before, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		before = nil
	case err != nil:
		return ch, fmt.Errorf("read %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: !o.KeepOthers}
	if o.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	after, err := ri.Apply(ctx, u.GetName(), u, opts)
	if apierrors.IsConflict(err) {
		ce := &ConflictError{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(), Err: err}
		var st apierrors.APIStatus
		if errors.As(err, &st) && st.Status().Details != nil {
			for _, cause := range st.Status().Details.Causes {
				ce.Conflicts = append(ce.Conflicts, cause.Message)
			}
		}
		return ch, ce
	}
	if err != nil {
		return ch, fmt.Errorf("apply %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	switch {
	case before == nil:
		ch.Action = Created
	case sameContent(before, after):
		ch.Action = Unchanged
	default:
		ch.Action = Updated
		ch.Diff = diffFields("", stripVolatile(before), stripVolatile(after), nil)
	}
	return ch, nil
}

// diffFields lists the leaf fields that differ between a and b.
func diffFields(path string, a, b any, out []string) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			out = diffFields(p, am[k], bm[k], out)
		}
		return out
	}
	if equality.Semantic.DeepEqual(a, b) {
		return out
	}
	show := func(v any) string {
		if v == nil {
			return "<none>"
		}
		raw, _ := json.Marshal(v)
		return string(raw)
	}
	return append(out, fmt.Sprintf("%s: %s -> %s", path, show(a), show(b)))
}

// sameContent compares two versions of an object without the fields the
// server changes on every write.
func sameContent(a, b *unstructured.Unstructured) bool {
	return equality.Semantic.DeepEqual(stripVolatile(a), stripVolatile(b))
}

func stripVolatile(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "status")
	return c.Object
}

func (c *Client) waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		u, err := dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s not established: %w", name, err)
	}
	return nil
}

type inventoryEntry struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

func entryOf(u *unstructured.Unstructured) inventoryEntry {
	return inventoryEntry{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

func (c *Client) loadInventory(ctx context.Context, set string) ([]inventoryEntry, error) {
	cm, err := c.cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, inventoryName(set), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("add-on inventory of %s: %w", set, err)
	}
	var entries []inventoryEntry
	if err := json.Unmarshal([]byte(cm.Data["objects"]), &entries); err != nil {
		return nil, fmt.Errorf("add-on inventory of %s: %w", set, err)
	}
	return entries, nil
}

func (c *Client) saveInventory(ctx context.Context, set string, objs []*unstructured.Unstructured) error {
	entries := make([]inventoryEntry, len(objs))
	for i, u := range objs {
		entries[i] = entryOf(u)
	}
	raw, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: inventoryName(set), Namespace: metav1.NamespaceSystem, Labels: map[string]string{AddonSetLabel: set}},
		Data:       map[string]string{"objects": string(raw)},
	}
	body, err := json.Marshal(cm)
	if err != nil {
		return err
	}
	force := true
	_, err = c.cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Patch(ctx, cm.Name, types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	if err != nil {
		return fmt.Errorf("save add-on inventory of %s: %w", set, err)
	}
	return nil
}

// prune deletes, newest kinds last, what the previous apply of set made
// and this one does not, if it still carries the set's label.
func (c *Client) prune(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, set string, objs []*unstructured.Unstructured, dryRun bool) ([]ObjectChange, error) {
	old, err := c.loadInventory(ctx, set)
	if err != nil {
		return nil, err
	}
	keep := map[inventoryEntry]bool{}
	for _, u := range objs {
		keep[entryOf(u)] = true
	}
	var changes []ObjectChange
	// Delete in reverse apply order: workloads before namespaces before CRDs.
	slices.Reverse(old)
	for _, e := range old {
		if keep[e] {
			continue
		}
		gv, err := schema.ParseGroupVersion(e.APIVersion)
		if err != nil {
			continue
		}
		ri, err := c.resource(dyn, mapper, gv.WithKind(e.Kind), e.Namespace)
		if err != nil {
			if meta.IsNoMatchError(err) {
				continue // its kind is gone, and the object with it
			}
			return changes, err
		}
		cur, err := ri.Get(ctx, e.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return changes, err
		}
		if cur.GetLabels()[AddonSetLabel] != set {
			continue // no longer ours: someone took it over
		}
		opts := metav1.DeleteOptions{}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if err := ri.Delete(ctx, e.Name, opts); err != nil && !apierrors.IsNotFound(err) {
			return changes, fmt.Errorf("prune %s %s/%s: %w", e.Kind, e.Namespace, e.Name, err)
		}
		changes = append(changes, ObjectChange{Kind: e.Kind, Namespace: e.Namespace, Name: e.Name, Action: Pruned})
	}
	return changes, nil
}

// waitRollouts waits until every Deployment, DaemonSet and StatefulSet of
// objs reports its current generation fully updated and available.
func (c *Client) waitRollouts(ctx context.Context, dyn dynamic.Interface, objs []*unstructured.Unstructured, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		if gvk.Group != "apps" {
			continue
		}
		var res string
		switch gvk.Kind {
		case "Deployment":
			res = "deployments"
		case "DaemonSet":
			res = "daemonsets"
		case "StatefulSet":
			res = "statefulsets"
		default:
			continue
		}
		ri := dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: res}).Namespace(u.GetNamespace())
		var last string
		err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			done, why := rolledOut(cur)
			last = why
			return done, nil
		})
		if err != nil {
			return fmt.Errorf("rollout of %s %s/%s: %s: %w", gvk.Kind, u.GetNamespace(), u.GetName(), last, err)
		}
	}
	return nil
}

func rolledOut(u *unstructured.Unstructured) (bool, string) {
	gen := u.GetGeneration()
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if observed < gen {
		return false, "the controller has not seen the latest generation"
	}
	num := func(path ...string) int64 { v, _, _ := unstructured.NestedInt64(u.Object, path...); return v }
	switch u.GetKind() {
	case "DaemonSet":
		want := num("status", "desiredNumberScheduled")
		if num("status", "updatedNumberScheduled") < want || num("status", "numberAvailable") < want {
			return false, fmt.Sprintf("%d of %d updated and available", num("status", "numberAvailable"), want)
		}
	default:
		want, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
		if !found {
			want = 1
		}
		if num("status", "updatedReplicas") < want || num("status", "availableReplicas") < want {
			return false, fmt.Sprintf("%d of %d updated and available", num("status", "availableReplicas"), want)
		}
	}
	return true, ""
}

// String renders a report as lines "created Deployment ns/name".
func (r *ApplyReport) String() string {
	var b strings.Builder
	for _, c := range r.Changes {
		name := c.Name
		if c.Namespace != "" {
			name = c.Namespace + "/" + c.Name
		}
		fmt.Fprintf(&b, "%s %s %s\n", c.Action, c.Kind, name)
		for _, d := range c.Diff {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	return b.String()
}
