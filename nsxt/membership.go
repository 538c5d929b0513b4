package nsxt

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/vsphere-automation-sdk-go/runtime/data"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/infra/domains"
	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/internal/retry"
)

// VMGroupDomain is the domain whose groups AddVMToGroups finds by name
// and RemoveVMFromGroups looks through, as BOSH's vSphere CPI uses it.
const VMGroupDomain = "default"

// conflictAttempts bounds the tries of one group or pool update that NSX
// refuses because another writer changed it since it was read (a stale
// _revision): each try reads it again.
const conflictAttempts = 8

// PoolPort names a load balancer pool under /infra/lb-pools, by display
// name or else by id, and the port a member serves on in it (0: the port
// of the virtual server the client connected to).
type PoolPort struct {
	Pool string
	Port int
}

// AddVMToGroups makes the VM named vmName a member of groups, found in the
// domain VMGroupDomain by display name or, when no group has it as its
// display name, by id; a name that matches several groups adds the VM to
// each. Each group's expression gets a criterion of its own, a Condition
// {member_type VirtualMachine, key Name, operator EQUALS, value vmName},
// joined to what is there by a ConjunctionOperator OR (id
// "conjunction-<vmName>"), as BOSH's vSphere CPI adds it in its Policy API
// mode. A group that has that criterion already is not written.
//
// Every name is looked up before anything is written: names no group has
// are one error wrapping ErrNotFound that lists them all. An update NSX
// refuses because another writer changed the group since it was read
// (ErrConflict) is read and applied again, up to 8 times, with backoff.
// NSX takes at most 5 criteria in a group (Conditions and
// NestedExpressions joined by OR): a group that has them refuses the VM
// (an *APIError wrapping ErrInvalid).
func (c *Client) AddVMToGroups(ctx context.Context, vmName string, groups []string) error {
	p := newProblems("AddVMToGroups")
	checkVMName(p, vmName)
	for i, g := range groups {
		if strings.TrimSpace(g) == "" {
			p.add(fmt.Sprintf("groups[%d]", i), g, "must name a group")
		}
	}
	if err := p.err(); err != nil {
		return err
	}
	all, err := c.listGroups(ctx, VMGroupDomain)
	if err != nil {
		return err
	}
	var ids, missing []string
	for _, name := range uniq(groups) {
		found := matchByName(all, name, func(g model.Group) (string, string) { return deref(g.Id), deref(g.DisplayName) })
		if len(found) == 0 {
			missing = append(missing, name)
		}
		for _, id := range found {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("nsxt: no group named %s in domain %s: %w", quoteAll(missing), VMGroupDomain, ErrNotFound)
	}
	for _, id := range ids {
		if err := c.joinGroup(ctx, VMGroupDomain, id, vmName); err != nil {
			return err
		}
	}
	return nil
}

// RemoveVMFromGroups takes the VM named vmName out of every group of the
// domain VMGroupDomain whose expression has the criterion AddVMToGroups
// adds for it, with the ConjunctionOperator that joined it, and leaves the
// rest of each expression as it was. A group that changes under it is read
// and changed again, as AddVMToGroups does; one deleted meanwhile is
// skipped. Every such group is tried; the errors are joined.
func (c *Client) RemoveVMFromGroups(ctx context.Context, vmName string) error {
	p := newProblems("RemoveVMFromGroups")
	checkVMName(p, vmName)
	if err := p.err(); err != nil {
		return err
	}
	all, err := c.listGroups(ctx, VMGroupDomain)
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range all {
		if _, has := withoutVM(g.Expression, vmName); !has {
			continue
		}
		err := c.updateGroup(ctx, VMGroupDomain, deref(g.Id), func(g *model.Group) bool {
			var has bool
			g.Expression, has = withoutVM(g.Expression, vmName)
			return has
		})
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			errs = append(errs, err)
		default:
			c.log.Info("vm removed from NSX group", zap.String("vm", vmName), zap.String("group", groupPath(VMGroupDomain, deref(g.Id))))
		}
	}
	return errors.Join(errs...)
}

// AddPoolMembers makes the VM named vmName, at address ip, a member of
// load balancer pools, found by display name or, when no pool has it as
// its display name, by id (a name several pools have means each of them).
// A static pool gets the member {ip_address ip, port, display_name
// vmName}, unless it has a member at that address and port already. A
// dynamic pool (one with a member_group) takes its members from its
// group: the VM joins that group as AddVMToGroups adds it. Every pool is
// looked up before anything is written: names no pool has are one error
// wrapping ErrNotFound that lists them all. Conflicts are retried as by
// AddVMToGroups.
func (c *Client) AddPoolMembers(ctx context.Context, vmName, ip string, pools []PoolPort) error {
	p := newProblems("AddPoolMembers")
	checkVMName(p, vmName)
	addr, aerr := netip.ParseAddr(ip)
	if aerr != nil {
		p.add("ip", ip, "is not an IP address")
	}
	for i, pp := range pools {
		if strings.TrimSpace(pp.Pool) == "" {
			p.add(fmt.Sprintf("pools[%d].Pool", i), pp.Pool, "must name a load balancer pool")
		}
		if pp.Port < 0 || pp.Port > 65535 {
			p.add(fmt.Sprintf("pools[%d].Port", i), strconv.Itoa(pp.Port), "must be 1-65535, or 0 for the virtual server's port")
		}
	}
	if err := p.err(); err != nil {
		return err
	}
	all, err := c.listPools(ctx)
	if err != nil {
		return err
	}
	type target struct {
		id   string
		port int
	}
	var targets []target
	var missing []string
	for _, pp := range pools {
		found := matchByName(all, pp.Pool, func(p model.LBPool) (string, string) { return deref(p.Id), deref(p.DisplayName) })
		if len(found) == 0 && !slices.Contains(missing, pp.Pool) {
			missing = append(missing, pp.Pool)
		}
		for _, id := range found {
			if t := (target{id, pp.Port}); !slices.Contains(targets, t) {
				targets = append(targets, t)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("nsxt: no load balancer pool named %s: %w", quoteAll(missing), ErrNotFound)
	}
	member := model.LBPoolMember{IpAddress: ptr(addr.String()), DisplayName: ptr(vmName)}
	for _, t := range targets {
		m := member
		if t.port != 0 {
			m.Port = ptr(strconv.Itoa(t.port))
		}
		var group string // the member group of a dynamic pool
		err := c.updatePool(ctx, t.id, func(p *model.LBPool) bool {
			group = ""
			if p.MemberGroup != nil && p.MemberGroup.GroupPath != nil {
				group = *p.MemberGroup.GroupPath
				return false
			}
			if slices.ContainsFunc(p.Members, func(x model.LBPoolMember) bool { return sameMember(x, m) }) {
				return false
			}
			p.Members = append(p.Members, m)
			return true
		})
		if err != nil {
			return err
		}
		if group == "" {
			continue
		}
		domain, id, ok := splitGroupPath(group)
		if !ok {
			return fmt.Errorf("nsxt: load balancer pool %s: member_group %q is not a group's path", lbPoolPath(t.id), group)
		}
		if err := c.joinGroup(ctx, domain, id, vmName); err != nil {
			return err
		}
	}
	return nil
}

// RemovePoolMembers takes every member at address ip out of every load
// balancer pool that has one (a dynamic pool's group is RemoveVMFromGroups'
// to change). A pool that changes under it is read and changed again, as
// AddVMToGroups does; one deleted meanwhile is skipped. Every such pool is
// tried; the errors are joined.
func (c *Client) RemovePoolMembers(ctx context.Context, ip string) error {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		p := newProblems("RemovePoolMembers")
		p.add("ip", ip, "is not an IP address")
		return p.err()
	}
	all, err := c.listPools(ctx)
	if err != nil {
		return err
	}
	at := func(m model.LBPoolMember) bool {
		a, err := netip.ParseAddr(deref(m.IpAddress))
		return err == nil && a == addr
	}
	var errs []error
	for _, pool := range all {
		if !slices.ContainsFunc(pool.Members, at) {
			continue
		}
		err := c.updatePool(ctx, deref(pool.Id), func(p *model.LBPool) bool {
			n := len(p.Members)
			p.Members = slices.DeleteFunc(p.Members, at)
			return len(p.Members) != n
		})
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			errs = append(errs, err)
		default:
			c.log.Info("address removed from NSX load balancer pool", zap.String("ip", ip), zap.String("pool", lbPoolPath(deref(pool.Id))))
		}
	}
	return errors.Join(errs...)
}

func checkVMName(p problems, vm string) {
	if strings.TrimSpace(vm) == "" {
		p.add("vmName", vm, "must name a VM")
	}
}

// joinGroup adds the VM's criterion to the group, unless it has it.
func (c *Client) joinGroup(ctx context.Context, domain, id, vm string) error {
	var wrote bool
	err := c.updateGroup(ctx, domain, id, func(g *model.Group) bool {
		if _, has := withoutVM(g.Expression, vm); has {
			wrote = false
			return false
		}
		g.Expression = withVM(g.Expression, vm)
		wrote = true
		return true
	})
	if err == nil && wrote {
		c.log.Info("vm added to NSX group", zap.String("vm", vm), zap.String("group", groupPath(domain, id)))
	}
	return err
}

// updateGroup reads the group, lets change change it (it reports whether
// it did) and writes it back with the _revision it read (a PUT), reading
// and changing it again when another writer got there first.
func (c *Client) updateGroup(ctx context.Context, domain, id string, change func(*model.Group) bool) error {
	path := groupPath(domain, id)
	return c.onConflict(ctx, path, func() error {
		conn, cause := c.connector(ctx)
		gc := domains.NewGroupsClient(conn)
		g, err := gc.Get(domain, id)
		if err != nil {
			return apiError("get "+path, err, cause.get())
		}
		if !change(&g) {
			return nil
		}
		if _, err := gc.Update(domain, id, g); err != nil {
			return apiError("put "+path, err, cause.get())
		}
		return nil
	})
}

// updatePool is updateGroup for a load balancer pool.
func (c *Client) updatePool(ctx context.Context, id string, change func(*model.LBPool) bool) error {
	path := lbPoolPath(id)
	return c.onConflict(ctx, path, func() error {
		conn, cause := c.connector(ctx)
		pc := infra.NewLbPoolsClient(conn)
		p, err := pc.Get(id)
		if err != nil {
			return apiError("get "+path, err, cause.get())
		}
		if !change(&p) {
			return nil
		}
		if _, err := pc.Update(id, p); err != nil {
			return apiError("put "+path, err, cause.get())
		}
		return nil
	})
}

// onConflict runs try until it does not fail with ErrConflict, at most
// conflictAttempts times, backing off between tries within ctx.
func (c *Client) onConflict(ctx context.Context, path string, try func() error) error {
	bo := retry.Backoff{Initial: c.opts.backoff, Max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil || !errors.Is(err, ErrConflict) || attempt >= conflictAttempts {
			return err
		}
		c.log.Debug("NSX object changed since it was read, reading it again", zap.String("path", path), zap.Int("attempt", attempt), zap.Error(err))
		if !bo.Sleep(ctx) {
			return err
		}
	}
}

func (c *Client) listGroups(ctx context.Context, domain string) ([]model.Group, error) {
	conn, cause := c.connector(ctx)
	gc := domains.NewGroupsClient(conn)
	var out []model.Group
	var cursor *string
	for {
		page, err := gc.List(domain, cursor, nil, nil, nil, ptr(int64(1000)), nil, nil)
		if err != nil {
			return nil, apiError("list /infra/domains/"+domain+"/groups", err, cause.get())
		}
		out = append(out, page.Results...)
		if page.Cursor == nil || *page.Cursor == "" || len(page.Results) == 0 {
			return out, nil
		}
		cursor = page.Cursor
	}
}

func (c *Client) listPools(ctx context.Context) ([]model.LBPool, error) {
	conn, cause := c.connector(ctx)
	pc := infra.NewLbPoolsClient(conn)
	var out []model.LBPool
	var cursor *string
	for {
		page, err := pc.List(cursor, nil, nil, ptr(int64(1000)), nil, nil)
		if err != nil {
			return nil, apiError("list /infra/lb-pools", err, cause.get())
		}
		out = append(out, page.Results...)
		if page.Cursor == nil || *page.Cursor == "" || len(page.Results) == 0 {
			return out, nil
		}
		cursor = page.Cursor
	}
}

// matchByName returns the ids of the objects whose display name is name
// or, when none has it, of the one whose id is name.
func matchByName[T any](all []T, name string, idName func(T) (id, displayName string)) []string {
	var byName, byID []string
	for _, o := range all {
		id, dn := idName(o)
		if dn == name {
			byName = append(byName, id)
		}
		if id == name {
			byID = append(byID, id)
		}
	}
	if len(byName) > 0 {
		return byName
	}
	return byID
}

// vmCondition is the criterion that makes the VM named vm a member.
func vmCondition(vm string) *data.StructValue {
	return mustStruct(model.Condition{ResourceType: model.Condition__TYPE_IDENTIFIER,
		MemberType: ptr(model.Condition_MEMBER_TYPE_VIRTUALMACHINE), Key: ptr(model.Condition_KEY_NAME),
		Operator: ptr(model.Condition_OPERATOR_EQUALS), Value: ptr(vm)}, model.ConditionBindingType())
}

func isVMCondition(e *data.StructValue, vm string) bool {
	return field(e, "resource_type") == model.Condition__TYPE_IDENTIFIER &&
		field(e, "member_type") == model.Condition_MEMBER_TYPE_VIRTUALMACHINE && field(e, "key") == model.Condition_KEY_NAME &&
		field(e, "operator") == model.Condition_OPERATOR_EQUALS && field(e, "value") == vm
}

func isOR(e *data.StructValue) bool {
	return field(e, "resource_type") == model.ConjunctionOperator__TYPE_IDENTIFIER &&
		field(e, "conjunction_operator") == model.ConjunctionOperator_CONJUNCTION_OPERATOR_OR
}

// criterion is one OR-ed part of a group's expression: its expressions
// (joined by AND, when several), and the OR before it (nil for the first).
type criterion struct {
	or    *data.StructValue
	exprs []*data.StructValue
}

// splitOR splits an expression at its OR conjunctions.
func splitOR(expr []*data.StructValue) []criterion {
	if len(expr) == 0 {
		return nil
	}
	out := []criterion{{}}
	for i, e := range expr {
		if i%2 == 1 && isOR(e) {
			out = append(out, criterion{or: e})
			continue
		}
		out[len(out)-1].exprs = append(out[len(out)-1].exprs, e)
	}
	return out
}

func joinOR(cs []criterion) []*data.StructValue {
	out := []*data.StructValue{}
	for i, c := range cs {
		if i > 0 {
			out = append(out, c.or)
		}
		out = append(out, c.exprs...)
	}
	return out
}

// isVMCriterion: the criterion is the VM's condition alone (not ANDed
// with anything, which would make it another's).
func (c criterion) isVMCriterion(vm string) bool {
	return len(c.exprs) == 1 && isVMCondition(c.exprs[0], vm)
}

// withVM adds the VM's criterion to expr, ORed (by a conjunction with an
// id no other expression of it has) when expr is not empty.
func withVM(expr []*data.StructValue, vm string) []*data.StructValue {
	if len(expr) == 0 {
		return []*data.StructValue{vmCondition(vm)}
	}
	ids := map[string]bool{}
	for _, e := range expr {
		ids[field(e, "id")] = true
	}
	id := "conjunction-" + vm
	for n := 1; ids[id]; n++ {
		id = fmt.Sprintf("conjunction-%s-%d", vm, n)
	}
	or := mustStruct(model.ConjunctionOperator{ResourceType: model.ConjunctionOperator__TYPE_IDENTIFIER, Id: ptr(id),
		ConjunctionOperator: ptr(model.ConjunctionOperator_CONJUNCTION_OPERATOR_OR)}, model.ConjunctionOperatorBindingType())
	return append(slices.Clip(expr), or, vmCondition(vm))
}

// withoutVM takes the VM's criteria out of expr, each with an OR that
// joined it (the one before it, or for the first the one after), so what
// is left is still an expression NSX takes; has reports whether it had
// any. What is left is in its order, and is empty when the VM was all.
func withoutVM(expr []*data.StructValue, vm string) (_ []*data.StructValue, has bool) {
	cs := splitOR(expr)
	kept := slices.DeleteFunc(slices.Clone(cs), func(c criterion) bool { return c.isVMCriterion(vm) })
	if len(kept) == len(cs) {
		return expr, false
	}
	return joinOR(kept), true
}

func sameMember(a, b model.LBPoolMember) bool {
	x, err1 := netip.ParseAddr(deref(a.IpAddress))
	y, err2 := netip.ParseAddr(deref(b.IpAddress))
	return err1 == nil && err2 == nil && x == y && deref(a.Port) == deref(b.Port)
}

func groupPath(domain, id string) string { return "/infra/domains/" + domain + "/groups/" + id }

func lbPoolPath(id string) string { return "/infra/lb-pools/" + id }

// splitGroupPath splits /infra/domains/<domain>/groups/<id>.
func splitGroupPath(path string) (domain, id string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/infra/domains/")
	if !ok {
		return "", "", false
	}
	domain, id, ok = strings.Cut(rest, "/groups/")
	if !ok || domain == "" || id == "" || strings.Contains(domain, "/") || strings.Contains(id, "/") {
		return "", "", false
	}
	return domain, id, true
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func uniq(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}
