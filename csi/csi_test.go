package csi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/cns"
	_ "github.com/vmware/govmomi/cns/simulator" // the CNS endpoint
	cnstypes "github.com/vmware/govmomi/cns/types"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	_ "github.com/vmware/govmomi/pbm/simulator" // the SPBM endpoint
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere/vspheretest"
)

type env struct {
	c     *csi.Client
	vc    *vim25.Client // the test's own session, for reading CNS as it is
	vms   []*object.VirtualMachine
	model *simulator.Model
}

// newServer serves vcsim's VPX model over HTTPS with its CNS and SPBM
// endpoints, for the test's lifetime.
func newServer(t *testing.T) (*simulator.Model, *simulator.Server) {
	t.Helper()
	sim := vspheretest.Start(t)
	return sim.Model, sim.Server
}

func newEnv(t *testing.T, opts ...csi.Option) *env {
	t.Helper()
	m, s := newServer(t)
	ctx := context.Background()
	gc, err := govmomi.NewClient(ctx, s.URL, true)
	require.NoError(t, err)
	t.Cleanup(func() { _ = gc.Logout(context.Background()) })
	c, err := csi.New(ctx, gc.Client, append([]csi.Option{csi.WithLogger(zaptest.NewLogger(t))}, opts...)...)
	require.NoError(t, err)
	f := find.NewFinder(gc.Client, true)
	dc, err := f.DefaultDatacenter(ctx)
	require.NoError(t, err)
	f.SetDatacenter(dc)
	vms, err := f.VirtualMachineList(ctx, "DC0_C0_RP0_VM*")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(vms), 2)
	return &env{c: c, vc: gc.Client, vms: vms, model: m}
}

func spec(name string) csi.VolumeSpec {
	return csi.VolumeSpec{Name: name, SizeMB: 1024, Datastore: "LocalDS_0", ClusterID: "c1", Labels: map[string]string{"app": "db"}}
}

func TestVolumeLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.c
	vm0, vm1 := e.vms[0].Reference(), e.vms[1].Reference()

	vol, err := c.CreateVolume(ctx, spec("pv-a"))
	require.NoError(t, err)
	assert.Equal(t, "pv-a", vol.Name)
	assert.Equal(t, int64(1024), vol.SizeMB)
	assert.Equal(t, "c1", vol.ClusterID)
	again, err := c.CreateVolume(ctx, spec("pv-a"))
	require.NoError(t, err)
	assert.Equal(t, vol.ID, again.ID, "idempotent by name within the cluster")

	other := spec("pv-b")
	other.ClusterID = "c2"
	_, err = c.CreateVolume(ctx, other)
	require.NoError(t, err)
	vols, err := c.QueryVolumes(ctx, "c1")
	require.NoError(t, err)
	require.Len(t, vols, 1, "the orphan scan of c1 sees only c1's volumes")

	require.NoError(t, c.AttachVolume(ctx, vol.ID, vm0))
	require.NoError(t, c.AttachVolume(ctx, vol.ID, vm0), "already attached there is success")
	err = c.AttachVolume(ctx, vol.ID, vm1)
	var ae *csi.AttachedError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, vm0.Value, ae.Holder)

	err = c.DeleteVolume(ctx, vol.ID, false)
	require.ErrorAs(t, err, &ae, "refused while attached")
	require.NoError(t, c.ExtendVolume(ctx, vol.ID, 2048))
	got, err := c.Get(ctx, vol.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(2048), got.SizeMB)
	assert.ErrorIs(t, c.ExtendVolume(ctx, vol.ID, 1024), csi.ErrInvalidSpec)
	require.NoError(t, c.ExtendVolume(ctx, vol.ID, 2048), "the size it has already (a retried extend) is success")

	require.NoError(t, c.DetachVolume(ctx, vol.ID))
	require.NoError(t, c.DetachVolume(ctx, vol.ID), "detached already is success")
	require.NoError(t, c.AttachVolume(ctx, vol.ID, vm1), "free again")
	require.NoError(t, c.DeleteVolume(ctx, vol.ID, true), "forced: detached, then deleted")
	_, err = c.Get(ctx, vol.ID)
	assert.ErrorIs(t, err, csi.ErrNotFound)
	require.NoError(t, c.DeleteVolume(ctx, vol.ID, false), "gone already is success")
}

// TestReleaseFromDeletedVM: the node VM is deleted while the volume is
// attached; ReleaseVolume frees it for another node.
func TestReleaseFromDeletedVM(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vol, err := e.c.CreateVolume(ctx, spec("pv-stuck"))
	require.NoError(t, err)
	node := e.vms[0]
	require.NoError(t, e.c.AttachVolume(ctx, vol.ID, node.Reference()))

	err = e.c.ReleaseVolume(ctx, vol.ID)
	var ae *csi.AttachedError
	require.ErrorAs(t, err, &ae, "the VM still exists: detach, do not release")

	task, err := node.PowerOff(ctx)
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))
	task, err = node.Destroy(ctx)
	require.NoError(t, err)
	require.NoError(t, task.Wait(ctx))

	require.ErrorAs(t, e.c.AttachVolume(ctx, vol.ID, e.vms[1].Reference()), &ae, "still recorded on the deleted VM")
	require.NoError(t, e.c.ReleaseVolume(ctx, vol.ID))
	require.NoError(t, e.c.AttachVolume(ctx, vol.ID, e.vms[1].Reference()))
	got, err := e.c.Get(ctx, vol.ID)
	require.NoError(t, err)
	assert.Equal(t, e.vms[1].Reference().Value, got.AttachedTo)
}

// TestReleaseRefusedWhileTheVMCannotBeRead: only a VM vCenter says does not
// exist is gone. One that cannot be read (here: no permission, once) may
// still be running with the volume, so ReleaseVolume refuses, and the
// volume stays recorded on it.
func TestReleaseRefusedWhileTheVMCannotBeRead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vol, err := e.c.CreateVolume(ctx, spec("pv-held"))
	require.NoError(t, err)
	node := e.vms[0].Reference()
	require.NoError(t, e.c.AttachVolume(ctx, vol.ID, node))

	vspheretest.FaultOnce(e.model, "RetrievePropertiesEx", simulator.FaultTypeNoPermission, 0)
	err = e.c.ReleaseVolume(ctx, vol.ID)
	var ae *csi.AttachedError
	require.ErrorAs(t, err, &ae, "a VM that could not be read is not a deleted one")
	assert.Equal(t, node.Value, ae.Holder)
	got, err := e.c.Get(ctx, vol.ID)
	require.NoError(t, err)
	assert.Equal(t, node.Value, got.AttachedTo)
}

func TestValidation(t *testing.T) {
	e := newEnv(t)
	_, err := e.c.CreateVolume(context.Background(), csi.VolumeSpec{Name: "x"})
	require.ErrorIs(t, err, csi.ErrInvalidSpec)
	assert.Contains(t, err.Error(), "sizeMB")
	assert.Contains(t, err.Error(), "datastore")
	assert.Contains(t, err.Error(), "clusterID")

	s := spec("pv-x")
	s.Datastore = "nope"
	_, err = e.c.CreateVolume(context.Background(), s)
	assert.ErrorIs(t, err, csi.ErrNotFound)
}

func TestSnapshots(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vol, err := e.c.CreateVolume(ctx, spec("pv-snap"))
	require.NoError(t, err)
	s1, err := e.c.CreateSnapshot(ctx, vol.ID, "before upgrade")
	require.NoError(t, err)
	s2, err := e.c.CreateSnapshot(ctx, vol.ID, "after upgrade")
	require.NoError(t, err)
	list, err := e.c.ListSnapshots(ctx, vol.ID)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.ElementsMatch(t, []string{s1.ID, s2.ID}, []string{list[0].ID, list[1].ID})
	assert.Equal(t, "before upgrade", s1.Description)

	require.NoError(t, e.c.DeleteSnapshot(ctx, vol.ID, s1.ID))
	list, err = e.c.ListSnapshots(ctx, vol.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, s2.ID, list[0].ID)
}

func TestStoragePolicies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pols, err := e.c.StoragePolicies(ctx)
	require.NoError(t, err)
	var names []string
	for _, p := range pols {
		names = append(names, p.Name)
	}
	assert.Contains(t, names, "vSAN Default Storage Policy")

	_, err = e.c.StoragePolicyID(ctx, "platinum")
	require.ErrorIs(t, err, csi.ErrNotFound)
	assert.Contains(t, err.Error(), "vSAN Default Storage Policy", "the error lists what exists")

	dss, err := e.c.CompatibleDatastores(ctx, "vSAN Default Storage Policy")
	require.NoError(t, err)
	assert.NotEmpty(t, dss)

	s := spec("pv-policy")
	s.Datastore, s.StoragePolicy = "", "vSAN Default Storage Policy"
	vol, err := e.c.CreateVolume(ctx, s)
	require.NoError(t, err)
	id, err := e.c.StoragePolicyID(ctx, "vSAN Default Storage Policy")
	require.NoError(t, err)
	assert.Equal(t, id, vol.PolicyID, "CNS records the policy")
}

// TestFaultsInjected: CNS refuses an attach and a create (FaultInjectionRule
// on the CNS endpoint): the errors surface as vSphere faults, nothing is
// recorded as attached, and the next call succeeds.
func TestFaultsInjected(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vol, err := e.c.CreateVolume(ctx, spec("pv-fault"))
	require.NoError(t, err)
	for _, method := range []string{"CnsAttachVolume", "CnsCreateVolume"} {
		vspheretest.FaultOnce(e.model, method, simulator.FaultTypeInsufficientResourcesFault, 0)
	}
	vm := e.vms[0].Reference()
	err = e.c.AttachVolume(ctx, vol.ID, vm)
	require.Error(t, err)
	assert.True(t, fault.Is(err, &types.InsufficientResourcesFault{}), "%v", err)
	got, err := e.c.Get(ctx, vol.ID)
	require.NoError(t, err)
	assert.Empty(t, got.AttachedTo, "a failed attach records nothing")
	require.NoError(t, e.c.AttachVolume(ctx, vol.ID, vm), "the next attach works")

	_, err = e.c.CreateVolume(ctx, spec("pv-fault-2"))
	require.Error(t, err)
	assert.True(t, fault.Is(err, &types.InsufficientResourcesFault{}), "%v", err)
	_, err = e.c.CreateVolume(ctx, spec("pv-fault-2"))
	require.NoError(t, err)
}

func TestVolumeKubernetesMetadata(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := spec("vol-1234")
	s.PVName = "pvc-1234"
	s.PVC = &csi.PVCRef{Namespace: "shop", Name: "db-data"}
	vol, err := e.c.CreateVolume(ctx, s)
	require.NoError(t, err)
	require.NotNil(t, vol.PVC)
	assert.Equal(t, csi.PVCRef{Namespace: "shop", Name: "db-data"}, *vol.PVC)
	require.NoError(t, e.c.AttachVolume(ctx, vol.ID, e.vms[0].Reference()))
	got, err := e.c.Get(ctx, vol.ID)
	require.NoError(t, err)
	assert.Equal(t, e.vms[0].Reference().Value, got.AttachedTo)
	require.NotNil(t, got.PVC, "the PVC survives the attachment record")
	assert.Equal(t, "pvc-1234", pvEntityName(t, e, vol.ID), "the PV entity carries PVName")

	plain, err := e.c.CreateVolume(ctx, spec("pv-plain"))
	require.NoError(t, err)
	assert.Nil(t, plain.PVC, "no PVC named, none reported")
	assert.Equal(t, "pv-plain", pvEntityName(t, e, plain.ID), "without PVName the PV entity is named as the volume")
	got, err = e.c.Get(ctx, plain.ID)
	require.NoError(t, err)
	assert.Nil(t, got.PVC)
}

// pvEntityName reads a volume's metadata from CNS as it is and returns the
// name of its PersistentVolume entity, what the vSphere Client shows.
func pvEntityName(t *testing.T, e *env, id string) string {
	t.Helper()
	ctx := context.Background()
	cc, err := cns.NewClient(ctx, e.vc)
	require.NoError(t, err)
	res, err := cc.QueryVolume(ctx, &cnstypes.CnsQueryFilter{VolumeIds: []cnstypes.CnsVolumeId{{Id: id}}})
	require.NoError(t, err)
	require.Len(t, res.Volumes, 1)
	var names []string
	for _, m := range res.Volumes[0].Metadata.EntityMetadata {
		if k, ok := m.(*cnstypes.CnsKubernetesEntityMetadata); ok && k.EntityType == string(cnstypes.CnsKubernetesEntityTypePV) {
			names = append(names, k.EntityName)
		}
	}
	require.Len(t, names, 1, "one PV entity")
	return names[0]
}

func TestCreateVolumes(t *testing.T) {
	// One volume at a time: vcsim's CNS simulator writes its volume map in
	// the create task while a concurrent query reads it, a data race inside
	// the simulator that -race reports. BenchmarkCreateAttach runs them in
	// parallel.
	e := newEnv(t, csi.WithConcurrency(1))
	specs := []csi.VolumeSpec{spec("b-0"), spec("b-1"), spec("b-2")}
	specs[1].Datastore = "no-such-datastore"
	res, err := e.c.CreateVolumes(context.Background(), specs)
	require.Error(t, err)
	require.Len(t, res, 3)
	assert.NoError(t, res[0].Err)
	assert.ErrorIs(t, res[1].Err, csi.ErrNotFound, "one bad spec fails alone")
	assert.NoError(t, res[2].Err)
	assert.Equal(t, "b-2", res[2].Volume.Name)
	assert.Contains(t, err.Error(), "volume b-1:", "the error names the volume that failed")
	assert.NotContains(t, err.Error(), "b-0", "and only it")
	assert.NotContains(t, err.Error(), "b-2")

	res, err = e.c.CreateVolumes(context.Background(), []csi.VolumeSpec{spec("c-0"), spec("c-1")})
	require.NoError(t, err, "every volume made: no error")
	require.Len(t, res, 2)
	assert.Equal(t, "c-1", res[1].Volume.Name)
}

// TestLogsGoToWithLogger: what the Client logs goes to the logger
// WithLogger gave it.
func TestLogsGoToWithLogger(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	e := newEnv(t, csi.WithLogger(zap.New(core)))
	vol, err := e.c.CreateVolume(context.Background(), spec("pv-logged"))
	require.NoError(t, err)
	created := logs.FilterMessage("volume created").All()
	require.Len(t, created, 1)
	assert.Equal(t, vol.ID, created[0].ContextMap()["id"])
}

// TestCNSTasksReadInTheVsanNamespace: vCenter leaves a CNS task's result
// out of a read made in the vim25 namespace, so the batched task reads
// must go, like the cns package's own, to /sdk in the vsan namespace and
// version. vcsim answers both, so the test looks at the requests.
func TestCNSTasksReadInTheVsanNamespace(t *testing.T) {
	_, s := newServer(t)

	var mu sync.Mutex
	var taskReads []string // the SOAPAction of each read of a Task
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: s.URL.Scheme, Host: s.URL.Host})
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the simulator's self-signed certificate
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if bytes.Contains(body, []byte("RetrievePropertiesEx")) && bytes.Contains(body, []byte(`type="Task"`)) {
			mu.Lock()
			taskReads = append(taskReads, r.URL.Path+" "+r.Header.Get("SOAPAction"))
			mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	u, _ := url.Parse(proxy.URL)
	u.Path, u.User = s.URL.Path, s.URL.User

	ctx := context.Background()
	gc, err := govmomi.NewClient(ctx, u, true)
	require.NoError(t, err)
	t.Cleanup(func() { _ = gc.Logout(context.Background()) })
	c, err := csi.New(ctx, gc.Client)
	require.NoError(t, err)
	vol, err := c.CreateVolume(ctx, spec("pv-ns"))
	require.NoError(t, err)
	require.NoError(t, c.DeleteVolume(ctx, vol.ID, false))

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, taskReads)
	for _, r := range taskReads {
		assert.Regexp(t, `^/sdk "?urn:vsan/`, r)
	}
}
