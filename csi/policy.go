package csi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vmware/govmomi/pbm"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry/internal/vimsession"
)

// StoragePolicy is an SPBM storage policy.
type StoragePolicy struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type pbmHolder struct {
	mu sync.Mutex
	c  *pbm.Client
}

func (c *Client) pbmClient(ctx context.Context) (*pbm.Client, error) {
	c.pbm.mu.Lock()
	defer c.pbm.mu.Unlock()
	if c.pbm.c == nil {
		pc, err := vimsession.PBM(ctx, c.vim)
		if err != nil {
			return nil, fmt.Errorf("storage policy service: %w", err)
		}
		c.pbm.c = pc
	}
	return c.pbm.c, nil
}

// StoragePolicies lists the storage requirement policies, by name.
func (c *Client) StoragePolicies(ctx context.Context) ([]StoragePolicy, error) {
	pc, err := c.pbmClient(ctx)
	if err != nil {
		return nil, err
	}
	rtype := pbmtypes.PbmProfileResourceType{ResourceType: string(pbmtypes.PbmProfileResourceTypeEnumSTORAGE)}
	ids, err := pc.QueryProfile(ctx, rtype, string(pbmtypes.PbmProfileCategoryEnumREQUIREMENT))
	if err != nil {
		return nil, fmt.Errorf("storage policies: %w", err)
	}
	profiles, err := pc.RetrieveContent(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("storage policies: %w", err)
	}
	out := make([]StoragePolicy, 0, len(profiles))
	for _, p := range profiles {
		b := p.GetPbmProfile()
		out = append(out, StoragePolicy{ID: b.ProfileId.UniqueId, Name: b.Name})
	}
	slices.SortFunc(out, func(a, b StoragePolicy) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// StoragePolicyID resolves a policy by name; an unknown name is an
// ErrNotFound listing the policies there are.
func (c *Client) StoragePolicyID(ctx context.Context, name string) (string, error) {
	all, err := c.StoragePolicies(ctx)
	if err != nil {
		return "", err
	}
	names := make([]string, len(all))
	for i, p := range all {
		if p.Name == name {
			return p.ID, nil
		}
		names[i] = p.Name
	}
	return "", fmt.Errorf("storage policy %q (available: %s): %w", name, strings.Join(names, ", "), ErrNotFound)
}

// CompatibleDatastores lists the datastores that satisfy a policy.
func (c *Client) CompatibleDatastores(ctx context.Context, policy string) ([]types.ManagedObjectReference, error) {
	id, err := c.StoragePolicyID(ctx, policy)
	if err != nil {
		return nil, err
	}
	pc, err := c.pbmClient(ctx)
	if err != nil {
		return nil, err
	}
	res, err := pc.CheckRequirements(ctx, nil, nil, []pbmtypes.BasePbmPlacementRequirement{
		&pbmtypes.PbmPlacementCapabilityProfileRequirement{ProfileId: pbmtypes.PbmProfileId{UniqueId: id}},
	})
	if err != nil {
		return nil, fmt.Errorf("datastores for policy %q: %w", policy, err)
	}
	var out []types.ManagedObjectReference
	for _, hub := range res.CompatibleDatastores() {
		out = append(out, types.ManagedObjectReference{Type: hub.HubType, Value: hub.HubId})
	}
	return out, nil
}
