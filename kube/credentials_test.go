package kube_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

func newNamespace(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// teamBindings lists the RoleBindings in ns whose subjects include the
// group team, by name.
func teamBindings(t *testing.T, cs kubernetes.Interface, ns, team string) map[string]rbacv1.RoleBinding {
	t.Helper()
	list, err := cs.RbacV1().RoleBindings(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	out := map[string]rbacv1.RoleBinding{}
	for _, rb := range list.Items {
		if hasGroup(&rb, team) {
			out[rb.Name] = rb
		}
	}
	return out
}

func hasGroup(rb *rbacv1.RoleBinding, group string) bool {
	return slices.ContainsFunc(rb.Subjects, func(s rbacv1.Subject) bool { return s.Kind == rbacv1.GroupKind && s.Name == group })
}

// TestBindTeamRefusesMissingRole: a role that does not exist is refused,
// naming it, and the team keeps the binding it had, untouched.
func TestBindTeamRefusesMissingRole(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	cs := c.Clientset()
	newNamespace(t, cs, "bind-missing")

	require.NoError(t, c.BindTeam(ctx, "team-m", "view", []string{"bind-missing"}))
	before := teamBindings(t, cs, "bind-missing", "team-m")
	require.Len(t, before, 1)

	err = c.BindTeam(ctx, "team-m", "no-such-role", []string{"bind-missing"})
	require.Error(t, err)
	var rnf *kube.RoleNotFoundError
	require.ErrorAs(t, err, &rnf)
	assert.Equal(t, "ClusterRole", rnf.Kind)
	assert.Equal(t, "no-such-role", rnf.Name)
	assert.ErrorIs(t, err, kubefoundry.ErrNotFound)
	assert.True(t, apierrors.IsNotFound(err), "the API server's answer stays in the chain")
	assert.ErrorContains(t, err, `ClusterRole "no-such-role" not found`)
	assert.Equal(t, `ClusterRole "no-such-role" not found`, rnf.Error(), "a ClusterRole is in no namespace")
	assert.Equal(t, `Role "r" not found in namespace ns`, (&kube.RoleNotFoundError{Kind: "Role", Namespace: "ns", Name: "r"}).Error())

	assert.Equal(t, before, teamBindings(t, cs, "bind-missing", "team-m"), "the working binding is untouched")

	err = c.BindTeam(ctx, "team/x", "", []string{"bind-missing", ""})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve, "every problem at once")
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"team", "role", "namespaces[1]"}, fields)
}

// TestBindTeamRoleChangeWithoutGap watches the team's bindings while its
// role changes: in the API server's own order of events, the binding to
// the new role is created before the one to the old role is deleted, so
// that the team has a binding at every moment.
func TestBindTeamRoleChangeWithoutGap(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	cs := c.Clientset()
	const ns, team = "bind-change", "team-c"
	newNamespace(t, cs, ns)
	require.NoError(t, c.BindTeam(ctx, team, "view", []string{ns}))

	list, err := cs.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	present := map[string]bool{}
	for _, rb := range list.Items {
		if hasGroup(&rb, team) {
			present[rb.Name] = true
		}
	}
	require.Len(t, present, 1)
	w, err := cs.RbacV1().RoleBindings(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	require.NoError(t, err)
	defer w.Stop()

	require.NoError(t, c.BindTeam(ctx, team, "edit", []string{ns}))

	// Replay the events until the old binding is gone: after each, the
	// team still has one.
	var order []string
	timeout := time.After(30 * time.Second)
	for len(order) == 0 || order[len(order)-1] != "DELETED "+kube.TeamBindingName(team, "view") {
		select {
		case ev, ok := <-w.ResultChan():
			require.True(t, ok, "watch ended after %v", order)
			rb, ok := ev.Object.(*rbacv1.RoleBinding)
			require.True(t, ok, "%v", ev.Object)
			if !hasGroup(rb, team) {
				continue
			}
			switch ev.Type {
			case watch.Added:
				present[rb.Name] = true
			case watch.Deleted:
				delete(present, rb.Name)
			default:
				continue
			}
			order = append(order, string(ev.Type)+" "+rb.Name)
			require.NotEmpty(t, present, "the team had no binding after %v", order)
		case <-timeout:
			t.Fatalf("the old binding was not deleted: %v", order)
		}
	}
	assert.Equal(t, []string{"ADDED " + kube.TeamBindingName(team, "edit"), "DELETED " + kube.TeamBindingName(team, "view")}, order)

	after := teamBindings(t, cs, ns, team)
	require.Len(t, after, 1)
	rb := after[kube.TeamBindingName(team, "edit")]
	assert.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"}, rb.RoleRef)

	t.Run("idempotent: an unchanged role writes nothing", func(t *testing.T) {
		require.NoError(t, c.BindTeam(ctx, team, "edit", []string{ns}))
		again := teamBindings(t, cs, ns, team)
		require.Len(t, again, 1)
		assert.Equal(t, rb.UID, again[rb.Name].UID)
		assert.Equal(t, rb.ResourceVersion, again[rb.Name].ResourceVersion)
	})
}

// TestBindTeamConvergesAfterInterruption: a role change that stopped
// between its two steps (here: a caller allowed to create bindings but
// not to delete them) leaves the team both bindings, never none; running
// it again keeps the new one and deletes the old. A binding of an
// earlier version (named for the team alone) is replaced the same way.
func TestBindTeamConvergesAfterInterruption(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	admin, err := kube.New(env.Config)
	require.NoError(t, err)
	cs := admin.Clientset()
	const ns, team = "bind-interrupted", "team-i"
	newNamespace(t, cs, ns)

	// A binder that may read roles and make bindings to view and edit, but
	// not delete them.
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "test-binder-no-delete"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"get"}},
			{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{"view", "edit"}},
			{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, Verbs: []string{"get", "list", "create", "patch"}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "test-binder-no-delete"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "test-binder-no-delete"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "binder"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg, err := kube.UserKubeconfig(pki.ClusterCA, "test", env.Config.Host, env.ServerCA, "binder", nil, time.Hour)
	require.NoError(t, err)
	rc, err := kube.RESTConfig(cfg)
	require.NoError(t, err)
	binder, err := kube.New(rc)
	require.NoError(t, err)

	require.NoError(t, admin.BindTeam(ctx, team, "view", []string{ns}))
	var stopped error
	require.Eventually(t, func() bool { // the RBAC authorizer sees the new rules moments later
		stopped = binder.BindTeam(ctx, team, "edit", []string{ns})
		return stopped != nil && strings.Contains(stopped.Error(), "delete role binding "+ns+"/"+kube.TeamBindingName(team, "view"))
	}, 10*time.Second, 100*time.Millisecond, "%v", stopped)
	assert.True(t, apierrors.IsForbidden(stopped), "%v", stopped)
	both := teamBindings(t, cs, ns, team)
	require.Len(t, both, 2, "stopped half-way: the old binding and the new")
	created := both[kube.TeamBindingName(team, "edit")]

	require.NoError(t, admin.BindTeam(ctx, team, "edit", []string{ns}))
	after := teamBindings(t, cs, ns, team)
	require.Len(t, after, 1)
	assert.Equal(t, created.UID, after[kube.TeamBindingName(team, "edit")].UID, "the binding made before is kept")

	t.Run("a binding of an earlier version is replaced", func(t *testing.T) {
		const ns, team = "bind-legacy", "team-l"
		newNamespace(t, cs, ns)
		_, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "kubefoundry:team:" + team, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubefoundry"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: team}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		// Not the team's: another group's binding of the same label stays.
		_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "kubefoundry:team:other", Labels: map[string]string{"app.kubernetes.io/managed-by": "kubefoundry"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "other"}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)

		require.NoError(t, admin.BindTeam(ctx, team, "view", []string{ns}))
		after := teamBindings(t, cs, ns, team)
		require.Len(t, after, 1)
		assert.Contains(t, after, kube.TeamBindingName(team, "view"))
		assert.Len(t, teamBindings(t, cs, ns, "other"), 1)
	})
}

// TestBindTeamNeverTakesAnotherTeamsBinding: where two teams' bindings
// meet in one name (team "ta" as "tc-x:tc-y" and team "ta:tc-x" as
// "tc-y"; team "tb" as "view" and an earlier version's binding of team
// "tb:view"), the second is refused and the first keeps its subject.
func TestBindTeamNeverTakesAnotherTeamsBinding(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	c, err := kube.New(env.Config)
	require.NoError(t, err)
	cs := c.Clientset()
	const ns = "bind-collision"
	newNamespace(t, cs, ns)
	for _, role := range []string{"tc-x:tc-y", "tc-y"} {
		_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: role}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	require.Equal(t, kube.TeamBindingName("ta", "tc-x:tc-y"), kube.TeamBindingName("ta:tc-x", "tc-y"))

	require.NoError(t, c.BindTeam(ctx, "ta", "tc-x:tc-y", []string{ns}))
	err = c.BindTeam(ctx, "ta:tc-x", "tc-y", []string{ns})
	assert.ErrorIs(t, err, kubefoundry.ErrAlreadyExists)
	assert.ErrorContains(t, err, kube.TeamBindingName("ta", "tc-x:tc-y"))
	assert.Len(t, teamBindings(t, cs, ns, "ta"), 1)
	assert.Empty(t, teamBindings(t, cs, ns, "ta:tc-x"))

	// Same name and role: the binding an earlier version made for team
	// "tb:view" is not team "tb"'s as "view".
	_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kubefoundry:team:tb:view", Labels: map[string]string{"app.kubernetes.io/managed-by": "kubefoundry"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "tb:view"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	err = c.BindTeam(ctx, "tb", "view", []string{ns})
	assert.ErrorIs(t, err, kubefoundry.ErrAlreadyExists)
	assert.Len(t, teamBindings(t, cs, ns, "tb:view"), 1, "the other team keeps its binding")
	assert.Empty(t, teamBindings(t, cs, ns, "tb"))

	// An earlier version's binding is the team's only if named for the
	// team alone with the team's group as its only subject: one of
	// another name binding the group, and one of that name binding a user
	// of the team's name, are not, and stay.
	for name, subject := range map[string]rbacv1.Subject{
		"kubefoundry:team:te:extra": {APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "te"},
		"kubefoundry:team:te":       {APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "te"},
	} {
		_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubefoundry"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{subject},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, c.BindTeam(ctx, "te", "view", []string{ns}))
	for _, name := range []string{"kubefoundry:team:te:extra", "kubefoundry:team:te"} {
		_, err := cs.RbacV1().RoleBindings(ns).Get(ctx, name, metav1.GetOptions{})
		assert.NoError(t, err, "%s is not the team's: kept", name)
	}
}
