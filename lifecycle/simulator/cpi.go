package simulator

import (
	"context"
	"sync"

	"github.com/kubefoundry/kubefoundry/bosh/cpi"
)

// vcsimCPI passes the director's calls that change vcsim's inventory on
// to the vSphere CPI one at a time. vcsim runs each task in a goroutine
// of its own, outside its registry's lock in places: a VM destroyed while
// another VM's disk is deleted races inside it (the race detector caught
// it once the director deleted a deployment's instances at once). A real
// vCenter takes them at once; only the simulator needs this.
type vcsimCPI struct {
	cpi.CPI
	mu sync.Mutex
}

func (c *vcsimCPI) CreateStemcell(ctx context.Context, imagePath string, cloudProps cpi.CloudProps) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.CreateStemcell(ctx, imagePath, cloudProps)
}

func (c *vcsimCPI) DeleteStemcell(ctx context.Context, stemcellCID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.DeleteStemcell(ctx, stemcellCID)
}

func (c *vcsimCPI) CreateVM(ctx context.Context, agentID, stemcellCID string, cloudProps cpi.CloudProps, networks cpi.Networks,
	diskCIDs []string, env cpi.Env) (string, cpi.Networks, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.CreateVM(ctx, agentID, stemcellCID, cloudProps, networks, diskCIDs, env)
}

func (c *vcsimCPI) DeleteVM(ctx context.Context, vmCID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.DeleteVM(ctx, vmCID)
}

func (c *vcsimCPI) RebootVM(ctx context.Context, vmCID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.RebootVM(ctx, vmCID)
}

func (c *vcsimCPI) CreateDisk(ctx context.Context, sizeMB int, cloudProps cpi.CloudProps, vmCID string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.CreateDisk(ctx, sizeMB, cloudProps, vmCID)
}

func (c *vcsimCPI) DeleteDisk(ctx context.Context, diskCID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.DeleteDisk(ctx, diskCID)
}

func (c *vcsimCPI) AttachDisk(ctx context.Context, vmCID, diskCID string) (cpi.DiskHint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.AttachDisk(ctx, vmCID, diskCID)
}

func (c *vcsimCPI) DetachDisk(ctx context.Context, vmCID, diskCID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.DetachDisk(ctx, vmCID, diskCID)
}

func (c *vcsimCPI) ResizeDisk(ctx context.Context, diskCID string, newSizeMB int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.CPI.ResizeDisk(ctx, diskCID, newSizeMB)
}
