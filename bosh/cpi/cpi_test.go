package cpi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
)

// TestMain makes this test binary a CPI executable when asked: it serves
// one request from stdin with a CPI whose state lives in a file, as an
// external CPI's state lives in its cloud.
func TestMain(m *testing.M) {
	if state := os.Getenv("KF_TEST_CPI_STATE"); state != "" {
		c := &fileCloud{path: state}
		if err := cpi.Serve(context.Background(), c, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("KF_TEST_CPI_GARBAGE") != "" {
		fmt.Println("not json")
		fmt.Fprintln(os.Stderr, "the cloud is on fire")
		os.Exit(3)
	}
	if os.Getenv("KF_TEST_CPI_HANG") != "" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fileCloud is a tiny cloud whose state is a JSON file: enough to drive the
// protocol both ways through separate processes.
type fileCloud struct {
	path string
	mu   sync.Mutex
}

type cloudState struct {
	Seq       int                 `json:"seq"`
	Stemcells map[string]string   `json:"stemcells"`
	VMs       map[string]string   `json:"vms"` // cid -> agent id
	Disks     map[string]int      `json:"disks"`
	Attached  map[string][]string `json:"attached"` // vm -> disks
	Metadata  map[string]cpi.Metadata
	Context   cpi.RequestContext `json:"-"`
	LastCtx   map[string]any     `json:"last_ctx"`
}

func (f *fileCloud) with(ctx context.Context, fn func(s *cloudState) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := cloudState{Stemcells: map[string]string{}, VMs: map[string]string{}, Disks: map[string]int{}, Attached: map[string][]string{}, Metadata: map[string]cpi.Metadata{}}
	if b, err := os.ReadFile(f.path); err == nil {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	if rc, ok := cpi.RequestContextFrom(ctx); ok {
		s.LastCtx = map[string]any{"director_uuid": rc.DirectorUUID, "request_id": rc.RequestID, "props": rc.Properties}
	}
	if err := fn(&s); err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(f.path, b, 0o600)
}

func (s *cloudState) next(prefix string) string { s.Seq++; return fmt.Sprintf("%s-%d", prefix, s.Seq) }

func (f *fileCloud) Info(context.Context) (cpi.Info, error) {
	return cpi.Info{StemcellFormats: []string{"vsphere-ovf"}, APIVersion: 2}, nil
}

func (f *fileCloud) CreateStemcell(ctx context.Context, image string, _ cpi.CloudProps) (cid string, err error) {
	return cid, f.with(ctx, func(s *cloudState) error { cid = s.next("sc"); s.Stemcells[cid] = image; return nil })
}

func (f *fileCloud) DeleteStemcell(ctx context.Context, cid string) error {
	return f.with(ctx, func(s *cloudState) error { delete(s.Stemcells, cid); return nil })
}

func (f *fileCloud) CreateVM(ctx context.Context, agent, stemcell string, props cpi.CloudProps, nets cpi.Networks, _ []string, _ cpi.Env) (cid string, out cpi.Networks, err error) {
	err = f.with(ctx, func(s *cloudState) error {
		if _, ok := s.Stemcells[stemcell]; !ok {
			return cpi.Errorf(cpi.VMCreationFailed, true, "stemcell %s not found", stemcell)
		}
		cid = s.next("vm")
		s.VMs[cid] = agent
		out = nets
		for n, nw := range out {
			nw.DNS = []string{"10.0.0.2"}
			out[n] = nw
		}
		return nil
	})
	return cid, out, err
}

func (f *fileCloud) DeleteVM(ctx context.Context, cid string) error {
	return f.with(ctx, func(s *cloudState) error {
		if _, ok := s.VMs[cid]; !ok {
			return cpi.Errorf(cpi.VMNotFound, false, "VM %s not found", cid)
		}
		delete(s.VMs, cid)
		delete(s.Attached, cid)
		return nil
	})
}

func (f *fileCloud) HasVM(ctx context.Context, cid string) (ok bool, err error) {
	return ok, f.with(ctx, func(s *cloudState) error { _, ok = s.VMs[cid]; return nil })
}

func (f *fileCloud) RebootVM(context.Context, string) error { return nil }

func (f *fileCloud) SetVMMetadata(ctx context.Context, cid string, md cpi.Metadata) error {
	return f.with(ctx, func(s *cloudState) error { s.Metadata[cid] = md; return nil })
}

func (f *fileCloud) CalculateVMCloudProperties(_ context.Context, r cpi.VMResources) (cpi.CloudProps, error) {
	return cpi.CloudProps{"cpu": r.CPU, "ram": r.RAM, "disk": r.EphemeralDiskSize}, nil
}

func (f *fileCloud) CreateDisk(ctx context.Context, size int, _ cpi.CloudProps, _ string) (cid string, err error) {
	return cid, f.with(ctx, func(s *cloudState) error { cid = s.next("disk"); s.Disks[cid] = size; return nil })
}

func (f *fileCloud) DeleteDisk(ctx context.Context, cid string) error {
	return f.with(ctx, func(s *cloudState) error { delete(s.Disks, cid); return nil })
}

func (f *fileCloud) HasDisk(ctx context.Context, cid string) (ok bool, err error) {
	return ok, f.with(ctx, func(s *cloudState) error { _, ok = s.Disks[cid]; return nil })
}

func (f *fileCloud) AttachDisk(ctx context.Context, vm, disk string) (hint cpi.DiskHint, err error) {
	return json.RawMessage(`{"path":"/dev/sdc"}`), f.with(ctx, func(s *cloudState) error {
		if _, ok := s.Disks[disk]; !ok {
			return cpi.Errorf(cpi.DiskNotFound, false, "disk %s not found", disk)
		}
		s.Attached[vm] = append(s.Attached[vm], disk)
		return nil
	})
}

func (f *fileCloud) DetachDisk(ctx context.Context, vm, disk string) error {
	return f.with(ctx, func(s *cloudState) error {
		var keep []string
		for _, d := range s.Attached[vm] {
			if d != disk {
				keep = append(keep, d)
			}
		}
		s.Attached[vm] = keep
		return nil
	})
}

func (f *fileCloud) ResizeDisk(ctx context.Context, cid string, size int) error {
	return f.with(ctx, func(s *cloudState) error { s.Disks[cid] = size; return nil })
}

func (f *fileCloud) SetDiskMetadata(ctx context.Context, cid string, md cpi.Metadata) error {
	return f.with(ctx, func(s *cloudState) error { s.Metadata[cid] = md; return nil })
}

func (f *fileCloud) GetDisks(ctx context.Context, vm string) (d []string, err error) {
	return d, f.with(ctx, func(s *cloudState) error { d = append([]string{}, s.Attached[vm]...); sort.Strings(d); return nil })
}

func (f *fileCloud) SnapshotDisk(context.Context, string, cpi.Metadata) (string, error) {
	return "", cpi.Errorf(cpi.NotImplemented, false, "snapshots are off")
}

func (f *fileCloud) DeleteSnapshot(context.Context, string) error { return nil }

func external(t *testing.T) (*cpi.External, string) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	state := filepath.Join(t.TempDir(), "cloud.json")
	return &cpi.External{Path: exe, Env: append(os.Environ(), "KF_TEST_CPI_STATE="+state),
		Context: cpi.RequestContext{DirectorUUID: "dir-1", Properties: map[string]any{"host": "vc.example"}}}, state
}

// TestExternalCPI drives a CPI executable (this test binary, serving one
// request per process) through the protocol: every method's arguments and
// result cross the process boundary, typed errors come back typed.
func TestExternalCPI(t *testing.T) {
	e, state := external(t)
	var logs []string
	e.LastLog = func(method, _ string) { logs = append(logs, method) }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	info, err := e.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, cpi.Info{StemcellFormats: []string{"vsphere-ovf"}, APIVersion: 2}, info)

	sc, err := e.CreateStemcell(ctx, "/tmp/image", nil)
	require.NoError(t, err)
	nets := cpi.Networks{"default": {Type: "manual", IP: "10.0.0.5", Netmask: "255.255.255.0", Gateway: "10.0.0.1", Default: []string{"dns", "gateway"}}}
	vm, got, err := e.CreateVM(cpi.WithRequestContext(ctx, cpi.RequestContext{DirectorUUID: "dir-1", RequestID: "req-7"}),
		"agent-1", sc, cpi.CloudProps{"cpu": 2}, nets, nil, cpi.Env{"bosh": map[string]any{"group": "g"}})
	require.NoError(t, err)
	assert.Equal(t, "vm-2", vm)
	assert.Equal(t, []string{"10.0.0.2"}, got["default"].DNS, "v2 answers the networks as configured")
	assert.Equal(t, "10.0.0.5", got["default"].IP)

	b, err := os.ReadFile(state)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"request_id":"req-7"`, "the call's own context reached the CPI")

	ok, err := e.HasVM(ctx, vm)
	require.NoError(t, err)
	assert.True(t, ok)
	require.NoError(t, e.SetVMMetadata(ctx, vm, cpi.Metadata{"deployment": "c1"}))
	props, err := e.CalculateVMCloudProperties(ctx, cpi.VMResources{CPU: 4, RAM: 8192, EphemeralDiskSize: 10240})
	require.NoError(t, err)
	assert.Equal(t, float64(8192), props["ram"])

	disk, err := e.CreateDisk(ctx, 10240, nil, vm)
	require.NoError(t, err)
	hint, err := e.AttachDisk(ctx, vm, disk)
	require.NoError(t, err)
	assert.JSONEq(t, `{"path":"/dev/sdc"}`, string(hint))
	disks, err := e.GetDisks(ctx, vm)
	require.NoError(t, err)
	assert.Equal(t, []string{disk}, disks)
	require.NoError(t, e.ResizeDisk(ctx, disk, 20480))
	require.NoError(t, e.DetachDisk(ctx, vm, disk))
	ok, err = e.HasDisk(ctx, disk)
	require.NoError(t, err)
	assert.True(t, ok)

	_, err = e.AttachDisk(ctx, vm, "disk-404")
	var ce *cpi.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, cpi.DiskNotFound, ce.Type)
	assert.ErrorIs(t, err, kubefoundry.ErrNotFound, "a disk not found is the SDK's not found")
	_, _, err = e.CreateVM(ctx, "agent-2", "sc-404", nil, nil, nil, nil)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, cpi.VMCreationFailed, ce.Type)
	assert.True(t, ce.OKToRetry)
	_, err = e.SnapshotDisk(ctx, disk, nil)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, cpi.NotImplemented, ce.Type)

	require.NoError(t, e.DeleteVM(ctx, vm))
	err = e.DeleteVM(ctx, vm)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, cpi.VMNotFound, ce.Type)
	require.NoError(t, e.DeleteDisk(ctx, disk))
	require.NoError(t, e.DeleteStemcell(ctx, sc))
	assert.Contains(t, logs, "create_vm", "each response's log is handed over")
}

// TestServeDocumentedRequest: the request of BOSH's documentation for
// create_vm, byte for byte, is understood; an unknown method is
// NotImplemented; wrong arguments say how many were wanted.
func TestServeDocumentedRequest(t *testing.T) {
	c := &fileCloud{path: filepath.Join(t.TempDir(), "cloud.json")}
	sc, err := c.CreateStemcell(context.Background(), "img", nil)
	require.NoError(t, err)
	req := `{
  "method": "create_vm",
  "arguments": [
    "4149ba0f-38d9-4485-476f-1581be36f290",
    "` + sc + `",
    { "instance_type": "m1.small" },
    {
      "private": {"type": "manual", "netmask": "255.255.255.0", "gateway": "10.230.13.1", "ip": "10.230.13.6",
        "default": [ "dns", "gateway" ], "cloud_properties": { "net_id": "subnet-48rt54" }},
      "public": {"type": "vip", "ip": "173.101.112.104", "cloud_properties": {}}
    },
    [ "vol-3475945" ],
    { "bosh": { "group": "my-group", "groups": ["my-second-group", "another-group"], "tags": { "tag1": "value" } } }
  ],
  "context": {"director_uuid": "<director-uuid>", "request_id": "<cpi-request-id>", "vm": {"stemcell": {"api_version": 2}}, "datacenters": [{"name": "dc1"}]},
  "api_version": 2
}`
	var out bytes.Buffer
	require.NoError(t, cpi.Serve(context.Background(), c, bytes.NewBufferString(req), &out))
	var res struct {
		Result []json.RawMessage `json:"result"`
		Error  *cpi.Error        `json:"error"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &res), out.String())
	require.Nil(t, res.Error)
	require.Len(t, res.Result, 2, "v2: [vm_cid, networks]")
	assert.JSONEq(t, `"vm-2"`, string(res.Result[0]))

	b, err := os.ReadFile(c.path)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"datacenters":[{"name":"dc1"}]`, "the CPI config's properties in the context reach the CPI")

	for _, tc := range []struct{ req, typ, msg string }{
		{`{"method":"make_coffee","arguments":[],"context":{}}`, cpi.NotImplemented, `"make_coffee" is not implemented`},
		{`{"method":"delete_vm","arguments":[],"context":{}}`, cpi.CloudError, "delete_vm takes 1 arguments, got 0"},
		{`{"method":"has_vm","arguments":[42],"context":{}}`, cpi.CloudError, "has_vm: argument 1"},
		{`not json`, cpi.CloudError, "not a CPI request"},
	} {
		out.Reset()
		require.NoError(t, cpi.Serve(context.Background(), c, bytes.NewBufferString(tc.req), &out))
		var r cpi.Response
		require.NoError(t, json.Unmarshal(out.Bytes(), &r))
		require.NotNil(t, r.Error, tc.req)
		assert.Equal(t, tc.typ, r.Error.Type)
		assert.Contains(t, r.Error.Message, tc.msg)
		assert.Nil(t, r.Result)
	}
}

// TestExternalFailures: a CPI that answers no JSON, or does not answer in
// time, fails the call with what it printed on stderr, or the deadline.
func TestExternalFailures(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	garbage := &cpi.External{Path: exe, Env: append(os.Environ(), "KF_TEST_CPI_GARBAGE=1")}
	_, err = garbage.Info(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the cloud is on fire", "stderr is kept for the error")
	assert.Contains(t, err.Error(), "exit status 3")

	hang := &cpi.External{Path: exe, Env: append(os.Environ(), "KF_TEST_CPI_HANG=1")}
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	start := time.Now()
	_, err = hang.HasVM(short, "vm-1")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 30*time.Second, "the process is killed at the deadline")
}
