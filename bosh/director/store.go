package director

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
)

// Store is the director's state: deployments and their instances, the
// orphaned disks, tasks with their events, and the locks that keep two
// tasks off one deployment. It survives a restart of the director.
type Store interface {
	// PutDeployment records a deployment, replacing what was recorded.
	PutDeployment(d Deployment) error
	// Deployment returns the deployment (ErrNotFound when there is none).
	Deployment(name string) (Deployment, error)
	// Deployments lists the deployments by name.
	Deployments() ([]Deployment, error)
	// DeleteDeployment removes a deployment and its instances; one that
	// is not there is no error.
	DeleteDeployment(name string) error

	// PutInstance records an instance of a deployment that is recorded.
	PutInstance(i InstanceRecord) error
	// Instances lists a deployment's instances by group and index.
	Instances(deployment string) ([]InstanceRecord, error)
	// DeleteInstance removes an instance; one that is not there is no
	// error.
	DeleteInstance(deployment, id string) error

	// ChangeDisks records, in one transaction, an instance as it is once
	// disks are taken off it or given to it: those it lets go recorded
	// orphaned, the orphans it takes no longer, so that every disk is
	// named by an instance or an orphan record at every moment. A disk to
	// adopt that is not recorded orphaned is ErrNotFound, and nothing
	// changes.
	ChangeDisks(c DiskChange) error
	// OrphanedDisks lists the orphaned disks, oldest first.
	OrphanedDisks() ([]OrphanedDisk, error)
	// OrphanedDisk returns an orphaned disk (ErrNotFound when there is
	// none).
	OrphanedDisk(cid string) (OrphanedDisk, error)
	// DeleteOrphanedDisk forgets an orphaned disk; one that is not there
	// is no error.
	DeleteOrphanedDisk(cid string) error

	// NewTask records a new task, in state queued, and returns it with
	// its id.
	NewTask(kind, deployment, description string) (Task, error)
	// PutTask records a task's state and result.
	PutTask(t Task) error
	// Task returns a task (ErrNotFound when there is none).
	Task(id int64) (Task, error)
	// Tasks lists the tasks, newest first, at most limit (all when 0).
	Tasks(limit int) ([]Task, error)
	// AddEvent appends an event to a task's log.
	AddEvent(id int64, e Event) error
	// Events returns a task's events from the index from (0-based).
	Events(id int64, from int) ([]Event, error)

	// Lock gives a deployment to a task. A deployment locked by another
	// task is a *LockedError naming it; locking again by the same task
	// is no error.
	Lock(deployment string, task int64) error
	// Unlock frees a deployment, if task holds it.
	Unlock(deployment string, task int64) error
	// Locks lists the locked deployments and their tasks.
	Locks() (map[string]int64, error)

	// PutRelease records an uploaded release, replacing what was
	// recorded for its name and version.
	PutRelease(r ReleaseRecord) error
	// Release returns a release (ErrNotFound when there is none).
	Release(name, version string) (ReleaseRecord, error)
	// Releases lists the releases by name, then version.
	Releases() ([]ReleaseRecord, error)
	// PutStemcell records an uploaded stemcell.
	PutStemcell(s StemcellRecord) error
	// Stemcells lists the stemcells by name, then version.
	Stemcells() ([]StemcellRecord, error)

	// PutConfig records content as the next version of the config of a
	// type (ConfigCloud, ConfigRuntime) and name, and makes it current.
	// Content the same as the current version's records nothing. It
	// returns the current version, and whether it is a new one.
	PutConfig(typ, name string, content []byte) (rec ConfigRecord, created bool, err error)
	// DeleteConfig ends a config: no version of it is current any more,
	// each stays readable by its id. It reports whether one was current.
	DeleteConfig(typ, name string) (bool, error)
	// Config returns a version of a config by its id (ErrNotFound when
	// there is none).
	Config(id int64) (ConfigRecord, error)
	// Configs lists the current version of each config of a type (of
	// every type when typ is ""), by type, then name.
	Configs(typ string) ([]ConfigRecord, error)
	// ConfigVersions lists every version of a config, newest first.
	ConfigVersions(typ, name string) ([]ConfigRecord, error)

	// Variables returns a deployment's variables store (nil when it has
	// none); PutVariables replaces it. It holds secrets: the store file is
	// to be kept as such (mode 0600, encrypted at rest where that matters).
	Variables(deployment string) ([]byte, error)
	PutVariables(deployment string, content []byte) error

	Close() error
}

// Deployment is a deployment as the director records it.
type Deployment struct {
	Name string `json:"name"`
	// Manifest is the manifest last deployed, as given.
	Manifest []byte `json:"manifest"`
	// Configs are the ids of the versions of the cloud and runtime
	// configs it was last deployed with.
	Configs []int64 `json:"configs,omitempty"`
	// CloudConfig and RuntimeConfig are what a director before config
	// versions recorded instead of Configs: the content deployed with.
	CloudConfig   []byte    `json:"cloud_config,omitempty"`
	RuntimeConfig []byte    `json:"runtime_config,omitempty"`
	Updated       time.Time `json:"updated"`
}

// The config types.
const (
	ConfigCloud   = "cloud"
	ConfigRuntime = "runtime"
)

// DefaultConfig is the name of the config UpdateCloudConfig and
// UpdateRuntimeConfig set.
const DefaultConfig = "default"

// ConfigRecord is one version of a config.
type ConfigRecord struct {
	ID      int64     `json:"id"`
	Type    string    `json:"type"`
	Name    string    `json:"name"`
	Content []byte    `json:"content,omitempty"` // empty for a deletion
	Created time.Time `json:"created"`
	// Deleted marks the version that ended the config (DeleteConfig).
	Deleted bool `json:"deleted,omitempty"`
}

// InstanceRecord is an instance as the director records it: who it is,
// where, and the VM and disk that are it.
type InstanceRecord struct {
	Deployment string   `json:"deployment"`
	Group      string   `json:"group"`
	Index      int      `json:"index"`
	ID         string   `json:"id"`
	AZ         string   `json:"az,omitempty"`
	IPs        []string `json:"ips,omitempty"`
	Bootstrap  bool     `json:"bootstrap,omitempty"`
	// VMCID and AgentID are the instance's VM, once created.
	VMCID   string `json:"vm_cid,omitempty"`
	AgentID string `json:"agent_id,omitempty"`
	// NextVMCID and NextAgentID are the VM a create-swap-delete made for
	// the instance and has not swapped in yet, NextIPs its addresses:
	// each recorded as it is made (the agent id and addresses before the
	// bus knows the agent, the cid as soon as create_vm returns), so that
	// a director that stops mid-swap leaves no VM the store cannot name.
	// The next deploy deletes such a VM.
	NextVMCID   string   `json:"next_vm_cid,omitempty"`
	NextAgentID string   `json:"next_agent_id,omitempty"`
	NextIPs     []string `json:"next_ips,omitempty"`
	// OldVMCID and OldAgentID are the VM a swap took the instance off, its
	// jobs stopped and its disks detached, to be deleted; OldIPs are its
	// addresses, held until it is.
	OldVMCID   string   `json:"old_vm_cid,omitempty"`
	OldAgentID string   `json:"old_agent_id,omitempty"`
	OldIPs     []string `json:"old_ips,omitempty"`
	// DiskCID is its persistent disk, of DiskSize MB and DiskType (the
	// disk type in its canonical form, "" for a persistent_disk size).
	DiskCID  string `json:"disk_cid,omitempty"`
	DiskSize int    `json:"disk_size,omitempty"`
	DiskType string `json:"disk_type,omitempty"`
	// NewDiskCID is a disk of NewDiskSize and NewDiskType made to take
	// the data of DiskCID (its size or type changed) and not yet in its
	// place: a migration cut short, orphaned by the next deploy.
	NewDiskCID  string `json:"new_disk_cid,omitempty"`
	NewDiskSize int    `json:"new_disk_size,omitempty"`
	NewDiskType string `json:"new_disk_type,omitempty"`
	// OldDiskCID is a disk of OldDiskSize and OldDiskType whose data
	// moved to DiskCID, to be orphaned: a detach that failed is tried
	// again by the next deploy.
	OldDiskCID  string `json:"old_disk_cid,omitempty"`
	OldDiskSize int    `json:"old_disk_size,omitempty"`
	OldDiskType string `json:"old_disk_type,omitempty"`
	// TemplatesBlob is the blob of its rendered templates last applied.
	TemplatesBlob string `json:"templates_blob,omitempty"`
	// SpecHash is the hash of the spec last applied.
	SpecHash string `json:"spec_hash,omitempty"`
	// State is what the director asked of it: started, stopped, detached.
	State string `json:"state"`
	// Applied is what the last deploy gave it, for Plan to compare.
	Applied *Desired `json:"applied,omitempty"`
	// Dirty: a change of it began and did not finish (a failed canary, a
	// task cut short): what runs on it may be neither Applied nor what
	// was wanted, and the next deploy updates it whatever the manifest.
	Dirty bool `json:"dirty,omitempty"`
}

// OrphanedDisk is a persistent disk no instance has any more, kept, as
// BOSH keeps its orphan disks, until it is deleted (DeleteOrphanedDisk,
// CleanUpOrphanedDisks) or attached to an instance again (AttachDisk). It
// outlives its deployment.
type OrphanedDisk struct {
	CID string `json:"cid"`
	// Size is in MB; Type is the disk type in its canonical form, as
	// InstanceRecord.DiskType ("" for a persistent_disk size), and
	// CloudProperties are its cloud properties.
	Size            int            `json:"size"`
	Type            string         `json:"type,omitempty"`
	CloudProperties cpi.CloudProps `json:"cloud_properties,omitempty"`
	// Deployment, Group, InstanceID, Index and AZ are the instance it
	// belonged to.
	Deployment string    `json:"deployment"`
	Group      string    `json:"group"`
	InstanceID string    `json:"instance_id"`
	Index      int       `json:"index"`
	AZ         string    `json:"az,omitempty"`
	OrphanedAt time.Time `json:"orphaned_at"`
}

// DiskChange is what Store.ChangeDisks records at once.
type DiskChange struct {
	// Instance is the instance as it is to be recorded: without the
	// disks it lets go, naming those it adopts.
	Instance InstanceRecord
	// Orphan are the disks it lets go. One recorded orphaned already
	// keeps its record, and the time it was orphaned.
	Orphan []OrphanedDisk
	// Adopt are the orphaned disks it takes.
	Adopt []string
}

// ReleaseRecord is an uploaded release: its jobs, for rendering, and its
// compiled packages, in the blobstore.
type ReleaseRecord struct {
	Name     string           `json:"name"`
	Version  string           `json:"version"`
	Jobs     []ReleaseJob     `json:"jobs"`
	Packages []ReleasePackage `json:"packages"`
}

// ReleaseJob is a job of an uploaded release.
type ReleaseJob struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	// Spec is its job.MF; Templates its templates by their keys there.
	Spec      []byte            `json:"spec"`
	Templates map[string][]byte `json:"templates"`
}

// ReleasePackage is a compiled package of an uploaded release, stored in
// the blobstore.
type ReleasePackage struct {
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	Stemcell     string   `json:"stemcell"` // os/version it was compiled on
	Dependencies []string `json:"dependencies,omitempty"`
	BlobID       string   `json:"blob_id"`
	Digest       string   `json:"digest"`
}

// StemcellRecord is an uploaded stemcell and its cid on the cloud.
type StemcellRecord struct {
	Name    string `json:"name"`
	OS      string `json:"os"`
	Version string `json:"version"`
	CID     string `json:"cid"`
	// Digest is the image's; a second upload of the same name and
	// version with another image is refused.
	Digest string `json:"digest,omitempty"`
}

// Task states, as BOSH names them.
const (
	TaskQueued     = "queued"
	TaskProcessing = "processing"
	TaskDone       = "done"
	TaskError      = "error"
	TaskCancelling = "cancelling"
	TaskCancelled  = "cancelled"
)

// Task is a director task.
type Task struct {
	ID          int64     `json:"id"`
	Kind        string    `json:"kind"` // deploy, delete_deployment, ...
	Deployment  string    `json:"deployment,omitempty"`
	Description string    `json:"description"`
	State       string    `json:"state"`
	Result      string    `json:"result,omitempty"`
	Started     time.Time `json:"started"`
	Ended       time.Time `json:"ended,omitzero"`
}

// LockedError is a deployment another task holds; Deployment is
// "orphaned-disks" for the lock of the orphaned disks.
type LockedError struct {
	Deployment string
	Task       int64
}

func (e *LockedError) Error() string {
	if e.Deployment == orphanedDisksLock {
		return fmt.Sprintf("the orphaned disks are locked by task %d", e.Task)
	}
	return fmt.Sprintf("deployment %s is locked by task %d", e.Deployment, e.Task)
}

// Unwrap makes a LockedError a kubefoundry.ErrConflict.
func (e *LockedError) Unwrap() error { return kubefoundry.ErrConflict }

var (
	bDeployments = []byte("deployments")
	bInstances   = []byte("instances") // deployment -> sub-bucket of id -> record
	bTasks       = []byte("tasks")
	bEvents      = []byte("events") // task id -> sub-bucket of seq -> event
	bLocks       = []byte("locks")
	bReleases    = []byte("releases")        // name/version -> record
	bStemcells   = []byte("stemcells")       // name/version -> record
	bConfigs     = []byte("configs")         // type/name -> id of the current version
	bConfigVers  = []byte("config_versions") // id -> ConfigRecord
	bVariables   = []byte("variables")       // deployment -> variables store
	bOrphans     = []byte("orphaned_disks")  // disk cid -> record
)

// boltStore is a Store in one bbolt file.
type boltStore struct {
	db *bolt.DB
}

// OpenStore opens (or creates) the director's state in the bbolt file at
// path. Only one process may have it open: another waits up to 10s and
// fails.
func OpenStore(path string) (Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("director: open state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bDeployments, bInstances, bTasks, bEvents, bLocks, bReleases, bStemcells, bConfigs, bConfigVers, bVariables, bOrphans} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return migrateConfigs(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("director: open state %s: %w", path, err)
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) Close() error { return s.db.Close() }

func notFound(what, name string) error {
	return fmt.Errorf("director: %s %s: %w", what, name, kubefoundry.ErrNotFound)
}

func put(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func (s *boltStore) PutDeployment(d Deployment) error {
	if d.Name == "" {
		return &kubefoundry.FieldError{Field: "name", Reason: "required"}
	}
	return s.db.Update(func(tx *bolt.Tx) error { return put(tx.Bucket(bDeployments), []byte(d.Name), d) })
}

func (s *boltStore) Deployment(name string) (Deployment, error) {
	var d Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bDeployments).Get([]byte(name))
		if raw == nil {
			return notFound("deployment", name)
		}
		return json.Unmarshal(raw, &d)
	})
	return d, err
}

func (s *boltStore) Deployments() ([]Deployment, error) {
	var out []Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bDeployments).ForEach(func(_, v []byte) error {
			var d Deployment
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

func (s *boltStore) DeleteDeployment(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bDeployments).Delete([]byte(name)); err != nil {
			return err
		}
		if tx.Bucket(bInstances).Bucket([]byte(name)) != nil {
			return tx.Bucket(bInstances).DeleteBucket([]byte(name))
		}
		return nil
	})
}

func (s *boltStore) PutInstance(i InstanceRecord) error {
	if err := validInstance(i); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return putInstance(tx, i) })
}

func validInstance(i InstanceRecord) error {
	var ve kubefoundry.ValidationError
	if i.Deployment == "" {
		ve.Add("deployment", "", "required")
	}
	if i.ID == "" {
		ve.Add("id", "", "required")
	}
	if err := ve.Err(); err != nil {
		ve.Object = "instance"
		return err
	}
	return nil
}

func putInstance(tx *bolt.Tx, i InstanceRecord) error {
	if tx.Bucket(bDeployments).Get([]byte(i.Deployment)) == nil {
		return notFound("deployment", i.Deployment)
	}
	b, err := tx.Bucket(bInstances).CreateBucketIfNotExists([]byte(i.Deployment))
	if err != nil {
		return err
	}
	return put(b, []byte(i.ID), i)
}

func (s *boltStore) Instances(deployment string) ([]InstanceRecord, error) {
	var out []InstanceRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bInstances).Bucket([]byte(deployment))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var i InstanceRecord
			if err := json.Unmarshal(v, &i); err != nil {
				return err
			}
			out = append(out, i)
			return nil
		})
	})
	sort.Slice(out, func(a, b int) bool {
		if out[a].Group != out[b].Group {
			return out[a].Group < out[b].Group
		}
		return out[a].Index < out[b].Index
	})
	return out, err
}

func (s *boltStore) DeleteInstance(deployment, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bInstances).Bucket([]byte(deployment))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(id))
	})
}

func (s *boltStore) ChangeDisks(c DiskChange) error {
	if err := validInstance(c.Instance); err != nil {
		return err
	}
	ve := kubefoundry.ValidationError{Object: "disk change"}
	named := func(cid string) bool {
		i := c.Instance
		return cid == i.DiskCID || cid == i.NewDiskCID || cid == i.OldDiskCID
	}
	for k, o := range c.Orphan {
		switch {
		case o.CID == "":
			ve.Add(fmt.Sprintf("orphan/%d/cid", k), "", "required")
		case named(o.CID):
			ve.Add(fmt.Sprintf("orphan/%d/cid", k), o.CID, "the instance still names it")
		}
	}
	for k, cid := range c.Adopt {
		if !named(cid) {
			ve.Add(fmt.Sprintf("adopt/%d", k), cid, "the instance does not name it")
		}
	}
	if err := ve.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bOrphans)
		for _, cid := range c.Adopt {
			if b.Get([]byte(cid)) == nil {
				return notFound("orphaned disk", cid)
			}
			if err := b.Delete([]byte(cid)); err != nil {
				return err
			}
		}
		for _, o := range c.Orphan {
			if b.Get([]byte(o.CID)) != nil {
				continue
			}
			if err := put(b, []byte(o.CID), o); err != nil {
				return err
			}
		}
		return putInstance(tx, c.Instance)
	})
}

func (s *boltStore) OrphanedDisks() ([]OrphanedDisk, error) {
	out, err := list[OrphanedDisk](s, bOrphans)
	sort.SliceStable(out, func(a, b int) bool { return out[a].OrphanedAt.Before(out[b].OrphanedAt) })
	return out, err
}

func (s *boltStore) OrphanedDisk(cid string) (OrphanedDisk, error) {
	var o OrphanedDisk
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bOrphans).Get([]byte(cid))
		if raw == nil {
			return notFound("orphaned disk", cid)
		}
		return json.Unmarshal(raw, &o)
	})
	return o, err
}

func (s *boltStore) DeleteOrphanedDisk(cid string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bOrphans).Delete([]byte(cid)) })
}

func taskKey(id int64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(id))
	return k
}

func (s *boltStore) NewTask(kind, deployment, description string) (Task, error) {
	var t Task
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bTasks)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		t = Task{ID: int64(seq), Kind: kind, Deployment: deployment, Description: description, State: TaskQueued, Started: time.Now().UTC()}
		return put(b, taskKey(t.ID), t)
	})
	return t, err
}

func (s *boltStore) PutTask(t Task) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bTasks)
		if b.Get(taskKey(t.ID)) == nil {
			return notFound("task", strconv.FormatInt(t.ID, 10))
		}
		return put(b, taskKey(t.ID), t)
	})
}

func (s *boltStore) Task(id int64) (Task, error) {
	var t Task
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bTasks).Get(taskKey(id))
		if raw == nil {
			return notFound("task", strconv.FormatInt(id, 10))
		}
		return json.Unmarshal(raw, &t)
	})
	return t, err
}

func (s *boltStore) Tasks(limit int) ([]Task, error) {
	var out []Task
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bTasks).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var t Task
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

func (s *boltStore) AddEvent(id int64, e Event) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bTasks).Get(taskKey(id)) == nil {
			return notFound("task", strconv.FormatInt(id, 10))
		}
		b, err := tx.Bucket(bEvents).CreateBucketIfNotExists(taskKey(id))
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return put(b, taskKey(int64(seq)), e)
	})
}

func (s *boltStore) Events(id int64, from int) ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEvents).Bucket(taskKey(id))
		if b == nil {
			if tx.Bucket(bTasks).Get(taskKey(id)) == nil {
				return notFound("task", strconv.FormatInt(id, 10))
			}
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(taskKey(int64(from) + 1)); k != nil; k, v = c.Next() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

func (s *boltStore) Lock(deployment string, task int64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bLocks)
		if raw := b.Get([]byte(deployment)); raw != nil {
			holder := int64(binary.BigEndian.Uint64(raw))
			if holder == task {
				return nil
			}
			return &LockedError{Deployment: deployment, Task: holder}
		}
		return b.Put([]byte(deployment), taskKey(task))
	})
}

func (s *boltStore) Unlock(deployment string, task int64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bLocks)
		raw := b.Get([]byte(deployment))
		if raw == nil || int64(binary.BigEndian.Uint64(raw)) != task {
			return nil
		}
		return b.Delete([]byte(deployment))
	})
}

func (s *boltStore) Locks() (map[string]int64, error) {
	out := map[string]int64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bLocks).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return errors.New("director: a lock's task id is not 8 bytes")
			}
			out[string(k)] = int64(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	return out, err
}

func (s *boltStore) PutRelease(r ReleaseRecord) error {
	var ve kubefoundry.ValidationError
	if r.Name == "" {
		ve.Add("name", "", "required")
	}
	if r.Version == "" {
		ve.Add("version", "", "required")
	}
	if err := ve.Err(); err != nil {
		ve.Object = "release"
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return put(tx.Bucket(bReleases), []byte(r.Name+"/"+r.Version), r) })
}

func (s *boltStore) Release(name, version string) (ReleaseRecord, error) {
	var r ReleaseRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bReleases).Get([]byte(name + "/" + version))
		if raw == nil {
			return notFound("release", name+"/"+version)
		}
		return json.Unmarshal(raw, &r)
	})
	return r, err
}

func (s *boltStore) Releases() ([]ReleaseRecord, error) { return list[ReleaseRecord](s, bReleases) }

func (s *boltStore) PutStemcell(sc StemcellRecord) error {
	var ve kubefoundry.ValidationError
	if sc.Name == "" {
		ve.Add("name", "", "required")
	}
	if sc.Version == "" {
		ve.Add("version", "", "required")
	}
	if err := ve.Err(); err != nil {
		ve.Object = "stemcell"
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return put(tx.Bucket(bStemcells), []byte(sc.Name+"/"+sc.Version), sc) })
}

func (s *boltStore) Stemcells() ([]StemcellRecord, error) { return list[StemcellRecord](s, bStemcells) }

// migrateConfigs turns the one cloud and one runtime config a store made
// before config versions kept ("cloud", "runtime" -> content) into the
// first version of each default config.
func migrateConfigs(tx *bolt.Tx) error {
	for _, typ := range []string{ConfigCloud, ConfigRuntime} {
		raw := tx.Bucket(bConfigs).Get([]byte(typ))
		if raw == nil {
			continue
		}
		content := append([]byte(nil), raw...)
		if err := tx.Bucket(bConfigs).Delete([]byte(typ)); err != nil {
			return err
		}
		if _, _, err := putConfig(tx, typ, DefaultConfig, content, false); err != nil {
			return err
		}
	}
	return nil
}

func configKey(typ, name string) []byte { return []byte(typ + "/" + name) }

func (s *boltStore) PutConfig(typ, name string, content []byte) (rec ConfigRecord, created bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		rec, created, err = putConfig(tx, typ, name, content, false)
		return err
	})
	return rec, created, err
}

// putConfig records a version of a config (a deletion when deleted) and
// makes it current, unless the current one has the same content.
func putConfig(tx *bolt.Tx, typ, name string, content []byte, deleted bool) (ConfigRecord, bool, error) {
	cur, err := currentConfig(tx, typ, name)
	switch {
	case err == nil && !deleted && bytes.Equal(cur.Content, content):
		return cur, false, nil
	case err != nil && !errors.Is(err, kubefoundry.ErrNotFound):
		return ConfigRecord{}, false, err
	case err != nil && deleted:
		return ConfigRecord{}, false, nil // nothing to end
	}
	vers := tx.Bucket(bConfigVers)
	id, err := vers.NextSequence()
	if err != nil {
		return ConfigRecord{}, false, err
	}
	rec := ConfigRecord{ID: int64(id), Type: typ, Name: name, Content: content, Created: time.Now().UTC(), Deleted: deleted}
	if err := put(vers, taskKey(rec.ID), rec); err != nil {
		return ConfigRecord{}, false, err
	}
	if deleted {
		return rec, true, tx.Bucket(bConfigs).Delete(configKey(typ, name))
	}
	return rec, true, tx.Bucket(bConfigs).Put(configKey(typ, name), taskKey(rec.ID))
}

func currentConfig(tx *bolt.Tx, typ, name string) (ConfigRecord, error) {
	id := tx.Bucket(bConfigs).Get(configKey(typ, name))
	if id == nil {
		return ConfigRecord{}, notFound(typ+" config", name)
	}
	return configVersion(tx, int64(binary.BigEndian.Uint64(id)))
}

func configVersion(tx *bolt.Tx, id int64) (ConfigRecord, error) {
	raw := tx.Bucket(bConfigVers).Get(taskKey(id))
	if raw == nil {
		return ConfigRecord{}, notFound("config version", strconv.FormatInt(id, 10))
	}
	var rec ConfigRecord
	return rec, json.Unmarshal(raw, &rec)
}

func (s *boltStore) DeleteConfig(typ, name string) (bool, error) {
	var ended bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		_, created, err := putConfig(tx, typ, name, nil, true)
		ended = created
		return err
	})
	return ended, err
}

func (s *boltStore) Config(id int64) (ConfigRecord, error) {
	var rec ConfigRecord
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		rec, err = configVersion(tx, id)
		return err
	})
	return rec, err
}

func (s *boltStore) Configs(typ string) ([]ConfigRecord, error) {
	var out []ConfigRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := []byte(typ)
		if typ != "" {
			prefix = configKey(typ, "")
		}
		c := tx.Bucket(bConfigs).Cursor()
		for k, id := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, id = c.Next() {
			rec, err := configVersion(tx, int64(binary.BigEndian.Uint64(id)))
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

func (s *boltStore) ConfigVersions(typ, name string) ([]ConfigRecord, error) {
	var out []ConfigRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bConfigVers).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var rec ConfigRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			if rec.Type == typ && rec.Name == name {
				out = append(out, rec)
			}
		}
		return nil
	})
	return out, err
}

func (s *boltStore) Variables(deployment string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bVariables).Get([]byte(deployment)); raw != nil {
			out = append([]byte(nil), raw...)
		}
		return nil
	})
	return out, err
}

func (s *boltStore) PutVariables(deployment string, content []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bVariables).Put([]byte(deployment), content) })
}

// list reads every record of a bucket, in key order.
func list[T any](s *boltStore, bucket []byte) ([]T, error) {
	var out []T
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, v []byte) error {
			var r T
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}
