package nsxt

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/data"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"
)

// NetworkPolicy mirrors a Kubernetes networking/v1 NetworkPolicy without
// importing Kubernetes (kube/nsxtnet converts one). The fields mean what
// they mean there.
type NetworkPolicy struct {
	ClusterID   string
	Namespace   string
	Name        string
	PodSelector LabelSelector
	// PolicyTypes holds "Ingress", "Egress" or both. Empty means Ingress,
	// plus Egress when Egress rules are given, as in Kubernetes.
	PolicyTypes []string
	Ingress     []PolicyRule
	Egress      []PolicyRule
}

// LabelSelector is a Kubernetes label selector.
type LabelSelector struct {
	MatchLabels      map[string]string
	MatchExpressions []SelectorRequirement
}

// SelectorRequirement is one matchExpressions entry: Operator is In,
// NotIn, Exists or DoesNotExist.
type SelectorRequirement struct {
	Key      string
	Operator string
	Values   []string
}

// PolicyRule is one ingress (From) or egress (To) rule: traffic with any
// of the peers (any peer when empty) on any of the ports (any port when
// empty) is allowed.
type PolicyRule struct {
	Peers []Peer
	Ports []PolicyPort
}

// Peer is one from/to entry. PodSelector alone selects pods of the
// policy's namespace; NamespaceSelector selects namespaces (all of the
// cluster's when empty); both select those pods in those namespaces.
type Peer struct {
	PodSelector       *LabelSelector
	NamespaceSelector *LabelSelector
	IPBlock           *IPBlock
}

// IPBlock is a CIDR peer.
type IPBlock struct {
	CIDR   string
	Except []string
}

// PolicyPort is a port or range (EndPort) of a protocol; Port 0 is every
// port of it. Named ports are not supported: NSX sees port numbers.
type PolicyPort struct {
	Protocol string // TCP (the default) or UDP
	Port     int
	EndPort  int
	Named    string
}

// The tags by which the groups of a translated policy select pods. The
// component that creates the pods' segment ports (the CNI) must tag each
// port with TagCluster and TagNamespace, with every pod label as
// scope=key tag=value, and with every label of the pod's namespace as
// scope=NamespaceLabelScope+key tag=value.
const NamespaceLabelScope = "kubefoundry/ns-label/"

// nsxLimits: NSX takes at most 5 criteria per group, 15 conditions each.
const (
	maxCriteria   = 5
	maxConditions = 15
)

type condition struct {
	op, scope, tag string // op EQUALS or NOTEQUALS; tag "" matches the scope alone
}

// criteria are OR-ed; the conditions in each are AND-ed.
type criteria [][]condition

// selectorCriteria turns a label selector into criteria on segment port
// tags, scoped by prefix (a pod label: "", a namespace label:
// NamespaceLabelScope). In with several values multiplies the criteria.
// What NSX cannot express goes to p, and is left out.
func selectorCriteria(p problems, field string, sel LabelSelector, prefix string, base []condition) criteria {
	out := criteria{append([]condition{}, base...)}
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for i := range out {
			out[i] = append(out[i], condition{"EQUALS", prefix + k, sel.MatchLabels[k]})
		}
	}
	for i, r := range sel.MatchExpressions {
		f := fmt.Sprintf("%s.MatchExpressions[%d]", field, i)
		switch r.Operator {
		case "In":
			if len(r.Values) == 0 {
				p.add(f+".Values", "", "In needs values")
				continue
			}
			var next criteria
			for _, c := range out {
				for _, v := range r.Values {
					next = append(next, append(append([]condition{}, c...), condition{"EQUALS", prefix + r.Key, v}))
				}
			}
			out = next
		case "NotIn":
			for j := range out {
				for _, v := range r.Values {
					out[j] = append(out[j], condition{"NOTEQUALS", prefix + r.Key, v})
				}
			}
		case "Exists":
			for j := range out {
				out[j] = append(out[j], condition{"EQUALS", prefix + r.Key, ""})
			}
		case "DoesNotExist":
			for j := range out {
				out[j] = append(out[j], condition{"NOTEQUALS", prefix + r.Key, ""})
			}
		default:
			p.add(f+".Operator", r.Operator, "must be In, NotIn, Exists or DoesNotExist")
		}
	}
	if len(out) > maxCriteria {
		p.add(field, fmt.Sprint(len(out)), fmt.Sprintf("needs %d OR-ed criteria; an NSX group takes %d", len(out), maxCriteria))
	}
	for _, c := range out {
		if len(c) > maxConditions {
			p.add(field, fmt.Sprint(len(c)), fmt.Sprintf("needs %d conditions; an NSX group criterion takes %d", len(c), maxConditions))
			break
		}
	}
	return out
}

// expression renders criteria as an NSX group expression: conditions on
// segment port tags joined by AND, criteria joined by OR, each criterion a
// NestedExpression when there are several.
func (cr criteria) expression() []*data.StructValue {
	render := func(cs []condition, prefix string) []*data.StructValue {
		var out []*data.StructValue
		for i, c := range cs {
			if i > 0 {
				out = append(out, mustStruct(model.ConjunctionOperator{ResourceType: "ConjunctionOperator",
					Id: ptr(fmt.Sprintf("%sand%d", prefix, i)), ConjunctionOperator: ptr("AND")}, model.ConjunctionOperatorBindingType()))
			}
			out = append(out, mustStruct(model.Condition{ResourceType: "Condition", Id: ptr(fmt.Sprintf("%sc%d", prefix, i)),
				MemberType: ptr("SegmentPort"), Key: ptr("Tag"), Operator: ptr(c.op), Value: ptr(c.scope + "|" + c.tag)},
				model.ConditionBindingType()))
		}
		return out
	}
	if len(cr) == 1 {
		return render(cr[0], "")
	}
	var out []*data.StructValue
	for i, c := range cr {
		if i > 0 {
			out = append(out, mustStruct(model.ConjunctionOperator{ResourceType: "ConjunctionOperator",
				Id: ptr(fmt.Sprintf("or%d", i)), ConjunctionOperator: ptr("OR")}, model.ConjunctionOperatorBindingType()))
		}
		out = append(out, mustStruct(model.NestedExpression{ResourceType: "NestedExpression", Id: ptr(fmt.Sprintf("n%d", i)),
			Expressions: render(c, fmt.Sprintf("n%d", i))}, model.NestedExpressionBindingType()))
	}
	return out
}

func (np NetworkPolicy) key() string { return np.Namespace + "/" + np.Name }
func (np NetworkPolicy) base() string {
	return objectID("kf_"+np.ClusterID, "np", np.Namespace, np.Name)
}

func (np NetworkPolicy) tags() []model.Tag {
	return []model.Tag{
		{Scope: ptr(TagCluster), Tag: ptr(np.ClusterID)},
		{Scope: ptr(TagNamespace), Tag: ptr(np.Namespace)},
		{Scope: ptr(TagNetworkPolicy), Tag: ptr(np.key())},
	}
}

func (np NetworkPolicy) types() (ingress, egress bool) {
	if len(np.PolicyTypes) == 0 {
		return true, len(np.Egress) > 0
	}
	for _, t := range np.PolicyTypes {
		switch t {
		case "Ingress":
			ingress = true
		case "Egress":
			egress = true
		}
	}
	return ingress, egress
}

// Object is one NSX object: its policy path, resource type, and body as
// the Policy API's JSON.
type Object struct {
	Path string
	Type string
	Body map[string]any
}

// Translate turns the policy into the NSX objects that enforce it, or
// returns a *kubefoundry.ValidationError naming every field that is wrong
// or that NSX cannot express ("NetworkPolicy.Ingress[0].Ports[1].Port").
// It writes nothing.
//
// The selected pods form a group; each peer forms a group (label
// selectors become conditions on segment port tags, see
// NamespaceLabelScope; an ipBlock an IP address expression); each rule
// becomes an ALLOW rule with its ports as service entries, in a DFW policy
// NSX evaluates before the namespaces' own (sequence 50). A second policy
// (sequence 60, after every policy's allows) isolates the selected pods:
// traffic from the cluster's nodes is allowed (kubelet probes), the rest in
// the policy's directions is dropped.
func (np NetworkPolicy) Translate() ([]Object, error) {
	ins, err := np.intents()
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, in := range ins {
		m, err := intentMap(in)
		if err != nil {
			return nil, err
		}
		out = append(out, Object{Path: in.path, Type: in.rtype, Body: m})
	}
	return out, nil
}

// validate checks what names the policy: its cluster, namespace, name
// and types.
func (np NetworkPolicy) validate(p problems) {
	p.clusterID(np.ClusterID)
	p.namespace("Namespace", np.Namespace)
	if np.Name == "" || len(np.Name) > 253 || strings.ToLower(np.Name) != np.Name || strings.ContainsAny(np.Name, "/ ") {
		p.add("Name", np.Name, "is not a Kubernetes object name")
	}
	for i, t := range np.PolicyTypes {
		if t != "Ingress" && t != "Egress" {
			p.add(fmt.Sprintf("PolicyTypes[%d]", i), t, "must be Ingress or Egress")
		}
	}
}

// intents are the NSX objects of the policy, or a
// *kubefoundry.ValidationError naming every problem.
func (np NetworkPolicy) intents() ([]intent, error) {
	p := newProblems("NetworkPolicy")
	np.validate(p)
	domain := "/infra/domains/default"
	base := np.base()
	tags := np.tags()
	podsGroup := domain + "/groups/" + base + "_pods"
	nsBase := []condition{{"EQUALS", TagCluster, np.ClusterID}, {"EQUALS", TagNamespace, np.Namespace}}
	selected := selectorCriteria(p, "PodSelector", np.PodSelector, "", nsBase)
	out := []intent{{podsGroup, "Group", model.Group{Id: ptr(base + "_pods"), Expression: selected.expression(), Tags: tags}, false}}
	policy := domain + "/security-policies/" + base
	out = append(out, intent{policy, "SecurityPolicy", model.SecurityPolicy{Id: ptr(base), Category: ptr("Application"),
		SequenceNumber: ptr(int64(50)), Scope: []string{podsGroup}, Tags: tags}, false})

	ingress, egress := np.types()
	seq := int64(10)
	addRules := func(dir string, rules []PolicyRule) {
		for i, r := range rules {
			field := fmt.Sprintf("%s[%d]", map[string]string{"IN": "Ingress", "OUT": "Egress"}[dir], i)
			peers := []string{"ANY"}
			if len(r.Peers) > 0 {
				peers = nil
			}
			for j, peer := range r.Peers {
				id := fmt.Sprintf("%s_%s%d_p%d", base, strings.ToLower(dir), i, j)
				expr := np.peerExpression(p, fmt.Sprintf("%s.Peers[%d]", field, j), peer)
				out = append(out, intent{domain + "/groups/" + id, "Group", model.Group{Id: ptr(id), Expression: expr, Tags: tags}, false})
				peers = append(peers, domain+"/groups/"+id)
			}
			entries := serviceEntries(p, field, r.Ports)
			// Services ANY beside service entries would widen the rule to
			// every port: entries alone, or ANY when there are none.
			services := []string{"ANY"}
			if len(entries) > 0 {
				services = []string{}
			}
			rule := model.Rule{Id: ptr(fmt.Sprintf("%s-%d", strings.ToLower(dir), i)), Action: ptr("ALLOW"),
				Direction: ptr(map[string]string{"IN": "IN", "OUT": "OUT"}[dir]), Services: services,
				ServiceEntries: entries, SequenceNumber: ptr(seq), Tags: tags}
			if dir == "IN" {
				rule.SourceGroups, rule.DestinationGroups = peers, []string{podsGroup}
			} else {
				rule.SourceGroups, rule.DestinationGroups = []string{podsGroup}, peers
			}
			out = append(out, intent{policy + "/rules/" + *rule.Id, "Rule", rule, false})
			seq += 10
		}
	}
	if ingress {
		addRules("IN", np.Ingress)
	}
	if egress {
		addRules("OUT", np.Egress)
	}
	if err := p.err(); err != nil {
		return nil, err
	}

	isolation := policy + "_isolation"
	out = append(out, intent{isolation, "SecurityPolicy", model.SecurityPolicy{Id: ptr(base + "_isolation"),
		Category: ptr("Application"), SequenceNumber: ptr(int64(60)), Scope: []string{podsGroup}, Tags: tags}, false})
	nodes := domain + "/groups/kf_" + np.ClusterID + "_nodes"
	if ingress {
		out = append(out,
			intent{isolation + "/rules/from-nodes", "Rule", model.Rule{Id: ptr("from-nodes"), Action: ptr("ALLOW"), Direction: ptr("IN"),
				SourceGroups: []string{nodes}, DestinationGroups: []string{podsGroup}, Services: []string{"ANY"},
				SequenceNumber: ptr(int64(10)), Tags: tags}, false},
			intent{isolation + "/rules/deny-ingress", "Rule", model.Rule{Id: ptr("deny-ingress"), Action: ptr("DROP"), Direction: ptr("IN"),
				SourceGroups: []string{"ANY"}, DestinationGroups: []string{podsGroup}, Services: []string{"ANY"},
				SequenceNumber: ptr(int64(20)), Tags: tags}, false})
	}
	if egress {
		out = append(out, intent{isolation + "/rules/deny-egress", "Rule", model.Rule{Id: ptr("deny-egress"), Action: ptr("DROP"), Direction: ptr("OUT"),
			SourceGroups: []string{podsGroup}, DestinationGroups: []string{"ANY"}, Services: []string{"ANY"},
			SequenceNumber: ptr(int64(30)), Tags: tags}, false})
	}
	return out, nil
}

// peerExpression is the group expression of a peer; what NSX cannot
// express goes to p, and the expression is then nil.
func (np NetworkPolicy) peerExpression(p problems, field string, peer Peer) []*data.StructValue {
	set := 0
	for _, b := range []bool{peer.PodSelector != nil || peer.NamespaceSelector != nil, peer.IPBlock != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		p.add(field, "", "must set podSelector/namespaceSelector or ipBlock, not both or neither")
		return nil
	}
	if b := peer.IPBlock; b != nil {
		pfx, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			p.add(field+".IPBlock.CIDR", b.CIDR, "is not a CIDR")
		}
		if len(b.Except) > 0 {
			p.add(field+".IPBlock.Except", strings.Join(b.Except, ","), "is not supported: an NSX group cannot subtract addresses")
		}
		if err != nil || len(b.Except) > 0 {
			return nil
		}
		return []*data.StructValue{mustStruct(model.IPAddressExpression{ResourceType: "IPAddressExpression",
			Id: ptr("ip"), IpAddresses: []string{pfx.Masked().String()}}, model.IPAddressExpressionBindingType())}
	}
	base := []condition{{"EQUALS", TagCluster, np.ClusterID}}
	if peer.NamespaceSelector == nil {
		base = append(base, condition{"EQUALS", TagNamespace, np.Namespace})
	}
	cr := criteria{base}
	if peer.NamespaceSelector != nil {
		cr = selectorCriteria(p, field+".NamespaceSelector", *peer.NamespaceSelector, NamespaceLabelScope, base)
	}
	if peer.PodSelector != nil {
		// The pod selector's own problems once, not once per namespace
		// criterion.
		sub := newProblems(p.object)
		var out criteria
		for _, c := range cr {
			out = append(out, selectorCriteria(sub, field+".PodSelector", *peer.PodSelector, "", c)...)
		}
		if sub.err() != nil {
			p.v.Problems = append(p.v.Problems, problemsOnce(sub.v.Problems)...)
		} else if len(out) > maxCriteria {
			p.add(field, fmt.Sprint(len(out)), fmt.Sprintf("needs %d OR-ed criteria; an NSX group takes %d", len(out), maxCriteria))
		}
		cr = out
	}
	return cr.expression()
}

// problemsOnce is ps without repeats.
func problemsOnce(ps []FieldError) []FieldError {
	var out []FieldError
	for _, fe := range ps {
		if !slices.Contains(out, fe) {
			out = append(out, fe)
		}
	}
	return out
}

// serviceEntries are a rule's ports; none is sent as [] (every port) so
// that removing the last port reaches NSX. A port NSX cannot express goes
// to p, and is left out.
func serviceEntries(p problems, field string, ports []PolicyPort) []*data.StructValue {
	out := []*data.StructValue{}
	for i, port := range ports {
		f := fmt.Sprintf("%s.Ports[%d]", field, i)
		proto := strings.ToUpper(orDefaultS(port.Protocol, "TCP"))
		ok := true
		if proto != "TCP" && proto != "UDP" {
			p.add(f+".Protocol", port.Protocol, "must be TCP or UDP")
			ok = false
		}
		if port.Named != "" {
			p.add(f+".Port", port.Named, "named ports are not supported: NSX rules match port numbers")
			ok = false
		}
		if port.Port < 0 || port.Port > 65535 || (port.EndPort != 0 && (port.EndPort < port.Port || port.EndPort > 65535 || port.Port == 0)) {
			p.add(f, fmt.Sprintf("%d-%d", port.Port, port.EndPort), "is not a port or port range")
			ok = false
		}
		if !ok {
			continue
		}
		e := model.L4PortSetServiceEntry{ResourceType: "L4PortSetServiceEntry", Id: ptr(fmt.Sprintf("port%d", i)), L4Protocol: ptr(proto)}
		switch {
		case port.EndPort != 0:
			e.DestinationPorts = []string{strconv.Itoa(port.Port) + "-" + strconv.Itoa(port.EndPort)}
		case port.Port != 0:
			e.DestinationPorts = []string{strconv.Itoa(port.Port)}
		}
		out = append(out, mustStruct(e, model.L4PortSetServiceEntryBindingType()))
	}
	return out
}

// ApplyNetworkPolicy makes NSX enforce np: it creates, updates or deletes
// the groups and DFW rules of the policy (one hierarchical PATCH, none when
// nothing changed). The cluster's topology must exist (BuildTopology).
// WithSink reports its progress (OpApplyPolicy).
func (c *Client) ApplyNetworkPolicy(ctx context.Context, np NetworkPolicy, opts ...CallOption) (_ *Plan, _ int, err error) {
	pr := newProgress(opts, OpApplyPolicy, np.ClusterID+"/"+np.key())
	defer func() { pr.end(err) }()
	ins, err := np.intents()
	if err != nil {
		return nil, 0, err
	}
	p, _, writes, err := c.converge(ctx, desiredSet{
		cluster: np.ClusterID,
		reach:   reach{policy: np.base()},
		member:  func(m map[string]any) bool { return hasTag(m, TagNetworkPolicy, np.key()) },
		config:  func(addresses) []intent { return ins },
	}, pr)
	return p, writes, err
}

// DeleteNetworkPolicy removes what ApplyNetworkPolicy made, found by tag
// and, as a teardown does, in NSX's store (its two security policies, read
// by path, their rules, and the groups they name), so a policy applied a
// moment before goes too. WithSink reports its progress (OpDeletePolicy).
func (c *Client) DeleteNetworkPolicy(ctx context.Context, clusterID, namespace, name string, opts ...CallOption) (_ *Teardown, err error) {
	np := NetworkPolicy{ClusterID: clusterID, Namespace: namespace, Name: name}
	pr := newProgress(opts, OpDeletePolicy, clusterID+"/"+np.key())
	defer func() { pr.end(err) }()
	p := newProblems("NetworkPolicy")
	np.validate(p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c.teardown(ctx, clusterID, namespace, func(m map[string]any) bool { return hasTag(m, TagNetworkPolicy, np.key()) }, reach{policy: np.base()}, pr)
}
