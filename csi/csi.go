package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vmware/govmomi/cns"
	cnstypes "github.com/vmware/govmomi/cns/types"
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/vimpoll"
	"github.com/kubefoundry/kubefoundry/internal/vimsession"
	"github.com/kubefoundry/kubefoundry/internal/workpool"
)

// The package's errors wrap the SDK's shared sentinels, re-exported here
// under the same names: csi.ErrNotFound is kubefoundry.ErrNotFound.
var (
	// ErrNotFound is wrapped by errors about a volume or VM that does not exist.
	ErrNotFound = kubefoundry.ErrNotFound
	// ErrAttached is wrapped when a volume is attached where it may not be.
	// It wraps kubefoundry.ErrInUse.
	ErrAttached = fmt.Errorf("volume attached: %w", kubefoundry.ErrInUse)
	// ErrInvalidSpec is wrapped by validation errors: kubefoundry.ErrInvalid.
	ErrInvalidSpec = kubefoundry.ErrInvalid
)

// AttachedError says a volume is attached to another VM than asked, or is
// still attached when it should not be. Holder is the VM's managed object
// ID ("vm-123").
type AttachedError struct {
	Volume string
	Holder string
}

func (e *AttachedError) Error() string {
	return fmt.Sprintf("volume %s is attached to %s", e.Volume, e.Holder)
}

// Unwrap makes errors.Is(err, ErrAttached) true.
func (e *AttachedError) Unwrap() error { return ErrAttached }

// attachedLabel records, in the volume's CNS metadata, the VM the volume
// was attached to through this package, so that a conflict can name the
// holder and a volume left on a deleted VM can be released.
const attachedLabel = "kubefoundry.io/attached-to"

// Client manages CNS volumes over a vSphere session it shares.
// A Client is safe for concurrent use.
type Client struct {
	vim         *vim25.Client
	cns         *cns.Client
	log         *zap.Logger
	pbm         pbmHolder
	concurrency int
	limiter     *rate.Limiter // nil: none of its own
	limitSet    bool          // WithRateLimit or WithRateLimiter was given

	tasks *vimpoll.Tasks // one batched read of every CNS task being waited for

	dsMu       sync.Mutex
	datastores map[string]types.ManagedObjectReference // by VolumeSpec.Datastore, as resolved
}

// An Option configures a Client.
type Option interface {
	apply(*Client)
}

type optionFunc func(*Client)

func (f optionFunc) apply(c *Client) { f(c) }

// WithLogger sets the logger; the default discards everything.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(c *Client) {
		if l != nil {
			c.log = l
		}
	})
}

// WithConcurrency bounds how many volumes CreateVolumes handles at once;
// the default is 8.
func WithConcurrency(n int) Option {
	return optionFunc(func(c *Client) {
		if n > 0 {
			c.concurrency = n
		}
	})
}

// WithRateLimit sets a client-side token bucket on CNS calls: qps on
// average, bursts of burst; qps of zero or less removes it. Without it, a
// Client on a session package vsphere made keeps to that session's limit
// (one budget for VMs and volumes), and a Client on any other session gets
// 100 qps, burst 200.
func WithRateLimit(qps float64, burst int) Option {
	return optionFunc(func(c *Client) {
		c.limiter = nil
		if qps > 0 {
			c.limiter = rate.NewLimiter(rate.Limit(qps), max(burst, 1))
		}
		c.limitSet = true
	})
}

// WithRateLimiter sends every CNS call through l, a token bucket the caller
// may share with other clients.
func WithRateLimiter(l *rate.Limiter) Option {
	return optionFunc(func(c *Client) { c.limiter, c.limitSet = l, true })
}

// New returns a Client on vc. Given the *vim25.Client of a vsphere.Client
// (its Vim25 method), volumes and VMs share one session: CNS calls are
// logged in again with it when vCenter ends it, counted in its Stats, kept
// to its rate limit and bounded by its timeouts. On any other vim25.Client
// the CNS endpoint gets a copy of its session cookie, made now: the caller
// then owns re-login.
func New(ctx context.Context, vc *vim25.Client, opts ...Option) (*Client, error) {
	c := &Client{vim: vc, log: zap.NewNop(), concurrency: 8}
	for _, o := range opts {
		o.apply(c)
	}
	c.log = c.log.Named("csi")
	cc, err := cns.NewClient(ctx, vc)
	if err != nil {
		return nil, fmt.Errorf("CNS client: %w", err)
	}
	// CNS tasks are read on /sdk but in the vsan namespace and version, as
	// the cns package's own task objects do: read as plain vim25, vCenter
	// leaves their CNS results out.
	tasks := cc.Client.NewServiceClient(vim25.Path, cns.Namespace)
	tasks.Version = cc.Client.Version
	var tasksRT soap.RoundTripper = tasks
	sess, shared := vimsession.From(vc)
	if shared {
		cc.RoundTripper = sess.Share(cc.Client)
		tasksRT = sess.Share(tasks)
	} else if !c.limitSet {
		c.limiter = rate.NewLimiter(100, 200)
	}
	if c.limiter != nil {
		cc.RoundTripper = vimsession.Limit(cc.RoundTripper, c.limiter)
		tasksRT = vimsession.Limit(tasksRT, c.limiter)
	}
	c.cns = cc
	c.tasks = vimpoll.NewTasks(&vim25.Client{ServiceContent: vc.ServiceContent, Client: tasks, RoundTripper: tasksRT})
	c.datastores = map[string]types.ManagedObjectReference{}
	return c, nil
}

// VolumeResult is the outcome of one spec of CreateVolumes.
type VolumeResult struct {
	Name   string  `json:"name"`
	Volume *Volume `json:"volume,omitempty"`
	Err    error   `json:"-"`
}

// CreateVolumes creates many volumes, at most the client's concurrency at
// a time. One failure does not stop the others: the result has one entry
// per spec, in order, and the error joins the failures.
func (c *Client) CreateVolumes(ctx context.Context, specs []VolumeSpec, opts ...CreateOption) ([]VolumeResult, error) {
	out := make([]VolumeResult, len(specs))
	for i := range specs {
		out[i].Name = specs[i].Name
	}
	var mu sync.Mutex
	opts = append(slices.Clone(opts), createOptionFunc(func(o *createOptions) { o.mu = &mu }))
	workpool.Run(ctx, c.concurrency, len(specs),
		func(i int) { out[i].Volume, out[i].Err = c.CreateVolume(ctx, specs[i], opts...) },
		func(i int, err error) { out[i].Err = err })
	var errs []error
	for _, r := range out {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", r.Name, r.Err))
		}
	}
	return out, errors.Join(errs...)
}

// VolumeSpec describes a block volume.
type VolumeSpec struct {
	Name      string `json:"name"`
	SizeMB    int64  `json:"sizeMB"`
	Datastore string `json:"datastore,omitempty"` // name or inventory path; empty with a StoragePolicy lets CNS pick among the compatible ones
	// StoragePolicy is an SPBM policy name applied to the volume.
	StoragePolicy string `json:"storagePolicy,omitempty"`
	// ClusterID is the owning Kubernetes cluster, recorded in CNS metadata
	// (the orphan scan queries by it).
	ClusterID string            `json:"clusterID"`
	Labels    map[string]string `json:"labels,omitempty"`
	// PVName and PVC name the Kubernetes objects of the volume, when there
	// are such, in its CNS metadata (the vSphere Client shows them).
	PVName string  `json:"pvName,omitempty"`
	PVC    *PVCRef `json:"pvc,omitempty"`
}

// PVCRef names a PersistentVolumeClaim.
type PVCRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Volume is a CNS volume.
type Volume struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	SizeMB       int64   `json:"sizeMB"`
	DatastoreURL string  `json:"datastoreURL,omitempty"`
	ClusterID    string  `json:"clusterID"`
	PolicyID     string  `json:"policyID,omitempty"`
	PVC          *PVCRef `json:"pvc,omitempty"`
	// AttachedTo is the VM the volume was attached to through this
	// package, if any.
	AttachedTo string `json:"attachedTo,omitempty"`

	metadata cnstypes.CnsVolumeMetadata // as read, for rewriting the holder
}

func (s VolumeSpec) validate() error {
	verr := kubefoundry.ValidationError{Object: fmt.Sprintf("volume %q", s.Name)}
	if s.Name == "" {
		verr.Add("name", "", "required")
	}
	if s.SizeMB <= 0 {
		verr.Add("sizeMB", strconv.FormatInt(s.SizeMB, 10), "must be positive")
	}
	if s.Datastore == "" && s.StoragePolicy == "" {
		verr.Add("datastore", "", "datastore or storagePolicy: one is required")
	}
	verr.Merge("", kubefoundry.ClusterID(s.ClusterID).Validate())
	return verr.Err()
}

// CreateVolume creates a block volume, or returns the one of the same name
// in the same cluster that exists already.
func (c *Client) CreateVolume(ctx context.Context, s VolumeSpec, opts ...CreateOption) (*Volume, error) {
	var o createOptions
	for _, opt := range opts {
		opt.applyCreate(&o)
	}
	vol, err := c.createVolume(ctx, s, &o)
	if err != nil {
		o.emit(kubefoundry.Event{Object: s.Name, Phase: PhaseFailed, Err: err})
	}
	return vol, err
}

func (c *Client) createVolume(ctx context.Context, s VolumeSpec, o *createOptions) (*Volume, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	existing, err := c.query(ctx, cnstypes.CnsQueryFilter{Names: []string{s.Name}, ContainerClusterIds: []string{s.ClusterID}})
	if err != nil {
		return nil, err
	}
	if len(existing) > 0 {
		o.emit(kubefoundry.Event{Object: s.Name, Phase: PhaseExisting, Handle: existing[0].ID})
		return &existing[0], nil
	}
	if ref := o.inFlight[s.Name]; ref != "" {
		// CNS names are not unique: a create task started before a crash
		// may still make this volume. Wait for it rather than make a
		// second one.
		task := types.ManagedObjectReference{Type: "Task", Value: ref}
		o.emit(kubefoundry.Event{Object: s.Name, Phase: PhaseTaskStarted, Handle: ref, Message: "resumed"})
		res, err := c.result(ctx, object.NewTask(c.vim, task), nil)
		if err == nil {
			id := res.GetCnsVolumeOperationResult().VolumeId.Id
			c.log.Info("volume created by the earlier task", zap.String("volume", s.Name), zap.String("task", ref), zap.String("id", id))
			o.emit(kubefoundry.Event{Object: s.Name, Phase: PhaseCreated, Handle: id})
			return c.Get(ctx, id)
		}
		c.log.Info("the earlier create task made no volume; creating it", zap.String("volume", s.Name), zap.String("task", ref), zap.Error(err))
	}
	var datastores []types.ManagedObjectReference
	var profile []types.BaseVirtualMachineProfileSpec
	if s.StoragePolicy != "" {
		id, err := c.StoragePolicyID(ctx, s.StoragePolicy)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", s.Name, err)
		}
		profile = []types.BaseVirtualMachineProfileSpec{&types.VirtualMachineDefinedProfileSpec{ProfileId: id}}
		if s.Datastore == "" {
			if datastores, err = c.CompatibleDatastores(ctx, s.StoragePolicy); err != nil {
				return nil, fmt.Errorf("volume %s: %w", s.Name, err)
			}
			if len(datastores) == 0 {
				return nil, fmt.Errorf("volume %s: no datastore satisfies policy %q: %w", s.Name, s.StoragePolicy, ErrNotFound)
			}
		}
	}
	if s.Datastore != "" {
		ds, err := c.datastore(ctx, s.Datastore)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", s.Name, err)
		}
		datastores = []types.ManagedObjectReference{ds}
	}
	spec := cnstypes.CnsVolumeCreateSpec{
		Name:       s.Name,
		VolumeType: string(cnstypes.CnsVolumeTypeBlock),
		Datastores: datastores,
		Profile:    profile,
		Metadata: cnstypes.CnsVolumeMetadata{
			ContainerCluster: cnstypes.CnsContainerCluster{ClusterType: string(cnstypes.CnsClusterTypeKubernetes), ClusterId: s.ClusterID, VSphereUser: "kubefoundry", ClusterFlavor: string(cnstypes.CnsClusterFlavorVanilla)},
			EntityMetadata:   c.entities(s),
		},
		BackingObjectDetails: &cnstypes.CnsBlockBackingDetails{CnsBackingObjectDetails: cnstypes.CnsBackingObjectDetails{CapacityInMb: s.SizeMB}},
	}
	task, err := c.cns.CreateVolume(ctx, []cnstypes.CnsVolumeCreateSpec{spec})
	if err != nil {
		return nil, fmt.Errorf("create volume %s: %w", s.Name, err)
	}
	o.emit(kubefoundry.Event{Object: s.Name, Phase: PhaseTaskStarted, Handle: task.Reference().Value})
	res, err := c.result(ctx, task, nil)
	if err != nil {
		if s.Datastore != "" {
			c.dsMu.Lock()
			delete(c.datastores, s.Datastore) // it may be gone or another since: resolve it again next time
			c.dsMu.Unlock()
		}
		return nil, fmt.Errorf("create volume %s: %w", s.Name, err)
	}
	id := res.GetCnsVolumeOperationResult().VolumeId.Id
	c.log.Info("volume created", zap.String("volume", s.Name), zap.String("id", id))
	o.emit(kubefoundry.Event{Object: s.Name, Phase: PhaseCreated, Handle: id})
	return c.Get(ctx, id)
}

// The phases of the progress events of CreateVolume and CreateVolumes
// (kubefoundry.Event.Phase; Op is "create volume", Object the volume's
// name).
const (
	// PhaseTaskStarted: the CNS create task exists; Handle is its id
	// ("task-123"). Journal it: WithInFlight hands it back after a crash.
	PhaseTaskStarted = "task-started"
	// PhaseCreated: the volume exists; Handle is its CNS volume id.
	PhaseCreated = "created"
	// PhaseExisting: a volume of that name was there already (Handle: id).
	PhaseExisting = "existing"
	// PhaseFailed: Err says why.
	PhaseFailed = "failed"
)

// A CreateOption adjusts one CreateVolume or CreateVolumes call.
type CreateOption interface {
	applyCreate(*createOptions)
}

type createOptions struct {
	sink     kubefoundry.Sink
	inFlight map[string]string
	mu       *sync.Mutex // serialises events of one CreateVolumes call
}

type createOptionFunc func(*createOptions)

func (f createOptionFunc) applyCreate(o *createOptions) { f(o) }

// WithSink sends the call's progress events to s: for each volume the CNS
// task it started (PhaseTaskStarted, before it is waited for), then
// PhaseCreated, PhaseExisting or PhaseFailed.
func WithSink(s kubefoundry.Sink) CreateOption {
	return createOptionFunc(func(o *createOptions) { o.sink = s })
}

// WithInFlight resumes the create tasks an earlier call started: tasks
// maps a volume's name to the Handle of its PhaseTaskStarted event, as a
// caller that journals events recorded it before a crash. A volume not
// there yet whose task is still known is waited for instead of being
// created a second time (CNS names are not unique: it would make a
// duplicate); a task that failed, or that vCenter no longer knows, is
// followed by a new create. The map is copied.
func WithInFlight(tasks map[string]string) CreateOption {
	return createOptionFunc(func(o *createOptions) { o.inFlight = maps.Clone(tasks) })
}

func (o *createOptions) emit(e kubefoundry.Event) {
	if o.sink == nil {
		return
	}
	e.Op = "create volume"
	if o.mu != nil {
		o.mu.Lock()
		defer o.mu.Unlock()
	}
	kubefoundry.Emit(o.sink, e)
}

// datastore resolves a datastore name or inventory path, once per Client:
// a datastore's managed object ID does not change while it exists.
func (c *Client) datastore(ctx context.Context, name string) (types.ManagedObjectReference, error) {
	c.dsMu.Lock()
	ref, ok := c.datastores[name]
	c.dsMu.Unlock()
	if ok {
		return ref, nil
	}
	finder := find.NewFinder(c.vim, false)
	if dc, err := finder.DefaultDatacenter(ctx); err == nil {
		finder.SetDatacenter(dc)
	}
	ds, err := finder.Datastore(ctx, name)
	if err != nil {
		return ref, fmt.Errorf("datastore %q: %w: %w", name, ErrNotFound, err)
	}
	c.dsMu.Lock()
	c.datastores[name] = ds.Reference()
	c.dsMu.Unlock()
	return ds.Reference(), nil
}

func (c *Client) entities(s VolumeSpec) []cnstypes.BaseCnsEntityMetadata {
	pv := s.PVName
	if pv == "" {
		pv = s.Name
	}
	e := &cnstypes.CnsKubernetesEntityMetadata{
		CnsEntityMetadata: cnstypes.CnsEntityMetadata{EntityName: pv, ClusterID: s.ClusterID},
		EntityType:        string(cnstypes.CnsKubernetesEntityTypePV),
	}
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		e.Labels = append(e.Labels, types.KeyValue{Key: k, Value: s.Labels[k]})
	}
	out := []cnstypes.BaseCnsEntityMetadata{e}
	if s.PVC != nil {
		out = append(out, &cnstypes.CnsKubernetesEntityMetadata{
			CnsEntityMetadata: cnstypes.CnsEntityMetadata{EntityName: s.PVC.Name, ClusterID: s.ClusterID},
			EntityType:        string(cnstypes.CnsKubernetesEntityTypePVC),
			Namespace:         s.PVC.Namespace,
			ReferredEntity: []cnstypes.CnsKubernetesEntityReference{{
				EntityType: string(cnstypes.CnsKubernetesEntityTypePV), EntityName: pv, ClusterID: s.ClusterID,
			}},
		})
	}
	return out
}

// Get returns a volume by ID.
func (c *Client) Get(ctx context.Context, id string) (*Volume, error) {
	vols, err := c.query(ctx, cnstypes.CnsQueryFilter{VolumeIds: []cnstypes.CnsVolumeId{{Id: id}}})
	if err != nil {
		return nil, err
	}
	if len(vols) == 0 {
		return nil, fmt.Errorf("volume %s: %w", id, ErrNotFound)
	}
	return &vols[0], nil
}

// QueryVolumes returns the volumes of a cluster: the orphan scan.
func (c *Client) QueryVolumes(ctx context.Context, clusterID string) ([]Volume, error) {
	return c.query(ctx, cnstypes.CnsQueryFilter{ContainerClusterIds: []string{clusterID}})
}

func (c *Client) query(ctx context.Context, f cnstypes.CnsQueryFilter) ([]Volume, error) {
	res, err := c.cns.QueryVolume(ctx, &f)
	if err != nil {
		return nil, fmt.Errorf("query volumes: %w", err)
	}
	out := make([]Volume, 0, len(res.Volumes))
	for _, v := range res.Volumes {
		vol := Volume{ID: v.VolumeId.Id, Name: v.Name, DatastoreURL: v.DatastoreUrl, ClusterID: v.Metadata.ContainerCluster.ClusterId,
			PolicyID: v.StoragePolicyId, metadata: v.Metadata}
		if b := v.BackingObjectDetails; b != nil {
			vol.SizeMB = b.GetCnsBackingObjectDetails().CapacityInMb
		}
		for _, m := range v.Metadata.EntityMetadata {
			for _, l := range m.GetCnsEntityMetadata().Labels {
				if l.Key == attachedLabel {
					vol.AttachedTo = l.Value
				}
			}
			if k, ok := m.(*cnstypes.CnsKubernetesEntityMetadata); ok && k.EntityType == string(cnstypes.CnsKubernetesEntityTypePVC) {
				vol.PVC = &PVCRef{Namespace: k.Namespace, Name: k.EntityName}
			}
		}
		out = append(out, vol)
	}
	slices.SortFunc(out, func(a, b Volume) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AttachVolume attaches a volume to a VM. A volume already attached to that
// VM is success; one attached to another VM is an *AttachedError naming it.
func (c *Client) AttachVolume(ctx context.Context, id string, vm types.ManagedObjectReference) error {
	vol, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	switch vol.AttachedTo {
	case vm.Value:
		return nil
	case "":
	default:
		return &AttachedError{Volume: id, Holder: vol.AttachedTo}
	}
	task, err := c.cns.AttachVolume(ctx, []cnstypes.CnsVolumeAttachDetachSpec{{VolumeId: cnstypes.CnsVolumeId{Id: id}, Vm: vm}})
	_, err = c.result(ctx, task, err)
	if err != nil {
		if fault.Is(err, &types.ResourceInUse{}) {
			return &AttachedError{Volume: id, Holder: "a VM not recorded by kubefoundry"}
		}
		return fmt.Errorf("attach volume %s to %s: %w", id, vm.Value, err)
	}
	return c.setAttached(ctx, vol, vm.Value)
}

// DetachVolume detaches a volume from the VM it is attached to. A volume
// attached nowhere is success.
func (c *Client) DetachVolume(ctx context.Context, id string) error {
	vol, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	return c.detach(ctx, vol)
}

func (c *Client) detach(ctx context.Context, vol *Volume) error {
	if vol.AttachedTo == "" {
		return nil
	}
	vm := types.ManagedObjectReference{Type: "VirtualMachine", Value: vol.AttachedTo}
	task, err := c.cns.DetachVolume(ctx, []cnstypes.CnsVolumeAttachDetachSpec{{VolumeId: cnstypes.CnsVolumeId{Id: vol.ID}, Vm: vm}})
	_, err = c.result(ctx, task, err)
	if err != nil && !c.vmGone(ctx, vm) {
		return fmt.Errorf("detach volume %s from %s: %w", vol.ID, vm.Value, err)
	}
	return c.setAttached(ctx, vol, "")
}

// ReleaseVolume frees a volume whose VM no longer exists (the "volume stuck
// on a deleted node" problem): it detaches it in CNS as far as CNS still
// knows the attachment, and forgets the holder. A volume whose VM still
// exists is an *AttachedError: detach it instead.
func (c *Client) ReleaseVolume(ctx context.Context, id string) error {
	vol, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if vol.AttachedTo == "" {
		return nil
	}
	vm := types.ManagedObjectReference{Type: "VirtualMachine", Value: vol.AttachedTo}
	if !c.vmGone(ctx, vm) {
		return &AttachedError{Volume: id, Holder: vol.AttachedTo}
	}
	c.log.Info("releasing volume from a deleted VM", zap.String("volume", id), zap.String("vm", vm.Value))
	return c.detach(ctx, vol)
}

func (c *Client) vmGone(ctx context.Context, vm types.ManagedObjectReference) bool {
	var m mo.VirtualMachine
	err := object.NewVirtualMachine(c.vim, vm).Properties(ctx, vm, []string{"name"}, &m)
	return err != nil && fault.Is(err, &types.ManagedObjectNotFound{})
}

// setAttached rewrites the volume's metadata, as read with it, with the
// holder label set to vm (or removed when vm is empty).
func (c *Client) setAttached(ctx context.Context, vol *Volume, vm string) error {
	var md []cnstypes.BaseCnsEntityMetadata
	recorded := false
	for _, m := range vol.metadata.EntityMetadata {
		e := m.GetCnsEntityMetadata()
		e.Labels = slices.DeleteFunc(e.Labels, func(l types.KeyValue) bool { return l.Key == attachedLabel })
		if k, ok := m.(*cnstypes.CnsKubernetesEntityMetadata); ok && vm != "" && !recorded && k.EntityType == string(cnstypes.CnsKubernetesEntityTypePV) {
			e.Labels = append(e.Labels, types.KeyValue{Key: attachedLabel, Value: vm})
			recorded = true
		}
		md = append(md, m)
	}
	task, err := c.cns.UpdateVolumeMetadata(ctx, []cnstypes.CnsVolumeMetadataUpdateSpec{{
		VolumeId: cnstypes.CnsVolumeId{Id: vol.ID},
		Metadata: cnstypes.CnsVolumeMetadata{ContainerCluster: vol.metadata.ContainerCluster, EntityMetadata: md},
	}})
	_, err = c.result(ctx, task, err)
	if err != nil {
		return fmt.Errorf("record attachment of %s: %w", vol.ID, err)
	}
	return nil
}

// ExtendVolume grows a volume to sizeMB. Shrinking is refused.
func (c *Client) ExtendVolume(ctx context.Context, id string, sizeMB int64) error {
	vol, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	if sizeMB < vol.SizeMB {
		return fmt.Errorf("volume %s: %d MB is smaller than its %d MB: %w", id, sizeMB, vol.SizeMB, ErrInvalidSpec)
	}
	if sizeMB == vol.SizeMB {
		return nil
	}
	task, err := c.cns.ExtendVolume(ctx, []cnstypes.CnsVolumeExtendSpec{{VolumeId: cnstypes.CnsVolumeId{Id: id}, CapacityInMb: sizeMB}})
	_, err = c.result(ctx, task, err)
	if err != nil {
		return fmt.Errorf("extend volume %s: %w", id, err)
	}
	return nil
}

// DeleteVolume deletes a volume and its disk. A volume still attached is
// refused with an *AttachedError unless force is set, which detaches it
// first. A volume that is gone already is success.
func (c *Client) DeleteVolume(ctx context.Context, id string, force bool) error {
	vol, err := c.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if vol.AttachedTo != "" {
		if !force {
			return &AttachedError{Volume: id, Holder: vol.AttachedTo}
		}
		if err := c.detach(ctx, vol); err != nil {
			return err
		}
	}
	task, err := c.cns.DeleteVolume(ctx, []cnstypes.CnsVolumeId{{Id: id}}, true)
	_, err = c.result(ctx, task, err)
	if err != nil {
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	c.log.Info("volume deleted", zap.String("id", id))
	return nil
}

// result waits for the CNS task a call started and returns its single
// volume result, or the call's error, or the fault the result carries.
func (c *Client) result(ctx context.Context, task *object.Task, callErr error) (cnstypes.BaseCnsVolumeOperationResult, error) {
	if callErr != nil {
		return nil, callErr
	}
	info, err := c.tasks.Wait(ctx, task.Reference())
	if err != nil {
		return nil, err
	}
	res, err := cns.GetTaskResult(ctx, info)
	if err != nil {
		return nil, err
	}
	if f := res.GetCnsVolumeOperationResult().Fault; f != nil {
		return nil, fmt.Errorf("%s: %w", f.LocalizedMessage, faultError{f})
	}
	return res, nil
}

// faultError lets govmomi's fault.Is see a result's fault.
type faultError struct{ f *types.LocalizedMethodFault }

func (e faultError) Error() string                { return fmt.Sprintf("%T", e.f.Fault) }
func (e faultError) Fault() types.BaseMethodFault { return e.f.Fault }
