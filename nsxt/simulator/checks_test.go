package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

func cond(id, vm string) map[string]any {
	c := map[string]any{"resource_type": "Condition", "member_type": "VirtualMachine", "key": "Name", "operator": "EQUALS", "value": vm}
	if id != "" {
		c["id"] = id
	}
	return c
}

func conj(id, op string) map[string]any {
	return map[string]any{"resource_type": "ConjunctionOperator", "id": id, "conjunction_operator": op}
}

func nested(id string, exprs ...any) map[string]any {
	return map[string]any{"resource_type": "NestedExpression", "id": id, "expressions": exprs}
}

// orOf joins n VM conditions by OR.
func orOf(n int) []any {
	var out []any
	for i := range n {
		if i > 0 {
			out = append(out, conj(fmt.Sprintf("o%d", i), "OR"))
		}
		out = append(out, cond(fmt.Sprintf("c%d", i), fmt.Sprintf("vm-%d", i)))
	}
	return out
}

// andOf joins n tag conditions by AND, ids prefixed by p.
func andOf(p string, n int) []any {
	var out []any
	for i := range n {
		if i > 0 {
			out = append(out, conj(fmt.Sprintf("%sa%d", p, i), "AND"))
		}
		out = append(out, map[string]any{"resource_type": "Condition", "id": fmt.Sprintf("%sc%d", p, i), "member_type": "SegmentPort",
			"key": "Tag", "value": fmt.Sprintf("scope|%d", i)})
	}
	return out
}

// TestGroupExpressionChecks: a group's expression is refused, as NSX
// refuses it, unless expressions alternate with ConjunctionOperators and
// keep within NSX's limits; whatever the write (PUT, PATCH, hierarchical
// PATCH).
func TestGroupExpressionChecks(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ips := map[string]any{"resource_type": "IPAddressExpression", "id": "ips", "ip_addresses": []any{"10.0.0.1"}}
	for _, tc := range []struct {
		name string
		expr []any
		want string // in the refusal; "" when taken
	}{
		{"empty", []any{}, ""},
		{"one condition", []any{cond("c", "vm-1")}, ""},
		{"five criteria", orOf(5), ""},
		{"criteria of many ANDed conditions", append(append(andOf("x", 15), conj("or", "OR")), andOf("y", 15)...), ""},
		{"nested and member expressions", []any{nested("n", andOf("n", 3)...), conj("o1", "OR"), ips, conj("o2", "AND"),
			cond("c", "vm-1")}, ""},
		{"even length", []any{cond("c", "vm-1"), conj("o", "OR")}, "odd length"},
		{"starts with a conjunction", []any{conj("o", "OR"), cond("c", "vm-1"), conj("o2", "OR")}, "expression[0]: a ConjunctionOperator must stand between"},
		{"two conditions in a row", []any{cond("c1", "vm-1"), cond("c2", "vm-2"), cond("c3", "vm-3")}, "expression[1]: must be a ConjunctionOperator"},
		{"XOR", []any{cond("c1", "vm-1"), conj("x", "XOR"), cond("c2", "vm-2")}, `conjunction_operator "XOR" must be AND or OR`},
		{"OR in a nested expression", []any{nested("n", cond("c1", "vm-1"), conj("o", "OR"), cond("c2", "vm-2"))},
			"expression[0].expressions[1]: conjunction_operator \"OR\": a NestedExpression joins its conditions with AND"},
		{"IP addresses in a nested expression", []any{nested("n", ips)}, "holds only Conditions"},
		{"empty nested expression", []any{nested("n")}, "needs expressions"},
		{"unknown expression", []any{map[string]any{"resource_type": "Expression", "id": "e"}}, `unknown expression type "Expression"`},
		{"condition without a value", []any{cond("c", "")}, "needs a value"},
		{"condition without an operator", []any{map[string]any{"resource_type": "Condition", "member_type": "VirtualMachine", "key": "Name", "value": "v"}},
			"needs an operator"},
		{"unknown member type", []any{map[string]any{"resource_type": "Condition", "member_type": "Robot", "key": "Name", "operator": "EQUALS", "value": "v"}},
			`member_type "Robot"`},
		{"IN on a name", []any{map[string]any{"resource_type": "Condition", "member_type": "VirtualMachine", "key": "Name", "operator": "IN", "value": "v"}},
			`operator "IN" does not apply to key Name`},
		{"one id twice", []any{cond("c", "vm-1"), conj("c", "OR"), cond("c2", "vm-2")}, `id "c" is already the id of expression[0]`},
		{"six criteria", orOf(6), "6 criteria"},
		{"sixteen conditions in a criterion", andOf("x", 16), "16 conditions; one takes at most 15"},
		{"thirty-six conditions", append(append(append(andOf("x", 15), conj("o1", "OR")), andOf("y", 15)...), append([]any{conj("o2", "OR")}, andOf("z", 6)...)...),
			"36 conditions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.call(t, http.MethodPut, "/infra/domains/default/groups/g", map[string]any{"expression": tc.expr})
			if tc.want == "" {
				require.Equal(t, http.StatusOK, status, "%v", body)
				require.NoError(t, e.sim.Delete("/infra/domains/default/groups/g"))
				return
			}
			require.Equal(t, http.StatusBadRequest, status, "%v", body)
			assert.Contains(t, body["error_message"], "/infra/domains/default/groups/g")
			assert.Contains(t, body["error_message"], tc.want)
			assert.Nil(t, e.sim.Object("/infra/domains/default/groups/g"), "nothing is stored")
		})
	}

	t.Run("ids given", func(t *testing.T) {
		status, body := e.call(t, http.MethodPut, "/infra/domains/default/groups/ids",
			map[string]any{"expression": []any{cond("", "vm-1"), conj("o", "OR"), cond("", "vm-2")}})
		require.Equal(t, http.StatusOK, status, "%v", body)
		list := body["expression"].([]any)
		a, b := list[0].(map[string]any)["id"], list[2].(map[string]any)["id"]
		assert.NotEmpty(t, a, "NSX gives an expression without an id one")
		assert.NotEqual(t, a, b)
		assert.Equal(t, "o", list[1].(map[string]any)["id"])
	})
	t.Run("PATCH of what a PATCH merged", func(t *testing.T) {
		require.NoError(t, e.sim.Put("/infra/domains/default/groups/p", map[string]any{"expression": orOf(5)}))
		status, body := e.call(t, http.MethodPatch, "/infra/domains/default/groups/p", map[string]any{"description": "d"})
		require.Equal(t, http.StatusOK, status, "%v", body)
		status, body = e.call(t, http.MethodPatch, "/infra/domains/default/groups/p", map[string]any{"expression": orOf(6)})
		require.Equal(t, http.StatusBadRequest, status, "%v", body)
		assert.Len(t, e.sim.Object("/infra/domains/default/groups/p")["expression"], 9)
	})
	t.Run("hierarchical PATCH", func(t *testing.T) {
		status, body := e.call(t, http.MethodPatch, "/infra", map[string]any{"resource_type": "Infra", "children": []any{
			map[string]any{"resource_type": "ChildResourceReference", "id": "default", "target_type": "Domain", "children": []any{
				map[string]any{"resource_type": "ChildGroup", "Group": map[string]any{"resource_type": "Group", "id": "h", "expression": orOf(6)}},
			}},
		}})
		require.Equal(t, http.StatusBadRequest, status, "%v", body)
		assert.Contains(t, fmt.Sprint(body), "/infra/domains/default/groups/h: the expression has 6 criteria")
		assert.Nil(t, e.sim.Object("/infra/domains/default/groups/h"))
	})
}

// TestLBPoolMemberChecks: a pool's members are refused, as NSX refuses
// them, unless each is an address (and port) of its own, and a dynamic
// pool lists none.
func TestLBPoolMemberChecks(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	require.NoError(t, e.sim.Put("/infra/domains/default/groups/members", map[string]any{}))
	m := func(ip, port string) map[string]any {
		out := map[string]any{"ip_address": ip}
		if port != "" {
			out["port"] = port
		}
		return out
	}
	group := map[string]any{"group_path": "/infra/domains/default/groups/members"}
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"members", map[string]any{"members": []any{m("10.0.0.1", "80"), m("10.0.0.1", "443"), m("10.0.0.1", ""), m("fd00::1", "80")}}, ""},
		{"dynamic", map[string]any{"member_group": group}, ""},
		{"the same member twice", map[string]any{"members": []any{m("10.0.0.1", "80"), m("10.0.0.2", "80"), m("10.0.0.1", "80")}},
			"members[0] and members[2] are the same member: 10.0.0.1 port 80"},
		{"no address", map[string]any{"members": []any{m("", "80")}}, "members[0]: ip_address (none) is not an IP address"},
		{"a port out of range", map[string]any{"members": []any{m("10.0.0.1", "65536")}}, `port "65536" is not a port`},
		{"dynamic with members", map[string]any{"member_group": group, "members": []any{m("10.0.0.1", "80")}}, "members must be empty"},
		{"dynamic without a group", map[string]any{"member_group": map[string]any{"port": json.Number("80")}}, "member_group needs a group_path"},
		{"a group that is not there", map[string]any{"member_group": map[string]any{"group_path": "/infra/domains/default/groups/nope"}},
			"does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.call(t, http.MethodPut, "/infra/lb-pools/p", tc.body)
			if tc.want == "" {
				require.Equal(t, http.StatusOK, status, "%v", body)
				require.NoError(t, e.sim.Delete("/infra/lb-pools/p"))
				return
			}
			require.Equal(t, http.StatusBadRequest, status, "%v", body)
			assert.Contains(t, body["error_message"], "/infra/lb-pools/p")
			assert.Contains(t, body["error_message"], tc.want)
		})
	}
}
