package simulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/bindings"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data/serializers/cleanjson"
)

// object is one stored Policy intent. Its body is never mutated once
// stored: writes replace it, so a transaction can share objects with the
// store it was cloned from.
type object struct {
	kind     *kind
	path     string
	parent   string
	body     map[string]any
	system   bool // created by NSX itself (nat/USER), deleted with its parent
	realized realization
	deleted  int64 // when it was marked for delete (ms), while it awaits the purge
	// owner is the principal identity that made it, or "": NSX protects
	// what a principal identity makes from everyone else.
	owner string
}

type realization struct {
	state string // REALIZED, IN_PROGRESS or ERROR
	err   string
	attrs map[string]string // extended attributes: cidr, allocation_ip, ...
	reads int               // realized-state reads answered so far
}

func (o *object) revision() int64 { n, _ := toInt(o.body["_revision"]); return n }

func (o *object) str(key string) string { s, _ := o.body[key].(string); return s }

// apiError is an error answered with an NSX error body.
type apiError struct {
	status  int
	code    int64
	msg     string
	related []*apiError
}

func (e *apiError) Error() string { return e.msg }

// NSX's error codes for a delete refused because something still holds
// the object: children or references (500030), or, for a segment, ports
// (503040). Both come with HTTP 400.
const (
	inUseCode           = 500030
	segmentHasPortsCode = 503040
)

// coded is an error with NSX's error_code code.
func coded(status int, code int64, format string, args ...any) *apiError {
	e := errorf(status, format, args...)
	e.code = code
	return e
}

func errorf(status int, format string, args ...any) *apiError {
	code := int64(500012) // NSX's generic "invalid request" code
	switch status {
	case http.StatusNotFound:
		code = 500090
	case http.StatusPreconditionFailed:
		code = 604 // "The object was modified by somebody else"
	case http.StatusForbidden:
		code = 403
	}
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// store is the intent tree, keyed by policy path.
type store struct {
	objs map[string]*object
	// user is who writes (the request's actor): a user, or with pi a
	// principal identity; override is its X-Allow-Overwrite header.
	user         string
	pi, override bool
	now          func() int64
	refuseFull   bool // Config.RefuseFullBlocks
	// purging holds, by path, what was deleted and awaits NSX's purge
	// (Config.PurgeAfter), marked_for_delete.
	purging    map[string]*object
	purgeAfter time.Duration
}

func (s *store) clone() *store {
	return &store{objs: maps.Clone(s.objs), user: s.user, pi: s.pi, override: s.override, now: s.now, refuseFull: s.refuseFull,
		purging: maps.Clone(s.purging), purgeAfter: s.purgeAfter}
}

// notOwnerCode is NSX's error code for a write to an object a principal
// identity made, by anyone else, without X-Allow-Overwrite: true.
const notOwnerCode = 289

// mayChange refuses a change to o, or its delete, by anyone but the
// principal identity that made it, unless the request overrides.
func (s *store) mayChange(o *object) error {
	if o.owner == "" || o.owner == s.user || s.override {
		return nil
	}
	return coded(http.StatusBadRequest, notOwnerCode,
		"Principal '%s' with role '[enterprise_admin]' attempts to delete or modify an object of type %s it doesn't own. (createUser=%s, allowOverwrite=null)",
		s.user, o.kind.resourceType, o.owner)
}

// protection is o's _protection as viewer sees it: what a principal
// identity made is protected from everyone else, who may change it only
// with X-Allow-Overwrite: true (an enterprise admin).
func (o *object) protection(viewer string) string {
	if o.owner == "" || o.owner == viewer {
		return "NOT_PROTECTED"
	}
	return "REQUIRE_OVERRIDE"
}

// pendingDeleteCode is NSX's error code for a write to a path whose
// object is deleted but not purged yet.
const pendingDeleteCode = 500045

// mark deletes o: at once, or, with Config.PurgeAfter, by keeping a copy
// marked_for_delete until the purge. A marked object is not read by GET
// nor listed, but the search shows it, it keeps what it allocated, and
// its path cannot be written.
func (s *store) mark(o *object, at int64) {
	delete(s.objs, o.path)
	if s.purgeAfter <= 0 {
		return
	}
	m := *o
	m.body = maps.Clone(o.body)
	m.body["marked_for_delete"] = true
	m.deleted = at
	if s.purging == nil {
		s.purging = map[string]*object{}
	}
	s.purging[o.path] = &m
}

// due reports whether anything marked for delete is due for the purge at
// now (ms).
func (s *store) due(now int64) bool {
	for _, o := range s.purging {
		if now-o.deleted >= s.purgeAfter.Milliseconds() {
			return true
		}
	}
	return false
}

// purge forgets what was marked for delete at least Config.PurgeAfter
// before now (ms), releasing what it allocated; every marked object when
// all is set.
func (s *store) purge(now int64, all bool) {
	for p, o := range s.purging {
		if all || now-o.deleted >= s.purgeAfter.Milliseconds() {
			delete(s.purging, p)
		}
	}
}

// serverFields are set by NSX and ignored when a client sends them.
var serverFields = []string{
	"id", "path", "parent_path", "relative_path", "remote_path", "unique_id",
	"realization_id", "resource_type", "marked_for_delete", "overridden",
	"children", "_revision", "_create_time", "_create_user",
	"_last_modified_time", "_last_modified_user", "_protection",
	"_system_owned", "_links", "_self", "_schema", "owner_id", "origin_site_id",
}

// canonical runs a JSON object through the SDK binding of k and back, so
// what is stored has exactly the shape the SDK's model gives it: unknown
// fields dropped, types checked.
func canonical(k *kind, in map[string]any) (map[string]any, error) {
	body := maps.Clone(in)
	delete(body, "children")
	if _, ok := body["resource_type"]; !ok {
		body["resource_type"] = k.resourceType
	}
	dv, err := cleanjson.NewJsonToDataValueDecoder().Decode(body)
	if err != nil {
		return nil, err
	}
	tc := bindings.NewTypeConverter()
	g, errs := tc.ConvertToGolang(dv, k.binding())
	if len(errs) > 0 {
		return nil, bindings.VAPIerrorsToError(errs)
	}
	back, errs := tc.ConvertToVapi(g, k.binding())
	if len(errs) > 0 {
		return nil, bindings.VAPIerrorsToError(errs)
	}
	js, err := cleanjson.NewDataValueToJsonEncoder().Encode(back)
	if err != nil {
		return nil, err
	}
	return decodeJSON([]byte(js))
}

func decodeJSON(b []byte) (map[string]any, error) {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		return int64(n), true
	}
	return 0, false
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

type writeMode int

const (
	modePatch writeMode = iota // merge the sent fields into the object
	modePut                    // replace the object; _revision required on update
)

// upsert creates or updates the object id in collection of parent. body is
// what the client sent. checkRevision makes a sent _revision binding.
func (s *store) upsert(parent *object, k *kind, id string, in map[string]any, mode writeMode, checkRevision bool) (*object, error) {
	if id == "" || strings.ContainsAny(id, "/?#") || len(id) > 255 {
		return nil, errorf(http.StatusBadRequest, "invalid id %q for %s under %s", id, k.resourceType, parent.path)
	}
	if !k.hasParent(parent.kind.resourceType) {
		return nil, errorf(http.StatusBadRequest, "%s cannot be a child of %s %s", k.resourceType, parent.kind.resourceType, parent.path)
	}
	if k.wrapper == "" {
		return nil, errorf(http.StatusBadRequest, "%s objects are read-only", k.resourceType)
	}
	path := parent.path + "/" + k.collection + "/" + id
	if _, ok := s.purging[path]; ok {
		return nil, coded(http.StatusBadRequest, pendingDeleteCode, "An object with the same path=[%s] is marked for deletion. Either use another path or wait for the purge cycle (which runs every 5 minutes) for permanent removal of the object.", path)
	}
	body, err := canonical(k, in)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%s %s: %v", k.resourceType, path, err)
	}
	old := s.objs[path]
	if old != nil && old.kind != k {
		return nil, errorf(http.StatusBadRequest, "%s exists as %s, not %s", path, old.kind.resourceType, k.resourceType)
	}
	if old != nil {
		if err := s.mayChange(old); err != nil {
			return nil, err
		}
	}
	sent, hasRev := toInt(in["_revision"])
	if old != nil && (mode == modePut || (checkRevision && hasRev)) {
		if !hasRev {
			return nil, errorf(http.StatusPreconditionFailed, "%s %s: _revision is required to update it (current %d)", k.resourceType, path, old.revision())
		}
		if sent != old.revision() {
			return nil, errorf(http.StatusPreconditionFailed, "The object was modified by somebody else: %s %s is at _revision %d, the request sent %d", k.resourceType, path, old.revision(), sent)
		}
	}
	for _, f := range serverFields {
		delete(body, f)
	}
	now := s.now()
	var merged map[string]any
	if old != nil && mode == modePatch {
		merged = maps.Clone(old.body)
		maps.Copy(merged, body)
	} else {
		merged = body
		if old != nil {
			for _, f := range serverFields {
				if v, ok := old.body[f]; ok {
					merged[f] = v
				}
			}
		}
	}
	merged["id"] = id
	merged["resource_type"] = k.resourceType
	merged["path"] = path
	merged["parent_path"] = parent.path
	merged["relative_path"] = id
	merged["marked_for_delete"] = false
	merged["_last_modified_time"] = json.Number(fmt.Sprint(now))
	merged["_last_modified_user"] = s.user
	if _, ok := merged["display_name"]; !ok {
		merged["display_name"] = id
	}
	// What NSX made stays NSX's when a client updates it.
	o := &object{kind: k, path: path, parent: parent.path, body: merged, system: old != nil && old.system}
	switch {
	case old != nil:
		o.owner = old.owner
	case s.pi:
		o.owner = s.user
	}
	if old == nil {
		merged["_revision"] = json.Number("0")
		merged["_create_time"] = json.Number(fmt.Sprint(now))
		merged["_create_user"] = s.user
		merged["_system_owned"] = false
		merged["_protection"] = "NOT_PROTECTED"
		merged["unique_id"] = newUUID()
		merged["realization_id"] = merged["unique_id"]
		o.realized = realization{state: "REALIZED", attrs: map[string]string{}}
	} else {
		merged["_revision"] = json.Number(fmt.Sprint(old.revision() + 1))
		o.realized = old.realized
		o.realized.reads = 0
		o.realized.attrs = maps.Clone(old.realized.attrs)
		if o.realized.state == "IN_PROGRESS" {
			o.realized.state = "REALIZED"
		}
	}
	if check := checks[k.resourceType]; check != nil {
		if err := check(path, merged); err != nil {
			return nil, err
		}
	}
	if err := s.ipam(o, old); err != nil {
		return nil, err
	}
	s.objs[path] = o
	if old == nil && (k.resourceType == "Tier0" || k.resourceType == "Tier1") {
		for _, id := range []string{"USER", "DEFAULT", "INTERNAL"} {
			s.system(o, kinds["PolicyNat"], id, map[string]any{"nat_type": id})
		}
	}
	return o, nil
}

// system adds an object NSX creates by itself.
func (s *store) system(parent *object, k *kind, id string, body map[string]any) *object {
	path := parent.path + "/" + k.collection + "/" + id
	b := maps.Clone(body)
	b["id"], b["resource_type"], b["path"], b["parent_path"] = id, k.resourceType, path, parent.path
	b["relative_path"], b["display_name"] = id, id
	b["_revision"], b["_system_owned"], b["marked_for_delete"] = json.Number("0"), true, false
	b["_create_user"], b["_last_modified_user"] = "system", "system"
	b["unique_id"] = newUUID()
	o := &object{kind: k, path: path, parent: parent.path, body: b, system: true,
		realized: realization{state: "REALIZED", attrs: map[string]string{}}}
	s.objs[path] = o
	// What NSX makes anew replaces what it has not purged yet there.
	delete(s.purging, path)
	return o
}

// remove deletes path, the system-created objects under it and the
// children NSX deletes with it (see cascades). A missing path is not an
// error, as in NSX.
func (s *store) remove(path string) error { return s.removeAt(path, s.now()) }

// removeAt is remove, marking what it deletes as deleted at at (ms), so
// that an object and what goes with it are purged together.
func (s *store) removeAt(path string, at int64) error {
	o := s.objs[path]
	if o == nil {
		return nil
	}
	if o.system || o.kind.wrapper == "" || o.kind.resourceType == "Infra" {
		return errorf(http.StatusBadRequest, "%s %s is owned by the system and cannot be deleted", o.kind.resourceType, path)
	}
	if err := s.mayChange(o); err != nil {
		return err
	}
	s.mark(o, at)
	for p, c := range s.objs {
		if c.system && strings.HasPrefix(p, path+"/") {
			s.mark(c, at)
		}
	}
	for _, coll := range cascades[o.kind.resourceType] {
		for _, c := range s.children(path, coll) {
			if err := s.removeAt(c.path, at); err != nil {
				return err
			}
		}
	}
	return nil
}

// selfKeys hold an object's own paths, not references.
var selfKeys = map[string]bool{
	"path": true, "parent_path": true, "relative_path": true, "remote_path": true,
	"_links": true, "_self": true, "unique_id": true, "realization_id": true,
}

// refs lists the policy paths body refers to, by the field that holds them.
func refs(body map[string]any) [][2]string {
	var out [][2]string
	var walk func(field string, v any)
	walk = func(field string, v any) {
		switch x := v.(type) {
		case string:
			if strings.HasPrefix(x, "/infra/") {
				out = append(out, [2]string{field, x})
			}
		case []any:
			for _, e := range x {
				walk(field, e)
			}
		case map[string]any:
			for k, e := range x {
				walk(field+"."+k, e)
			}
		}
	}
	for k, v := range body {
		if !selfKeys[k] {
			walk(k, v)
		}
	}
	return out
}

// validate checks the end state of a transaction against NSX's rules:
// every object has its parent, every reference points at an object, and
// nothing deleted is still a parent or a referent. prev is the state the
// transaction started from, to tell a deletion from a bad reference.
func (s *store) validate(prev *store) error {
	paths := slices.Sorted(maps.Keys(s.objs))
	for _, p := range paths {
		o := s.objs[p]
		if o.parent != "" {
			if _, ok := s.objs[o.parent]; !ok {
				if _, was := prev.objs[o.parent]; was {
					if o.kind.resourceType == "SegmentPort" {
						return coded(http.StatusBadRequest, segmentHasPortsCode, "Segment %s cannot be deleted: it still has ports attached, such as %s", o.parent, p)
					}
					return coded(http.StatusBadRequest, inUseCode, "The object path=[%s] cannot be deleted as either it has children or it is being referenced by other objects: it has child %s %s", o.parent, o.kind.resourceType, p)
				}
				return errorf(http.StatusBadRequest, "parent %s of %s %s does not exist", o.parent, o.kind.resourceType, p)
			}
		}
		for _, r := range refs(o.body) {
			if _, ok := s.objs[r[1]]; ok {
				continue
			}
			if _, was := prev.objs[r[1]]; was {
				return coded(http.StatusBadRequest, inUseCode, "The object path=[%s] cannot be deleted as either it has children or it is being referenced by other objects: %s %s refers to it (field %s)", r[1], o.kind.resourceType, p, r[0])
			}
			return errorf(http.StatusBadRequest, "%s %s: field %s refers to %s, which does not exist", o.kind.resourceType, p, r[0], r[1])
		}
	}
	return nil
}

// children lists the objects directly under path in collection, sorted.
func (s *store) children(path, collection string) []*object {
	var out []*object
	prefix := path + "/" + collection + "/"
	for p, o := range s.objs {
		if strings.HasPrefix(p, prefix) && !strings.Contains(p[len(prefix):], "/") {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}
