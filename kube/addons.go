package kube

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
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
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubefoundry/kubefoundry"
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
	// this one no longer has, if they still carry the set's label. It is
	// skipped when any object of this apply failed, so that nothing is
	// deleted whose replacement did not go in.
	Prune bool
	// RolloutTimeout, when set, waits for the set's Deployments,
	// DaemonSets and StatefulSets to finish rolling out.
	RolloutTimeout time.Duration
	// KeepOthers refuses to take over fields another field manager set
	// (kubectl edit, an operator): each such object fails with a
	// *ConflictError naming the fields and their managers, and the rest of
	// the set is still applied. By default the set's values win, as with
	// kubectl apply --server-side --force-conflicts.
	KeepOthers bool
}

// FieldConflict is one field of an object that another field manager owns.
type FieldConflict struct {
	Field   string // as the server names it: ".data.level"
	Manager string // the manager that owns it: "kubectl-patch"
	Message string // the server's words
}

// ConflictError is an object's apply refused because other field managers
// own fields the set would change. It wraps kubefoundry.ErrConflict and
// the server's error.
type ConflictError struct {
	Kind, Namespace, Name string
	Conflicts             []FieldConflict
	Err                   error
}

func (e *ConflictError) Error() string {
	s := make([]string, len(e.Conflicts))
	for i, c := range e.Conflicts {
		s[i] = fmt.Sprintf("%s owned by %q", c.Field, c.Manager)
	}
	if len(s) == 0 && e.Err != nil {
		s = append(s, e.Err.Error())
	}
	return fmt.Sprintf("apply %s %s: fields owned by other managers: %s", e.Kind, qualified(e.Namespace, e.Name), strings.Join(s, "; "))
}

func (e *ConflictError) Unwrap() []error { return []error{kubefoundry.ErrConflict, e.Err} }

// Action is what applying did, or would do, to one object.
type Action string

const (
	Created     Action = "created"
	Updated     Action = "updated"
	Unchanged   Action = "unchanged"
	Pruned      Action = "pruned"
	ApplyFailed Action = "failed" // ObjectChange.Err says why
)

// ObjectChange is one object's Action.
type ObjectChange struct {
	Kind, Namespace, Name string
	Action                Action
	// Diff lists, for an update, each changed field as
	// "path: old -> new" (with <none> for a field added or removed). A
	// Secret's values are never shown: "data.password: changed (value
	// hidden)".
	Diff []string
	// Err is why the object failed (Action ApplyFailed).
	Err error
}

// ApplyReport lists every object's change, in apply order, prunes last.
type ApplyReport struct {
	Changes []ObjectChange
}

// inventory records, per set, every object an apply of the set has
// applied and no prune has removed yet, so that a later prune finds what
// was dropped even if the caller has lost the old manifests, and even
// across applies without Prune. It lives in a ConfigMap in kube-system and
// is written before the objects are applied.
func inventoryName(set string) string { return "kubefoundry-addons-" + set }

// objectKey is an object's identity as the server knows it: group, kind,
// namespace as resolved (a namespaced object without one is in default)
// and name. The version is not part of it: one object is served under
// every version of its kind, so a manifest that moves an HPA from
// autoscaling/v1 to autoscaling/v2 still names the same object.
type objectKey struct {
	Group, Kind, Namespace, Name string
}

// addon is one object of the set, resolved against the server.
type addon struct {
	u     *unstructured.Unstructured
	key   objectKey
	index int // in AddonSet.Objects
	// mapping is nil for a kind a CustomResourceDefinition of the set
	// brings, which the server serves only once that is applied.
	mapping *meta.RESTMapping
}

// ApplyAddons applies a set with server-side apply under FieldManager, in
// dependency order: CustomResourceDefinitions first (waited on until
// Established), then Namespaces, then everything else. Every object is
// labelled with AddonSetLabel.
//
// Before anything is applied, every object's kind and version is resolved
// against the server's discovery (and the set's own CRDs); every object
// that cannot be, and every object named twice, is reported at once as a
// *kubefoundry.ValidationError and nothing changes. The set's inventory
// is written next, so that what this apply creates can be pruned later
// even if it fails half-way. An object that fails does not stop the rest:
// its ObjectChange has Action ApplyFailed and Err, and the returned error
// joins every failure. See ApplyOptions for dry runs, pruning and rollout waits.
func (c *Client) ApplyAddons(ctx context.Context, set AddonSet, o ApplyOptions) (*ApplyReport, error) {
	if set.Name == "" {
		return nil, &kubefoundry.FieldError{Field: "AddonSet.Name", Reason: "the set needs a name"}
	}
	dyn, err := dynamic.NewForConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	mapper := &apiMapper{dc: c.cs.Discovery()}
	if err := mapper.reset(); err != nil {
		return nil, fmt.Errorf("apply add-on set %s: %w", set.Name, err)
	}
	addons, err := resolveAddons(set, mapper)
	if err != nil {
		return nil, err
	}
	inv, err := c.loadInventory(ctx, set.Name, mapper)
	if err != nil {
		return nil, err
	}
	current := map[objectKey]bool{}
	for _, a := range addons {
		current[a.key] = true
		inv.add(a.key, a.u.GetAPIVersion())
	}
	if !o.DryRun {
		if err := c.saveInventory(ctx, set.Name, inv); err != nil {
			return nil, err
		}
	}

	report := &ApplyReport{}
	// Kinds whose CRD, and namespaces, this set brings and the server does
	// not have yet: a dry run cannot check what is in them.
	newKinds := map[schema.GroupKind]bool{}
	newNamespaces := map[string]bool{}
	if o.DryRun {
		for _, a := range addons {
			switch applyRank(a.u) {
			case 0:
				if gk := crdKind(a.u); !mapper.serves(gk) {
					newKinds[gk] = true
				}
			case 1:
				if _, err := c.cs.CoreV1().Namespaces().Get(ctx, a.key.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
					newNamespaces[a.key.Name] = true
				}
			}
		}
	}
	var failures []error
	failedCRDs := map[schema.GroupKind]error{}
	for _, a := range addons {
		gk := a.u.GroupVersionKind().GroupKind()
		if o.DryRun && (newKinds[gk] || newNamespaces[a.key.Namespace]) {
			report.Changes = append(report.Changes, a.change(Created))
			continue
		}
		var change ObjectChange
		if cerr := failedCRDs[gk]; cerr != nil {
			change, err = a.change(ApplyFailed), fmt.Errorf("apply %s %s: its CustomResourceDefinition failed: %w", a.key.Kind, qualified(a.key.Namespace, a.key.Name), cerr)
		} else {
			change, err = c.applyOne(ctx, dyn, mapper, a, o)
			if err == nil && applyRank(a.u) == 0 && !o.DryRun {
				err = c.waitEstablished(ctx, dyn, a.key.Name)
			}
		}
		if err != nil {
			change.Action, change.Err = ApplyFailed, err
			failures = append(failures, err)
			if applyRank(a.u) == 0 {
				failedCRDs[crdKind(a.u)] = err
			}
		}
		report.Changes = append(report.Changes, change)
	}
	if len(failures) > 0 {
		pruned := ""
		if o.Prune {
			pruned = "; nothing pruned"
		}
		return report, fmt.Errorf("apply add-on set %s: %d of %d objects failed%s: %w", set.Name, len(failures), len(addons), pruned, errors.Join(failures...))
	}

	if o.Prune {
		pruned, err := c.prune(ctx, dyn, mapper, set.Name, inv, current, o.DryRun)
		report.Changes = append(report.Changes, pruned...)
		if !o.DryRun {
			if serr := c.saveInventory(ctx, set.Name, inv); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		if err != nil {
			return report, err
		}
	}
	if !o.DryRun && o.RolloutTimeout > 0 {
		objs := make([]*unstructured.Unstructured, len(addons))
		for i, a := range addons {
			objs[i] = a.u
		}
		if err := c.waitRollouts(ctx, dyn, objs, o.RolloutTimeout); err != nil {
			return report, err
		}
	}
	return report, nil
}

func (a *addon) change(act Action) ObjectChange {
	return ObjectChange{Kind: a.key.Kind, Namespace: a.key.Namespace, Name: a.key.Name, Action: act}
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// apiMapper maps kinds to resources from the server's discovery, read
// again by reset. Unlike client-go's cached discovery it does not log a
// group that fails discovery (an aggregated API that is down) through
// klog to the process's stderr; such a group's kinds are simply not found.
type apiMapper struct {
	dc discovery.DiscoveryInterface
	meta.RESTMapper
}

func (m *apiMapper) reset() error {
	groups, err := restmapper.GetAPIGroupResources(m.dc)
	if err != nil {
		return fmt.Errorf("discover the API server's kinds: %w", err)
	}
	m.RESTMapper = restmapper.NewDiscoveryRESTMapper(groups)
	return nil
}

func (m *apiMapper) serves(gk schema.GroupKind) bool {
	_, err := m.RESTMapping(gk)
	return err == nil
}

// crdKind is the kind a CustomResourceDefinition defines.
func crdKind(u *unstructured.Unstructured) schema.GroupKind {
	group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(u.Object, "spec", "names", "kind")
	return schema.GroupKind{Group: group, Kind: kind}
}

// resolveAddons copies and labels the set's objects, resolves each one's
// kind, version and scope (one discovery refresh for what is not found at
// first), and orders them for applying. Every object that cannot be
// resolved, and every object named twice, is reported at once.
func resolveAddons(set AddonSet, mapper *apiMapper) ([]*addon, error) {
	// The kinds the set's own CRDs define: their scope and versions.
	type crdInfo struct {
		namespaced bool
		versions   []string
	}
	setKinds := map[schema.GroupKind]crdInfo{}
	for _, u := range set.Objects {
		if u == nil || applyRank(u) != 0 {
			continue
		}
		scope, _, _ := unstructured.NestedString(u.Object, "spec", "scope")
		info := crdInfo{namespaced: scope != "Cluster"}
		vs, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
		for _, v := range vs {
			if m, ok := v.(map[string]any); ok {
				if name, ok := m["name"].(string); ok {
					info.versions = append(info.versions, name)
				}
			}
		}
		setKinds[crdKind(u)] = info
	}

	verr := &kubefoundry.ValidationError{Object: "add-on set " + set.Name}
	var addons, pending []*addon
	for i, u := range set.Objects {
		field := fmt.Sprintf("Objects[%d]", i)
		if u == nil {
			verr.Add(field, "", "no object")
			continue
		}
		a := &addon{u: u.DeepCopy(), index: i}
		l := a.u.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[AddonSetLabel] = set.Name
		a.u.SetLabels(l)
		gvk := a.u.GroupVersionKind()
		if info, ok := setKinds[gvk.GroupKind()]; ok {
			if !slices.Contains(info.versions, gvk.Version) {
				verr.Add(field+".apiVersion", a.u.GetAPIVersion(), "%s %s: the set's CustomResourceDefinition defines versions %s only", gvk.Kind, a.u.GetName(), strings.Join(info.versions, ", "))
				continue
			}
			a.scope(info.namespaced)
			addons = append(addons, a)
			continue
		}
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			pending = append(pending, a)
			continue
		}
		a.mapping = m
		a.scope(m.Scope.Name() == meta.RESTScopeNameNamespace)
		addons = append(addons, a)
	}
	if len(pending) > 0 {
		// A kind just added to the server (by another set's CRD, or an
		// aggregated API coming up) may be missing from what was read.
		if err := mapper.reset(); err != nil {
			return nil, err
		}
		for _, a := range pending {
			field := fmt.Sprintf("Objects[%d]", a.index)
			gvk := a.u.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			switch {
			case err == nil:
				a.mapping = m
				a.scope(m.Scope.Name() == meta.RESTScopeNameNamespace)
				addons = append(addons, a)
			case mapper.serves(gvk.GroupKind()):
				verr.Add(field+".apiVersion", a.u.GetAPIVersion(), "%s %s: the API server does not serve this version of %s", gvk.Kind, a.u.GetName(), gvk.Kind)
			default:
				verr.Add(field+".kind", gvk.Kind, "%s %s: the API server serves no such kind in %q and no CustomResourceDefinition of the set defines it", gvk.Kind, a.u.GetName(), a.u.GetAPIVersion())
			}
		}
	}
	slices.SortFunc(addons, func(a, b *addon) int { return a.index - b.index })
	seen := map[objectKey]int{}
	for _, a := range addons {
		if j, dup := seen[a.key]; dup {
			verr.Add(fmt.Sprintf("Objects[%d]", a.index), qualified(a.key.Namespace, a.key.Name), "the same %s as Objects[%d]", a.key.Kind, j)
			continue
		}
		seen[a.key] = a.index
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(addons, func(i, j int) bool { return applyRank(addons[i].u) < applyRank(addons[j].u) })
	return addons, nil
}

// scope settles the object's namespace as the server will: a namespaced
// object without one goes to default, a cluster-scoped one has none.
func (a *addon) scope(namespaced bool) {
	switch {
	case namespaced && a.u.GetNamespace() == "":
		a.u.SetNamespace(metav1.NamespaceDefault)
	case !namespaced:
		a.u.SetNamespace("")
	}
	gvk := a.u.GroupVersionKind()
	a.key = objectKey{Group: gvk.Group, Kind: gvk.Kind, Namespace: a.u.GetNamespace(), Name: a.u.GetName()}
}

// applyRank orders CRDs, then Namespaces, then the rest.
func applyRank(u *unstructured.Unstructured) int {
	return rankOf(u.GroupVersionKind().GroupKind())
}

func rankOf(gk schema.GroupKind) int {
	switch gk {
	case schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return 0
	case schema.GroupKind{Kind: "Namespace"}:
		return 1
	}
	return 2
}

func resourceFor(dyn dynamic.Interface, m *meta.RESTMapping, ns string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return dyn.Resource(m.Resource).Namespace(ns)
	}
	return dyn.Resource(m.Resource)
}

func (c *Client) applyOne(ctx context.Context, dyn dynamic.Interface, mapper *apiMapper, a *addon, o ApplyOptions) (ObjectChange, error) {
	ch := a.change("")
	u := a.u
	what := u.GetKind() + " " + qualified(a.key.Namespace, a.key.Name)
	mapping := a.mapping
	if mapping == nil {
		// A kind of one of the set's CRDs: served a moment after the CRD
		// is Established.
		gvk := u.GroupVersionKind()
		var merr error
		perr := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
			if merr = mapper.reset(); merr != nil {
				return false, nil
			}
			mapping, merr = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			return merr == nil, nil
		})
		if perr != nil {
			return ch, fmt.Errorf("apply %s: its kind is not served yet: %w", what, cmp.Or(merr, perr))
		}
	}
	ri := resourceFor(dyn, mapping, a.key.Namespace)
	before, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		before = nil
	case err != nil:
		return ch, fmt.Errorf("read %s: %w", what, err)
	}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: !o.KeepOthers}
	if o.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	after, err := ri.Apply(ctx, u.GetName(), u, opts)
	if apierrors.IsConflict(err) {
		ce := &ConflictError{Kind: u.GetKind(), Namespace: a.key.Namespace, Name: a.key.Name, Err: err}
		var st apierrors.APIStatus
		if errors.As(err, &st) && st.Status().Details != nil {
			for _, cause := range st.Status().Details.Causes {
				if cause.Type == metav1.CauseTypeFieldManagerConflict {
					ce.Conflicts = append(ce.Conflicts, FieldConflict{Field: cause.Field, Manager: conflictManager(cause.Message), Message: cause.Message})
				}
			}
		}
		return ch, ce
	}
	if err != nil {
		return ch, fmt.Errorf("apply %s: %w", what, err)
	}
	switch {
	case before == nil:
		ch.Action = Created
	case sameContent(before, after):
		ch.Action = Unchanged
	default:
		ch.Action = Updated
		hide := func(string) bool { return false }
		if a.key.Group == "" && a.key.Kind == "Secret" {
			hide = secretValue
		}
		ch.Diff = diffFields("", stripVolatile(before), stripVolatile(after), hide, nil)
	}
	return ch, nil
}

// conflictManager picks the manager out of the server's words for a
// conflict: `conflict with "kubectl-patch" using v1`.
func conflictManager(msg string) string {
	_, rest, ok := strings.Cut(msg, "conflict with ")
	if !ok {
		return ""
	}
	q, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return ""
	}
	m, _ := strconv.Unquote(q)
	return m
}

// secretValue reports whether a path of a Secret holds a value never to be
// shown: its data, its stringData, and the copy of both client-side apply
// keeps in an annotation.
func secretValue(path string) bool {
	return path == "data" || path == "stringData" ||
		strings.HasPrefix(path, "data.") || strings.HasPrefix(path, "stringData.") ||
		path == "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration"
}

// diffFields lists the leaf fields that differ between a and b; a field
// for which hide is true is named, and its values are not shown.
func diffFields(path string, a, b any, hide func(string) bool, out []string) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	// A map added or removed is walked too, so that each of its fields is
	// listed (and hidden where it must be).
	if aok && b == nil {
		bm, bok = map[string]any{}, true
	}
	if bok && a == nil {
		am, aok = map[string]any{}, true
	}
	if aok && bok {
		keys := maps.Clone(am)
		maps.Copy(keys, bm)
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			out = diffFields(p, am[k], bm[k], hide, out)
		}
		return out
	}
	if equality.Semantic.DeepEqual(a, b) {
		return out
	}
	if hide(path) {
		how := "changed"
		switch {
		case a == nil:
			how = "added"
		case b == nil:
			how = "removed"
		}
		return append(out, fmt.Sprintf("%s: %s (value hidden)", path, how))
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

// inventoryEntry is one object in the stored inventory. Its apiVersion is
// the one it was last applied with; only its group counts for identity.
type inventoryEntry struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// inventory is a set's objects in the order they were first applied.
type inventory struct {
	entries map[objectKey]inventoryEntry
	order   []objectKey
}

func (inv *inventory) add(k objectKey, apiVersion string) {
	if _, ok := inv.entries[k]; !ok {
		inv.order = append(inv.order, k)
	}
	inv.entries[k] = inventoryEntry{APIVersion: apiVersion, Kind: k.Kind, Namespace: k.Namespace, Name: k.Name}
}

func (inv *inventory) remove(k objectKey) {
	delete(inv.entries, k)
	inv.order = slices.DeleteFunc(inv.order, func(o objectKey) bool { return o == k })
}

// loadInventory reads a set's inventory. An entry is keyed as the server
// identifies its object: a namespaced one stored without a namespace (as
// earlier versions wrote it) is in default.
func (c *Client) loadInventory(ctx context.Context, set string, mapper *apiMapper) (*inventory, error) {
	inv := &inventory{entries: map[objectKey]inventoryEntry{}}
	cm, err := c.cs.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, inventoryName(set), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return inv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("add-on inventory of %s: %w", set, err)
	}
	var entries []inventoryEntry
	if err := json.Unmarshal([]byte(cm.Data["objects"]), &entries); err != nil {
		return nil, fmt.Errorf("add-on inventory of %s: %w", set, err)
	}
	for _, e := range entries {
		gv, err := schema.ParseGroupVersion(e.APIVersion)
		if err != nil {
			return nil, fmt.Errorf("add-on inventory of %s: %s %s: %w", set, e.Kind, e.Name, err)
		}
		k := objectKey{Group: gv.Group, Kind: e.Kind, Namespace: e.Namespace, Name: e.Name}
		if m, err := mapper.RESTMapping(gv.WithKind(e.Kind).GroupKind()); err == nil {
			if m.Scope.Name() != meta.RESTScopeNameNamespace {
				k.Namespace = ""
			} else if k.Namespace == "" {
				k.Namespace = metav1.NamespaceDefault
			}
		}
		inv.add(k, e.APIVersion)
	}
	return inv, nil
}

func (c *Client) saveInventory(ctx context.Context, set string, inv *inventory) error {
	entries := make([]inventoryEntry, len(inv.order))
	for i, k := range inv.order {
		entries[i] = inv.entries[k]
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

// prune deletes, workloads before namespaces before CRDs, what the
// inventory holds and the current apply does not, if it still carries the
// set's label, and takes out of the inventory what is gone or no longer
// the set's. One that fails to go stays in the inventory and does not stop
// the rest.
func (c *Client) prune(ctx context.Context, dyn dynamic.Interface, mapper *apiMapper, set string, inv *inventory, current map[objectKey]bool, dryRun bool) ([]ObjectChange, error) {
	var candidates []objectKey
	for _, k := range inv.order {
		if !current[k] {
			candidates = append(candidates, k)
		}
	}
	slices.Reverse(candidates)
	sort.SliceStable(candidates, func(i, j int) bool {
		return rankOf(schema.GroupKind{Group: candidates[i].Group, Kind: candidates[i].Kind}) > rankOf(schema.GroupKind{Group: candidates[j].Group, Kind: candidates[j].Kind})
	})
	var changes []ObjectChange
	var errs []error
	for _, k := range candidates {
		ch := ObjectChange{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, Action: Pruned}
		what := k.Kind + " " + qualified(k.Namespace, k.Name)
		m, err := mapper.RESTMapping(schema.GroupKind{Group: k.Group, Kind: k.Kind})
		if err != nil {
			inv.remove(k) // its kind is gone, and the object with it
			continue
		}
		ri := resourceFor(dyn, m, k.Namespace)
		cur, err := ri.Get(ctx, k.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			inv.remove(k)
			continue
		case err != nil:
			ch.Action, ch.Err = ApplyFailed, fmt.Errorf("prune %s: %w", what, err)
		case cur.GetLabels()[AddonSetLabel] != set:
			inv.remove(k) // no longer ours: someone took it over
			continue
		default:
			// Only the object read, unchanged since: one taken over in
			// between is not deleted.
			uid, rv := cur.GetUID(), cur.GetResourceVersion()
			opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}}
			if dryRun {
				opts.DryRun = []string{metav1.DryRunAll}
			}
			if err := ri.Delete(ctx, k.Name, opts); err != nil && !apierrors.IsNotFound(err) {
				ch.Action, ch.Err = ApplyFailed, fmt.Errorf("prune %s: %w", what, err)
			}
		}
		if ch.Err != nil {
			errs = append(errs, ch.Err)
		} else {
			inv.remove(k)
		}
		changes = append(changes, ch)
	}
	if len(errs) > 0 {
		return changes, fmt.Errorf("prune add-on set %s: %w", set, errors.Join(errs...))
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
		if c.Err != nil {
			fmt.Fprintf(&b, "    %v\n", c.Err)
		}
		for _, d := range c.Diff {
			fmt.Fprintf(&b, "    %s\n", d)
		}
	}
	return b.String()
}
