package vspherecpi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/cpi/vspherecpi"
	"github.com/kubefoundry/kubefoundry/nsxt"
	nsxtsim "github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// nsxAPI reads the NSX-T Policy API of a simulator as any client would.
type nsxAPI struct {
	sim *nsxtsim.Server
	hc  *http.Client
}

func newNSXAPI(t *testing.T, sim *nsxtsim.Server) nsxAPI {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(sim.CertificatePEM()))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return nsxAPI{sim: sim, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// get GETs a policy path and decodes the object.
func (a nsxAPI) get(t *testing.T, path string) map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, a.sim.URL+"/policy/api/v1"+path, nil)
	require.NoError(t, err)
	req.SetBasicAuth(a.sim.Username(), a.sim.Password())
	resp, err := a.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, path)
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// expression is a group's expression through the API, each entry
// reduced to what says what it is: "VirtualMachine Name EQUALS <vm>", "OR
// <id>", or for any other condition its value.
func (a nsxAPI) expression(t *testing.T, group string) []string {
	t.Helper()
	list, _ := a.get(t, "/infra/domains/default/groups/"+group)["expression"].([]any)
	out := []string{}
	for _, raw := range list {
		e := raw.(map[string]any)
		switch {
		case e["resource_type"] == "ConjunctionOperator":
			out = append(out, e["conjunction_operator"].(string)+" "+e["id"].(string))
		case e["member_type"] == "VirtualMachine":
			out = append(out, "VirtualMachine "+e["key"].(string)+" "+e["operator"].(string)+" "+e["value"].(string))
		default:
			out = append(out, e["value"].(string))
		}
	}
	return out
}

// members are a pool's members through the API, as "ip:port name" (no
// port: ":").
func (a nsxAPI) members(t *testing.T, pool string) []string {
	t.Helper()
	list, _ := a.get(t, "/infra/lb-pools/"+pool)["members"].([]any)
	out := []string{}
	for _, raw := range list {
		m := raw.(map[string]any)
		port, _ := m["port"].(string)
		out = append(out, m["ip_address"].(string)+":"+port+" "+m["display_name"].(string))
	}
	return out
}

func vmIn(cid string) string { return "VirtualMachine Name EQUALS " + cid }

// TestNSXTPolicy: the CPI on vcsim with a real nsxt.Client on the NSX-T
// simulator: create_vm puts the VM in its nsxt.ns_groups (found by
// display name) and its nsxt.lb.server_pools (its address in a static
// pool, its name in a dynamic pool's group), as NSX then shows them;
// delete_vm takes it out of all of them and leaves the rest; a group or
// pool NSX does not have fails create_vm naming it, and leaves neither a
// VM nor a membership.
func TestNSXTPolicy(t *testing.T) {
	sim, ncfg := nsxtsim.Start(t, nsxtsim.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nc, err := nsxt.New(ctx, ncfg, nsxt.WithLogger(zaptest.NewLogger(t)), nsxt.WithRetry(4, 10*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close(context.Background()) })
	tag := map[string]any{"resource_type": "Condition", "id": "app", "member_type": "SegmentPort", "key": "Tag", "value": "app|web"}
	require.NoError(t, sim.Put("/infra/domains/default/groups/web", map[string]any{}))
	require.NoError(t, sim.Put("/infra/domains/default/groups/g-dmz", map[string]any{"display_name": "dmz", "expression": []any{tag}}))
	require.NoError(t, sim.Put("/infra/domains/default/groups/lb-dyn", map[string]any{}))
	require.NoError(t, sim.Put("/infra/lb-pools/pool-https", map[string]any{"display_name": "https"}))
	require.NoError(t, sim.Put("/infra/lb-pools/any", map[string]any{}))
	require.NoError(t, sim.Put("/infra/lb-pools/dyn", map[string]any{"member_group": map[string]any{"group_path": "/infra/domains/default/groups/lb-dyn"}}))
	api := newNSXAPI(t, sim)

	e := newEnv(t, nil, vspherecpi.WithNSXT(vspherecpi.NSXTPolicy(nc)))
	props := cpi.CloudProps{"nsxt": map[string]any{"ns_groups": []any{"web", "dmz"},
		"lb": map[string]any{"server_pools": []any{map[string]any{"name": "https", "port": 443}, map[string]any{"name": "any"},
			map[string]any{"name": "dyn", "port": 8080}}}}}
	nw1, nw2 := nets(), nets()
	ip1, ip2 := nw1["default"].IP, nw2["default"].IP
	vm1, _, err := e.c.CreateVM(ctx, "agent-1", e.sc, props, nw1, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{vmIn(vm1)}, api.expression(t, "web"))
	assert.Equal(t, []string{"app|web", "OR conjunction-" + vm1, vmIn(vm1)}, api.expression(t, "g-dmz"), "found by its display name")
	assert.Equal(t, []string{ip1 + ":443 " + vm1}, api.members(t, "pool-https"))
	assert.Equal(t, []string{ip1 + ": " + vm1}, api.members(t, "any"), "no port: the virtual server's")
	assert.Empty(t, api.members(t, "dyn"), "a dynamic pool lists no members")
	assert.Equal(t, []string{vmIn(vm1)}, api.expression(t, "lb-dyn"), "its group has the VM")

	vm2, _, err := e.c.CreateVM(ctx, "agent-2", e.sc, props, nw2, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{vmIn(vm1), "OR conjunction-" + vm2, vmIn(vm2)}, api.expression(t, "web"))
	assert.Equal(t, []string{ip1 + ":443 " + vm1, ip2 + ":443 " + vm2}, api.members(t, "pool-https"))

	require.NoError(t, e.c.DeleteVM(ctx, vm1))
	assert.Equal(t, []string{vmIn(vm2)}, api.expression(t, "web"), "the first VM goes with the OR after it")
	assert.Equal(t, []string{"app|web", "OR conjunction-" + vm2, vmIn(vm2)}, api.expression(t, "g-dmz"))
	assert.Equal(t, []string{vmIn(vm2)}, api.expression(t, "lb-dyn"))
	assert.Equal(t, []string{ip2 + ":443 " + vm2}, api.members(t, "pool-https"))
	assert.Equal(t, []string{ip2 + ": " + vm2}, api.members(t, "any"))

	require.NoError(t, e.c.DeleteVM(ctx, vm2))
	assert.Empty(t, api.expression(t, "web"))
	assert.Equal(t, []string{"app|web"}, api.expression(t, "g-dmz"), "what was there stays")
	assert.Empty(t, api.expression(t, "lb-dyn"))
	assert.Empty(t, api.members(t, "pool-https"))
	assert.Empty(t, api.members(t, "any"))

	for _, tc := range []struct {
		name, missing string
		nsxt          map[string]any
	}{
		{"missing group", "no-such-group", map[string]any{"ns_groups": []any{"web", "no-such-group"}}},
		{"missing pool", "no-such-pool", map[string]any{"ns_groups": []any{"web", "dmz"},
			"lb": map[string]any{"server_pools": []any{map[string]any{"name": "https", "port": 443}, map[string]any{"name": "no-such-pool"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.c.CreateVM(ctx, "agent-3", e.sc, cpi.CloudProps{"nsxt": tc.nsxt}, nets(), nil, nil)
			var ce *cpi.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, cpi.VMCreationFailed, ce.Type)
			assert.Contains(t, ce.Message, `"`+tc.missing+`"`)
			vms, err := e.vs.ListVMs(ctx, "bosh-1", "")
			require.NoError(t, err)
			assert.Empty(t, vms, "the VM NSX-T refused is deleted")
			assert.Empty(t, api.expression(t, "web"), "and is in no group")
			assert.Equal(t, []string{"app|web"}, api.expression(t, "g-dmz"))
			assert.Empty(t, api.members(t, "pool-https"), "nor pool")
		})
	}
}
