package simulator

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
)

// checks are NSX's checks of what an object says, by resource type: they
// run on the object as a write leaves it (a PATCH merged into what was
// there, a PUT, a hierarchical PATCH), before it is stored, and may give
// it what NSX gives it (the ids of a group's expressions). A refusal is
// 400 naming the object's path and what is wrong.
var checks = map[string]func(path string, body map[string]any) error{
	"Group":  checkGroup,
	"LBPool": checkLBPool,
}

// NSX's limits on a group's expression (the Policy API's Group.expression
// and NestedExpression; nsx-operator lists the same for the UI's
// criteria): at most 5 criteria, that is Conditions or NestedExpressions
// joined by OR; at most 15 conditions in one criterion and 35 in all; at
// most 500 IP and MAC addresses, external ids and paths in all.
const (
	maxCriteria          = 5
	maxCriterionConds    = 15
	maxConditions        = 35
	maxExpressionMembers = 500
	conjunctionType      = "ConjunctionOperator"
	conditionType        = "Condition"
	nestedExpressionType = "NestedExpression"
)

// memberExpressions are the expressions that list members rather than
// select them, with the field that lists them.
var memberExpressions = map[string]string{
	"IPAddressExpression":  "ip_addresses",
	"MACAddressExpression": "mac_addresses",
	"ExternalIDExpression": "external_ids",
	"PathExpression":       "paths",
}

// The values NSX takes in a Condition (model.Condition's enums).
var (
	conditionMemberTypes = []string{"IPSet", "VirtualMachine", "LogicalPort", "LogicalSwitch", "Segment", "SegmentPort",
		"Pod", "Service", "Namespace", "TransportNode", "Group", "DVPG", "DVPort", "IPAddress", "VpcSubnet",
		"KubernetesCluster", "KubernetesNamespace", "AntreaEgress", "AntreaIPPool", "KubernetesIngress",
		"KubernetesGateway", "KubernetesService", "KubernetesNode", "VpcSubnetPort"}
	conditionKeys      = []string{"Tag", "Name", "OSName", "ComputerName", "NodeType", "GroupType", "ALL", "IPAddress", "PodCidr"}
	conditionOperators = []string{"EQUALS", "CONTAINS", "STARTSWITH", "ENDSWITH", "NOTEQUALS", "NOTIN", "MATCHES", "IN"}
	// A VirtualMachine's name and the like are matched as strings.
	stringOperators = []string{"EQUALS", "CONTAINS", "STARTSWITH", "ENDSWITH", "NOTEQUALS"}
)

// checkGroup checks a group's expression as NSX does: a non-empty list
// has odd length, expressions at even indices and ConjunctionOperators
// (AND or OR) at odd ones; a NestedExpression holds Conditions joined by
// AND; each Condition is whole; the expressions' ids are unique; and the
// limits above hold. An expression sent without an id gets one, as NSX
// gives it one.
func checkGroup(path string, body map[string]any) error {
	list, ok := body["expression"].([]any)
	if !ok || len(list) == 0 {
		return nil
	}
	// The list may be shared with the stored object a PATCH merged into:
	// copy it before giving ids.
	list = deepCopy(list).([]any)
	body["expression"] = list
	c := &exprCheck{path: path, ids: map[string]string{}}
	c.list(list, "", false)
	if c.err != nil {
		return c.err
	}
	criteria, conds, members := c.count(list)
	switch {
	case c.err != nil:
		return c.err
	case criteria > maxCriteria:
		return errorf(http.StatusBadRequest, "%s: the expression has %d criteria (Conditions and NestedExpressions joined by OR); a group takes at most %d",
			path, criteria, maxCriteria)
	case conds > maxConditions:
		return errorf(http.StatusBadRequest, "%s: the expression has %d conditions; a group takes at most %d", path, conds, maxConditions)
	case members > maxExpressionMembers:
		return errorf(http.StatusBadRequest, "%s: the expression lists %d IP and MAC addresses, external ids and paths; a group takes at most %d",
			path, members, maxExpressionMembers)
	}
	return nil
}

type exprCheck struct {
	path string
	ids  map[string]string // id -> where it is
	err  error
}

func (c *exprCheck) fail(at, format string, args ...any) {
	if c.err == nil {
		c.err = errorf(http.StatusBadRequest, "%s: expression%s: %s", c.path, at, fmt.Sprintf(format, args...))
	}
}

// list checks one expression list; nested is a NestedExpression's.
func (c *exprCheck) list(list []any, at string, nested bool) {
	if len(list)%2 == 0 {
		c.fail(at, "a non-empty expression list has odd length, expressions separated by ConjunctionOperators; this one has %d entries", len(list))
	}
	for i, raw := range list {
		here := fmt.Sprintf("%s[%d]", at, i)
		e, ok := raw.(map[string]any)
		if !ok {
			c.fail(here, "is not an expression")
			continue
		}
		rt := fmtString(e["resource_type"])
		c.id(e, here)
		if i%2 == 1 {
			if rt != conjunctionType {
				c.fail(here, "must be a ConjunctionOperator between two expressions, not %s", orNone(rt))
				continue
			}
			switch op := fmtString(e["conjunction_operator"]); {
			case op == "AND":
			case op == "OR" && !nested:
			case nested:
				c.fail(here, "conjunction_operator %s: a NestedExpression joins its conditions with AND", orNone(op))
			default:
				c.fail(here, "conjunction_operator %s must be AND or OR", orNone(op))
			}
			continue
		}
		switch {
		case rt == conjunctionType:
			c.fail(here, "a ConjunctionOperator must stand between two expressions")
		case rt == conditionType:
			c.condition(e, here)
		case nested:
			c.fail(here, "a NestedExpression holds only Conditions and ConjunctionOperators, not %s", orNone(rt))
		case rt == nestedExpressionType:
			inner, _ := e["expressions"].([]any)
			if len(inner) == 0 {
				c.fail(here, "a NestedExpression needs expressions")
				continue
			}
			c.list(inner, here+".expressions", true)
		case memberExpressions[rt] != "":
		default:
			c.fail(here, "unknown expression type %s", orNone(rt))
		}
	}
}

// id checks that e's id, if it has one, is unique in the group, and gives
// it one otherwise.
func (c *exprCheck) id(e map[string]any, here string) {
	id := fmtString(e["id"])
	if id == "" {
		e["id"] = newUUID()
		return
	}
	if prev, ok := c.ids[id]; ok {
		c.fail(here, "id %q is already the id of expression%s", id, prev)
		return
	}
	c.ids[id] = here
}

func (c *exprCheck) condition(e map[string]any, here string) {
	mt, key, op, value := fmtString(e["member_type"]), fmtString(e["key"]), fmtString(e["operator"]), fmtString(e["value"])
	if !slices.Contains(conditionMemberTypes, mt) {
		c.fail(here, "member_type %s is not one NSX knows", orNone(mt))
	}
	if !slices.Contains(conditionKeys, key) {
		c.fail(here, "key %s is not one NSX knows", orNone(key))
	}
	// The operator may be left out of a Segment or SegmentPort tag
	// condition only.
	tagOnly := key == "Tag" && (mt == "Segment" || mt == "SegmentPort")
	switch {
	case op == "" && !tagOnly:
		c.fail(here, "a condition on %s %s needs an operator", orNone(mt), orNone(key))
	case op != "" && !slices.Contains(conditionOperators, op):
		c.fail(here, "operator %s is not one NSX knows", orNone(op))
	case op != "" && key == "Name" && !slices.Contains(stringOperators, op):
		c.fail(here, "operator %s does not apply to key Name", orNone(op))
	}
	if value == "" {
		c.fail(here, "a condition needs a value")
	}
}

// count counts the criteria of a checked list (its Conditions and
// NestedExpressions, those joined by AND counting once), its conditions,
// and the members its member expressions list; it fails a criterion of
// more than maxCriterionConds conditions.
func (c *exprCheck) count(list []any) (criteria, conds, members int) {
	run := 0 // conditions in the current criterion
	inCriterion := false
	end := func() {
		if inCriterion {
			criteria++
		}
		if run > maxCriterionConds && c.err == nil {
			c.err = errorf(http.StatusBadRequest, "%s: a criterion of the expression has %d conditions; one takes at most %d",
				c.path, run, maxCriterionConds)
		}
		run, inCriterion = 0, false
	}
	for i, raw := range list {
		e := raw.(map[string]any) // checked by list
		if i%2 == 1 {
			if fmtString(e["conjunction_operator"]) == "OR" {
				end()
			}
			continue
		}
		switch rt := fmtString(e["resource_type"]); rt {
		case conditionType:
			run++
			conds++
			inCriterion = true
		case nestedExpressionType:
			n := 0
			for _, in := range e["expressions"].([]any) {
				if fmtString(in.(map[string]any)["resource_type"]) == conditionType {
					n++
				}
			}
			run += n
			conds += n
			inCriterion = true
		default:
			if f := memberExpressions[rt]; f != "" {
				l, _ := e[f].([]any)
				members += len(l)
			}
		}
	}
	end()
	return criteria, conds, members
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return strconv.Quote(s)
}

// checkLBPool checks a load balancer pool's members as NSX does: each has
// an IP address and, when it has a port, one from 1 to 65535; no address
// and port is a member twice; and a pool with a member_group (a dynamic
// pool, whose members are its group's) lists no members.
func checkLBPool(path string, body map[string]any) error {
	members, _ := body["members"].([]any)
	if mg, ok := body["member_group"].(map[string]any); ok {
		if fmtString(mg["group_path"]) == "" {
			return errorf(http.StatusBadRequest, "%s: member_group needs a group_path", path)
		}
		if len(members) > 0 {
			return errorf(http.StatusBadRequest, "%s: a pool with a member_group takes its members from the group: members must be empty", path)
		}
	}
	seen := map[string]int{}
	for i, raw := range members {
		m, _ := raw.(map[string]any)
		ip, err := netip.ParseAddr(fmtString(m["ip_address"]))
		if err != nil {
			return errorf(http.StatusBadRequest, "%s: members[%d]: ip_address %s is not an IP address", path, i, orNone(fmtString(m["ip_address"])))
		}
		port := fmtString(m["port"])
		if port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return errorf(http.StatusBadRequest, "%s: members[%d]: port %q is not a port (1-65535)", path, i, port)
			}
		}
		key := ip.String() + " port " + orDefault(port, "(the virtual server's)")
		if j, ok := seen[key]; ok {
			return errorf(http.StatusBadRequest, "%s: members[%d] and members[%d] are the same member: %s", path, j, i, key)
		}
		seen[key] = i
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
