package vsphere

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/ovf/importer"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
)

// StemcellSpec describes an OVF or OVA image to import as a clone source.
type StemcellSpec struct {
	// Path of the local .ova or .ovf file (an .ovf's disks sit beside it).
	Path string `json:"path"`
	// Name of the VM or template to create.
	Name string `json:"name"`
	// Folder, Cluster, ResourcePool and Datastore place the import as
	// VMSpec's fields do; Folder and a child ResourcePool are created if
	// missing.
	Folder       string `json:"folder"`
	Cluster      string `json:"cluster"`
	ResourcePool string `json:"resourcePool,omitempty"`
	Datastore    string `json:"datastore"`
	// Network maps every network of the image to this one; empty keeps
	// the image's own mapping.
	Network string `json:"network,omitempty"`
	// AsTemplate marks the import as a template. Otherwise it stays a
	// powered-off VM with a snapshot "kubefoundry-base", ready for linked
	// clones (a template cannot be snapshotted).
	AsTemplate bool `json:"asTemplate,omitempty"`
}

// Stemcell is an imported image.
type Stemcell struct {
	Name     string                       `json:"name"`
	Ref      types.ManagedObjectReference `json:"ref"`
	SHA256   string                       `json:"sha256"`
	Imported bool                         `json:"imported"` // false when it was there already
}

const stemcellAnnotationPrefix = "kubefoundry stemcell sha256:"

// stemcellImportingPrefix is the annotation of a stemcell while it is
// imported: only once the upload and its snapshot are done is it turned
// into stemcellAnnotationPrefix, so an import that died half-way is never
// taken for a stemcell.
const stemcellImportingPrefix = "kubefoundry stemcell (importing) sha256:"

// ImportStemcell uploads an OVF/OVA image through govmomi's OVF importer.
// It is idempotent by name and checksum: an image of that name recorded
// with the same SHA-256 is returned as it is; one with another checksum is
// an ErrAlreadyExists (import a new stemcell version under a new name).
func (c *Client) ImportStemcell(ctx context.Context, s StemcellSpec, opts ...StemcellOption) (*Stemcell, error) {
	var o stemcellOptions
	for _, opt := range opts {
		opt.applyStemcell(&o)
	}
	emit := func(phase, msg string, err error) {
		if o.sink != nil {
			kubefoundry.Emit(o.sink, kubefoundry.Event{Op: "import stemcell", Object: s.Name, Phase: phase, Message: msg, Err: err})
		}
	}
	sc, err := c.importStemcell(ctx, s, emit)
	switch {
	case err != nil:
		emit(string(PhaseFailed), "", err)
	case sc.Imported:
		emit("imported", sc.Ref.Value, nil)
	default:
		emit("existing", sc.Ref.Value, nil)
	}
	return sc, err
}

func (c *Client) importStemcell(ctx context.Context, s StemcellSpec, emit func(phase, msg string, err error)) (*Stemcell, error) {
	verr := &ValidationError{Object: "spec"}
	for field, v := range map[string]string{"path": s.Path, "name": s.Name, "folder": s.Folder, "cluster": s.Cluster, "datastore": s.Datastore} {
		if v == "" {
			verr.Add("stemcell."+field, "", "required")
		}
	}
	ext := strings.ToLower(path.Ext(s.Path))
	if s.Path != "" && ext != ".ova" && ext != ".ovf" {
		verr.Add("stemcell.path", "", "%q: want an .ova or .ovf file", s.Path)
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	sum, err := fileSHA256(s.Path)
	if err != nil {
		return nil, fmt.Errorf("stemcell %s: %w", s.Path, err)
	}
	folder, err := c.EnsureFolder(ctx, s.Folder)
	if err != nil {
		return nil, err
	}

	if existing, err := c.vmsInFolder(ctx, folder.Reference()); err != nil {
		return nil, err
	} else if vm, ok := existing[s.Name]; ok {
		var m mo.VirtualMachine
		if err := c.collector().RetrieveOne(ctx, vm.ref, []string{"config.annotation"}, &m); err != nil {
			return nil, fmt.Errorf("stemcell %s: %w", s.Name, err)
		}
		switch {
		case m.Config != nil && m.Config.Annotation == stemcellAnnotationPrefix+sum:
			return &Stemcell{Name: s.Name, Ref: vm.ref, SHA256: sum}, nil
		case m.Config != nil && strings.HasPrefix(m.Config.Annotation, stemcellImportingPrefix):
			// An import that did not finish (its process died, or its
			// upload failed): what it left is no stemcell. Remove it and
			// import again.
			c.log.Warn("removing an unfinished stemcell import", zap.String("stemcell", s.Name), zap.String("ref", vm.ref.Value))
			if _, err := c.DestroyVMs(ctx, []types.ManagedObjectReference{vm.ref}); err != nil {
				return nil, fmt.Errorf("remove the unfinished import of stemcell %s: %w", s.Name, err)
			}
		default:
			return nil, fmt.Errorf("stemcell %q in %s exists with another image (want sha256 %s): %w", s.Name, s.Folder, sum, ErrAlreadyExists)
		}
	}

	pool, err := c.EnsureResourcePool(ctx, s.Cluster, s.ResourcePool)
	if err != nil {
		return nil, err
	}
	ds, err := c.FindDatastore(ctx, s.Datastore)
	if err != nil {
		return nil, err
	}
	opener := importer.Opener{Client: c.vim}
	var archive importer.Archive = &importer.FileArchive{Path: s.Path, Opener: opener}
	fpath := s.Path
	if ext == ".ova" {
		archive = &importer.TapeArchive{Path: s.Path, Opener: opener}
		fpath = "*.ovf"
	}
	log := c.log.With(zap.String("stemcell", s.Name))
	imp := importer.Importer{
		Log: func(msg string) (int, error) {
			line := strings.TrimSpace(msg)
			log.Info(line)
			emit("uploading", line, nil)
			return len(msg), nil
		},
		Name:         s.Name,
		Client:       c.vim,
		Finder:       c.finder,
		Datacenter:   c.dc,
		Datastore:    ds,
		ResourcePool: pool,
		Folder:       folder,
		Archive:      archive,
	}
	opts := importer.Options{
		Name:             &s.Name,
		Annotation:       stemcellImportingPrefix + sum,
		DiskProvisioning: string(types.OvfCreateImportSpecParamsDiskProvisioningTypeThin),
	}
	if s.Network != "" {
		if _, err := c.FindNetwork(ctx, s.Network); err != nil {
			return nil, err
		}
		o, err := ovfNetworks(imp.Archive, fpath)
		if err != nil {
			return nil, err
		}
		for _, n := range o {
			opts.NetworkMapping = append(opts.NetworkMapping, importer.Network{Name: n, Network: s.Network})
		}
	}
	emit("started", "", nil)
	ref, err := imp.Import(ctx, fpath, opts)
	if err != nil {
		return nil, fmt.Errorf("import stemcell %s: %w", s.Name, err)
	}
	vm := object.NewVirtualMachine(c.vim, *ref)
	if !s.AsTemplate {
		task, err := vm.CreateSnapshot(ctx, "kubefoundry-base", "base of linked clones", false, false)
		if err == nil {
			_, err = c.wait(ctx, nil, "snapshot "+s.Name, task.Reference())
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot stemcell %s: %w", s.Name, err)
		}
	}
	// The upload (and its snapshot) are done: only now is it a stemcell.
	// Before it becomes a template, which can no longer be reconfigured.
	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{Annotation: stemcellAnnotationPrefix + sum})
	if err == nil {
		_, err = c.wait(ctx, nil, "mark stemcell "+s.Name, task.Reference())
	}
	if err != nil {
		return nil, fmt.Errorf("mark stemcell %s imported: %w", s.Name, err)
	}
	if s.AsTemplate {
		if err := vm.MarkAsTemplate(ctx); err != nil {
			return nil, fmt.Errorf("mark %s as template: %w", s.Name, err)
		}
	}
	log.Info("stemcell imported", zap.String("ref", ref.Value), zap.String("sha256", sum))
	return &Stemcell{Name: s.Name, Ref: *ref, SHA256: sum, Imported: true}, nil
}

// ovfNetworks lists the network names an image's OVF descriptor uses.
func ovfNetworks(archive importer.Archive, fpath string) ([]string, error) {
	raw, err := importer.ReadOvf(fpath, archive)
	if err != nil {
		return nil, fmt.Errorf("read ovf: %w", err)
	}
	env, err := importer.ReadEnvelope(raw)
	if err != nil {
		return nil, fmt.Errorf("parse ovf: %w", err)
	}
	var names []string
	if env.Network != nil {
		for _, n := range env.Network.Networks {
			names = append(names, n.Name)
		}
	}
	return names, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DeleteStemcell deletes the stemcell name (a VM or template, by name or
// inventory path) and every replica ProvisionVMs made of it on other
// datastores, replicas first, so that an interrupted delete finds them
// again through the stemcell. A stemcell already gone is no error.
//
// It refuses (ErrInvalidSpec) a VM that is not a stemcell — one with a
// cluster owner, or neither a template, nor imported by ImportStemcell,
// nor replicated — and (ErrInUse, naming them) while any VM's disks are
// delta disks of the stemcell's or its replicas' disks: delete those VMs
// first.
func (c *Client) DeleteStemcell(ctx context.Context, name string) error {
	vm, err := c.FindVM(ctx, name)
	if IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	all, err := c.allVMs(ctx, []string{"name", "config.template", "config.annotation", "config.extraConfig", "config.hardware.device"})
	if err != nil {
		return fmt.Errorf("delete stemcell %s: %w", name, err)
	}
	src := vm.Reference()
	i := slices.IndexFunc(all, func(m mo.VirtualMachine) bool { return m.Self == src })
	if i < 0 {
		return nil // deleted meanwhile
	}
	stemcell := &all[i]
	var replicas []*mo.VirtualMachine
	for i := range all {
		m := &all[i]
		_, owned := ownerOf(m)
		if replicaOf(m) == src.Value && strings.HasPrefix(m.Name, stemcell.Name+".replica.") && !owned {
			replicas = append(replicas, m)
		}
	}
	if o, owned := ownerOf(stemcell); owned {
		return fmt.Errorf("%s is VM %s of cluster %s, not a stemcell: %w", name, o, o.Cluster, ErrInvalidSpec)
	}
	isTemplate := stemcell.Config != nil && stemcell.Config.Template
	imported := stemcell.Config != nil && (strings.HasPrefix(stemcell.Config.Annotation, stemcellAnnotationPrefix) ||
		strings.HasPrefix(stemcell.Config.Annotation, stemcellImportingPrefix))
	if !isTemplate && !imported && len(replicas) == 0 {
		return fmt.Errorf("%s is neither a template, nor imported by ImportStemcell, nor replicated; not deleting it as a stemcell: %w", name, ErrInvalidSpec)
	}

	// Every disk file of the stemcell and its replicas, whole chains.
	bases := map[string]bool{}
	for _, m := range append([]*mo.VirtualMachine{stemcell}, replicas...) {
		for _, f := range diskChains(m) {
			bases[f] = true
		}
	}
	var users []string
	for i := range all {
		m := &all[i]
		if m == stemcell || slices.Contains(replicas, m) {
			continue
		}
		for _, f := range diskChains(m) {
			if bases[f] {
				users = append(users, m.Name)
				break
			}
		}
	}
	if len(users) > 0 {
		slices.Sort(users)
		return fmt.Errorf("stemcell %s is the base of the disks of %s: %w", name, joinNames(users), ErrInUse)
	}

	refs := make([]types.ManagedObjectReference, len(replicas))
	for i, r := range replicas {
		refs[i] = r.Self
	}
	if len(refs) > 0 {
		if _, err := c.DestroyVMs(ctx, refs); err != nil {
			return fmt.Errorf("delete replicas of stemcell %s: %w", name, err)
		}
	}
	if _, err := c.DestroyVMs(ctx, []types.ManagedObjectReference{src}); err != nil {
		return fmt.Errorf("delete stemcell %s: %w", name, err)
	}
	c.log.Info("stemcell deleted", zap.String("stemcell", name), zap.Int("replicas", len(refs)))
	return nil
}

// allVMs reads props of every VM in the datacenter in one view.
func (c *Client) allVMs(ctx context.Context, props []string) ([]mo.VirtualMachine, error) {
	v, err := view.NewManager(c.vim).CreateContainerView(ctx, c.dc.Reference(), []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	var all []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, props, &all); err != nil {
		return nil, err
	}
	return all, nil
}

// diskChains lists the files of every disk of m with all their parents.
func diskChains(m *mo.VirtualMachine) []string {
	if m.Config == nil {
		return nil
	}
	var files []string
	for _, d := range object.VirtualDeviceList(m.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil)) {
		files = append(files, backingChain(d.GetVirtualDevice().Backing)...)
	}
	return files
}

// backingChain lists a disk backing's file and its parents' files, the
// disk's own first. A disk with snapshots or a linked clone's disk has
// more than one.
func backingChain(b types.BaseVirtualDeviceBackingInfo) []string {
	var files []string
	switch x := b.(type) {
	case *types.VirtualDiskFlatVer2BackingInfo:
		for ; x != nil; x = x.Parent {
			files = append(files, x.FileName)
		}
	case *types.VirtualDiskSeSparseBackingInfo:
		for ; x != nil; x = x.Parent {
			files = append(files, x.FileName)
		}
	case *types.VirtualDiskSparseVer2BackingInfo:
		for ; x != nil; x = x.Parent {
			files = append(files, x.FileName)
		}
	case *types.VirtualDiskRawDiskMappingVer1BackingInfo:
		for ; x != nil; x = x.Parent {
			files = append(files, x.FileName)
		}
	case types.BaseVirtualDeviceFileBackingInfo:
		files = append(files, x.GetVirtualDeviceFileBackingInfo().FileName)
	}
	return slices.DeleteFunc(files, func(f string) bool { return f == "" })
}
