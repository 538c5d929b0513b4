package vsphere_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	_ "github.com/vmware/govmomi/pbm/simulator" // the storage policy (SPBM) endpoint

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/simulator"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/vsphere"
	"github.com/kubefoundry/kubefoundry/vsphere/vspheretest"
)

// Names in govmomi's default VPX model.
const (
	simCluster   = "DC0_C0"
	simTemplate  = "DC0_C0_RP0_VM0"
	simDatastore = "LocalDS_0"
	simNetwork   = "VM Network"
	simDVPG      = "DC0_DVPG0"
)

// delayMu serialises tests that change simulator.TaskDelay, a global.
var delayMu sync.Mutex

// sim is one in-process vCenter simulator.
type sim struct {
	model  *simulator.Model
	server *simulator.Server
	url    string
	ca     string
}

// newSim starts the default VPX model; edit, when given, changes the model
// before it is created.
func newSim(t testing.TB, edit ...func(*simulator.Model)) *sim {
	t.Helper()
	return startSim(t, edit, nil)
}

// startSim creates the VPX model after the edits, calls created (when not
// nil) on the created model before the server starts, and serves it.
func startSim(t testing.TB, edit []func(*simulator.Model), created func(*simulator.Model)) *sim {
	t.Helper()
	var opts []vspheretest.Option
	for _, e := range edit {
		opts = append(opts, vspheretest.WithModel(e))
	}
	if created != nil {
		opts = append(opts, vspheretest.WithCreated(created))
	}
	vs := vspheretest.Start(t, opts...)
	return &sim{model: vs.Model, server: vs.Server, url: vs.Config.URL, ca: vs.CACert}
}

// refuseOnce makes vcsim refuse the next call of method with InvalidState.
func (s *sim) refuseOnce(method string) { s.faultOnce(method, simulator.FaultTypeInvalidState, 0) }

// faultOnce makes vcsim fail one call of method, the one after skip
// others, with fault.
func (s *sim) faultOnce(method string, fault simulator.FaultType, skip int) {
	vspheretest.FaultOnce(s.model, method, fault, skip)
}

// withTaskDelays sets vcsim's task delays (milliseconds) for one test.
func withTaskDelays(t testing.TB, delays map[string]int) {
	t.Helper()
	delayMu.Lock()
	old := simulator.TaskDelay.MethodDelay
	simulator.TaskDelay.MethodDelay = delays
	t.Cleanup(func() {
		simulator.TaskDelay.MethodDelay = old
		delayMu.Unlock()
	})
}

func (s *sim) client(t testing.TB, opts ...vsphere.Option) *vsphere.Client {
	t.Helper()
	opts = append([]vsphere.Option{vsphere.WithLogger(zaptest.NewLogger(t))}, opts...)
	c, err := vsphere.New(context.Background(), vsphere.Config{URL: s.url, Insecure: true}, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close(context.Background())) })
	return c
}

// specs returns n specs for one cluster, each reporting a made-up IP as
// vcsim's stand-in for a guest (it has no guest to run DHCP).
func specs(cluster string, n int) []vsphere.VMSpec {
	out := make([]vsphere.VMSpec, n)
	for i := range out {
		out[i] = vsphere.VMSpec{
			Name:         fmt.Sprintf("%s-worker-%d", cluster, i),
			Owner:        vsphere.Owner{Cluster: cluster, Group: "worker", Index: i},
			Template:     simTemplate,
			Folder:       "kubefoundry/" + cluster,
			Cluster:      simCluster,
			ResourcePool: cluster,
			CPUs:         2,
			MemoryMB:     4096,
			NICs:         []vsphere.NIC{{Network: simNetwork}},
			ExtraConfig:  map[string]string{"SET.guest.ipAddress": fmt.Sprintf("10.0.%d.%d", i/250, i%250+2)},
			IPTimeout:    defaultIPTimeout,
		}
	}
	return out
}

// caPEM is the simulator's own certificate, as a CA bundle.
func (s *sim) caPEM(t testing.TB) string {
	t.Helper()
	require.NotEmpty(t, s.ca)
	return s.ca
}
