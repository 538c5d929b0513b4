// Command clonefloor measures the floor a vCenter (in practice the
// benchmark simulator) sets for many clones of one template: N bare
// CloneVM_Task calls, P at a time, powered on in the clone, all waited
// for with one batched read of every pending task, as little client work
// as a clone can take. hack/bench-govc.sh runs it beside govc and
// kubefoundry's ProvisionVMs on the same server; it prints one JSON line
// {"vms", "wall_seconds"}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("clonefloor: ")
	rawURL := flag.String("url", "", "vCenter SDK URL, credentials included")
	n := flag.Int("n", 100, "clones to make")
	p := flag.Int("p", 16, "clones at a time")
	template := flag.String("template", "DC0_H0_VM0", "the VM to clone")
	folder := flag.String("folder", "/DC0/vm/floor", "an existing folder for the clones")
	pool := flag.String("pool", "/DC0/host/DC0_C0/Resources", "the resource pool")
	flag.Parse()
	u, err := url.Parse(*rawURL)
	if err != nil || *rawURL == "" {
		log.Fatalf("-url: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		log.Fatal(err)
	}
	f := find.NewFinder(c.Client)
	dc, err := f.DefaultDatacenter(ctx)
	if err != nil {
		log.Fatal(err)
	}
	f.SetDatacenter(dc)
	tpl, err := f.VirtualMachine(ctx, *template)
	if err != nil {
		log.Fatal(err)
	}
	fo, err := f.Folder(ctx, *folder)
	if err != nil {
		log.Fatal(err)
	}
	rp, err := f.ResourcePool(ctx, *pool)
	if err != nil {
		log.Fatal(err)
	}
	poolRef := rp.Reference()

	var (
		mu      sync.Mutex
		pending = map[types.ManagedObjectReference]chan error{}
	)
	// One reader: every pending task's state in one call, every 50 ms.
	go func() {
		pc := property.DefaultCollector(c.Client)
		for ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			refs := make([]types.ManagedObjectReference, 0, len(pending))
			for r := range pending {
				refs = append(refs, r)
			}
			mu.Unlock()
			if len(refs) == 0 {
				continue
			}
			var tasks []mo.Task
			if err := pc.Retrieve(ctx, refs, []string{"info.state", "info.error"}, &tasks); err != nil {
				log.Fatal(err)
			}
			mu.Lock()
			for _, t := range tasks {
				var done error
				switch t.Info.State {
				case types.TaskInfoStateSuccess:
				case types.TaskInfoStateError:
					done = fmt.Errorf("%s", t.Info.Error.LocalizedMessage)
				default:
					continue
				}
				if ch, ok := pending[t.Self]; ok {
					ch <- done
					delete(pending, t.Self)
				}
			}
			mu.Unlock()
		}
	}()

	start := time.Now()
	sem := make(chan struct{}, *p)
	var wg sync.WaitGroup
	errs := make(chan error, *n)
	for i := range *n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := methods.CloneVM_Task(ctx, c.Client, &types.CloneVM_Task{This: tpl.Reference(), Folder: fo.Reference(),
				Name: fmt.Sprintf("floor-%03d", i), Spec: types.VirtualMachineCloneSpec{
					Location: types.VirtualMachineRelocateSpec{Pool: &poolRef}, PowerOn: true}})
			if err != nil {
				errs <- err
				return
			}
			ch := make(chan error, 1)
			mu.Lock()
			pending[res.Returnval] = ch
			mu.Unlock()
			if err := <-ch; err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	close(errs)
	for err := range errs {
		log.Fatal(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"vms": *n, "wall_seconds": wall.Seconds()})
}
