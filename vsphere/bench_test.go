package vsphere_test

import (
	"context"
	"fmt"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry/internal/vimpoll"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

// BenchmarkProvisionVMs measures how well ProvisionVMs overlaps clones on
// vcsim with a real vCenter's pace: a clone takes 2 s, a reconfigure and a
// power-on 0.5 s each. LockHandoff 0 keeps vcsim from holding the template's
// lock through each delay, which would serialise every clone whatever the
// client does. Each iteration provisions 1 VM, then 100 VMs at concurrency
// 100; then, as the floor the simulator allows, 1 and then 100 bare
// CloneVM_Task calls of the same template (powered on in the clone, as
// ProvisionVMs clones), all issued at once and waited for with one batched
// read. It reports:
//
//   - wall100/wall1: 1.0 is perfect overlap;
//   - floor-wall100/wall1: the same of the bare clones;
//   - wall-ratio/floor: the first over the second (target <= 1.05: what
//     ProvisionVMs adds to what the simulator itself serialises);
//   - soap-calls/vm: SOAP calls of the 100-VM call per VM (target <= 3).
func BenchmarkProvisionVMs(b *testing.B) {
	withTaskDelays(b, map[string]int{"CloneVm": 2000, "ReconfigVm": 500, "PowerOnVm": 500, "LockHandoff": 0})
	s := newSim(b)
	ctx := context.Background()
	c, err := vsphere.New(ctx, vsphere.Config{URL: s.url, Insecure: true}, vsphere.WithLogger(zap.NewNop()),
		vsphere.WithConcurrency(100), vsphere.WithRateLimit(0, 0))
	require.NoError(b, err)
	defer c.Close(ctx)

	tpl, err := c.FindVM(ctx, simTemplate)
	require.NoError(b, err)
	pool, err := c.EnsureResourcePool(ctx, simCluster, "")
	require.NoError(b, err)
	poolRef := pool.Reference()
	tasks := vimpoll.NewTasks(c.Vim25())
	floor := func(folder string, n int) time.Duration {
		f, err := c.EnsureFolder(ctx, folder)
		require.NoError(b, err)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				res, err := methods.CloneVM_Task(ctx, c.Vim25(), &types.CloneVM_Task{This: tpl.Reference(), Folder: f.Reference(),
					Name: fmt.Sprintf("%s-%d", path.Base(folder), i),
					Spec: types.VirtualMachineCloneSpec{Location: types.VirtualMachineRelocateSpec{Pool: &poolRef}, PowerOn: true}})
				if err == nil {
					_, err = tasks.Wait(ctx, res.Returnval)
				}
				assert.NoError(b, err)
			})
		}
		wg.Wait()
		return time.Since(start)
	}

	var ratio, perVM, wall100, floorRatio float64
	for i := 0; b.Loop(); i++ {
		one := specs(fmt.Sprintf("bench%d-one", i), 1)
		start := time.Now()
		_, err := c.ProvisionVMs(ctx, one)
		require.NoError(b, err)
		w1 := time.Since(start)

		many := specs(fmt.Sprintf("bench%d-many", i), 100)
		calls := c.Stats().Calls
		start = time.Now()
		_, err = c.ProvisionVMs(ctx, many)
		require.NoError(b, err)
		w100 := time.Since(start)

		ratio = w100.Seconds() / w1.Seconds()
		perVM = float64(c.Stats().Calls-calls) / 100
		wall100 = w100.Seconds()

		f1 := floor(fmt.Sprintf("floor/%d-one", i), 1)
		f100 := floor(fmt.Sprintf("floor/%d-many", i), 100)
		floorRatio = f100.Seconds() / f1.Seconds()
	}
	b.ReportMetric(ratio, "wall100/wall1")
	b.ReportMetric(floorRatio, "floor-wall100/wall1")
	b.ReportMetric(ratio/floorRatio, "wall-ratio/floor")
	b.ReportMetric(perVM, "soap-calls/vm")
	b.ReportMetric(wall100, "wall100-s")
}

// BenchmarkNaiveClones is the yardstick for BenchmarkProvisionVMs: the same
// simulator and delays, the same 1 and then 100 clones (powered on in the
// clone, as ProvisionVMs does), each in its own goroutine waiting on its own
// task with govmomi's Task.Wait, the way a script built directly on govmomi
// does it. What it cannot overlap is the simulator's: vcsim runs each clone's
// body (creating the VM and its files, powering it on) while holding the
// source VM's lock, about 20 ms a clone here, so 100 clones of one template
// end one after another whatever the client does.
func BenchmarkNaiveClones(b *testing.B) {
	withTaskDelays(b, map[string]int{"CloneVm": 2000, "ReconfigVm": 500, "PowerOnVm": 500, "LockHandoff": 0})
	s := newSim(b)
	ctx := context.Background()
	c, err := vsphere.New(ctx, vsphere.Config{URL: s.url, Insecure: true}, vsphere.WithRateLimit(0, 0))
	require.NoError(b, err)
	defer c.Close(ctx)
	tpl, err := c.FindVM(ctx, simTemplate)
	require.NoError(b, err)
	pool, err := c.EnsureResourcePool(ctx, simCluster, "")
	require.NoError(b, err)
	poolRef := pool.Reference()

	clones := func(folder string, n int) time.Duration {
		f, err := c.EnsureFolder(ctx, folder)
		require.NoError(b, err)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				task, err := tpl.Clone(ctx, f, fmt.Sprintf("%s-%d", path.Base(folder), i),
					types.VirtualMachineCloneSpec{Location: types.VirtualMachineRelocateSpec{Pool: &poolRef}, PowerOn: true})
				if err == nil {
					err = task.Wait(ctx)
				}
				assert.NoError(b, err)
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	var ratio, calls, wall100 float64
	for i := 0; b.Loop(); i++ {
		w1 := clones(fmt.Sprintf("naive/%d-one", i), 1)
		before := c.Stats().Calls
		w100 := clones(fmt.Sprintf("naive/%d-many", i), 100)
		ratio, wall100 = w100.Seconds()/w1.Seconds(), w100.Seconds()
		calls = float64(c.Stats().Calls-before) / 100
	}
	b.ReportMetric(ratio, "wall100/wall1")
	b.ReportMetric(calls, "soap-calls/vm")
	b.ReportMetric(wall100, "wall100-s")
}
