package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	for _, handoff := range []int{1, 0} {
		for _, specOn := range []bool{false, true} {
			simulator.TaskDelay.MethodDelay = map[string]int{"CloneVm": 500, "PowerOn": 500, "LockHandoff": handoff}
			m := simulator.VPX()
			_ = m.Run(func(ctx context.Context, c *vim25.Client) error {
				f := find.NewFinder(c)
				dc, _ := f.DefaultDatacenter(ctx)
				f.SetDatacenter(dc)
				vm, _ := f.VirtualMachine(ctx, "DC0_H0_VM0")
				pool, _ := f.ResourcePool(ctx, "DC0_C0/Resources")
				ds, _ := f.Datastore(ctx, "LocalDS_0")
				folders, _ := dc.Folders(ctx)
				start := time.Now()
				var wg sync.WaitGroup
				for i := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						pr, dr := pool.Reference(), ds.Reference()
						spec := types.VirtualMachineCloneSpec{Location: types.VirtualMachineRelocateSpec{Pool: &pr, Datastore: &dr}, PowerOn: specOn}
						t, err := vm.Clone(ctx, folders.VmFolder, fmt.Sprintf("c%d", i), spec)
						if err != nil {
							panic(err)
						}
						info, err := t.WaitForResult(ctx)
						if err != nil {
							panic(err)
						}
						if !specOn {
							t, _ := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference)).PowerOn(ctx)
							if err := t.Wait(ctx); err != nil {
								panic(err)
							}
						}
					}()
				}
				wg.Wait()
				fmt.Printf("LockHandoff=%d spec.PowerOn=%v: 8 concurrent clone+poweron (0.5+0.5 s) took %.2f s\n", handoff, specOn, time.Since(start).Seconds())
				return nil
			})
		}
	}
}
