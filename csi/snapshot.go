package csi

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vmware/govmomi/cns"
	cnstypes "github.com/vmware/govmomi/cns/types"
)

// Snapshot is a point-in-time copy of a volume.
type Snapshot struct {
	ID          string    `json:"id"`
	VolumeID    string    `json:"volumeID"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
}

// CreateSnapshot snapshots a volume.
func (c *Client) CreateSnapshot(ctx context.Context, volumeID, description string) (*Snapshot, error) {
	task, err := c.cns.CreateSnapshots(ctx, []cnstypes.CnsSnapshotCreateSpec{{VolumeId: cnstypes.CnsVolumeId{Id: volumeID}, Description: description}})
	if err != nil {
		return nil, fmt.Errorf("snapshot volume %s: %w", volumeID, err)
	}
	res, err := c.result(ctx, task, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot volume %s: %w", volumeID, err)
	}
	cr, ok := res.(*cnstypes.CnsSnapshotCreateResult)
	if !ok {
		return nil, fmt.Errorf("snapshot volume %s: unexpected result %T", volumeID, res)
	}
	return &Snapshot{ID: cr.Snapshot.SnapshotId.Id, VolumeID: volumeID, Description: cr.Snapshot.Description, Created: cr.Snapshot.CreateTime}, nil
}

// ListSnapshots returns a volume's snapshots, oldest first.
func (c *Client) ListSnapshots(ctx context.Context, volumeID string) ([]Snapshot, error) {
	task, err := c.cns.QuerySnapshots(ctx, cnstypes.CnsSnapshotQueryFilter{
		SnapshotQuerySpecs: []cnstypes.CnsSnapshotQuerySpec{{VolumeId: cnstypes.CnsVolumeId{Id: volumeID}}},
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", volumeID, err)
	}
	info, err := c.tasks.Wait(ctx, task.Reference())
	if err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", volumeID, err)
	}
	qr, err := cns.GetQuerySnapshotsTaskResult(ctx, info)
	if err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", volumeID, err)
	}
	var out []Snapshot
	for _, e := range qr.Entries {
		if e.Error != nil {
			if _, notFound := e.Error.Fault.(*cnstypes.CnsSnapshotNotFoundFault); notFound {
				continue
			}
			return nil, fmt.Errorf("list snapshots of %s: %s", volumeID, e.Error.LocalizedMessage)
		}
		s := e.Snapshot
		out = append(out, Snapshot{ID: s.SnapshotId.Id, VolumeID: s.VolumeId.Id, Description: s.Description, Created: s.CreateTime})
	}
	slices.SortFunc(out, func(a, b Snapshot) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// DeleteSnapshot deletes one snapshot of a volume.
func (c *Client) DeleteSnapshot(ctx context.Context, volumeID, snapshotID string) error {
	task, err := c.cns.DeleteSnapshots(ctx, []cnstypes.CnsSnapshotDeleteSpec{{
		VolumeId: cnstypes.CnsVolumeId{Id: volumeID}, SnapshotId: cnstypes.CnsSnapshotId{Id: snapshotID},
	}})
	_, err = c.result(ctx, task, err)
	if err != nil {
		return fmt.Errorf("delete snapshot %s of %s: %w", snapshotID, volumeID, err)
	}
	return nil
}
