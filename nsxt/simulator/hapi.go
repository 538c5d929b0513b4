package simulator

import (
	"net/http"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/bindings"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data/serializers/cleanjson"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"
)

// patchInfra applies a hierarchical PATCH of /infra to s: every Child*
// wrapper creates, updates or (marked_for_delete) deletes one object, and a
// ChildResourceReference descends into an existing object without changing
// it. The caller validates the end state, so the order of the tree does not
// matter, as in NSX.
func (s *store) patchInfra(body map[string]any, checkRevision bool) error {
	dv, err := cleanjson.NewJsonToDataValueDecoder().Decode(body)
	if err != nil {
		return errorf(http.StatusBadRequest, "infra: %v", err)
	}
	if _, errs := bindings.NewTypeConverter().ConvertToGolang(dv, model.InfraBindingType()); len(errs) > 0 {
		return errorf(http.StatusBadRequest, "infra: %v", bindings.VAPIerrorsToError(errs))
	}
	var deletes []string
	if err := s.patchChildren(s.objs["/infra"], body, checkRevision, &deletes); err != nil {
		return err
	}
	// Deepest first, so a parent goes after its children.
	for i := len(deletes) - 1; i >= 0; i-- {
		if err := s.remove(deletes[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) patchChildren(parent *object, body map[string]any, checkRevision bool, deletes *[]string) error {
	list, _ := body["children"].([]any)
	for _, c := range list {
		w, ok := c.(map[string]any)
		if !ok {
			return errorf(http.StatusBadRequest, "%s: a child is not an object", parent.path)
		}
		rt, _ := w["resource_type"].(string)
		if rt == "ChildResourceReference" {
			if err := s.patchReference(parent, w, checkRevision, deletes); err != nil {
				return err
			}
			continue
		}
		types, ok := wrappers[rt]
		if !ok {
			return errorf(http.StatusBadRequest, "%s: unsupported child type %q", parent.path, rt)
		}
		inner, _ := w[childKey(rt)].(map[string]any)
		if inner == nil {
			return errorf(http.StatusBadRequest, "%s: %s carries no %s", parent.path, rt, childKey(rt))
		}
		want, _ := inner["resource_type"].(string)
		if want == "" && len(types) == 1 {
			want = types[0]
		}
		k := kinds[want]
		if k == nil || k.wrapper != rt {
			return errorf(http.StatusBadRequest, "%s: %s cannot carry resource_type %q", parent.path, rt, want)
		}
		id, _ := inner["id"].(string)
		if id == "" {
			return errorf(http.StatusBadRequest, "%s: %s without an id", parent.path, want)
		}
		del, _ := w["marked_for_delete"].(bool)
		if d, _ := inner["marked_for_delete"].(bool); d {
			del = true
		}
		path := parent.path + "/" + k.collection + "/" + id
		if del {
			*deletes = append(*deletes, path)
			// Children named under a deleted parent are deleted too.
			if err := s.collectDeletes(path, k, inner, deletes); err != nil {
				return err
			}
			continue
		}
		o, err := s.upsert(parent, k, id, inner, modePatch, checkRevision)
		if err != nil {
			return err
		}
		if err := s.patchChildren(o, inner, checkRevision, deletes); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) collectDeletes(path string, k *kind, inner map[string]any, deletes *[]string) error {
	list, _ := inner["children"].([]any)
	for _, c := range list {
		w, _ := c.(map[string]any)
		rt, _ := w["resource_type"].(string)
		if rt == "ChildResourceReference" {
			// A reference under a deleted parent: what it names goes with
			// the parent; what is under it is deleted as named.
			tk := kinds[fmtString(w["target_type"])]
			if tk == nil {
				return errorf(http.StatusBadRequest, "%s: ChildResourceReference to unsupported target_type %v", path, w["target_type"])
			}
			if err := s.collectDeletes(path+"/"+tk.collection+"/"+fmtString(w["id"]), tk, w, deletes); err != nil {
				return err
			}
			continue
		}
		in, _ := w[childKey(rt)].(map[string]any)
		ck := kinds[fmtString(in["resource_type"])]
		if ck == nil && len(wrappers[rt]) == 1 {
			ck = kinds[wrappers[rt][0]]
		}
		id := fmtString(in["id"])
		if ck == nil || id == "" {
			return errorf(http.StatusBadRequest, "%s: child %s of a deleted object names no known object", path, rt)
		}
		p := path + "/" + ck.collection + "/" + id
		*deletes = append(*deletes, p)
		if err := s.collectDeletes(p, ck, in, deletes); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) patchReference(parent *object, w map[string]any, checkRevision bool, deletes *[]string) error {
	target := fmtString(w["target_type"])
	id := fmtString(w["id"])
	k := kindFor(parent.kind.resourceType, collectionOf(target), target)
	if k == nil {
		return errorf(http.StatusBadRequest, "%s: ChildResourceReference to unsupported target_type %q", parent.path, target)
	}
	path := parent.path + "/" + k.collection + "/" + id
	o := s.objs[path]
	if o == nil {
		return errorf(http.StatusNotFound, "ChildResourceReference: %s %s does not exist", target, path)
	}
	return s.patchChildren(o, w, checkRevision, deletes)
}

func collectionOf(resourceType string) string {
	if k := kinds[resourceType]; k != nil {
		return k.collection
	}
	return ""
}

func fmtString(v any) string { s, _ := v.(string); return s }
