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
	"time"

	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"

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
	vs    *vsphere.Client
	vols  *csi.Client
	cfg   Config
	nsxt  NSXT
	log   *zap.Logger
	locks *drsLocks
}

// New returns a CPI on vs and vols (csi.New(ctx, vs.Vim25())), with the
// collaborators opts give it.
func New(vs *vsphere.Client, vols *csi.Client, cfg Config, opts ...Option) (*CPI, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &CPI{vs: vs, vols: vols, cfg: cfg, log: zap.NewNop(), locks: newDRSLocks()}
	for _, o := range opts {
		o.apply(c)
	}
	return c, nil
}

var _ cpi.CPI = (*CPI)(nil)

// SettingsKey is the guestinfo key holding an agent's settings (base64 of
// their JSON, SettingsKey+".encoding" says so).
const SettingsKey = "guestinfo.bosh.settings"

// Settings are an agent's settings as BOSH agents read them.
type Settings = cpi.AgentSettings

// SettingsVM names the VM.
type SettingsVM = cpi.AgentSettingsVM

// SettingsDisks are the VM's disks.
type SettingsDisks = cpi.AgentSettingsDisks

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

// nsxtIPKey records, on a VM, the address CreateVM made a member of the
// NSX-T server pools (nsxt.lb.server_pools), for DeleteVM to take out.
const nsxtIPKey = "bosh.nsxt.ip"

// CreateVM clones the stemcell into a VM named by its cid, with the
// cloud_properties' hardware and placement, a NIC per network (with a MAC
// derived from the agent id, so the agent tells them apart), and the
// agent's settings in guestinfo; the VM then joins its vm_group, the VM
// group of its cluster's host_group, its cluster's drs_rules and its
// nsxt groups and server pools. It answers the networks with their MACs.
// Invalid cloud_properties, and a cluster, resource pool, host group or
// datastore they name that is not there, are one CloudError naming every
// field at fault (wrapping a *kubefoundry.ValidationError).
func (c *CPI) CreateVM(ctx context.Context, agentID, stemcellCID string, props cpi.CloudProps, networks cpi.Networks, _ []string, env cpi.Env) (string, cpi.Networks, error) {
	v := &kubefoundry.ValidationError{Object: "cloud_properties"}
	vp := parseVMProps(props, v)
	if !vp.NSXT.empty() && c.nsxt == nil {
		v.Add("nsxt", "", "this CPI has no NSX-T to put the VM in groups or server pools (vspherecpi.WithNSXT)")
	}
	pl, perr := c.place(ctx, vp, v)
	if err := invalidProps(v); err != nil {
		return "", nil, err
	}
	if perr != nil {
		return "", nil, perr
	}
	cid := newID("vm")
	spec := vsphere.VMSpec{
		Name: cid, Owner: vsphere.Owner{Cluster: c.cfg.ClusterID, Group: "bosh"},
		Template: c.stemcellPath(stemcellCID), LinkedClone: true,
		Folder: c.cfg.VMFolder, Cluster: pl.cluster.Name, ResourcePool: pl.resourcePool, Datastore: pl.datastore,
		CPUs: vp.CPU, MemoryMB: vp.RAM,
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
	kv, err := settingsExtraConfig(settings)
	if err != nil {
		return "", nil, err
	}
	lbIP := ""
	if len(vp.NSXT.ServerPools) > 0 {
		// The pools get the VM's address: its static one, or the one its
		// guest reports (waited for, as the vSphere CPI waits).
		if lbIP = primaryIP(out); lbIP == "" {
			spec.IPTimeout = ipTimeout
		} else {
			kv[nsxtIPKey] = lbIP
		}
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
	if err := c.join(ctx, res, cid, vp, pl, lbIP); err != nil {
		if derr := c.destroy(context.WithoutCancel(ctx), res.Ref, cid); derr != nil {
			c.log.Warn("VM that failed to join its groups not deleted", zap.String("vm", cid), zap.Error(derr))
		}
		return "", nil, &cpi.Error{Type: cpi.VMCreationFailed, Message: err.Error(), OKToRetry: !kubefoundry.IsInvalid(err)}
	}
	return cid, out, nil
}

// ipTimeout bounds the wait for the address of a VM on dynamic networks
// that joins NSX-T server pools.
const ipTimeout = 5 * time.Minute

// primaryIP is the static address of the network that is the VM's default
// gateway, or else of the first network by name that has one.
func primaryIP(nets cpi.Networks) string {
	names := make([]string, 0, len(nets))
	for n := range nets {
		names = append(names, n)
	}
	slices.Sort(names)
	first := ""
	for _, n := range names {
		nw := nets[n]
		if nw.IP == "" || (nw.Type != "manual" && nw.Type != "") {
			continue
		}
		if slices.Contains(nw.Default, "gateway") {
			return nw.IP
		}
		if first == "" {
			first = nw.IP
		}
	}
	return first
}

// join puts a made VM in its vm_group, its cluster's host group's VM
// group, its cluster's DRS rule, and its NSX-T groups and server pools.
func (c *CPI) join(ctx context.Context, res vsphere.VMResult, cid string, vp vmProps, pl placement, lbIP string) error {
	if vp.VMGroup != "" {
		if err := c.joinVMGroup(ctx, pl.ref, vp.VMGroup, res.Ref, "", false); err != nil {
			return err
		}
	}
	if hg := pl.cluster.HostGroup; hg != "" {
		rule := "SHOULD"
		if pl.cluster.HostGroupMust {
			rule = "MUST"
		}
		// The vSphere CPI's names: "<host group><MUST|SHOULD>_vm_group"
		// and that with "_rule".
		if err := c.joinVMGroup(ctx, pl.ref, hg+rule+"_vm_group", res.Ref, hg, pl.cluster.HostGroupMust); err != nil {
			return err
		}
	}
	if pl.cluster.DRSRule != "" {
		if err := c.joinRule(ctx, pl.ref, pl.cluster.DRSRule, res.Ref); err != nil {
			return err
		}
	}
	if len(vp.NSXT.NSGroups) > 0 {
		if err := c.nsxt.AddVMToGroups(ctx, cid, vp.NSXT.NSGroups); err != nil {
			return fmt.Errorf("NSX-T groups (nsxt.ns_groups): %w", err)
		}
	}
	if len(vp.NSXT.ServerPools) > 0 {
		if lbIP == "" {
			if lbIP = res.IP; lbIP == "" {
				return fmt.Errorf("NSX-T server pools (nsxt.lb.server_pools): VM %s reported no address", cid)
			}
			if err := c.vs.SetExtraConfig(ctx, res.Ref, map[string]string{nsxtIPKey: lbIP}); err != nil {
				return err
			}
		}
		if err := c.nsxt.AddToServerPools(ctx, cid, lbIP, vp.NSXT.ServerPools); err != nil {
			return fmt.Errorf("NSX-T server pools (nsxt.lb.server_pools): %w", err)
		}
	}
	return nil
}

// destroy takes the VM out of its DRS rules, VM groups and NSX-T groups
// and server pools, and destroys it.
func (c *CPI) destroy(ctx context.Context, ref types.ManagedObjectReference, cid string) error {
	if err := c.leaveCluster(ctx, ref); err != nil {
		return err
	}
	if c.nsxt != nil {
		if err := c.nsxt.RemoveVMFromGroups(ctx, cid); err != nil {
			return fmt.Errorf("NSX-T groups of %s: %w", cid, err)
		}
		kv, err := c.vs.ExtraConfig(ctx, ref, nsxtIPKey)
		if err != nil {
			return err
		}
		if ip := kv[nsxtIPKey]; ip != "" {
			// As the vSphere CPI, a server pool left holding the address
			// does not keep the VM.
			if err := c.nsxt.RemoveFromServerPools(ctx, ip); err != nil {
				c.log.Warn("VM's address not removed from NSX-T server pools", zap.String("vm", cid), zap.String("ip", ip), zap.Error(err))
			}
		}
	}
	_, err := c.vs.DeleteVM(ctx, ref)
	return err
}

func settingsExtraConfig(s Settings) (map[string]string, error) {
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
// It first leaves its DRS rules and VM groups (a rule or VM group left
// empty goes, a VM group with the VM/host rules naming it), its NSX-T
// groups and server pools.
func (c *CPI) DeleteVM(ctx context.Context, cid string) error {
	ref, err := c.vm(ctx, cid)
	if err != nil {
		return err
	}
	return c.destroy(ctx, ref, cid)
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
	next, err := settingsExtraConfig(s)
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
