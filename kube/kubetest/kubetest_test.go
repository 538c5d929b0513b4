package kubetest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefoundry/kubefoundry/kube/kubetest"
)

var (
	env    *kubetest.Environment
	envErr error
)

func TestMain(m *testing.M) {
	env, envErr = kubetest.Start(context.Background())
	code := m.Run()
	if env != nil {
		env.Stop()
	}
	os.Exit(code)
}

func TestControlPlane(t *testing.T) {
	env := kubetest.Need(t, env, envErr)
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(env.Config)
	require.NoError(t, err)

	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubetest-a"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	t.Run("kubectl with the admin kubeconfig", func(t *testing.T) {
		out, err := env.Kubectl(ctx, "get", "namespaces", "-o", "name")
		require.NoError(t, err, string(out))
		assert.Contains(t, strings.Fields(string(out)), "namespace/kubetest-a")
	})

	t.Run("the disruption controller gives PDBs a status", func(t *testing.T) {
		pdb := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "pdb", Namespace: ns.Name},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MinAvailable: &intstr.IntOrString{Type: intstr.Int, IntVal: 1},
				Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			},
		}
		_, err := cs.PolicyV1().PodDisruptionBudgets(ns.Name).Create(ctx, pdb, metav1.CreateOptions{})
		require.NoError(t, err)
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := cs.PolicyV1().PodDisruptionBudgets(ns.Name).Get(ctx, "pdb", metav1.GetOptions{})
			return err == nil && got.Status.ObservedGeneration == got.Generation, err
		})
		require.NoError(t, err)
	})

	t.Run("the namespace controller finishes deletes", func(t *testing.T) {
		require.NoError(t, cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}))
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
			return err != nil, nil
		})
		require.NoError(t, err)
	})
}
