package lifecycle

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubefoundry/kubefoundry"
)

// upgrade is Upgrade without its task: the work itself.
func (m *Manager) upgrade(ctx context.Context, name string) (*Cluster, error) {
	if err := kubefoundry.ClusterID(name).Validate(); err != nil {
		return nil, err
	}
	rec, err := m.cfg.Store.Cluster(name)
	if err != nil {
		return nil, err
	}
	if rec.State == StateDeleting {
		return nil, fmt.Errorf("cluster %s is being deleted: %w", name, kubefoundry.ErrConflict)
	}
	if err := upgradable(rec.Spec.KubernetesVersion, m.cfg.KubernetesVersion); err != nil {
		return nil, &kubefoundry.ValidationError{Object: "upgrade of cluster " + name, Problems: []kubefoundry.FieldError{{
			Field: "kubernetesVersion", Value: rec.Spec.KubernetesVersion, Reason: err.Error()}}}
	}
	spec := rec.Spec
	spec.KubernetesVersion = m.cfg.KubernetesVersion
	return m.convergeRecorded(ctx, "upgrade cluster", spec, rec, StateUpdating, true)
}

// upgradable says whether a cluster on Kubernetes from may move to to:
// the same version, a later patch, or the next minor; Kubernetes supports
// no downgrade and no skipped minor.
func upgradable(from, to string) error {
	f, err := version.ParseSemantic(from)
	if err != nil {
		return fmt.Errorf("the cluster's version: %w", err)
	}
	t, err := version.ParseSemantic(to)
	if err != nil {
		return fmt.Errorf("the foundation's version %q: %w", to, err)
	}
	switch {
	case t.LessThan(f):
		return fmt.Errorf("the foundation runs %s, older than the cluster's: Kubernetes is not downgraded", to)
	case t.Major() != f.Major() || t.Minor() > f.Minor()+1:
		return fmt.Errorf("the foundation runs %s: Kubernetes is upgraded one minor version at a time", to)
	}
	return nil
}
