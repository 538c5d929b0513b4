package vspherecpi

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/csi"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

// Config places what the CPI makes, as the vSphere CPI's global
// properties do.
type Config struct {
	// ClusterID owns every VM and disk the CPI makes (kubefoundry.ClusterID's
	// rule): VMs carry it as their owner, CNS volumes as their cluster.
	ClusterID string `json:"clusterID"`
	// VMFolder and StemcellFolder are VM folders (under the datacenter's
	// vm folder), made when missing.
	VMFolder       string `json:"vmFolder"`
	StemcellFolder string `json:"stemcellFolder"`
	// Cluster, ResourcePool and Datastore are the defaults of a VM's
	// placement; cloud_properties override them.
	Cluster      string `json:"cluster"`
	ResourcePool string `json:"resourcePool,omitempty"`
	Datastore    string `json:"datastore"`
	// Agent is what every agent's settings carry besides its own: the
	// message bus, the blobstore, NTP servers.
	Agent AgentConfig `json:"agent"`
}

// AgentConfig is the part of an agent's settings the director configures.
type AgentConfig struct {
	MBus      string         `json:"mbus"`
	NTP       []string       `json:"ntp,omitempty"`
	Blobstore map[string]any `json:"blobstore,omitempty"`
}

func (c Config) validate() error {
	v := kubefoundry.ValidationError{Object: "vspherecpi.Config"}
	v.Merge("", kubefoundry.ClusterID(c.ClusterID).Validate())
	for _, f := range []struct{ name, v string }{{"vmFolder", c.VMFolder}, {"stemcellFolder", c.StemcellFolder}, {"cluster", c.Cluster}, {"datastore", c.Datastore}} {
		if f.v == "" {
			v.Add(f.name, "", "required")
		}
	}
	return v.Err()
}

// CPI is BOSH's vSphere CPI on kubefoundry's vsphere and csi clients
// (sharing one vCenter session): stemcells are imported images, VMs
// (linked) clones of them with the agent's settings in guestinfo,
// persistent disks CNS volumes. It implements cpi.CPI and is safe for
// concurrent use.
type CPI struct {
	vs   *vsphere.Client
	vols *csi.Client
	cfg  Config
}

// New returns a CPI on vs and vols (csi.New(ctx, vs.Vim25())).
func New(vs *vsphere.Client, vols *csi.Client, cfg Config) (*CPI, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &CPI{vs: vs, vols: vols, cfg: cfg}, nil
}

var _ cpi.CPI = (*CPI)(nil)

// SettingsKey is the guestinfo key holding an agent's settings (base64 of
// their JSON, SettingsKey+".encoding" says so).
const SettingsKey = "guestinfo.bosh.settings"

// Settings are an agent's settings as BOSH agents read them.
type Settings struct {
	AgentID   string         `json:"agent_id"`
	VM        SettingsVM     `json:"vm"`
	Networks  cpi.Networks   `json:"networks"`
	Disks     SettingsDisks  `json:"disks"`
	MBus      string         `json:"mbus"`
	NTP       []string       `json:"ntp"`
	Blobstore map[string]any `json:"blobstore,omitempty"`
	Env       cpi.Env        `json:"env"`
}

// SettingsVM names the VM.
type SettingsVM struct {
	Name string `json:"name"`
}

// SettingsDisks are the VM's disks: persistent ones by disk cid, with the
// hint the agent finds them by.
type SettingsDisks struct {
	System     string                     `json:"system"`
	Ephemeral  string                     `json:"ephemeral,omitempty"`
	Persistent map[string]json.RawMessage `json:"persistent"`
}

func newID(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Info says the CPI takes vSphere OVF stemcells.
func (c *CPI) Info(context.Context) (cpi.Info, error) {
	return cpi.Info{StemcellFormats: []string{"vsphere-ovf", "vsphere-ova"}, APIVersion: cpi.APIVersion}, nil
}

func (c *CPI) stemcellPath(cid string) string {
	return path.Join(c.vs.Datacenter().InventoryPath, "vm", c.cfg.StemcellFolder, cid)
}

func (c *CPI) vmPath(cid string) string {
	return path.Join(c.vs.Datacenter().InventoryPath, "vm", c.cfg.VMFolder, cid)
}

// CreateStemcell imports the stemcell's image: a vSphere stemcell's image
// file (a gzipped tar of an OVF and its disks), or an .ova or .ovf.
func (c *CPI) CreateStemcell(ctx context.Context, imagePath string, _ cpi.CloudProps) (string, error) {
	ovf := imagePath
	if ext := strings.ToLower(filepath.Ext(imagePath)); ext != ".ova" && ext != ".ovf" {
		dir, err := os.MkdirTemp("", "stemcell-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		if ovf, err = unpackImage(imagePath, dir); err != nil {
			return "", cpi.Errorf(cpi.CloudError, false, "stemcell image %s: %v", imagePath, err)
		}
	}
	cid := newID("sc")
	if _, err := c.vs.ImportStemcell(ctx, vsphere.StemcellSpec{Path: ovf, Name: cid, Folder: c.cfg.StemcellFolder,
		Cluster: c.cfg.Cluster, ResourcePool: c.cfg.ResourcePool, Datastore: c.cfg.Datastore}); err != nil {
		return "", err
	}
	return cid, nil
}

// maxImage bounds what unpackImage writes.
const maxImage = 64 << 30

// unpackImage extracts a gzipped tar into dir, refusing what would leave
// it, and returns the OVF in it.
func unpackImage(image, dir string) (string, error) {
	f, err := os.Open(image)
	if err != nil {
		return "", err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("not a gzipped tar: %w", err)
	}
	tr := tar.NewReader(gz)
	var ovf string
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag == tar.TypeDir || name == "." {
			continue
		}
		if h.Typeflag != tar.TypeReg || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/") {
			return "", fmt.Errorf("entry %q: only plain files at the top of the image", h.Name)
		}
		if total += h.Size; total > maxImage {
			return "", fmt.Errorf("image larger than %d bytes", int64(maxImage))
		}
		out, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(out, io.LimitReader(tr, h.Size))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		if strings.HasSuffix(strings.ToLower(name), ".ovf") {
			ovf = filepath.Join(dir, name)
		}
	}
	if ovf == "" {
		return "", errors.New("no .ovf in the image")
	}
	return ovf, nil
}

// DeleteStemcell deletes the stemcell and its replicas; a stemcell that is
// gone is no error.
func (c *CPI) DeleteStemcell(ctx context.Context, cid string) error {
	return c.vs.DeleteStemcell(ctx, c.stemcellPath(cid))
}

// vmProps are the vSphere CPI's VM cloud_properties this CPI reads.
type vmProps struct {
	CPU        int32    `json:"cpu"`
	RAM        int64    `json:"ram"`  // MB
	Disk       int64    `json:"disk"` // ephemeral, MB
	Datastores []string `json:"datastores"`
	// Datacenters: [{name, clusters: [{<cluster>: {resource_pool: <pool>}}]}]
	Datacenters []struct {
		Name     string `json:"name"`
		Clusters []map[string]struct {
			ResourcePool string `json:"resource_pool"`
		} `json:"clusters"`
	} `json:"datacenters"`
}

func parseVMProps(p cpi.CloudProps) (vmProps, error) {
	var v vmProps
	b, err := json.Marshal(p)
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		return v, cpi.Errorf(cpi.CloudError, false, "cloud_properties: %v", err)
	}
	return v, nil
}

// CreateVM clones the stemcell into a VM named by its cid, with the
// cloud_properties' hardware and placement, a NIC per network (with a MAC
// derived from the agent id, so the agent tells them apart), and the
// agent's settings in guestinfo. It answers the networks with their MACs.
func (c *CPI) CreateVM(ctx context.Context, agentID, stemcellCID string, props cpi.CloudProps, networks cpi.Networks, _ []string, env cpi.Env) (string, cpi.Networks, error) {
	vp, err := parseVMProps(props)
	if err != nil {
		return "", nil, err
	}
	cid := newID("vm")
	spec := vsphere.VMSpec{
		Name: cid, Owner: vsphere.Owner{Cluster: c.cfg.ClusterID, Group: "bosh"},
		Template: c.stemcellPath(stemcellCID), LinkedClone: true,
		Folder: c.cfg.VMFolder, Cluster: c.cfg.Cluster, ResourcePool: c.cfg.ResourcePool, Datastore: c.cfg.Datastore,
		CPUs: vp.CPU, MemoryMB: vp.RAM,
	}
	if len(vp.Datastores) > 0 {
		spec.Datastore = vp.Datastores[0]
	}
	for _, dc := range vp.Datacenters {
		for _, cl := range dc.Clusters {
			for name, o := range cl {
				spec.Cluster, spec.ResourcePool = name, o.ResourcePool
			}
		}
	}
	if vp.Disk > 0 {
		spec.Disks = []vsphere.Disk{{SizeGB: (vp.Disk + 1023) / 1024}}
	}
	names := make([]string, 0, len(networks))
	for n := range networks {
		names = append(names, n)
	}
	slices.Sort(names)
	out := cpi.Networks{}
	for i, n := range names {
		nw := networks[n]
		portgroup, _ := nw.CloudProperties["name"].(string)
		if portgroup == "" {
			return "", nil, cpi.Errorf(cpi.VMCreationFailed, false, "network %s: cloud_properties.name (the vSphere network) is required", n)
		}
		nw.MAC = mac(agentID, i)
		nic := vsphere.NIC{Network: portgroup, MAC: nw.MAC}
		if nw.Type == "manual" || nw.Type == "" {
			prefix, err := prefixLen(nw.Netmask)
			if err != nil {
				return "", nil, cpi.Errorf(cpi.VMCreationFailed, false, "network %s: netmask %q: %v", n, nw.Netmask, err)
			}
			nic.IP, nic.Gateway, nic.DNS = fmt.Sprintf("%s/%d", nw.IP, prefix), nw.Gateway, nw.DNS
		}
		spec.NICs = append(spec.NICs, nic)
		out[n] = nw
	}
	settings := Settings{AgentID: agentID, VM: SettingsVM{Name: cid}, Networks: out, MBus: c.cfg.Agent.MBus,
		NTP: c.cfg.Agent.NTP, Blobstore: c.cfg.Agent.Blobstore, Env: env,
		Disks: SettingsDisks{System: "/dev/sda", Persistent: map[string]json.RawMessage{}}}
	if vp.Disk > 0 {
		settings.Disks.Ephemeral = "/dev/sdb"
	}
	kv, err := settings.extraConfig()
	if err != nil {
		return "", nil, err
	}
	spec.ExtraConfig = kv
	res, err := c.vs.CreateVM(ctx, spec)
	if err != nil {
		// Nothing of a VM that failed is left: it is retried whole.
		if res.Ref.Value != "" {
			_, _ = c.vs.DeleteVM(context.WithoutCancel(ctx), res.Ref)
		}
		return "", nil, &cpi.Error{Type: cpi.VMCreationFailed, Message: err.Error(), OKToRetry: !kubefoundry.IsInvalid(err)}
	}
	return cid, out, nil
}

func (s Settings) extraConfig() (map[string]string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return map[string]string{SettingsKey: base64.StdEncoding.EncodeToString(b), SettingsKey + ".encoding": "base64"}, nil
}

// mac derives a NIC's MAC, in VMware's manual range, from the agent id.
func mac(agentID string, i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", agentID, i)))
	return fmt.Sprintf("00:50:56:%02x:%02x:%02x", sum[0]&0x3f, sum[1], sum[2])
}

func prefixLen(mask string) (int, error) {
	a, err := netip.ParseAddr(mask)
	if err != nil || !a.Is4() {
		return 0, errors.New("not an IPv4 netmask")
	}
	b := a.As4()
	m := net.IPv4Mask(b[0], b[1], b[2], b[3])
	ones, total := m.Size()
	if total == 0 {
		return 0, errors.New("not a contiguous netmask")
	}
	return ones, nil
}

// vm finds the VM of cid, as a cpi VMNotFound error when it is not there.
func (c *CPI) vm(ctx context.Context, cid string) (types.ManagedObjectReference, error) {
	vm, err := c.vs.FindVM(ctx, c.vmPath(cid))
	if vsphere.IsNotFound(err) {
		return types.ManagedObjectReference{}, cpi.Errorf(cpi.VMNotFound, false, "VM %s not found", cid)
	}
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	return vm.Reference(), nil
}

// DeleteVM destroys the VM; its persistent disks are detached and kept.
func (c *CPI) DeleteVM(ctx context.Context, cid string) error {
	ref, err := c.vm(ctx, cid)
	if err != nil {
		return err
	}
	_, err = c.vs.DeleteVM(ctx, ref)
	return err
}

// HasVM reports whether the VM exists.
func (c *CPI) HasVM(ctx context.Context, cid string) (bool, error) {
	_, err := c.vm(ctx, cid)
	var ce *cpi.Error
	if errors.As(err, &ce) && ce.Type == cpi.VMNotFound {
		return false, nil
	}
	return err == nil, err
}

// RebootVM resets the VM.
func (c *CPI) RebootVM(ctx context.Context, cid string) error {
	ref, err := c.vm(ctx, cid)
	if err != nil {
		return err
	}
	return c.vs.Reset(ctx, ref)
}

// SetVMMetadata sets the director's tags as custom attributes.
func (c *CPI) SetVMMetadata(ctx context.Context, cid string, md cpi.Metadata) error {
	ref, err := c.vm(ctx, cid)
	if err != nil {
		return err
	}
	return c.vs.SetAttributes(ctx, ref, md)
}

// CalculateVMCloudProperties turns vm_resources into the vSphere CPI's
// cpu, ram and disk.
func (c *CPI) CalculateVMCloudProperties(_ context.Context, r cpi.VMResources) (cpi.CloudProps, error) {
	return cpi.CloudProps{"cpu": r.CPU, "ram": r.RAM, "disk": r.EphemeralDiskSize}, nil
}

// CreateDisk makes a CNS volume of the cluster; its cid is the volume id.
func (c *CPI) CreateDisk(ctx context.Context, sizeMB int, props cpi.CloudProps, _ string) (string, error) {
	ds := c.cfg.Datastore
	if d, ok := props["datastore"].(string); ok && d != "" {
		ds = d
	}
	policy, _ := props["storage_policy"].(string)
	if policy != "" {
		ds = ""
	}
	vol, err := c.vols.CreateVolume(ctx, csi.VolumeSpec{Name: newID("disk"), SizeMB: int64(sizeMB), Datastore: ds, StoragePolicy: policy, ClusterID: c.cfg.ClusterID})
	if err != nil {
		return "", err
	}
	return vol.ID, nil
}

func (c *CPI) disk(ctx context.Context, cid string) (*csi.Volume, error) {
	vol, err := c.vols.Get(ctx, cid)
	if kubefoundry.IsNotFound(err) {
		return nil, cpi.Errorf(cpi.DiskNotFound, false, "disk %s not found", cid)
	}
	return vol, err
}

// DeleteDisk deletes the volume; one still attached is refused.
func (c *CPI) DeleteDisk(ctx context.Context, cid string) error {
	if _, err := c.disk(ctx, cid); err != nil {
		return err
	}
	return c.vols.DeleteVolume(ctx, cid, false)
}

// HasDisk reports whether the volume exists.
func (c *CPI) HasDisk(ctx context.Context, cid string) (bool, error) {
	_, err := c.disk(ctx, cid)
	var ce *cpi.Error
	if errors.As(err, &ce) && ce.Type == cpi.DiskNotFound {
		return false, nil
	}
	return err == nil, err
}

// AttachDisk attaches the volume and records it in the agent's settings;
// the hint is {"id": <volume id>}.
func (c *CPI) AttachDisk(ctx context.Context, vmCID, diskCID string) (cpi.DiskHint, error) {
	ref, err := c.vm(ctx, vmCID)
	if err != nil {
		return nil, err
	}
	if _, err := c.disk(ctx, diskCID); err != nil {
		return nil, err
	}
	if err := c.vols.AttachVolume(ctx, diskCID, ref); err != nil {
		return nil, err
	}
	hint, _ := json.Marshal(map[string]string{"id": diskCID})
	return hint, c.updateSettings(ctx, ref, func(s *Settings) { s.Disks.Persistent[diskCID] = hint })
}

// DetachDisk detaches the volume and drops it from the agent's settings.
func (c *CPI) DetachDisk(ctx context.Context, vmCID, diskCID string) error {
	ref, err := c.vm(ctx, vmCID)
	if err != nil {
		return err
	}
	if _, err := c.disk(ctx, diskCID); err != nil {
		return err
	}
	if err := c.vols.DetachVolume(ctx, diskCID); err != nil {
		return err
	}
	return c.updateSettings(ctx, ref, func(s *Settings) { delete(s.Disks.Persistent, diskCID) })
}

// updateSettings reads the agent's settings from the VM, changes them and
// writes them back.
func (c *CPI) updateSettings(ctx context.Context, ref types.ManagedObjectReference, change func(*Settings)) error {
	kv, err := c.vs.ExtraConfig(ctx, ref, SettingsKey)
	if err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(kv[SettingsKey])
	if err != nil {
		return fmt.Errorf("agent settings of %s: %w", ref.Value, err)
	}
	var s Settings
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("agent settings of %s: %w", ref.Value, err)
	}
	if s.Disks.Persistent == nil {
		s.Disks.Persistent = map[string]json.RawMessage{}
	}
	change(&s)
	next, err := s.extraConfig()
	if err != nil {
		return err
	}
	return c.vs.SetExtraConfig(ctx, ref, next)
}

// ResizeDisk grows the volume.
func (c *CPI) ResizeDisk(ctx context.Context, cid string, sizeMB int) error {
	if _, err := c.disk(ctx, cid); err != nil {
		return err
	}
	return c.vols.ExtendVolume(ctx, cid, int64(sizeMB))
}

// SetDiskMetadata is not implemented: CNS keeps a volume's cluster and
// its Kubernetes objects, not free tags (the director carries on).
func (c *CPI) SetDiskMetadata(context.Context, string, cpi.Metadata) error {
	return cpi.Errorf(cpi.NotImplemented, false, "set_disk_metadata: CNS volumes carry no free tags")
}

// GetDisks lists the cluster's volumes attached to the VM.
func (c *CPI) GetDisks(ctx context.Context, vmCID string) ([]string, error) {
	ref, err := c.vm(ctx, vmCID)
	if err != nil {
		return nil, err
	}
	vols, err := c.vols.QueryVolumes(ctx, c.cfg.ClusterID)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, v := range vols {
		if v.AttachedTo == ref.Value {
			out = append(out, v.ID)
		}
	}
	slices.Sort(out)
	return out, nil
}

// SnapshotDisk snapshots the volume; the cid is "<volume id>:<snapshot id>".
func (c *CPI) SnapshotDisk(ctx context.Context, diskCID string, md cpi.Metadata) (string, error) {
	if _, err := c.disk(ctx, diskCID); err != nil {
		return "", err
	}
	snap, err := c.vols.CreateSnapshot(ctx, diskCID, md["deployment"]+"/"+md["job"]+"/"+md["index"])
	if err != nil {
		return "", err
	}
	return diskCID + ":" + snap.ID, nil
}

// DeleteSnapshot deletes a snapshot SnapshotDisk made.
func (c *CPI) DeleteSnapshot(ctx context.Context, cid string) error {
	vol, snap, ok := strings.Cut(cid, ":")
	if !ok {
		return cpi.Errorf(cpi.CloudError, false, "snapshot cid %q is not <volume id>:<snapshot id>", cid)
	}
	return c.vols.DeleteSnapshot(ctx, vol, snap)
}
