package kube

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kubefoundry/kubefoundry"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/validate/content"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
)

// FieldManager is the server-side apply field manager of kubefoundry.
const FieldManager = "kubefoundry"

// UserCertValidity is how long UserKubeconfig's certificates last when
// the caller has no reason to choose: a day, as TKGI's get-credentials.
const UserCertValidity = 24 * time.Hour

// UserKubeconfig issues a short-lived client certificate for user in
// groups from the cluster CA and wraps it in a kubeconfig, as TKGI's
// get-credentials does. ttl must be positive (UserCertValidity is a
// day); zero or less is refused as IssueClient refuses it.
func UserKubeconfig(ca *CA, cluster, server string, serverCA []byte, user string, groups []string, ttl time.Duration) ([]byte, error) {
	kp, err := ca.IssueClient(user, groups, ttl)
	if err != nil {
		return nil, err
	}
	return Kubeconfig(cluster, server, serverCA, user, kp)
}

// What marks a team's RoleBindings: the label that every object of
// kubefoundry carries, and the team (a group name, which a label value
// could not hold) and role in annotations.
const (
	managedByLabel = "app.kubernetes.io/managed-by"
	teamAnnotation = "kubefoundry.io/team"
	roleAnnotation = "kubefoundry.io/cluster-role"
	teamBindingPre = "kubefoundry:team:"
)

// TeamBindingName is the name of the RoleBinding that BindTeam gives team
// for the ClusterRole role: "kubefoundry:team:<team>:<role>". The role is
// part of the name because a RoleBinding's roleRef cannot change: a new
// role is a new binding, made before the old one goes.
func TeamBindingName(team, role string) string { return teamBindingPre + team + ":" + role }

// RoleNotFoundError is returned when a binding names a role that does not
// exist. It wraps kubefoundry.ErrNotFound and the API server's answer.
type RoleNotFoundError struct {
	Kind      string // "ClusterRole" or "Role"
	Namespace string // of a Role
	Name      string
	Err       error
}

func (e *RoleNotFoundError) Error() string {
	if e.Namespace != "" {
		return fmt.Sprintf("%s %q not found in namespace %s", e.Kind, e.Name, e.Namespace)
	}
	return fmt.Sprintf("%s %q not found", e.Kind, e.Name)
}

// Unwrap makes errors.Is(err, kubefoundry.ErrNotFound) true and keeps the
// API server's error.
func (e *RoleNotFoundError) Unwrap() []error { return []error{kubefoundry.ErrNotFound, e.Err} }

// BindTeam gives the group team the ClusterRole role ("view", "edit",
// "admin" or any other) in each namespace, through a RoleBinding named
// TeamBindingName(team, role), applied server-side, and then deletes the
// team's other bindings of BindTeam in the namespace. A role that does
// not exist is refused (a *RoleNotFoundError) before anything changes.
//
// A role change never leaves the team without a binding: the new binding
// exists before the old one is deleted. BindTeam is idempotent, and
// running it again after it was interrupted between the two steps
// completes the change. Bindings made by earlier versions
// ("kubefoundry:team:<team>", whatever the role) are replaced in the same
// way. Namespaces not named keep what they have.
func (c *Client) BindTeam(ctx context.Context, team, role string, namespaces []string) error {
	v := kubefoundry.ValidationError{Object: "team binding"}
	if team == "" {
		v.Add("team", "", "required")
	} else if msgs := content.IsPathSegmentName(team); len(msgs) > 0 {
		v.Add("team", team, "cannot be part of a RoleBinding's name: %s", strings.Join(msgs, ", "))
	}
	if role == "" {
		v.Add("role", "", "required")
	} else if msgs := content.IsPathSegmentName(role); len(msgs) > 0 {
		v.Add("role", role, "not a ClusterRole name: %s", strings.Join(msgs, ", "))
	}
	for i, ns := range namespaces {
		if ns == "" {
			v.Add(fmt.Sprintf("namespaces[%d]", i), "", "empty")
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	if _, err := c.cs.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("bind team %s: %w", team, &RoleNotFoundError{Kind: "ClusterRole", Name: role, Err: err})
		}
		return fmt.Errorf("bind team %s: read ClusterRole %q: %w", team, role, err)
	}
	for _, ns := range namespaces {
		if err := c.bindTeam(ctx, team, role, ns); err != nil {
			return err
		}
	}
	return nil
}

// bindTeam makes the team's binding to role in ns, then deletes its
// others there.
func (c *Client) bindTeam(ctx context.Context, team, role, ns string) error {
	rbs := c.cs.RbacV1().RoleBindings(ns)
	name := TeamBindingName(team, role)
	// A name may be another team's: "a" as "b:view" and "a:b" as "view"
	// meet in "kubefoundry:team:a:b:view". Never take one over.
	existing, err := rbs.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("bind team %s as %s: read role binding %s/%s: %w", team, role, ns, name, err)
	case existing.Annotations[teamAnnotation] != team || existing.RoleRef.Kind != "ClusterRole" || existing.RoleRef.Name != role:
		return fmt.Errorf("bind team %s as %s: role binding %s/%s is not the team's (team %q, %s %q): %w",
			team, role, ns, name, existing.Annotations[teamAnnotation], existing.RoleRef.Kind, existing.RoleRef.Name, kubefoundry.ErrAlreadyExists)
	}
	rb := rbacv1ac.RoleBinding(name, ns).
		WithLabels(map[string]string{managedByLabel: FieldManager}).
		WithAnnotations(map[string]string{teamAnnotation: team, roleAnnotation: role}).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(role)).
		WithSubjects(rbacv1ac.Subject().WithAPIGroup(rbacv1.GroupName).WithKind(rbacv1.GroupKind).WithName(team))
	if _, err := rbs.Apply(ctx, rb, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return fmt.Errorf("bind team %s as %s in %s: %w", team, role, ns, err)
	}

	// Only now that the new binding exists may the old ones go.
	list, err := rbs.List(ctx, metav1.ListOptions{LabelSelector: managedByLabel + "=" + FieldManager})
	if err != nil {
		return fmt.Errorf("bind team %s as %s: list role bindings in %s: %w", team, role, ns, err)
	}
	for i := range list.Items {
		old := &list.Items[i]
		if old.Name == name || !teamBinding(old, team) {
			continue
		}
		uid := old.UID
		err := rbs.Delete(ctx, old.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("bind team %s as %s: delete role binding %s/%s (%s %q): %w", team, role, ns, old.Name, old.RoleRef.Kind, old.RoleRef.Name, err)
		}
	}
	return nil
}

// teamBinding reports whether rb is a binding BindTeam made for team:
// marked with the team, or, as earlier versions made them, named for the
// team alone with the team as its only subject.
func teamBinding(rb *rbacv1.RoleBinding, team string) bool {
	if t, ok := rb.Annotations[teamAnnotation]; ok {
		return t == team
	}
	return rb.Name == teamBindingPre+team && len(rb.Subjects) == 1 &&
		rb.Subjects[0].Kind == rbacv1.GroupKind && rb.Subjects[0].Name == team
}
