package harbor

import (
	"context"
	"fmt"

	"github.com/goharbor/go-client/pkg/sdk/v2.0/client/member"
	"github.com/goharbor/go-client/pkg/sdk/v2.0/models"
)

// Role is a project role.
type Role int64

// Harbor's project roles and their ids.
const (
	ProjectAdmin Role = 1
	Developer    Role = 2
	Guest        Role = 3
	Maintainer   Role = 4
	LimitedGuest Role = 5
)

func (r Role) String() string {
	switch r {
	case ProjectAdmin:
		return "projectAdmin"
	case Developer:
		return "developer"
	case Guest:
		return "guest"
	case Maintainer:
		return "maintainer"
	case LimitedGuest:
		return "limitedGuest"
	}
	return fmt.Sprintf("Role(%d)", int64(r))
}

// Member is a user or a group in a project. Set User, or Group with its
// LDAP DN (GroupDN) for an LDAP group.
type Member struct {
	User    string
	Group   string
	GroupDN string
	Role    Role
}

func (m Member) name() string {
	if m.User != "" {
		return m.User
	}
	return m.Group
}

// validate returns every problem of m at once as a *ValidationError.
func (m Member) validate() error {
	verr := ValidationError{Object: "harbor.Member"}
	switch {
	case m.User == "" && m.Group == "":
		verr.Add("member.user", "", "set user or group")
	case m.User != "" && m.Group != "":
		verr.Add("member.group", m.Group, "set user or group, not both")
	}
	if m.GroupDN != "" && m.Group == "" {
		verr.Add("member.groupDN", m.GroupDN, "is for an LDAP group: set group too")
	}
	if m.Role < ProjectAdmin || m.Role > LimitedGuest {
		verr.Add("member.role", m.Role.String(), "must be ProjectAdmin, Maintainer, Developer, Guest or LimitedGuest")
	}
	return verr.Err()
}

// Members lists a project's members.
func (c *Client) Members(ctx context.Context, project string) ([]Member, error) {
	var out []Member
	for page := int64(1); ; page++ {
		res, err := c.api.Member.ListProjectMembers(ctx, member.NewListProjectMembersParams().
			WithProjectNameOrID(project).WithXIsResourceName(ptr(true)).WithPage(&page).WithPageSize(ptr(int64(100))))
		if err != nil {
			return nil, apiError("list members of "+project, err)
		}
		for _, m := range res.Payload {
			if m == nil {
				continue
			}
			mm := Member{Role: Role(m.RoleID)}
			if m.EntityType == "g" {
				mm.Group = m.EntityName
			} else {
				mm.User = m.EntityName
			}
			out = append(out, mm)
		}
		if len(res.Payload) < 100 {
			return out, nil
		}
	}
}

// EnsureMember adds a user or group to a project with a role, or changes
// its role. It is idempotent.
func (c *Client) EnsureMember(ctx context.Context, project string, m Member) error {
	if err := m.validate(); err != nil {
		return err
	}
	cur, err := c.findMember(ctx, project, m)
	if err != nil {
		return err
	}
	if cur != nil {
		if Role(cur.RoleID) == m.Role {
			return nil
		}
		_, err := c.api.Member.UpdateProjectMember(ctx, member.NewUpdateProjectMemberParams().
			WithProjectNameOrID(project).WithXIsResourceName(ptr(true)).WithMid(cur.ID).
			WithRole(&models.RoleRequest{RoleID: int64(m.Role)}))
		return apiError(fmt.Sprintf("set role of %s in %s", m.name(), project), err)
	}
	req := &models.ProjectMember{RoleID: int64(m.Role)}
	if m.User != "" {
		req.MemberUser = &models.UserEntity{Username: m.User}
	} else {
		g := &models.UserGroup{GroupName: m.Group, GroupType: 2} // HTTP group
		if m.GroupDN != "" {
			g.GroupType, g.LdapGroupDn = 1, m.GroupDN
		}
		req.MemberGroup = g
	}
	_, err = c.api.Member.CreateProjectMember(ctx, member.NewCreateProjectMemberParams().
		WithProjectNameOrID(project).WithXIsResourceName(ptr(true)).WithProjectMember(req))
	return apiError(fmt.Sprintf("add %s to %s", m.name(), project), err)
}

// RemoveMember removes a user or group (by name) from a project; one that
// is not a member is not an error.
func (c *Client) RemoveMember(ctx context.Context, project string, m Member) error {
	cur, err := c.findMember(ctx, project, m)
	if err != nil || cur == nil {
		return err
	}
	_, err = c.api.Member.DeleteProjectMember(ctx, member.NewDeleteProjectMemberParams().
		WithProjectNameOrID(project).WithXIsResourceName(ptr(true)).WithMid(cur.ID))
	if e := apiError(fmt.Sprintf("remove %s from %s", m.name(), project), err); e != nil && !isKind(e, ErrNotFound) {
		return e
	}
	return nil
}

// findMember finds a user or group among a project's members by its exact
// name. Harbor's entityname filter is a substring match and its pages are
// short, so every page of the filtered list is read.
func (c *Client) findMember(ctx context.Context, project string, m Member) (*models.ProjectMemberEntity, error) {
	kind := "u"
	if m.User == "" {
		kind = "g"
	}
	const size = 100
	for page := int64(1); ; page++ {
		res, err := c.api.Member.ListProjectMembers(ctx, member.NewListProjectMembersParams().
			WithProjectNameOrID(project).WithXIsResourceName(ptr(true)).WithEntityname(ptr(m.name())).
			WithPage(&page).WithPageSize(ptr(int64(size))))
		if err != nil {
			return nil, apiError("list members of "+project, err)
		}
		for _, e := range res.Payload {
			if e != nil && e.EntityType == kind && e.EntityName == m.name() {
				return e, nil
			}
		}
		if len(res.Payload) < size {
			return nil, nil
		}
	}
}
