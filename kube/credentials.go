package kube

import (
	"context"
	"fmt"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
)

// FieldManager is the server-side apply field manager of kubefoundry.
const FieldManager = "kubefoundry"

// UserKubeconfig issues a short-lived client certificate for user in
// groups from the cluster CA and wraps it in a kubeconfig, as TKGI's
// get-credentials does. A ttl of zero means 24 hours.
func UserKubeconfig(ca *CA, cluster, server string, serverCA []byte, user string, groups []string, ttl time.Duration) ([]byte, error) {
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	kp, err := ca.IssueClient(user, groups, ttl)
	if err != nil {
		return nil, err
	}
	return Kubeconfig(cluster, server, serverCA, user, kp)
}

// BindTeam gives the group team the ClusterRole role ("view", "edit",
// "admin" or any other) in each namespace, through a RoleBinding named
// "kubefoundry:team:<team>" applied server-side. It is idempotent, and a
// changed role replaces the binding (a RoleBinding's roleRef is fixed).
func (c *Client) BindTeam(ctx context.Context, team, role string, namespaces []string) error {
	if team == "" || role == "" {
		return fmt.Errorf("bind team: team and role are required")
	}
	name := "kubefoundry:team:" + team
	for _, ns := range namespaces {
		existing, err := c.cs.RbacV1().RoleBindings(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && (existing.RoleRef.Kind != "ClusterRole" || existing.RoleRef.Name != role) {
			if err := c.cs.RbacV1().RoleBindings(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				return fmt.Errorf("replace role binding %s/%s: %w", ns, name, err)
			}
		}
		rb := rbacv1ac.RoleBinding(name, ns).
			WithLabels(map[string]string{"app.kubernetes.io/managed-by": FieldManager}).
			WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(role)).
			WithSubjects(rbacv1ac.Subject().WithAPIGroup(rbacv1.GroupName).WithKind(rbacv1.GroupKind).WithName(team))
		if _, err := c.cs.RbacV1().RoleBindings(ns).Apply(ctx, rb, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return fmt.Errorf("bind team %s as %s in %s: %w", team, role, ns, err)
		}
	}
	return nil
}
