package nsxt_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry/nsxt"
	"github.com/kubefoundry/kubefoundry/nsxt/simulator"
)

// conditions renders a group's expression as text: "scope|tag" for
// EQUALS, "!scope|tag" for NOTEQUALS, AND within a criterion, OR between.
func conditions(t *testing.T, body map[string]any) string {
	t.Helper()
	var render func(list []any) string
	render = func(list []any) string {
		var b strings.Builder
		for _, e := range list {
			m := e.(map[string]any)
			switch m["resource_type"] {
			case "Condition":
				require.Equal(t, "SegmentPort", m["member_type"])
				require.Equal(t, "Tag", m["key"])
				if m["operator"] == "NOTEQUALS" {
					b.WriteString("!")
				}
				b.WriteString(m["value"].(string))
			case "ConjunctionOperator":
				b.WriteString(" " + m["conjunction_operator"].(string) + " ")
			case "NestedExpression":
				b.WriteString("(" + render(m["expressions"].([]any)) + ")")
			case "IPAddressExpression":
				for _, ip := range m["ip_addresses"].([]any) {
					b.WriteString("ip:" + ip.(string))
				}
			default:
				t.Fatalf("unexpected expression %v", m)
			}
		}
		return b.String()
	}
	return render(body["expression"].([]any))
}

func objects(t *testing.T, np nsxt.NetworkPolicy) map[string]nsxt.Object {
	t.Helper()
	objs, err := np.Translate()
	require.NoError(t, err)
	out := map[string]nsxt.Object{}
	for _, o := range objs {
		out[strings.TrimPrefix(o.Path, "/infra/domains/default/")] = o
	}
	return out
}

func ruleText(o nsxt.Object) string {
	b := o.Body
	s := b["action"].(string) + " " + b["direction"].(string) + " " + join(b["source_groups"]) + " -> " + join(b["destination_groups"])
	for _, e := range asList(b["service_entries"]) {
		m := e.(map[string]any)
		s += " " + m["l4_protocol"].(string) + ":" + join(m["destination_ports"])
	}
	return s
}

func asList(v any) []any { l, _ := v.([]any); return l }

func join(v any) string {
	var parts []string
	for _, e := range asList(v) {
		parts = append(parts, strings.TrimPrefix(e.(string), "/infra/domains/default/groups/"))
	}
	return strings.Join(parts, ",")
}

func TestTranslateNetworkPolicy(t *testing.T) {
	const sel = "kubefoundry/cluster|c1 AND kubefoundry/namespace|shop"
	for _, tc := range []struct {
		name   string
		np     nsxt.NetworkPolicy
		groups map[string]string // group id suffix -> conditions
		rules  map[string]string // path suffix -> rule text
	}{
		{
			name:   "deny all ingress",
			np:     nsxt.NetworkPolicy{PolicyTypes: []string{"Ingress"}},
			groups: map[string]string{"pods": sel},
			rules: map[string]string{
				"_isolation/rules/from-nodes":   "ALLOW IN kf_c1_nodes -> kf_c1_np_shop_p_pods",
				"_isolation/rules/deny-ingress": "DROP IN ANY -> kf_c1_np_shop_p_pods",
			},
		},
		{
			name: "allow frontend pods on TCP 80",
			np: nsxt.NetworkPolicy{
				PodSelector: nsxt.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				Ingress: []nsxt.PolicyRule{{
					Peers: []nsxt.Peer{{PodSelector: &nsxt.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}}}},
					Ports: []nsxt.PolicyPort{{Port: 80}},
				}},
			},
			groups: map[string]string{"pods": sel + " AND app|db", "in0_p0": sel + " AND app|frontend"},
			rules: map[string]string{
				"/rules/in-0":                   "ALLOW IN kf_c1_np_shop_p_in0_p0 -> kf_c1_np_shop_p_pods TCP:80",
				"_isolation/rules/deny-ingress": "DROP IN ANY -> kf_c1_np_shop_p_pods",
			},
		},
		{
			name: "namespace and pod selector, In with two values",
			np: nsxt.NetworkPolicy{
				Ingress: []nsxt.PolicyRule{{Peers: []nsxt.Peer{{
					NamespaceSelector: &nsxt.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
					PodSelector: &nsxt.LabelSelector{MatchExpressions: []nsxt.SelectorRequirement{
						{Key: "role", Operator: "In", Values: []string{"api", "web"}},
						{Key: "canary", Operator: "DoesNotExist"},
					}},
				}}}},
			},
			groups: map[string]string{
				"pods": sel,
				"in0_p0": "(kubefoundry/cluster|c1 AND kubefoundry/ns-label/team|a AND role|api AND !canary|)" +
					" OR (kubefoundry/cluster|c1 AND kubefoundry/ns-label/team|a AND role|web AND !canary|)",
			},
			rules: map[string]string{"/rules/in-0": "ALLOW IN kf_c1_np_shop_p_in0_p0 -> kf_c1_np_shop_p_pods"},
		},
		{
			name: "any namespace, egress to a CIDR on a UDP range",
			np: nsxt.NetworkPolicy{
				PolicyTypes: []string{"Ingress", "Egress"},
				Ingress:     []nsxt.PolicyRule{{Peers: []nsxt.Peer{{NamespaceSelector: &nsxt.LabelSelector{}}}}},
				Egress: []nsxt.PolicyRule{{
					Peers: []nsxt.Peer{{IPBlock: &nsxt.IPBlock{CIDR: "10.1.2.3/8"}}},
					Ports: []nsxt.PolicyPort{{Protocol: "UDP", Port: 8000, EndPort: 8080}, {Protocol: "TCP"}},
				}},
			},
			groups: map[string]string{"pods": sel, "in0_p0": "kubefoundry/cluster|c1", "out0_p0": "ip:10.0.0.0/8"},
			rules: map[string]string{
				"/rules/in-0":                   "ALLOW IN kf_c1_np_shop_p_in0_p0 -> kf_c1_np_shop_p_pods",
				"/rules/out-0":                  "ALLOW OUT kf_c1_np_shop_p_pods -> kf_c1_np_shop_p_out0_p0 UDP:8000-8080 TCP:",
				"_isolation/rules/deny-ingress": "DROP IN ANY -> kf_c1_np_shop_p_pods",
				"_isolation/rules/deny-egress":  "DROP OUT kf_c1_np_shop_p_pods -> ANY",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.np.ClusterID, tc.np.Namespace, tc.np.Name = "c1", "shop", "p"
			objs := objects(t, tc.np)
			var groups, rules int
			for path, o := range objs {
				require.Equal(t, []any{
					map[string]any{"scope": nsxt.TagCluster, "tag": "c1"},
					map[string]any{"scope": nsxt.TagNamespace, "tag": "shop"},
					map[string]any{"scope": nsxt.TagNetworkPolicy, "tag": "shop/p"},
				}, o.Body["tags"], path)
				switch o.Type {
				case "Group":
					groups++
				case "Rule":
					rules++
				}
			}
			require.Equal(t, len(tc.groups), groups)
			for suffix, want := range tc.groups {
				o, ok := objs["groups/kf_c1_np_shop_p_"+suffix]
				require.True(t, ok, suffix)
				require.Equal(t, want, conditions(t, o.Body), suffix)
			}
			for suffix, want := range tc.rules {
				o, ok := objs["security-policies/kf_c1_np_shop_p"+suffix]
				require.True(t, ok, "%s in %v", suffix, objs)
				require.Equal(t, want, ruleText(o), suffix)
			}
			_, egress := objs["security-policies/kf_c1_np_shop_p_isolation/rules/deny-egress"]
			require.Equal(t, strings.Contains(tc.name, "egress"), egress)
			require.Equal(t, int64(50), mustInt(objs["security-policies/kf_c1_np_shop_p"].Body["sequence_number"]))
			require.Equal(t, int64(60), mustInt(objs["security-policies/kf_c1_np_shop_p_isolation"].Body["sequence_number"]))
		})
	}
}

func mustInt(v any) int64 {
	n, _ := v.(interface{ Int64() (int64, error) }).Int64()
	return n
}

func TestTranslateRefusesWhatNSXCannotExpress(t *testing.T) {
	many := []string{"a", "b", "c", "d", "e", "f"}
	for _, tc := range []struct {
		field string
		np    nsxt.NetworkPolicy
	}{
		{"Ingress[0].Peers[0].IPBlock.Except", nsxt.NetworkPolicy{Ingress: []nsxt.PolicyRule{{Peers: []nsxt.Peer{{IPBlock: &nsxt.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}}}}}}},
		{"Ingress[0].Ports[0].Port", nsxt.NetworkPolicy{Ingress: []nsxt.PolicyRule{{Ports: []nsxt.PolicyPort{{Named: "http"}}}}}},
		{"Egress[0].Ports[1].Protocol", nsxt.NetworkPolicy{Egress: []nsxt.PolicyRule{{Ports: []nsxt.PolicyPort{{Port: 1}, {Protocol: "SCTP", Port: 2}}}}}},
		{"PodSelector.MatchExpressions[0].Operator", nsxt.NetworkPolicy{PodSelector: nsxt.LabelSelector{MatchExpressions: []nsxt.SelectorRequirement{{Key: "a", Operator: "Gt"}}}}},
		{"PodSelector", nsxt.NetworkPolicy{PodSelector: nsxt.LabelSelector{MatchExpressions: []nsxt.SelectorRequirement{{Key: "a", Operator: "In", Values: many}}}}},
		{"Ingress[0].Peers[0]", nsxt.NetworkPolicy{Ingress: []nsxt.PolicyRule{{Peers: []nsxt.Peer{{}}}}}},
		{"PolicyTypes[0]", nsxt.NetworkPolicy{PolicyTypes: []string{"Both"}}},
	} {
		tc.np.ClusterID, tc.np.Namespace, tc.np.Name = "c1", "shop", "p"
		_, err := tc.np.Translate()
		require.ErrorIs(t, err, nsxt.ErrInvalid, tc.field)
		require.Equal(t, []string{"NetworkPolicy." + tc.field}, problemFields(t, err))
	}
}

func TestApplyNetworkPolicy(t *testing.T) {
	e := newEnv(t, simulator.Config{})
	ctx := context.Background()
	topo := topology(e.sim, "c1", "shop")
	_, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)

	np := nsxt.NetworkPolicy{ClusterID: "c1", Namespace: "shop", Name: "db",
		PodSelector: nsxt.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		Ingress: []nsxt.PolicyRule{{Peers: []nsxt.Peer{{PodSelector: &nsxt.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}},
			Ports: []nsxt.PolicyPort{{Port: 5432}}}}}
	plan, writes, err := e.c.ApplyNetworkPolicy(ctx, np)
	require.NoError(t, err)
	require.Equal(t, 1, writes, "no allocation: one PATCH")
	require.Len(t, plan.Configure, 7, "two groups, two policies, three rules")
	require.NotNil(t, e.sim.Object("/infra/domains/default/security-policies/kf_c1_np_shop_db/rules/in-0"))

	_, writes, err = e.c.ApplyNetworkPolicy(ctx, np)
	require.NoError(t, err)
	require.Zero(t, writes)
	n, err := e.c.BuildTopology(ctx, topo)
	require.NoError(t, err)
	require.Zero(t, n.Writes, "the topology leaves policies alone")

	np.Ingress[0].Ports[0].Port = 5433
	plan, writes, err = e.c.ApplyNetworkPolicy(ctx, np)
	require.NoError(t, err)
	require.Equal(t, 1, writes)
	require.Equal(t, []nsxt.Change{{Action: nsxt.Update, Path: "/infra/domains/default/security-policies/kf_c1_np_shop_db/rules/in-0",
		Type: "Rule", Fields: []string{"service_entries"}}}, plan.Changes())

	td, err := e.c.DeleteNetworkPolicy(ctx, "c1", "shop", "db")
	require.NoError(t, err)
	require.Len(t, td.Deleted, 7)
	for _, p := range e.sim.Paths() {
		require.NotContains(t, p, "_np_")
	}
}
