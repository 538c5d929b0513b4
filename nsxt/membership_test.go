package nsxt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

const groups = "/infra/domains/default/groups/"

// vmCond is the criterion BOSH's vSphere CPI gives a VM in a group.
func vmCond(vm string) map[string]any {
	return map[string]any{"resource_type": "Condition", "member_type": "VirtualMachine", "key": "Name", "operator": "EQUALS", "value": vm}
}

func or(id string) map[string]any {
	return map[string]any{"resource_type": "ConjunctionOperator", "conjunction_operator": "OR", "id": id}
}

func and(id string) map[string]any {
	return map[string]any{"resource_type": "ConjunctionOperator", "conjunction_operator": "AND", "id": id}
}

func tagCond(id, tag string) map[string]any {
	return map[string]any{"resource_type": "Condition", "id": id, "member_type": "SegmentPort", "key": "Tag", "operator": "EQUALS", "value": "app|" + tag}
}

// expression is a group's expression as NSX holds it, each entry reduced
// to the fields that say what it is (the ids NSX gave the conditions
// left out).
func expression(t *testing.T, sim *simulator.Server, path string) []map[string]any {
	t.Helper()
	g := sim.Object(path)
	require.NotNil(t, g, path)
	list, _ := g["expression"].([]any)
	out := []map[string]any{}
	for _, raw := range list {
		e := raw.(map[string]any)
		m := map[string]any{}
		for _, k := range []string{"resource_type", "member_type", "key", "operator", "value", "conjunction_operator"} {
			if v, ok := e[k]; ok {
				m[k] = v
			}
		}
		if e["resource_type"] == "ConjunctionOperator" || e["member_type"] != "VirtualMachine" {
			m["id"] = e["id"]
		}
		out = append(out, m)
	}
	return out
}

func putGroup(t *testing.T, sim *simulator.Server, id, displayName string, expr ...map[string]any) {
	t.Helper()
	list := []any{}
	for _, e := range expr {
		list = append(list, e)
	}
	body := map[string]any{"expression": list}
	if displayName != "" {
		body["display_name"] = displayName
	}
	require.NoError(t, sim.Put(groups+id, body))
}

// TestAddVMToGroups: the VM's criterion is ORed onto each group found by
// display name (or else id), once; every name is looked up before
// anything is written.
func TestAddVMToGroups(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	putGroup(t, e.sim, "web", "")
	putGroup(t, e.sim, "g-dmz", "dmz", tagCond("c0", "dmz"))
	// "x" is the display name of one group and the id of another: the
	// display name wins.
	putGroup(t, e.sim, "g-x", "x")
	putGroup(t, e.sim, "x", "not-x")

	require.NoError(t, e.c.AddVMToGroups(ctx, "vm-1", []string{"web", "dmz", "x", "web"}))
	assert.Equal(t, []map[string]any{vmCond("vm-1")}, expression(t, e.sim, groups+"web"), "an empty group gets the condition alone")
	assert.Equal(t, []map[string]any{tagCond("c0", "dmz"), or("conjunction-vm-1"), vmCond("vm-1")}, expression(t, e.sim, groups+"g-dmz"),
		"found by display name, ORed onto what is there")
	assert.Equal(t, []map[string]any{vmCond("vm-1")}, expression(t, e.sim, groups+"g-x"))
	assert.Empty(t, expression(t, e.sim, groups+"x"), "a display name comes before an id")

	require.NoError(t, e.c.AddVMToGroups(ctx, "vm-2", []string{"web", "not-x"}))
	assert.Equal(t, []map[string]any{vmCond("vm-1"), or("conjunction-vm-2"), vmCond("vm-2")}, expression(t, e.sim, groups+"web"))
	assert.Equal(t, []map[string]any{vmCond("vm-2")}, expression(t, e.sim, groups+"x"))

	t.Run("idempotent", func(t *testing.T) {
		writes := e.sim.Writes()
		require.NoError(t, e.c.AddVMToGroups(ctx, "vm-1", []string{"web", "dmz"}))
		assert.Equal(t, writes, e.sim.Writes(), "a group that has the VM is not written")
	})
	t.Run("by id when no display name matches", func(t *testing.T) {
		require.NoError(t, e.c.AddVMToGroups(ctx, "vm-3", []string{"g-dmz"}))
		assert.Equal(t, vmCond("vm-3"), expression(t, e.sim, groups+"g-dmz")[4])
	})
	t.Run("missing groups", func(t *testing.T) {
		writes := e.sim.Writes()
		err := e.c.AddVMToGroups(ctx, "vm-4", []string{"web", "no-such-group", "gone"})
		require.ErrorIs(t, err, nsxt.ErrNotFound)
		assert.Contains(t, err.Error(), `"no-such-group", "gone"`, "every missing name, at once")
		assert.Equal(t, writes, e.sim.Writes(), "nothing is written")
		assert.Len(t, expression(t, e.sim, groups+"web"), 3)
	})
	t.Run("invalid arguments", func(t *testing.T) {
		err := e.c.AddVMToGroups(ctx, " ", []string{"web", ""})
		require.ErrorIs(t, err, kubefoundry.ErrInvalid)
		var ve *kubefoundry.ValidationError
		require.ErrorAs(t, err, &ve)
		assert.Contains(t, err.Error(), "vmName")
		assert.Contains(t, err.Error(), "groups[1]")
	})
	t.Run("NSX's limit of 5 criteria", func(t *testing.T) {
		putGroup(t, e.sim, "small", "")
		for i := range 5 {
			require.NoError(t, e.c.AddVMToGroups(ctx, fmt.Sprintf("vm-%d", i), []string{"small"}))
		}
		err := e.c.AddVMToGroups(ctx, "vm-5", []string{"small"})
		require.ErrorIs(t, err, nsxt.ErrInvalid)
		assert.Contains(t, err.Error(), groups+"small")
		assert.Len(t, expression(t, e.sim, groups+"small"), 9)
	})
}

// TestRemoveVMFromGroups: the VM's criterion goes with the OR that joined
// it, wherever it stands, and what is left is an expression NSX takes; a
// condition on the VM's name ANDed with another is not the VM's.
func TestRemoveVMFromGroups(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	vm := vmCond("vm-1")
	for _, tc := range []struct {
		name       string
		expr, want []map[string]any
	}{
		{"alone", []map[string]any{vm}, []map[string]any{}},
		{"first", []map[string]any{vm, or("o1"), tagCond("c1", "a"), or("o2"), vmCond("vm-2")},
			[]map[string]any{tagCond("c1", "a"), or("o2"), vmCond("vm-2")}},
		{"middle", []map[string]any{tagCond("c1", "a"), or("o1"), vm, or("o2"), vmCond("vm-2")},
			[]map[string]any{tagCond("c1", "a"), or("o2"), vmCond("vm-2")}},
		{"last", []map[string]any{tagCond("c1", "a"), and("a1"), tagCond("c2", "b"), or("o1"), vm},
			[]map[string]any{tagCond("c1", "a"), and("a1"), tagCond("c2", "b")}},
		{"twice", []map[string]any{vm, or("o1"), tagCond("c1", "a"), or("o2"), vm},
			[]map[string]any{tagCond("c1", "a")}},
		{"ANDed with another condition", []map[string]any{tagCond("c1", "a"), and("a1"), vm},
			[]map[string]any{tagCond("c1", "a"), and("a1"), vm}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := regexp.MustCompile(`\W`).ReplaceAllString(tc.name, "-")
			putGroup(t, e.sim, id, "", tc.expr...)
			require.NoError(t, e.c.RemoveVMFromGroups(ctx, "vm-1"))
			assert.Equal(t, tc.want, expression(t, e.sim, groups+id))
		})
	}
	writes := e.sim.Writes()
	require.NoError(t, e.c.RemoveVMFromGroups(ctx, "vm-1"))
	assert.Equal(t, writes, e.sim.Writes(), "a VM in no group writes nothing")
}

// TestGroupConflictRetried: an update NSX refuses for a stale _revision
// is read and applied again, keeping the other writer's change; one that
// keeps being refused is ErrConflict after a bounded number of tries.
func TestGroupConflictRetried(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	putGroup(t, e.sim, "web", "")
	e.sim.Inject(&simulator.Fault{Method: http.MethodPut, Path: regexp.MustCompile(`/groups/web$`), Nth: 1, Before: func() {
		require.NoError(t, e.sim.Patch(groups+"web", map[string]any{"expression": []any{vmCond("other")}}))
	}})
	require.NoError(t, e.c.AddVMToGroups(ctx, "vm-1", []string{"web"}))
	assert.Equal(t, []map[string]any{vmCond("other"), or("conjunction-vm-1"), vmCond("vm-1")}, expression(t, e.sim, groups+"web"),
		"the other writer's VM is kept")
	assert.Equal(t, 2, e.sim.Requests()["PUT /policy/api/v1"+groups+"web"], "the stale PUT, then one after reading again")

	e.sim.Inject(&simulator.Fault{Method: http.MethodPut, Path: regexp.MustCompile(`/groups/web$`), Nth: 1, Times: 100, Status: http.StatusPreconditionFailed})
	before := e.sim.Requests()["PUT /policy/api/v1"+groups+"web"]
	err := e.c.RemoveVMFromGroups(ctx, "vm-1")
	require.ErrorIs(t, err, nsxt.ErrConflict)
	assert.Equal(t, 8, e.sim.Requests()["PUT /policy/api/v1"+groups+"web"]-before, "tried 8 times")

	ctx, cancel := context.WithCancel(ctx)
	cancel()
	start := time.Now()
	err = e.c.AddVMToGroups(ctx, "vm-2", []string{"web"})
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestAddVMToGroupsConcurrently: writers adding VMs to one group at once
// all get in, none losing another's.
func TestAddVMToGroupsConcurrently(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	putGroup(t, e.sim, "web", "")
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.c.AddVMToGroups(ctx, fmt.Sprintf("vm-%d", i), []string{"web"})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var vms []any
	for _, x := range expression(t, e.sim, groups+"web") {
		if x["resource_type"] == "Condition" {
			vms = append(vms, x["value"])
		}
	}
	assert.ElementsMatch(t, []any{"vm-0", "vm-1", "vm-2", "vm-3", "vm-4"}, vms)
}

func members(t *testing.T, sim *simulator.Server, pool string) []any {
	t.Helper()
	p := sim.Object("/infra/lb-pools/" + pool)
	require.NotNil(t, p, pool)
	m, _ := p["members"].([]any)
	return m
}

func member(ip, port, name string) map[string]any {
	m := map[string]any{"ip_address": ip, "display_name": name}
	if port != "" {
		m["port"] = port
	}
	return m
}

// TestPoolMembers: a static pool gets the VM's address and port once; a
// dynamic pool's group gets the VM; RemovePoolMembers takes the address
// out of every pool and leaves the rest.
func TestPoolMembers(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	putGroup(t, e.sim, "lb-members", "")
	require.NoError(t, e.sim.Put("/infra/lb-pools/pool-1", map[string]any{"display_name": "web-pool",
		"members": []any{member("10.0.0.9", "443", "other")}}))
	require.NoError(t, e.sim.Put("/infra/lb-pools/any", map[string]any{}))
	require.NoError(t, e.sim.Put("/infra/lb-pools/dyn", map[string]any{"display_name": "dynamic",
		"member_group": map[string]any{"group_path": groups + "lb-members", "port": json.Number("8080")}}))

	pools := []nsxt.PoolPort{{Pool: "web-pool", Port: 443}, {Pool: "any"}, {Pool: "dynamic", Port: 443}}
	require.NoError(t, e.c.AddPoolMembers(ctx, "vm-1", "10.0.0.5", pools))
	assert.Equal(t, []any{member("10.0.0.9", "443", "other"), member("10.0.0.5", "443", "vm-1")}, members(t, e.sim, "pool-1"))
	assert.Equal(t, []any{member("10.0.0.5", "", "vm-1")}, members(t, e.sim, "any"), "port 0: the virtual server's")
	assert.Empty(t, members(t, e.sim, "dyn"), "a dynamic pool lists no members")
	assert.Equal(t, []map[string]any{vmCond("vm-1")}, expression(t, e.sim, groups+"lb-members"), "its group has the VM")

	writes := e.sim.Writes()
	require.NoError(t, e.c.AddPoolMembers(ctx, "vm-1", "10.0.0.5", pools))
	assert.Equal(t, writes, e.sim.Writes(), "idempotent")

	err := e.c.AddPoolMembers(ctx, "vm-2", "10.0.0.6", []nsxt.PoolPort{{Pool: "web-pool", Port: 80}, {Pool: "no-such-pool"}})
	require.ErrorIs(t, err, nsxt.ErrNotFound)
	assert.Contains(t, err.Error(), `"no-such-pool"`)
	assert.Equal(t, writes, e.sim.Writes(), "nothing is written")

	err = e.c.AddPoolMembers(ctx, "vm-2", "10.0.0.256", []nsxt.PoolPort{{Pool: "", Port: 70000}})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	for _, f := range []string{"ip", "pools[0].Pool", "pools[0].Port"} {
		assert.Contains(t, err.Error(), f)
	}

	// Another address of the same pool and port.
	require.NoError(t, e.c.AddPoolMembers(ctx, "vm-2", "10.0.0.6", []nsxt.PoolPort{{Pool: "web-pool", Port: 443}}))
	require.NoError(t, e.c.RemovePoolMembers(ctx, "10.0.0.5"))
	assert.Equal(t, []any{member("10.0.0.9", "443", "other"), member("10.0.0.6", "443", "vm-2")}, members(t, e.sim, "pool-1"))
	assert.Empty(t, members(t, e.sim, "any"))
	writes = e.sim.Writes()
	require.NoError(t, e.c.RemovePoolMembers(ctx, "10.0.0.5"))
	assert.Equal(t, writes, e.sim.Writes(), "an address in no pool writes nothing")
	require.ErrorIs(t, e.c.RemovePoolMembers(ctx, "ten"), kubefoundry.ErrInvalid)
}

// TestPoolConflictRetried: a pool changed between the read and the write
// is read again; the other writer's member stays.
func TestPoolConflictRetried(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	require.NoError(t, e.sim.Put("/infra/lb-pools/web", map[string]any{}))
	e.sim.Inject(&simulator.Fault{Method: http.MethodPut, Path: regexp.MustCompile(`/lb-pools/web$`), Nth: 1, Before: func() {
		require.NoError(t, e.sim.Patch("/infra/lb-pools/web", map[string]any{"members": []any{member("10.0.0.9", "80", "other")}}))
	}})
	require.NoError(t, e.c.AddPoolMembers(ctx, "vm-1", "10.0.0.5", []nsxt.PoolPort{{Pool: "web", Port: 80}}))
	assert.Equal(t, []any{member("10.0.0.9", "80", "other"), member("10.0.0.5", "80", "vm-1")}, members(t, e.sim, "web"))

	e.sim.Inject(&simulator.Fault{Method: http.MethodPut, Path: regexp.MustCompile(`/lb-pools/web$`), Nth: 1, Before: func() {
		require.NoError(t, e.sim.Patch("/infra/lb-pools/web", map[string]any{"members": []any{member("10.0.0.9", "80", "other"),
			member("10.0.0.5", "80", "vm-1"), member("10.0.0.7", "80", "third")}}))
	}})
	require.NoError(t, e.c.RemovePoolMembers(ctx, "10.0.0.5"))
	assert.Equal(t, []any{member("10.0.0.9", "80", "other"), member("10.0.0.7", "80", "third")}, members(t, e.sim, "web"))
}
