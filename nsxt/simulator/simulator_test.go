package simulator_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	vapierrors "github.com/vmware/vsphere-automation-sdk-go/lib/vapi/std/errors"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/bindings"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/data/serializers/cleanjson"
	vapilog "github.com/vmware/vsphere-automation-sdk-go/runtime/log"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/protocol/client"
	"github.com/vmware/vsphere-automation-sdk-go/runtime/security"
	nsx_policy "github.com/vmware/vsphere-automation-sdk-go/services/nsxt"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/domains"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/domains/security_policies"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/ip_pools"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/realized_state"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/segments"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/tier_1s"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/search"
	"go.uber.org/goleak"

	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

const api = "/policy/api/v1"

func TestMain(m *testing.M) {
	// The SDK runtime logs every request through a package-level logger.
	vapilog.SetLogger(quiet{})
	goleak.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Error(...any)          {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Info(...any)           {}
func (quiet) Infof(string, ...any)  {}
func (quiet) Debug(...any)          {}
func (quiet) Debugf(string, ...any) {}

// env is a running simulator and the clients that talk to it over HTTPS.
type env struct {
	sim  *simulator.Server
	hc   *http.Client // trusts the simulator's certificate, sends no credentials
	conn client.Connector
}

func newEnv(t *testing.T, cfg simulator.Config) *env {
	t.Helper()
	sim, err := simulator.New(cfg)
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	hc := httpClient(t, sim, nil)
	return &env{sim: sim, hc: hc, conn: connector(sim, hc, sim.Username(), sim.Password())}
}

// httpClient trusts the simulator's certificate and presents cert, if any,
// whichever CAs the server says it accepts.
func httpClient(t *testing.T, sim *simulator.Server, cert *tls.Certificate) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(sim.CertificatePEM()))
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func connector(sim *simulator.Server, hc *http.Client, user, pw string) client.Connector {
	return client.NewConnector(sim.URL, client.UsingRest(nil), client.WithHttpClient(hc),
		client.WithSecurityContext(security.NewUserPasswordSecurityContext(user, pw)))
}

// call sends body as JSON to the Policy API path (query included) with the
// simulator's credentials and returns the status and the decoded answer.
func (e *env) call(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	return e.callAs(t, e.sim.Username(), e.sim.Password(), method, path, body)
}

func (e *env) callAs(t *testing.T, user, pw, method, path string, body any) (int, map[string]any) {
	t.Helper()
	return e.send(t, e.hc, user, pw, nil, method, path, body)
}

// send is call through hc (which may present a client certificate), as
// user (none when empty), with header.
func (e *env) send(t *testing.T, hc *http.Client, user, pw string, header http.Header, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.sim.URL+api+path, rd)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	return resp.StatusCode, decode(t, resp.Body)
}

func decode(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out map[string]any
	require.NoError(t, d.Decode(&out), "%s", b)
	return out
}

// realized returns the one realized entity NSX reports for intent.
func (e *env) realized(t *testing.T, intent string) model.GenericPolicyRealizedResource {
	t.Helper()
	res, err := realized_state.NewRealizedEntitiesClient(e.conn).List(intent, nil)
	require.NoError(t, err, intent)
	require.Len(t, res.Results, 1, intent)
	return res.Results[0]
}

func attr(r model.GenericPolicyRealizedResource, key string) string {
	for _, a := range r.ExtendedAttributes {
		if a.Key != nil && *a.Key == key && len(a.Values) == 1 {
			return a.Values[0]
		}
	}
	return ""
}

func ptr[T any](v T) *T { return &v }

// structValue converts a model value to what the SDK's polymorphic
// parameters and Child* lists carry.
func structValue(t *testing.T, v any, bt bindings.BindingType) *data.StructValue {
	t.Helper()
	dv, errs := bindings.NewTypeConverter().ConvertToVapi(v, bt)
	require.Empty(t, errs)
	return dv.(*data.StructValue)
}

func childTier1(t *testing.T, t1 model.Tier1) *data.StructValue {
	t1.ResourceType = ptr("Tier1")
	return structValue(t, model.ChildTier1{ResourceType: "ChildTier1", Tier1: &t1}, model.ChildTier1BindingType())
}

func childSegment(t *testing.T, s model.Segment) *data.StructValue {
	s.ResourceType = ptr("Segment")
	return structValue(t, model.ChildSegment{ResourceType: "ChildSegment", Segment: &s}, model.ChildSegmentBindingType())
}

func patchInfra(conn client.Connector, check bool, children ...*data.StructValue) error {
	return nsx_policy.NewInfraClient(conn).Patch(model.Infra{ResourceType: ptr("Infra"), Children: children}, &check)
}

func revision(t *testing.T, obj map[string]any) int64 {
	t.Helper()
	require.NotNil(t, obj)
	n, ok := obj["_revision"].(json.Number)
	require.True(t, ok, "_revision is %T %v", obj["_revision"], obj["_revision"])
	v, err := n.Int64()
	require.NoError(t, err)
	return v
}

func TestRevisions(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	t1s := infra.NewTier1sClient(e.conn)

	require.NoError(t, t1s.Patch("t1", model.Tier1{DisplayName: ptr("first"), Tier0Path: ptr("/infra/tier-0s/t0")}))
	got, err := t1s.Get("t1")
	require.NoError(t, err)
	require.Equal(t, "/infra/tier-1s/t1", *got.Path)
	require.Equal(t, "/infra", *got.ParentPath)
	require.Equal(t, "t1", *got.Id)
	require.Equal(t, int64(0), *got.Revision)
	require.Equal(t, e.sim.Username(), *got.CreateUser)

	require.NoError(t, t1s.Patch("t1", model.Tier1{DisplayName: ptr("second")}))
	got, err = t1s.Get("t1")
	require.NoError(t, err)
	require.Equal(t, int64(1), *got.Revision)
	require.Equal(t, "second", *got.DisplayName)
	require.Equal(t, "/infra/tier-0s/t0", *got.Tier0Path, "PATCH merges")

	got.DisplayName = ptr("third")
	put, err := t1s.Update("t1", got)
	require.NoError(t, err)
	require.Equal(t, int64(2), *put.Revision)
	require.Equal(t, "third", *put.DisplayName)

	// The SDK sends the stale revision it holds.
	got.DisplayName = ptr("lost")
	_, err = t1s.Update("t1", got)
	require.ErrorAs(t, err, new(vapierrors.InvalidRequest), "NSX answers a stale _revision 412, which the SDK calls InvalidRequest")

	for _, tc := range []struct {
		name, method string
		body         map[string]any
	}{
		{"PUT with a stale _revision", http.MethodPut, map[string]any{"display_name": "lost", "_revision": 1}},
		{"PUT with a future _revision", http.MethodPut, map[string]any{"display_name": "lost", "_revision": 7}},
		{"PUT without _revision", http.MethodPut, map[string]any{"display_name": "lost"}},
		{"PATCH with a stale _revision", http.MethodPatch, map[string]any{"display_name": "lost", "_revision": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.call(t, tc.method, "/infra/tier-1s/t1", tc.body)
			require.Equal(t, http.StatusPreconditionFailed, status, "%v", body)
			require.Equal(t, json.Number("604"), body["error_code"])
			require.Contains(t, body["error_message"], "/infra/tier-1s/t1")
		})
	}
	status, cur := e.call(t, http.MethodGet, "/infra/tier-1s/t1", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, int64(2), revision(t, cur))
	require.Equal(t, "third", cur["display_name"])

	// PUT replaces: fields not sent are gone.
	status, cur = e.call(t, http.MethodPut, "/infra/tier-1s/t1", map[string]any{"display_name": "fourth", "_revision": 2})
	require.Equal(t, http.StatusOK, status, "%v", cur)
	require.Equal(t, int64(3), revision(t, cur))
	require.NotContains(t, cur, "tier0_path")
	require.Equal(t, "/infra/tier-1s/t1", cur["path"])

	// A PUT that creates needs no revision.
	status, cur = e.call(t, http.MethodPut, "/infra/tier-1s/t1-new", map[string]any{"display_name": "new"})
	require.Equal(t, http.StatusOK, status, "%v", cur)
	require.Equal(t, int64(0), revision(t, cur))
	// Updating it does, even at revision 0.
	status, cur = e.call(t, http.MethodPut, "/infra/tier-1s/t1-new", map[string]any{"display_name": "newer"})
	require.Equal(t, http.StatusPreconditionFailed, status, "%v", cur)
	require.Contains(t, cur["error_message"], "_revision is required")
}

func TestHierarchicalPatchRevisionCheckIsAtomic(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	inv := e.sim.Inventory()

	require.NoError(t, patchInfra(e.conn, false,
		childTier1(t, model.Tier1{Id: ptr("t1"), Tier0Path: ptr("/infra/tier-0s/" + inv.Tier0)})))
	require.NoError(t, patchInfra(e.conn, false,
		childTier1(t, model.Tier1{Id: ptr("t1"), DisplayName: ptr("renamed")})))
	require.Equal(t, int64(1), revision(t, e.sim.Object("/infra/tier-1s/t1")))

	// A new segment and a stale update of t1 in one request: neither applies.
	err := patchInfra(e.conn, true,
		childSegment(t, model.Segment{Id: ptr("s1"), ConnectivityPath: ptr("/infra/tier-1s/t1"), TransportZonePath: ptr(inv.TransportZonePath())}),
		childTier1(t, model.Tier1{Id: ptr("t1"), DisplayName: ptr("stale"), Revision: ptr(int64(0))}))
	require.ErrorAs(t, err, new(vapierrors.InvalidRequest), "NSX answers a stale _revision 412, which the SDK calls InvalidRequest")
	require.Nil(t, e.sim.Object("/infra/segments/s1"))
	t1 := e.sim.Object("/infra/tier-1s/t1")
	require.Equal(t, int64(1), revision(t, t1))
	require.Equal(t, "renamed", t1["display_name"])

	// Without the check a stale revision is ignored, as in NSX.
	require.NoError(t, patchInfra(e.conn, false,
		childTier1(t, model.Tier1{Id: ptr("t1"), DisplayName: ptr("unchecked"), Revision: ptr(int64(0))})))
	require.Equal(t, int64(2), revision(t, e.sim.Object("/infra/tier-1s/t1")))

	// The current revision passes, and the whole tree applies.
	require.NoError(t, patchInfra(e.conn, true,
		childSegment(t, model.Segment{Id: ptr("s1"), ConnectivityPath: ptr("/infra/tier-1s/t1"), TransportZonePath: ptr(inv.TransportZonePath())}),
		childTier1(t, model.Tier1{Id: ptr("t1"), DisplayName: ptr("checked"), Revision: ptr(int64(2))})))
	require.Equal(t, int64(3), revision(t, e.sim.Object("/infra/tier-1s/t1")))
	s1 := e.sim.Object("/infra/segments/s1")
	require.NotNil(t, s1)
	require.Equal(t, "/infra/segments/s1", s1["path"])
	require.Equal(t, "/infra", s1["parent_path"])
	require.Equal(t, int64(0), revision(t, s1))
}

func TestHierarchicalPatchOrderAndDelete(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	inv := e.sim.Inventory()

	// The segment comes before the tier-1 it connects to: NSX resolves
	// the order itself.
	ls := structValue(t, model.ChildLocaleServices{ResourceType: "ChildLocaleServices", LocaleServices: &model.LocaleServices{
		Id: ptr("default"), ResourceType: ptr("LocaleServices"), EdgeClusterPath: ptr(inv.EdgeClusterPath())}},
		model.ChildLocaleServicesBindingType())
	t1 := model.Tier1{Id: ptr("t1"), ResourceType: ptr("Tier1"), Tier0Path: ptr("/infra/tier-0s/" + inv.Tier0), Children: []*data.StructValue{ls}}
	require.NoError(t, patchInfra(e.conn, false,
		childSegment(t, model.Segment{Id: ptr("s1"), ConnectivityPath: ptr("/infra/tier-1s/t1")}),
		structValue(t, model.ChildTier1{ResourceType: "ChildTier1", Tier1: &t1}, model.ChildTier1BindingType())))
	require.Equal(t, []string{
		"/infra/segments/s1",
		"/infra/tier-1s/t1",
		"/infra/tier-1s/t1/locale-services/default",
	}, e.sim.Paths())
	require.NotNil(t, e.sim.Object("/infra/tier-1s/t1/nat/USER"), "NSX creates a tier-1's NAT sections")

	// A reference descends into t1 and NSX's own NAT section without
	// changing them, to add a rule.
	rule := func(del bool) *data.StructValue {
		r := model.ChildPolicyNatRule{ResourceType: "ChildPolicyNatRule", PolicyNatRule: &model.PolicyNatRule{
			Id: ptr("snat"), ResourceType: ptr("PolicyNatRule"), Action: ptr("SNAT"),
			SourceNetwork: ptr("172.23.0.0/24"), TranslatedNetwork: ptr(inv.FloatingRange[0])}}
		if del {
			r.MarkedForDelete = ptr(true)
		}
		return structValue(t, model.ChildResourceReference{ResourceType: "ChildResourceReference", Id: ptr("USER"), TargetType: ptr("PolicyNat"),
			Children: []*data.StructValue{structValue(t, r, model.ChildPolicyNatRuleBindingType())}}, model.ChildResourceReferenceBindingType())
	}
	ref := func(id string, children ...*data.StructValue) *data.StructValue {
		return structValue(t, model.ChildResourceReference{ResourceType: "ChildResourceReference", Id: ptr(id), TargetType: ptr("Tier1"),
			Children: children}, model.ChildResourceReferenceBindingType())
	}
	require.NoError(t, patchInfra(e.conn, false, ref("t1", rule(false))))
	snat := e.sim.Object("/infra/tier-1s/t1/nat/USER/nat-rules/snat")
	require.NotNil(t, snat)
	require.Equal(t, "SNAT", snat["action"])
	require.Equal(t, int64(0), revision(t, e.sim.Object("/infra/tier-1s/t1")), "a reference does not change its target")
	err := patchInfra(e.conn, false, ref("nope", rule(false)))
	require.ErrorAs(t, err, new(vapierrors.NotFound))

	// Deleting the tier-1 alone leaves the segment pointing nowhere and
	// the rule without its section.
	err = patchInfra(e.conn, false, structValue(t, model.ChildTier1{ResourceType: "ChildTier1", MarkedForDelete: ptr(true),
		Tier1: &model.Tier1{Id: ptr("t1"), ResourceType: ptr("Tier1")}}, model.ChildTier1BindingType()))
	require.ErrorAs(t, err, new(vapierrors.InvalidRequest))
	require.Len(t, e.sim.Paths(), 4)

	// Deleting all of it in one request is fine, whatever the order; the
	// NAT sections go with their tier-1.
	require.NoError(t, patchInfra(e.conn, false,
		structValue(t, model.ChildTier1{ResourceType: "ChildTier1", MarkedForDelete: ptr(true),
			Tier1: &model.Tier1{Id: ptr("t1"), ResourceType: ptr("Tier1"), Children: []*data.StructValue{ls, rule(true)}}}, model.ChildTier1BindingType()),
		structValue(t, model.ChildSegment{ResourceType: "ChildSegment", MarkedForDelete: ptr(true),
			Segment: &model.Segment{Id: ptr("s1"), ResourceType: ptr("Segment")}}, model.ChildSegmentBindingType())))
	require.Empty(t, e.sim.Paths())
	require.Nil(t, e.sim.Object("/infra/tier-1s/t1/nat/USER"))
}

// A segment's ports (what a CNI or vCenter attaches) are served at
// /infra/segments/{id}/ports/{port}, by PATCH, GET, a listing and DELETE,
// and through the hierarchical API as ChildSegmentPort. As NSX does, a
// segment with ports cannot be deleted, neither alone nor in a
// hierarchical PATCH; with its ports marked for delete in the same PATCH,
// it can.
func TestSegmentPorts(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	inv := e.sim.Inventory()
	segs := infra.NewSegmentsClient(e.conn)
	ports := segments.NewPortsClient(e.conn)
	require.NoError(t, segs.Patch("s1", model.Segment{ConnectivityPath: ptr("/infra/tier-0s/" + inv.Tier0)}))

	require.NoError(t, ports.Patch("s1", "pod-a", model.SegmentPort{Tags: []model.Tag{{Scope: ptr("ncp/pod"), Tag: ptr("a")}}}))
	status, body := e.call(t, http.MethodPatch, "/infra/segments/s1/ports/vm-1", map[string]any{"resource_type": "SegmentPort"})
	require.Equal(t, http.StatusOK, status, "%v", body)
	got, err := ports.Get("s1", "pod-a")
	require.NoError(t, err)
	require.Equal(t, "/infra/segments/s1/ports/pod-a", *got.Path)
	require.Equal(t, "/infra/segments/s1", *got.ParentPath)
	list, err := ports.List("s1", nil, nil, nil, nil, nil, nil)
	require.NoError(t, err)
	require.Len(t, list.Results, 2)
	require.Equal(t, "REALIZED", *e.realized(t, "/infra/segments/s1/ports/pod-a").State)
	status, _ = e.call(t, http.MethodPatch, "/infra/segments/nope/ports/p", map[string]any{})
	require.Equal(t, http.StatusBadRequest, status, "no segment, no port")

	status, body = e.call(t, http.MethodDelete, "/infra/segments/s1", nil)
	require.Equal(t, http.StatusBadRequest, status, "it has ports")
	require.Contains(t, body["error_message"], "/infra/segments/s1/ports/")
	require.Equal(t, json.Number("503040"), body["error_code"], "NSX's code for a segment with ports")
	delSegment := func(children ...*data.StructValue) error {
		return patchInfra(e.conn, false, structValue(t, model.ChildSegment{ResourceType: "ChildSegment", MarkedForDelete: ptr(true),
			Segment: &model.Segment{Id: ptr("s1"), ResourceType: ptr("Segment"), Children: children}}, model.ChildSegmentBindingType()))
	}
	delPort := func(id string) *data.StructValue {
		return structValue(t, model.ChildSegmentPort{ResourceType: "ChildSegmentPort", MarkedForDelete: ptr(true),
			SegmentPort: &model.SegmentPort{Id: ptr(id), ResourceType: ptr("SegmentPort")}}, model.ChildSegmentPortBindingType())
	}
	require.ErrorAs(t, delSegment(), new(vapierrors.InvalidRequest))
	require.ErrorAs(t, delSegment(delPort("pod-a")), new(vapierrors.InvalidRequest), "one port is left")
	require.Len(t, e.sim.Paths(), 3, "nothing refused was deleted")

	require.NoError(t, ports.Delete("s1", "vm-1"))
	_, err = ports.Get("s1", "vm-1")
	require.ErrorAs(t, err, new(vapierrors.NotFound))
	require.NoError(t, delSegment(delPort("pod-a")))
	require.Empty(t, e.sim.Paths())
}

// As NSX does, deleting a security policy deletes its rules with it,
// whoever made them, by DELETE as by a hierarchical PATCH; other parents
// are still refused while they have children.
func TestSecurityPolicyGoesWithItsRules(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	policies := domains.NewSecurityPoliciesClient(e.conn)
	rules := security_policies.NewRulesClient(e.conn)
	makePolicy := func() {
		t.Helper()
		require.NoError(t, policies.Patch("default", "p1", model.SecurityPolicy{Category: ptr("Application")}))
		for _, id := range []string{"r1", "r2"} {
			require.NoError(t, rules.Patch("default", "p1", id, model.Rule{Action: ptr("ALLOW"),
				SourceGroups: []string{"ANY"}, DestinationGroups: []string{"ANY"}, Services: []string{"ANY"}}))
		}
		require.Len(t, e.sim.Paths(), 3)
	}

	makePolicy()
	status, body := e.call(t, http.MethodDelete, "/infra/domains/default/security-policies/p1", nil)
	require.Equal(t, http.StatusOK, status, "%v", body)
	require.Empty(t, e.sim.Paths(), "the rules went with their policy")

	makePolicy()
	require.NoError(t, patchInfra(e.conn, false, structValue(t, model.ChildResourceReference{ResourceType: "ChildResourceReference",
		Id: ptr("default"), TargetType: ptr("Domain"), Children: []*data.StructValue{
			structValue(t, model.ChildSecurityPolicy{ResourceType: "ChildSecurityPolicy", MarkedForDelete: ptr(true),
				SecurityPolicy: &model.SecurityPolicy{Id: ptr("p1"), ResourceType: ptr("SecurityPolicy")}}, model.ChildSecurityPolicyBindingType()),
		}}, model.ChildResourceReferenceBindingType())))
	require.Empty(t, e.sim.Paths(), "the same in a hierarchical PATCH")
}

func TestMissingObjectsAndReferences(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	inv := e.sim.Inventory()
	require.NoError(t, infra.NewTier1sClient(e.conn).Patch("t1", model.Tier1{Tier0Path: ptr("/infra/tier-0s/" + inv.Tier0)}))

	_, err := infra.NewTier1sClient(e.conn).Get("nope")
	require.ErrorAs(t, err, new(vapierrors.NotFound))

	for _, tc := range []struct {
		name, method, path string
		body               map[string]any
		want               int
		message            string
	}{
		{"get missing", http.MethodGet, "/infra/tier-1s/nope", nil, http.StatusNotFound, "/infra/tier-1s/nope"},
		{"get under missing parent", http.MethodGet, "/infra/tier-1s/nope/locale-services/default", nil, http.StatusNotFound, "nope"},
		{"list under missing parent", http.MethodGet, "/infra/tier-1s/nope/locale-services", nil, http.StatusNotFound, "nope"},
		{"get unknown api", http.MethodGet, "/infra/no-such-things/x", nil, http.StatusNotFound, "no-such-things"},
		{"parent missing", http.MethodPatch, "/infra/tier-1s/nope/locale-services/default",
			map[string]any{"edge_cluster_path": inv.EdgeClusterPath()}, http.StatusBadRequest, "/infra/tier-1s/nope"},
		{"tier0_path to nothing", http.MethodPatch, "/infra/tier-1s/t2",
			map[string]any{"tier0_path": "/infra/tier-0s/nope"}, http.StatusBadRequest, "/infra/tier-0s/nope"},
		{"connectivity_path to nothing", http.MethodPatch, "/infra/segments/s1",
			map[string]any{"connectivity_path": "/infra/tier-1s/nope"}, http.StatusBadRequest, "/infra/tier-1s/nope"},
		{"edge_cluster_path to nothing", http.MethodPatch, "/infra/tier-1s/t1/locale-services/default",
			map[string]any{"edge_cluster_path": "/infra/sites/default/enforcement-points/default/edge-clusters/nope"}, http.StatusBadRequest, "edge-clusters/nope"},
		{"wrong kind under parent", http.MethodPatch, "/infra/tier-1s/t1/ip-allocations/a",
			map[string]any{}, http.StatusBadRequest, "ip-allocations"},
		{"unknown field type", http.MethodPatch, "/infra/tier-1s/t3",
			map[string]any{"tier0_path": 7}, http.StatusBadRequest, "/infra/tier-1s/t3"},
		{"read-only inventory", http.MethodPatch, "/infra/sites/default/enforcement-points/default/edge-clusters/new",
			map[string]any{}, http.StatusBadRequest, "read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.call(t, tc.method, tc.path, tc.body)
			require.Equal(t, tc.want, status, "%v", body)
			require.Contains(t, body["error_message"], tc.message)
		})
	}
	require.Equal(t, []string{"/infra/tier-1s/t1"}, e.sim.Paths(), "nothing refused was stored")

	// The same rules through the SDK's hierarchical PATCH.
	err = patchInfra(e.conn, false, childTier1(t, model.Tier1{Id: ptr("t2"), Tier0Path: ptr("/infra/tier-0s/nope")}))
	require.ErrorAs(t, err, new(vapierrors.InvalidRequest))
	require.Nil(t, e.sim.Object("/infra/tier-1s/t2"))
}

func TestDelete(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	inv := e.sim.Inventory()
	t1s := infra.NewTier1sClient(e.conn)
	lss := tier_1s.NewLocaleServicesClient(e.conn)
	segs := infra.NewSegmentsClient(e.conn)

	require.NoError(t, t1s.Patch("t1", model.Tier1{Tier0Path: ptr("/infra/tier-0s/" + inv.Tier0)}))
	require.NoError(t, lss.Patch("t1", "default", model.LocaleServices{EdgeClusterPath: ptr(inv.EdgeClusterPath())}))

	status, body := e.call(t, http.MethodDelete, "/infra/tier-1s/t1", nil)
	require.Equal(t, http.StatusBadRequest, status, "it has children")
	require.Contains(t, body["error_message"], "/infra/tier-1s/t1/locale-services/default")
	require.ErrorAs(t, t1s.Delete("t1"), new(vapierrors.InvalidRequest))

	require.NoError(t, lss.Delete("t1", "default"))
	require.NoError(t, segs.Patch("s1", model.Segment{ConnectivityPath: ptr("/infra/tier-1s/t1")}))
	status, body = e.call(t, http.MethodDelete, "/infra/tier-1s/t1", nil)
	require.Equal(t, http.StatusBadRequest, status, "still referenced")
	require.Contains(t, body["error_message"], "/infra/segments/s1")
	require.Contains(t, body["error_message"], "connectivity_path")
	require.Equal(t, json.Number("500030"), body["error_code"])
	require.NotNil(t, e.sim.Object("/infra/tier-1s/t1"))

	// A client may update NSX's own NAT section; it stays NSX's: it cannot
	// be deleted, and it still goes with its tier-1.
	status, body = e.call(t, http.MethodPatch, "/infra/tier-1s/t1/nat/USER", map[string]any{"description": "SNAT rules"})
	require.Equal(t, http.StatusOK, status, "%v", body)
	status, body = e.call(t, http.MethodDelete, "/infra/tier-1s/t1/nat/USER", nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body["error_message"], "cannot be deleted")

	require.NoError(t, segs.Delete("s1"))
	require.NoError(t, t1s.Delete("t1"))
	require.Empty(t, e.sim.Paths())
	_, err := t1s.Get("t1")
	require.ErrorAs(t, err, new(vapierrors.NotFound))
	require.Nil(t, e.sim.Object("/infra/tier-1s/t1/nat/USER"), "system NAT sections go with the tier-1")

	// Deleting what is not there succeeds, as in NSX.
	status, _ = e.call(t, http.MethodDelete, "/infra/tier-1s/t1", nil)
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, t1s.Delete("never-was"))

	// What NSX owns cannot be deleted.
	for _, p := range []string{
		"/infra/tier-0s/" + inv.Tier0 + "/nat/USER",
		"/infra/sites/default/enforcement-points/default/transport-zones/" + inv.TransportZone,
		"/infra/domains/default",
		"/infra/lb-monitor-profiles/default-tcp-lb-monitor",
		"/infra/lb-app-profiles/default-tcp-lb-app-profile",
		"/infra",
	} {
		status, body = e.call(t, http.MethodDelete, p, nil)
		require.Equal(t, http.StatusBadRequest, status, p)
		require.Contains(t, body["error_message"], "cannot be deleted", p)
	}
	// The seeded tier-0 is referenced by nothing but has children.
	status, body = e.call(t, http.MethodDelete, "/infra/tier-0s/"+inv.Tier0, nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, json.Number("500030"), body["error_code"], "NSX's code for an object with children or references")
	require.NotNil(t, e.sim.Object("/infra/tier-0s/"+inv.Tier0))
	// What the platform team made may go once nothing uses it.
	status, _ = e.call(t, http.MethodDelete, "/infra/ip-blocks/"+inv.PodBlock.ID, nil)
	require.Equal(t, http.StatusOK, status)
	require.Nil(t, e.sim.Object("/infra/ip-blocks/"+inv.PodBlock.ID))
}

// smallInventory has a /26 node block and a floating pool of four
// addresses, so exhaustion takes few requests.
func smallInventory() *simulator.Inventory {
	inv := simulator.DefaultInventory()
	inv.NodeBlock = simulator.Block{ID: "nodes-block", CIDR: "10.0.0.0/26"}
	inv.FloatingCIDR = "192.168.7.0/24"
	inv.FloatingRange = [2]string{"192.168.7.10", "192.168.7.13"}
	return &inv
}

// blockSubnet asks for a subnet of size addresses from block; id is only
// needed inside a hierarchical PATCH.
func blockSubnet(t *testing.T, id, block string, size int64) *data.StructValue {
	s := model.IpAddressPoolBlockSubnet{ResourceType: "IpAddressPoolBlockSubnet", IpBlockPath: ptr(block), SubnetSize: ptr(strconv.FormatInt(size, 10))}
	if id != "" {
		s.Id = &id
	}
	return structValue(t, s, model.IpAddressPoolBlockSubnetBindingType())
}

func TestBlockSubnetsNeverOverlap(t *testing.T) {
	e := newEnv(t, simulator.Config{Inventory: smallInventory()})
	inv := e.sim.Inventory()
	block := netip.MustParsePrefix(inv.NodeBlock.CIDR)
	blockPath := "/infra/ip-blocks/" + inv.NodeBlock.ID
	require.NoError(t, infra.NewIpPoolsClient(e.conn).Patch("nodes", model.IpAddressPool{}))
	subnets := ip_pools.NewIpSubnetsClient(e.conn)

	// 64 addresses, filled exactly, in an order that leaves holes to fill.
	sizes := []int64{16, 4, 16, 8, 16, 4}
	var got []netip.Prefix
	for i, size := range sizes {
		id := fmt.Sprintf("s%d", i)
		require.NoError(t, subnets.Patch("nodes", id, blockSubnet(t, "", blockPath, size)))
		r := e.realized(t, "/infra/ip-pools/nodes/ip-subnets/"+id)
		require.Equal(t, "REALIZED", *r.State, "%v", r.RuntimeError)
		require.Equal(t, "IpBlockSubnet", *r.EntityType)
		c, err := netip.ParsePrefix(attr(r, "cidr"))
		require.NoError(t, err)
		require.Equal(t, size, int64(1)<<(32-c.Bits()), "subnet %s of size %d", c, size)
		require.Equal(t, c.Masked(), c, "subnet %s is aligned", c)
		require.True(t, block.Contains(c.Addr()), "subnet %s inside %s", c, block)
		require.Equal(t, c.Addr().Next().String(), attr(r, "gateway_address"))
		for _, prev := range got {
			require.False(t, prev.Overlaps(c), "%s overlaps %s", c, prev)
		}
		got = append(got, c)
	}

	// Full: the block reports the exhaustion on the intent, which exists.
	require.NoError(t, subnets.Patch("nodes", "full", blockSubnet(t, "", blockPath, 4)))
	r := e.realized(t, "/infra/ip-pools/nodes/ip-subnets/full")
	require.Equal(t, "ERROR", *r.State)
	require.Empty(t, attr(r, "cidr"))
	require.NotNil(t, r.RuntimeError)
	require.Contains(t, *r.RuntimeError, "exhausted")
	require.Contains(t, *r.RuntimeError, blockPath)
	require.Len(t, r.Alarms, 1)
	require.Equal(t, *r.RuntimeError, *r.Alarms[0].Message)
	require.NotNil(t, e.sim.Object("/infra/ip-pools/nodes/ip-subnets/full"))

	// A subnet larger than the block is refused outright.
	err := subnets.Patch("nodes", "huge", blockSubnet(t, "", blockPath, 128))
	require.ErrorAs(t, err, new(vapierrors.InvalidRequest))

	// Deleting a subnet returns its space to the block.
	require.NoError(t, subnets.Delete("nodes", "s2", nil))
	require.NoError(t, subnets.Patch("nodes", "again", blockSubnet(t, "", blockPath, 16)))
	r = e.realized(t, "/infra/ip-pools/nodes/ip-subnets/again")
	require.Equal(t, "REALIZED", *r.State)
	require.Equal(t, got[2].String(), attr(r, "cidr"))

	// The size of an allocated subnet cannot change.
	err = subnets.Patch("nodes", "again", blockSubnet(t, "", blockPath, 8))
	require.ErrorAs(t, err, new(vapierrors.InvalidRequest))
}

// With RefuseFullBlocks a block with no room refuses a new subnet when it
// is written, as some NSX versions do: the whole request fails with 400,
// error code 520012 naming the block among its related errors (only
// there: the error itself has a generic code and names the subnet), and
// nothing of it is kept.
func TestFullBlockRefusesAtOnce(t *testing.T) {
	inv := smallInventory()
	inv.NodeBlock = simulator.Block{ID: "nodes-block", CIDR: "10.0.0.0/28"}
	e := newEnv(t, simulator.Config{Inventory: inv, RefuseFullBlocks: true})
	blockPath := "/infra/ip-blocks/nodes-block"
	require.NoError(t, infra.NewIpPoolsClient(e.conn).Patch("nodes", model.IpAddressPool{}))
	subnets := ip_pools.NewIpSubnetsClient(e.conn)
	require.NoError(t, subnets.Patch("nodes", "s0", blockSubnet(t, "", blockPath, 8)))
	require.Equal(t, "REALIZED", *e.realized(t, "/infra/ip-pools/nodes/ip-subnets/s0").State)

	// One subnet fits, the second does not: the hierarchical PATCH that
	// asks for both is refused, and neither is made.
	var kids []*data.StructValue
	for _, s := range []struct {
		id   string
		size int64
	}{{"s1", 4}, {"s2", 8}} {
		kids = append(kids, structValue(t, model.ChildIpAddressPoolSubnet{ResourceType: "ChildIpAddressPoolSubnet",
			IpAddressPoolSubnet: blockSubnet(t, s.id, blockPath, s.size)}, model.ChildIpAddressPoolSubnetBindingType()))
	}
	pool := model.IpAddressPool{Id: ptr("nodes"), ResourceType: ptr("IpAddressPool"), Children: kids}
	writes := e.sim.Writes()
	status, body := e.call(t, "PATCH", "/infra", map[string]any{"resource_type": "Infra", "children": []any{
		map[string]any{"resource_type": "ChildResourceReference", "target_type": "IpAddressPool", "id": "nodes",
			"children": toJSON(t, pool.Children)},
	}})
	require.Equal(t, http.StatusBadRequest, status, "%v", body)
	want := "IpAddressBlock with path=[" + blockPath + "] does not have spare capacity to satisfy new block subnet of size 8"
	require.Equal(t, json.Number("500127"), body["error_code"])
	require.Equal(t, "Error creating /infra/ip-pools/nodes/ip-subnets/s2", body["error_message"])
	require.Len(t, body["related_errors"], 1)
	rel := body["related_errors"].([]any)[0].(map[string]any)
	require.Equal(t, json.Number("520012"), rel["error_code"])
	require.Equal(t, want, rel["error_message"])
	require.Nil(t, e.sim.Object("/infra/ip-pools/nodes/ip-subnets/s1"), "the request applies entirely or not at all")
	require.Nil(t, e.sim.Object("/infra/ip-pools/nodes/ip-subnets/s2"))
	require.Equal(t, writes+1, e.sim.Writes())

	// Through the SDK the refusal is an InvalidRequest; a subnet that fits
	// is still made.
	err := subnets.Patch("nodes", "s2", blockSubnet(t, "", blockPath, 16))
	require.ErrorAs(t, err, new(vapierrors.InvalidRequest))
	require.NoError(t, subnets.Patch("nodes", "s1", blockSubnet(t, "", blockPath, 4)))
	require.Equal(t, "REALIZED", *e.realized(t, "/infra/ip-pools/nodes/ip-subnets/s1").State)
}

// toJSON turns StructValues into plain JSON values, for a raw request.
func toJSON(t *testing.T, svs []*data.StructValue) []any {
	t.Helper()
	var out []any
	for _, sv := range svs {
		js, err := cleanjson.NewDataValueToJsonEncoder().Encode(sv)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(js), &m))
		out = append(out, m)
	}
	return out
}

func TestBlockSubnetsFromManyPools(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	inv := e.sim.Inventory()
	block := netip.MustParsePrefix(inv.PodBlock.CIDR)
	blockPath := "/infra/ip-blocks/" + inv.PodBlock.ID

	// Pools and their subnets in one hierarchical PATCH; the block is
	// shared by every pool.
	var children []*data.StructValue
	for i := range 4 {
		sub := structValue(t, model.ChildIpAddressPoolSubnet{ResourceType: "ChildIpAddressPoolSubnet",
			IpAddressPoolSubnet: blockSubnet(t, "sub", blockPath, 256)}, model.ChildIpAddressPoolSubnetBindingType())
		pool := model.IpAddressPool{Id: ptr(fmt.Sprintf("ns-%d", i)), ResourceType: ptr("IpAddressPool"),
			Children: []*data.StructValue{sub}}
		children = append(children, structValue(t, model.ChildIpAddressPool{ResourceType: "ChildIpAddressPool", IpAddressPool: &pool},
			model.ChildIpAddressPoolBindingType()))
	}
	require.NoError(t, patchInfra(e.conn, false, children...))
	seen := map[netip.Prefix]bool{}
	for i := range 4 {
		r := e.realized(t, fmt.Sprintf("/infra/ip-pools/ns-%d/ip-subnets/sub", i))
		c := netip.MustParsePrefix(attr(r, "cidr"))
		require.Equal(t, 24, c.Bits())
		require.True(t, block.Contains(c.Addr()))
		for prev := range seen {
			require.False(t, prev.Overlaps(c), "%s overlaps %s", c, prev)
		}
		seen[c] = true
	}
}

func TestAllocationsNeverRepeat(t *testing.T) {
	e := newEnv(t, simulator.Config{Inventory: smallInventory()})
	inv := e.sim.Inventory()
	pool := inv.FloatingPool
	allocs := ip_pools.NewIpAllocationsClient(e.conn)
	first, last := netip.MustParseAddr(inv.FloatingRange[0]), netip.MustParseAddr(inv.FloatingRange[1])

	ipOf := map[string]string{} // allocation id to address
	for i := range 4 {
		id := fmt.Sprintf("a%d", i)
		require.NoError(t, allocs.Patch(pool, id, model.IpAddressAllocation{}))
		r := e.realized(t, "/infra/ip-pools/"+pool+"/ip-allocations/"+id)
		require.Equal(t, "REALIZED", *r.State)
		require.Equal(t, "IpAllocation", *r.EntityType)
		ip := attr(r, "allocation_ip")
		a, err := netip.ParseAddr(ip)
		require.NoError(t, err)
		require.False(t, a.Less(first) || last.Less(a), "%s outside %s-%s", a, first, last)
		for other, taken := range ipOf {
			require.NotEqual(t, taken, ip, "%s allocated to %s and %s", ip, other, id)
		}
		ipOf[id] = ip

		got, err := allocs.Get(pool, id)
		require.NoError(t, err)
		require.Equal(t, ip, *got.AllocationIp)
	}

	// The pool is exhausted: the intent exists, its realization fails.
	require.NoError(t, allocs.Patch(pool, "extra", model.IpAddressAllocation{}))
	r := e.realized(t, "/infra/ip-pools/"+pool+"/ip-allocations/extra")
	require.Equal(t, "ERROR", *r.State)
	require.Empty(t, attr(r, "allocation_ip"))
	require.Contains(t, *r.RuntimeError, "exhausted")
	require.Contains(t, *r.RuntimeError, "/infra/ip-pools/"+pool)

	// An address asked for by value must be free and in the pool.
	status, body := e.call(t, http.MethodPatch, "/infra/ip-pools/"+pool+"/ip-allocations/taken",
		map[string]any{"allocation_ip": inv.FloatingRange[0]})
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body["error_message"], "already allocated")
	err := allocs.Patch(pool, "outside", model.IpAddressAllocation{AllocationIp: ptr("192.168.7.200")})
	require.ErrorAs(t, err, new(vapierrors.InvalidRequest))
	require.Nil(t, e.sim.Object("/infra/ip-pools/"+pool+"/ip-allocations/taken"))

	// Updating an allocation keeps its address; it cannot be moved.
	require.NoError(t, allocs.Patch(pool, "a1", model.IpAddressAllocation{DisplayName: ptr("renamed")}))
	got, err := allocs.Get(pool, "a1")
	require.NoError(t, err)
	require.Equal(t, ipOf["a1"], *got.AllocationIp)
	require.Equal(t, "renamed", *got.DisplayName)
	err = allocs.Patch(pool, "a1", model.IpAddressAllocation{AllocationIp: ptr(inv.FloatingRange[1])})
	require.ErrorAs(t, err, new(vapierrors.InvalidRequest))

	// Deleting an allocation releases its address.
	freed := ipOf["a1"]
	require.NoError(t, allocs.Delete(pool, "a1"))
	require.NoError(t, allocs.Patch(pool, "by-value", model.IpAddressAllocation{AllocationIp: ptr(freed)}))
	r = e.realized(t, "/infra/ip-pools/"+pool+"/ip-allocations/by-value")
	require.Equal(t, "REALIZED", *r.State)
	require.Equal(t, freed, attr(r, "allocation_ip"))

	require.NoError(t, allocs.Delete(pool, "a2"))
	require.NoError(t, allocs.Patch(pool, "auto", model.IpAddressAllocation{}))
	r = e.realized(t, "/infra/ip-pools/"+pool+"/ip-allocations/auto")
	require.Equal(t, "REALIZED", *r.State)
	require.Equal(t, ipOf["a2"], attr(r, "allocation_ip"))
}

// A platform team may hand out several pod blocks and floating pools: each
// is seeded, allocates on its own and runs out on its own, and Allocated
// shows what each has handed out until it all goes back.
func TestMorePodBlocksAndPools(t *testing.T) {
	inv := simulator.DefaultInventory()
	inv.MorePodBlocks = []simulator.Block{{ID: "pods-2", CIDR: "10.8.0.0/29"}}
	inv.MoreFloatingPools = []simulator.Pool{{ID: "fip-2", CIDR: "192.168.9.0/24", Range: [2]string{"192.168.9.5", "192.168.9.5"}}}
	e := newEnv(t, simulator.Config{Inventory: &inv})
	require.NotNil(t, e.sim.Object("/infra/ip-blocks/pods-2"))
	require.NotNil(t, e.sim.Object("/infra/ip-pools/fip-2/ip-subnets/floating"))
	require.Empty(t, e.sim.Paths(), "the inventory is not a client's")
	require.Empty(t, e.sim.Allocated())

	require.NoError(t, infra.NewIpPoolsClient(e.conn).Patch("c", model.IpAddressPool{}))
	subnets := ip_pools.NewIpSubnetsClient(e.conn)
	allocs := ip_pools.NewIpAllocationsClient(e.conn)
	require.NoError(t, subnets.Patch("c", "one", blockSubnet(t, "", "/infra/ip-blocks/pods-2", 8)))
	require.NoError(t, subnets.Patch("c", "two", blockSubnet(t, "", "/infra/ip-blocks/"+inv.PodBlock.ID, 256)))
	require.NoError(t, allocs.Patch("fip-2", "a", model.IpAddressAllocation{}))
	require.NoError(t, allocs.Patch(inv.FloatingPool, "b", model.IpAddressAllocation{}))
	require.Equal(t, map[string][]string{
		"/infra/ip-blocks/pods-2":             {"10.8.0.0/29"},
		"/infra/ip-blocks/" + inv.PodBlock.ID: {"172.24.0.0/24"},
		"/infra/ip-pools/fip-2":               {"192.168.9.5"},
		"/infra/ip-pools/" + inv.FloatingPool: {inv.FloatingRange[0]},
	}, e.sim.Allocated())

	// The small ones run out; what fails holds nothing.
	require.NoError(t, subnets.Patch("c", "three", blockSubnet(t, "", "/infra/ip-blocks/pods-2", 4)))
	require.Equal(t, "ERROR", *e.realized(t, "/infra/ip-pools/c/ip-subnets/three").State)
	require.NoError(t, allocs.Patch("fip-2", "c", model.IpAddressAllocation{}))
	r := e.realized(t, "/infra/ip-pools/fip-2/ip-allocations/c")
	require.Equal(t, "ERROR", *r.State)
	require.Contains(t, *r.RuntimeError, "IP pool /infra/ip-pools/fip-2 is exhausted")
	require.Len(t, e.sim.Allocated(), 4)

	for _, id := range []string{"one", "two", "three"} {
		require.NoError(t, subnets.Delete("c", id, nil))
	}
	require.NoError(t, allocs.Delete("fip-2", "a"))
	require.NoError(t, allocs.Delete("fip-2", "c"))
	require.NoError(t, allocs.Delete(inv.FloatingPool, "b"))
	require.Empty(t, e.sim.Allocated())
}

// Collections are paged as NSX pages them: page_size results at most and a
// cursor to the rest.
func TestListPages(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	for i := range 5 {
		require.NoError(t, infra.NewTier1sClient(e.conn).Patch(fmt.Sprintf("t%d", i), model.Tier1{}))
	}
	var paths []string
	cursor := ""
	for page := 0; ; page++ {
		require.Less(t, page, 5)
		_, body := e.call(t, http.MethodGet, "/infra/tier-1s?page_size=2&cursor="+cursor, nil)
		require.Equal(t, json.Number("5"), body["result_count"])
		for _, r := range body["results"].([]any) {
			paths = append(paths, r.(map[string]any)["path"].(string))
		}
		next, _ := body["cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	require.Equal(t, []string{"/infra/tier-1s/t0", "/infra/tier-1s/t1", "/infra/tier-1s/t2", "/infra/tier-1s/t3", "/infra/tier-1s/t4"}, paths)
	status, _ := e.call(t, http.MethodGet, "/infra/tier-1s?cursor=x", nil)
	require.Equal(t, http.StatusBadRequest, status)
}

func TestRealizedState(t *testing.T) {
	e := newEnv(t, simulator.Config{RealizeAfterReads: 2})
	inv := e.sim.Inventory()
	t1s := infra.NewTier1sClient(e.conn)

	// What was there before any write is realized.
	r := e.realized(t, "/infra/tier-0s/"+inv.Tier0)
	require.Equal(t, "REALIZED", *r.State)
	require.Equal(t, "RealizedLogicalRouter", *r.EntityType)

	require.NoError(t, t1s.Patch("t1", model.Tier1{Tier0Path: ptr("/infra/tier-0s/" + inv.Tier0)}))
	var states []string
	for range 4 {
		r := e.realized(t, "/infra/tier-1s/t1")
		states = append(states, *r.State)
		require.Equal(t, []string{"/infra/tier-1s/t1"}, r.IntentPaths)
		require.Nil(t, r.RuntimeError)
	}
	require.Equal(t, []string{"IN_PROGRESS", "IN_PROGRESS", "REALIZED", "REALIZED"}, states)

	// An update is realized anew.
	require.NoError(t, t1s.Patch("t1", model.Tier1{DisplayName: ptr("renamed")}))
	require.Equal(t, "IN_PROGRESS", *e.realized(t, "/infra/tier-1s/t1").State)
	require.Equal(t, "IN_PROGRESS", *e.realized(t, "/infra/tier-1s/t1").State)
	require.Equal(t, "REALIZED", *e.realized(t, "/infra/tier-1s/t1").State)

	// A failed write leaves the realized state alone.
	status, _ := e.call(t, http.MethodPatch, "/infra/tier-1s/t1", map[string]any{"tier0_path": "/infra/tier-0s/nope"})
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "REALIZED", *e.realized(t, "/infra/tier-1s/t1").State)

	_, err := realized_state.NewRealizedEntitiesClient(e.conn).List("/infra/tier-1s/nope", nil)
	require.ErrorAs(t, err, new(vapierrors.NotFound))
}

func TestRealizedImmediately(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	require.NoError(t, infra.NewTier1sClient(e.conn).Patch("t1", model.Tier1{}))
	require.Equal(t, "REALIZED", *e.realized(t, "/infra/tier-1s/t1").State)
}

func TestBasicAuth(t *testing.T) {
	e := newEnv(t, simulator.Config{Username: "operator", Password: "s3cret!"})
	require.Equal(t, "operator", e.sim.Username())
	require.Equal(t, "s3cret!", e.sim.Password())

	for _, tc := range []struct {
		name, user, pw string
		want           int
	}{
		{"right", "operator", "s3cret!", http.StatusOK},
		{"wrong password", "operator", "guess", http.StatusForbidden},
		{"wrong user", "admin", "s3cret!", http.StatusForbidden},
		{"default credentials", "admin", "VMware1!VMware1!", http.StatusForbidden},
		{"none", "", "", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.callAs(t, tc.user, tc.pw, http.MethodGet, "/infra/tier-0s/t0", nil)
			require.Equal(t, tc.want, status, "%v", body)
			if tc.want == http.StatusOK {
				require.Equal(t, "/infra/tier-0s/t0", body["path"])
			} else {
				require.Equal(t, json.Number("403"), body["error_code"])
			}
		})
	}

	bad := connector(e.sim, e.hc, "operator", "guess")
	_, err := infra.NewTier1sClient(bad).Get("t1")
	require.ErrorAs(t, err, new(vapierrors.Unauthorized))
	err = infra.NewTier1sClient(bad).Patch("t1", model.Tier1{})
	require.ErrorAs(t, err, new(vapierrors.Unauthorized))
	require.Empty(t, e.sim.Paths(), "a refused write changes nothing")
}

func TestSearch(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	segs := infra.NewSegmentsClient(e.conn)
	tag := func(cluster string) []model.Tag {
		return []model.Tag{{Scope: ptr("kubefoundry/cluster"), Tag: ptr(cluster)}, {Scope: ptr("kubefoundry/owner"), Tag: ptr("test")}}
	}
	var want []string
	for i := range 5 {
		id := fmt.Sprintf("c1-seg-%d", i)
		require.NoError(t, segs.Patch(id, model.Segment{Tags: tag("c1")}))
		want = append(want, "/infra/segments/"+id)
	}
	require.NoError(t, segs.Patch("c2-seg", model.Segment{Tags: tag("c2")}))
	require.NoError(t, infra.NewTier1sClient(e.conn).Patch("c1-t1", model.Tier1{Tags: tag("c1")}))

	q := search.NewQueryClient(e.conn)
	query := `resource_type:Segment AND tags.scope:kubefoundry\/cluster AND tags.tag:c1`
	var got []string
	var cursor *string
	pages := 0
	for {
		res, err := q.List(query, cursor, nil, ptr(int64(2)), nil, nil)
		require.NoError(t, err)
		require.Equal(t, int64(len(want)), *res.ResultCount, "result_count is the total")
		require.LessOrEqual(t, len(res.Results), 2)
		for _, sv := range res.Results {
			v, err := sv.Field("path")
			require.NoError(t, err)
			got = append(got, unwrapString(t, v))
		}
		pages++
		if res.Cursor == nil {
			break
		}
		require.Less(t, pages, 10, "the cursor never ends")
		cursor = res.Cursor
	}
	require.Equal(t, 3, pages)
	require.Equal(t, want, got)

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{`tags.scope:kubefoundry\/cluster AND tags.tag:c1`, slices.Concat(want, []string{"/infra/tier-1s/c1-t1"})},
		{`resource_type:Tier1 AND tags.tag:c1`, []string{"/infra/tier-1s/c1-t1"}},
		{`resource_type:Segment AND tags.tag:(c2 OR nope)`, []string{"/infra/segments/c2-seg"}},
		{`resource_type:Segment AND tags.tag:c3`, nil},
		{`resource_type:Segment AND tags.scope:kubefoundry\/owner AND tags.tag:"c2"`, []string{"/infra/segments/c2-seg"}},
		{`resource_type:Segment AND id:c1-seg-4`, []string{"/infra/segments/c1-seg-4"}},
		{`resource_type:Segment AND display_name:c1\-seg\-*`, want},
	} {
		t.Run(tc.query, func(t *testing.T) {
			status, body := e.call(t, http.MethodGet, "/search/query?query="+url.QueryEscape(tc.query), nil)
			require.Equal(t, http.StatusOK, status, "%v", body)
			var paths []string
			for _, r := range body["results"].([]any) {
				paths = append(paths, r.(map[string]any)["path"].(string))
			}
			require.Equal(t, tc.want, paths)
			require.Equal(t, json.Number(fmt.Sprint(len(tc.want))), body["result_count"])
			require.NotContains(t, body, "cursor")
		})
	}

	for _, bad := range []string{`tags.tag:c1 OR tags.tag:c2`, `tags.tag:(c1`, `c1`} {
		status, _ := e.call(t, http.MethodGet, "/search/query?query="+url.QueryEscape(bad), nil)
		require.Equal(t, http.StatusBadRequest, status, bad)
	}
	status, _ := e.call(t, http.MethodGet, "/search/query?query=tags.tag:c1&cursor=x", nil)
	require.Equal(t, http.StatusBadRequest, status)
}

// FreezeSearch holds the search index where it is, whatever is written
// after and however long it takes, while GETs show every write;
// ThawSearch makes it catch up. Freezing again moves it up to the state
// as it is then. A long Config.SearchLag does not hold back what a freeze
// shows.
func TestFreezeSearch(t *testing.T) {
	for _, lag := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprint("SearchLag=", lag), func(t *testing.T) {
			e := newEnv(t, simulator.Config{SearchLag: lag})
			segs := infra.NewSegmentsClient(e.conn)
			tags := []model.Tag{{Scope: ptr("kubefoundry/cluster"), Tag: ptr("c1")}}
			found := func() []string {
				t.Helper()
				status, body := e.call(t, http.MethodGet, "/search/query?query="+url.QueryEscape(`tags.tag:c1`), nil)
				require.Equal(t, http.StatusOK, status, "%v", body)
				var paths []string
				for _, r := range body["results"].([]any) {
					paths = append(paths, r.(map[string]any)["path"].(string))
				}
				return paths
			}

			require.NoError(t, segs.Patch("a", model.Segment{Tags: tags}))
			e.sim.FreezeSearch()
			require.Equal(t, []string{"/infra/segments/a"}, found(), "a freeze shows what was written before it")
			require.NoError(t, segs.Patch("b", model.Segment{Tags: tags}))
			require.NoError(t, segs.Delete("a"))
			require.Equal(t, []string{"/infra/segments/a"}, found(), "nothing written after the freeze shows")
			status, _ := e.call(t, http.MethodGet, "/infra/segments/a", nil)
			require.Equal(t, http.StatusNotFound, status, "a GET shows every write")

			e.sim.FreezeSearch()
			require.Equal(t, []string{"/infra/segments/b"}, found(), "freezing again moves the index up")

			require.NoError(t, segs.Patch("c", model.Segment{Tags: tags}))
			e.sim.ThawSearch()
			require.Equal(t, []string{"/infra/segments/b", "/infra/segments/c"}, found(), "thawed, the index catches up")
			require.NoError(t, segs.Patch("d", model.Segment{Tags: tags}))
			want := []string{"/infra/segments/b", "/infra/segments/c"}
			if lag == 0 {
				want = append(want, "/infra/segments/d")
			}
			require.Equal(t, want, found(), "and then follows the writes as SearchLag says")
		})
	}
}

func unwrapString(t *testing.T, v data.DataValue) string {
	t.Helper()
	if o, ok := v.(*data.OptionalValue); ok {
		v = o.Value()
	}
	s, ok := v.(*data.StringValue)
	require.True(t, ok, "%T", v)
	return s.Value()
}

func TestFaultInjection(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	e.sim.Inject(&simulator.Fault{Method: http.MethodPatch, Path: regexp.MustCompile(`^/policy/api/v1/infra/tier-1s/`), Nth: 2, Status: http.StatusServiceUnavailable})
	t1s := infra.NewTier1sClient(e.conn)

	require.NoError(t, t1s.Patch("a", model.Tier1{}))
	_, err := t1s.Get("a") // a GET does not match the fault
	require.NoError(t, err)
	require.NoError(t, infra.NewSegmentsClient(e.conn).Patch("s", model.Segment{})) // nor another path
	err = t1s.Patch("b", model.Tier1{})
	require.ErrorAs(t, err, new(vapierrors.ServiceUnavailable))
	require.Nil(t, e.sim.Object("/infra/tier-1s/b"), "a faulted request is not served")
	require.NoError(t, t1s.Patch("b", model.Tier1{}))
	require.NoError(t, t1s.Patch("c", model.Tier1{}))

	require.Equal(t, map[string]int{
		"PATCH " + api + "/infra/tier-1s/a":  1,
		"GET " + api + "/infra/tier-1s/a":    1,
		"PATCH " + api + "/infra/segments/s": 1,
		"PATCH " + api + "/infra/tier-1s/b":  2,
		"PATCH " + api + "/infra/tier-1s/c":  1,
	}, e.sim.Requests())
	require.Equal(t, 5, e.sim.Writes())
	require.Equal(t, []string{"/infra/segments/s", "/infra/tier-1s/a", "/infra/tier-1s/b", "/infra/tier-1s/c"}, e.sim.Paths())
}

// A fault's Query matches the request's query, unescaped.
func TestFaultQuery(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	e.sim.Inject(&simulator.Fault{Method: http.MethodGet, Path: regexp.MustCompile(`/realized-entities$`),
		Query: regexp.MustCompile(`intent_path=/infra/tier-0s/t0$`), Nth: 1, Status: http.StatusServiceUnavailable})
	rc := realized_state.NewRealizedEntitiesClient(e.conn)
	_, err := rc.List("/infra/domains/default", nil)
	require.NoError(t, err, "another intent")
	_, err = rc.List("/infra/tier-0s/t0", nil)
	require.ErrorAs(t, err, new(vapierrors.ServiceUnavailable))
	_, err = rc.List("/infra/tier-0s/t0", nil)
	require.NoError(t, err)
}

func TestFaultTimes(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	e.sim.Inject(&simulator.Fault{Path: regexp.MustCompile(`/segments/`), Nth: 1, Times: 2, Status: http.StatusInternalServerError})
	segs := infra.NewSegmentsClient(e.conn)
	for i, want := range []int{500, 500, 200, 200} {
		status, body := e.call(t, http.MethodPatch, "/infra/segments/s", map[string]any{})
		require.Equal(t, want, status, "request %d: %v", i+1, body)
		if want != http.StatusOK {
			require.Contains(t, body["error_message"], "injected")
		}
	}
	_, err := segs.Get("s")
	require.NoError(t, err)
	// Refused credentials are counted too.
	status, _ := e.callAs(t, "admin", "wrong", http.MethodDelete, "/infra/segments/s", nil)
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, 5, e.sim.Writes())
	require.Equal(t, 1, e.sim.Requests()["GET "+api+"/infra/segments/s"])
	require.NotNil(t, e.sim.Object("/infra/segments/s"))
}

// certificate issues a certificate signed by ca (self-signed when ca is
// nil).
func certificate(t *testing.T, cn string, ca *tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	parent, signer := tmpl, any(key)
	if ca == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		parent, signer = ca.Leaf, ca.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func TestClientCertificate(t *testing.T) {
	ca := certificate(t, "principal-ca", nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	principal := certificate(t, "kubefoundry", &ca)
	stranger := certificate(t, "stranger", ptr(certificate(t, "other-ca", nil)))

	e := newEnv(t, simulator.Config{ClientCAs: pool})
	// No basic auth at all: the certificate is the identity.
	conn := client.NewConnector(e.sim.URL, client.UsingRest(nil), client.WithHttpClient(httpClient(t, e.sim, &principal)))
	require.NoError(t, infra.NewTier1sClient(conn).Patch("t1", model.Tier1{}))
	got, err := infra.NewTier1sClient(conn).Get("t1")
	require.NoError(t, err)
	require.Equal(t, "/infra/tier-1s/t1", *got.Path)

	noCAs := newEnv(t, simulator.Config{})
	for _, tc := range []struct {
		name       string
		env        *env
		cert       *tls.Certificate
		user, pw   string
		wantStatus int
	}{
		{"neither certificate nor credentials", e, nil, "", "", http.StatusForbidden},
		{"certificate from another CA", e, &stranger, "", "", http.StatusForbidden},
		{"certificate from another CA and credentials", e, &stranger, e.sim.Username(), e.sim.Password(), http.StatusOK},
		{"no CAs configured: certificate", noCAs, &principal, "", "", http.StatusForbidden},
		{"no CAs configured: certificate and credentials", noCAs, &principal, noCAs.sim.Username(), noCAs.sim.Password(), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tc.env.sim.URL+api+"/infra/tier-0s/t0", nil)
			require.NoError(t, err)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pw)
			}
			resp, err := httpClient(t, tc.env.sim, tc.cert).Do(req)
			require.NoError(t, err, "a certificate NSX does not know is refused with 403, not in the handshake")
			defer resp.Body.Close()
			require.Equal(t, tc.wantStatus, resp.StatusCode)
		})
	}
}

func TestListAndObject(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	inv := e.sim.Inventory()
	for _, id := range []string{"b", "a"} {
		require.NoError(t, infra.NewTier1sClient(e.conn).Patch(id, model.Tier1{Tags: []model.Tag{{Scope: ptr("k"), Tag: ptr(id)}}}))
	}
	res, err := infra.NewTier1sClient(e.conn).List(nil, nil, nil, nil, nil, nil)
	require.NoError(t, err)
	require.Len(t, res.Results, 2)
	require.Equal(t, "/infra/tier-1s/a", *res.Results[0].Path)
	require.Equal(t, "/infra/tier-1s/b", *res.Results[1].Path)
	require.Equal(t, "b", *res.Results[1].Tags[0].Tag)

	// The seeded inventory is readable through the SDK's typed clients.
	t0, err := infra.NewTier0sClient(e.conn).Get(inv.Tier0)
	require.NoError(t, err)
	require.Equal(t, "ACTIVE_STANDBY", *t0.HaMode)
	sub, err := ip_pools.NewIpSubnetsClient(e.conn).Get(inv.FloatingPool, "floating")
	require.NoError(t, err)
	cidr, err := sub.Field("cidr")
	require.NoError(t, err)
	require.Equal(t, inv.FloatingCIDR, unwrapString(t, cidr))

	// NSX's own objects say so; what the platform team made does not.
	require.False(t, *t0.SystemOwned)
	block, err := infra.NewIpBlocksClient(e.conn).Get(inv.NodeBlock.ID, nil)
	require.NoError(t, err)
	require.False(t, *block.SystemOwned)
	domain, err := infra.NewDomainsClient(e.conn).Get("default")
	require.NoError(t, err)
	require.True(t, *domain.SystemOwned)
	_, nat := e.call(t, http.MethodGet, "/infra/tier-0s/"+inv.Tier0+"/nat/USER", nil)
	require.Equal(t, true, nat["_system_owned"])
	_, nat = e.call(t, http.MethodGet, "/infra/tier-1s/a/nat/USER", nil)
	require.Equal(t, true, nat["_system_owned"])

	// Paths lists what clients made; Object reads anything.
	require.Equal(t, []string{"/infra/tier-1s/a", "/infra/tier-1s/b"}, e.sim.Paths())
	require.Equal(t, "/infra/tier-0s/"+inv.Tier0, e.sim.Object("/infra/tier-0s/" + inv.Tier0)["path"])
	require.Nil(t, e.sim.Object("/infra/tier-1s/c"))

	// What Object returns is the caller's: changing it changes nothing
	// served.
	obj := e.sim.Object("/infra/tier-1s/a")
	obj["display_name"] = "changed"
	obj["tags"].([]any)[0].(map[string]any)["tag"] = "changed"
	a, err := infra.NewTier1sClient(e.conn).Get("a")
	require.NoError(t, err)
	require.Equal(t, "a", *a.DisplayName)
	require.Equal(t, "a", *a.Tags[0].Tag)
}

// TestConcurrentWrites allocates from one pool and one block from many
// goroutines at once, reading realized state and searching meanwhile:
// no address or subnet is handed out twice (and -race stays quiet).
func TestConcurrentWrites(t *testing.T) {
	e := newEnv(t, simulator.Config{RealizeAfterReads: 1})
	inv := e.sim.Inventory()
	pool := inv.FloatingPool
	blockPath := "/infra/ip-blocks/" + inv.PodBlock.ID
	require.NoError(t, infra.NewIpPoolsClient(e.conn).Patch("pods", model.IpAddressPool{}))
	allocs := ip_pools.NewIpAllocationsClient(e.conn)
	subnets := ip_pools.NewIpSubnetsClient(e.conn)
	states := realized_state.NewRealizedEntitiesClient(e.conn)
	q := search.NewQueryClient(e.conn)

	// realizedAttr waits for intent to be realized and returns key.
	realizedAttr := func(intent, key string) (string, error) {
		for range 3 {
			res, err := states.List(intent, nil)
			if err != nil {
				return "", err
			}
			if r := res.Results[0]; *r.State == "REALIZED" {
				return attr(r, key), nil
			} else if *r.State != "IN_PROGRESS" {
				return "", fmt.Errorf("%s is %s", intent, *r.State)
			}
		}
		return "", fmt.Errorf("%s not realized after 3 reads", intent)
	}

	const n = 24
	ips, cidrs := make([]string, n), make([]string, n)
	errs := make([]error, n)
	asks := make([]*data.StructValue, n)
	for i := range asks {
		asks[i] = blockSubnet(t, "", blockPath, 64)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("w%d", i)
			if errs[i] = allocs.Patch(pool, id, model.IpAddressAllocation{}); errs[i] != nil {
				return
			}
			if ips[i], errs[i] = realizedAttr("/infra/ip-pools/"+pool+"/ip-allocations/"+id, "allocation_ip"); errs[i] != nil {
				return
			}
			if errs[i] = subnets.Patch("pods", id, asks[i]); errs[i] != nil {
				return
			}
			if cidrs[i], errs[i] = realizedAttr("/infra/ip-pools/pods/ip-subnets/"+id, "cidr"); errs[i] != nil {
				return
			}
			_, errs[i] = q.List("resource_type:IpAddressAllocation", nil, nil, nil, nil, nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "writer %d", i)
	}
	seen := map[string]bool{}
	var prefixes []netip.Prefix
	for i := range n {
		require.False(t, seen[ips[i]], "%s allocated twice", ips[i])
		seen[ips[i]] = true
		c := netip.MustParsePrefix(cidrs[i])
		for _, p := range prefixes {
			require.False(t, p.Overlaps(c), "%s overlaps %s", c, p)
		}
		prefixes = append(prefixes, c)
	}
	require.Len(t, seen, n)
}

func TestListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{":0", "0.0.0.0:0", "localhost:0", "10.1.2.3:0"} {
		_, err := simulator.New(simulator.Config{Addr: addr})
		require.ErrorContains(t, err, "not a loopback", addr)
	}
	s, err := simulator.New(simulator.Config{Addr: "[::1]:0"})
	if err == nil {
		s.Close()
	}
}

// searchHits runs a search query and returns each hit's path and
// marked_for_delete.
func searchHits(t *testing.T, e *env, query string) map[string]bool {
	t.Helper()
	status, body := e.call(t, http.MethodGet, "/search/query?"+url.Values{"query": {query}}.Encode(), nil)
	require.Equal(t, http.StatusOK, status, "%v", body)
	out := map[string]bool{}
	for _, r := range body["results"].([]any) {
		m := r.(map[string]any)
		out[m["path"].(string)], _ = m["marked_for_delete"].(bool)
	}
	return out
}

// With PurgeAfter, deletes are asynchronous as NSX's are: what is deleted
// is marked for delete until the purge. GET answers 404 and lists leave it
// out; the search shows it, marked_for_delete (a client filters on
// marked_for_delete:false); a write to its path, plain or hierarchical,
// is refused with error code 500045; deleting it again succeeds; what it
// allocated stays taken. After the purge the path is free again and so
// is the space.
func TestDeletesAwaitThePurge(t *testing.T) {
	e := newEnv(t, simulator.Config{PurgeAfter: time.Hour})
	inv := e.sim.Inventory()
	blockPath := "/infra/ip-blocks/" + inv.NodeBlock.ID
	segs := infra.NewSegmentsClient(e.conn)
	tags := []model.Tag{{Scope: ptr("kubefoundry/cluster"), Tag: ptr("c1")}}
	require.NoError(t, segs.Patch("s1", model.Segment{Tags: tags}))
	require.NoError(t, segs.Patch("s2", model.Segment{Tags: tags}))
	require.NoError(t, infra.NewIpPoolsClient(e.conn).Patch("p", model.IpAddressPool{}))
	subnets := ip_pools.NewIpSubnetsClient(e.conn)
	require.NoError(t, subnets.Patch("p", "a", blockSubnet(t, "", blockPath, 256)))
	first := attr(e.realized(t, "/infra/ip-pools/p/ip-subnets/a"), "cidr")

	require.NoError(t, segs.Delete("s1"))
	require.NoError(t, subnets.Delete("p", "a", nil))
	require.Equal(t, []string{"/infra/ip-pools/p/ip-subnets/a", "/infra/segments/s1"}, e.sim.Marked())
	_, err := segs.Get("s1")
	require.ErrorAs(t, err, new(vapierrors.NotFound))
	list, err := segs.List(nil, nil, nil, nil, nil, nil, nil)
	require.NoError(t, err)
	require.Len(t, list.Results, 1, "only s2 is listed")
	require.Equal(t, map[string]bool{"/infra/segments/s1": true, "/infra/segments/s2": false},
		searchHits(t, e, `resource_type:Segment AND tags.tag:c1`), "the search shows s1, marked for delete")
	require.Equal(t, map[string]bool{"/infra/segments/s2": false},
		searchHits(t, e, `resource_type:Segment AND tags.tag:c1 AND marked_for_delete:false`))
	require.Equal(t, []string{first}, e.sim.Allocated()[blockPath], "a's subnet is still taken")

	status, body := e.call(t, http.MethodPatch, "/infra/segments/s1", map[string]any{})
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, json.Number("500045"), body["error_code"])
	require.Contains(t, body["error_message"], "path=[/infra/segments/s1] is marked for deletion")
	status, body = e.call(t, http.MethodPatch, "/infra", map[string]any{"resource_type": "Infra", "children": []any{
		map[string]any{"resource_type": "ChildSegment", "Segment": map[string]any{"resource_type": "Segment", "id": "s1"}}}})
	require.Equal(t, http.StatusBadRequest, status, "hierarchical, too")
	require.Equal(t, json.Number("500045"), body["error_code"])
	require.NoError(t, segs.Delete("s1"), "deleting it again")
	require.NoError(t, subnets.Patch("p", "b", blockSubnet(t, "", blockPath, 256)))
	second := attr(e.realized(t, "/infra/ip-pools/p/ip-subnets/b"), "cidr")
	require.NotEqual(t, first, second, "a's subnet is not handed out again before the purge")

	e.sim.Purge()
	require.Empty(t, e.sim.Marked())
	require.Equal(t, map[string]bool{"/infra/segments/s2": false}, searchHits(t, e, `resource_type:Segment AND tags.tag:c1`))
	require.Equal(t, []string{second}, e.sim.Allocated()[blockPath])
	require.NoError(t, segs.Patch("s1", model.Segment{Tags: tags}), "the path is free again")
	require.NoError(t, subnets.Patch("p", "c", blockSubnet(t, "", blockPath, 256)))
	require.Equal(t, first, attr(e.realized(t, "/infra/ip-pools/p/ip-subnets/c"), "cidr"), "and so is the space")

	// The purge also comes by itself, PurgeAfter after the delete.
	e = newEnv(t, simulator.Config{PurgeAfter: time.Millisecond})
	segs = infra.NewSegmentsClient(e.conn)
	require.NoError(t, segs.Patch("s1", model.Segment{}))
	require.NoError(t, segs.Delete("s1"))
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, segs.Patch("s1", model.Segment{}), "purged by the time of the next request")
	require.Empty(t, e.sim.Marked())
	// A tier-1 goes with the NAT sections NSX made for it, and they are
	// purged with it: made again, it has them again.
	t1s := infra.NewTier1sClient(e.conn)
	require.NoError(t, t1s.Patch("t1", model.Tier1{}))
	require.NoError(t, t1s.Delete("t1"))
	time.Sleep(20 * time.Millisecond)
	require.Empty(t, e.sim.Marked(), "purged when read")
	require.NoError(t, t1s.Patch("t1", model.Tier1{}))
	require.NotNil(t, e.sim.Object("/infra/tier-1s/t1/nat/USER"))
	require.Empty(t, e.sim.Marked())
}

// What a principal identity makes is protected, as NSX's is_protected
// principals' objects are: it sees them NOT_PROTECTED, everyone else
// REQUIRE_OVERRIDE, and a change or delete by anyone else (a user, another
// principal), plain or hierarchical, is refused with error code 289
// unless it sends X-Allow-Overwrite: true. What a user makes is not
// protected.
func TestPrincipalIdentityProtectsWhatItMakes(t *testing.T) {
	ca := certificate(t, "principal-ca", nil)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	ncpCert, otherCert := certificate(t, "ncp", &ca), certificate(t, "other", &ca)
	e := newEnv(t, simulator.Config{ClientCAs: pool})
	ncp, other := httpClient(t, e.sim, &ncpCert), httpClient(t, e.sim, &otherCert)
	admin := func(header http.Header, method, path string, body any) (int, map[string]any) {
		return e.send(t, e.hc, e.sim.Username(), e.sim.Password(), header, method, path, body)
	}
	status, body := e.send(t, ncp, "", "", nil, http.MethodPatch, "/infra/segments/s1", map[string]any{})
	require.Equal(t, http.StatusOK, status, "%v", body)
	status, _ = e.send(t, ncp, "", "", nil, http.MethodPatch, "/infra/segments/s1/ports/p1", map[string]any{})
	require.Equal(t, http.StatusOK, status)
	status, _ = admin(nil, http.MethodPatch, "/infra/segments/mine", map[string]any{})
	require.Equal(t, http.StatusOK, status)

	_, got := e.send(t, ncp, "", "", nil, http.MethodGet, "/infra/segments/s1", nil)
	require.Equal(t, "NOT_PROTECTED", got["_protection"], "to its owner")
	require.Equal(t, "ncp", got["_create_user"])
	_, got = admin(nil, http.MethodGet, "/infra/segments/s1", nil)
	require.Equal(t, "REQUIRE_OVERRIDE", got["_protection"], "to everyone else")
	hits := searchHits(t, e, "resource_type:SegmentPort")
	require.Contains(t, hits, "/infra/segments/s1/ports/p1")
	_, list := admin(nil, http.MethodGet, "/infra/segments/s1/ports", nil)
	require.Equal(t, "REQUIRE_OVERRIDE", list["results"].([]any)[0].(map[string]any)["_protection"])
	_, got = e.send(t, ncp, "", "", nil, http.MethodGet, "/infra/segments/mine", nil)
	require.Equal(t, "NOT_PROTECTED", got["_protection"], "a user's object is nobody's to protect")

	refused := func(status int, body map[string]any) {
		t.Helper()
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, json.Number("289"), body["error_code"])
		require.Contains(t, body["error_message"], "createUser=ncp")
	}
	before := e.sim.Object("/infra/segments/s1")
	refused(admin(nil, http.MethodPatch, "/infra/segments/s1", map[string]any{"description": "x"}))
	refused(admin(nil, http.MethodDelete, "/infra/segments/s1/ports/p1", nil))
	refused(e.send(t, other, "", "", nil, http.MethodDelete, "/infra/segments/s1/ports/p1", nil))
	refused(admin(nil, http.MethodPatch, "/infra", map[string]any{"resource_type": "Infra", "children": []any{
		map[string]any{"resource_type": "ChildSegment", "marked_for_delete": true,
			"Segment": map[string]any{"resource_type": "Segment", "id": "s1", "children": []any{
				map[string]any{"resource_type": "ChildSegmentPort", "marked_for_delete": true,
					"SegmentPort": map[string]any{"resource_type": "SegmentPort", "id": "p1"}}}}}}}))
	require.Equal(t, before, e.sim.Object("/infra/segments/s1"))
	require.NotNil(t, e.sim.Object("/infra/segments/s1/ports/p1"))

	override := http.Header{"X-Allow-Overwrite": {"true"}}
	status, _ = admin(override, http.MethodPatch, "/infra/segments/s1", map[string]any{"description": "x"})
	require.Equal(t, http.StatusOK, status, "an admin who overrides")
	_, got = admin(nil, http.MethodGet, "/infra/segments/s1", nil)
	require.Equal(t, "x", got["description"])
	require.Equal(t, "REQUIRE_OVERRIDE", got["_protection"], "still ncp's")
	status, _ = e.send(t, ncp, "", "", nil, http.MethodDelete, "/infra/segments/s1/ports/p1", nil)
	require.Equal(t, http.StatusOK, status, "its owner")
	status, _ = e.send(t, ncp, "", "", nil, http.MethodDelete, "/infra/segments/s1", nil)
	require.Equal(t, http.StatusOK, status)
}

// Session-based authentication as NSX's: POST /api/session/create with
// the user name and password as a form answers 200 with a JSESSIONID
// cookie and an X-XSRF-TOKEN header; a request with both is the user's;
// a wrong password, a missing or wrong token, an idle session past
// SessionTimeout, and a destroyed one are 403.
func TestSessions(t *testing.T) {
	e := newEnv(t, simulator.Config{SessionTimeout: time.Hour})
	login := func(user, pw string) *http.Response {
		t.Helper()
		form := url.Values{"j_username": {user}, "j_password": {pw}}.Encode()
		resp, err := e.hc.Post(e.sim.URL+"/api/session/create", "application/x-www-form-urlencoded", strings.NewReader(form))
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	call := func(method, path, cookie, xsrf string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, e.sim.URL+path, nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: "JSESSIONID", Value: cookie})
		req.Header.Set("X-XSRF-TOKEN", xsrf)
		resp, err := e.hc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusForbidden, login(e.sim.Username(), "wrong").StatusCode)
	resp := login(e.sim.Username(), e.sim.Password())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == "JSESSIONID" {
			cookie = c.Value
			require.True(t, c.Secure && c.HttpOnly)
		}
	}
	xsrf := resp.Header.Get("X-XSRF-TOKEN")
	require.NotEmpty(t, cookie)
	require.NotEmpty(t, xsrf)
	require.Equal(t, 1, e.sim.Sessions())

	t0 := api + "/infra/tier-0s/t0"
	require.Equal(t, http.StatusOK, call(http.MethodGet, t0, cookie, xsrf))
	require.Equal(t, http.StatusForbidden, call(http.MethodGet, t0, cookie, ""), "no token")
	require.Equal(t, http.StatusForbidden, call(http.MethodGet, t0, cookie, "forged"))
	require.Equal(t, http.StatusForbidden, call(http.MethodGet, t0, "forged", xsrf))
	require.Equal(t, http.StatusOK, call(http.MethodPost, "/api/session/destroy", cookie, xsrf))
	require.Equal(t, http.StatusForbidden, call(http.MethodGet, t0, cookie, xsrf), "destroyed")
	require.Zero(t, e.sim.Sessions())

	short := newEnv(t, simulator.Config{SessionTimeout: time.Millisecond})
	e = short
	resp = login(e.sim.Username(), e.sim.Password())
	cookie, xsrf = resp.Cookies()[0].Value, resp.Header.Get("X-XSRF-TOKEN")
	time.Sleep(20 * time.Millisecond)
	require.Equal(t, http.StatusForbidden, call(http.MethodGet, t0, cookie, xsrf), "idle past the timeout")
	require.Zero(t, e.sim.Sessions())
}
