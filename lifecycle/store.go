package lifecycle

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kubefoundry/kubefoundry"
)

// ClusterState is where a cluster stands.
type ClusterState string

// A cluster's states.
const (
	StateCreating ClusterState = "creating"
	// StateUpdating: a resize or an upgrade is changing it.
	StateUpdating ClusterState = "updating"
	StateRunning  ClusterState = "running"
	StateFailed   ClusterState = "failed"
	StateDeleting ClusterState = "deleting"
)

// ClusterRecord is what the Store keeps of a cluster: its spec, where it
// stands, and what was made for it that the foundation's systems do not
// say by themselves.
type ClusterRecord struct {
	Spec  ClusterSpec  `json:"spec"`
	State ClusterState `json:"state"`
	// Error is why the last operation failed (state failed).
	Error string `json:"error,omitempty"`
	// Deployment is the cluster's BOSH deployment.
	Deployment string `json:"deployment"`
	// APIAddress and APIPort are its load balancer's API virtual server;
	// NodeSubnet its node network; ControlPlaneIPs its control-plane
	// nodes' addresses. Each is recorded once NSX gave it.
	APIAddress      string       `json:"apiAddress,omitempty"`
	APIPort         int          `json:"apiPort,omitempty"`
	NodeSubnet      netip.Prefix `json:"nodeSubnet,omitzero"`
	ControlPlaneIPs []string     `json:"controlPlaneIPs,omitempty"`
	// Stemcell ("os/version") and Release (the Kubernetes release's
	// version) are what the cluster runs: set by its create, moved on by
	// Upgrade only, so that a resize changes nothing else.
	Stemcell string    `json:"stemcell,omitempty"`
	Release  string    `json:"release,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// Store keeps the clusters a Manager made. Its implementations are safe
// for concurrent use.
type Store interface {
	// PutCluster records a cluster, replacing what was recorded.
	PutCluster(ClusterRecord) error
	// Cluster is the record of the cluster of that name, or an error
	// wrapping kubefoundry.ErrNotFound.
	Cluster(name string) (ClusterRecord, error)
	// Clusters are every record, by name.
	Clusters() ([]ClusterRecord, error)
	// DeleteCluster forgets a cluster; forgetting one not recorded is no
	// error.
	DeleteCluster(name string) error
	// PutTask records a task, replacing what was recorded; a task of ID 0
	// is given the next ID first. It returns the task as recorded.
	PutTask(Task) (Task, error)
	// Task is the task of that ID, or an error wrapping
	// kubefoundry.ErrNotFound.
	Task(id int64) (Task, error)
	// Tasks are every task, oldest first.
	Tasks() ([]Task, error)
	// AddEvent appends an event to a task's journal.
	AddEvent(task int64, e kubefoundry.Event) error
	// Events are a task's journal from its index from on (0 for all).
	Events(task int64, from int) ([]kubefoundry.Event, error)
	Close() error
}

var (
	bClusters = []byte("clusters")
	bTasks    = []byte("tasks")
	bEvents   = []byte("events")
)

type boltStore struct{ db *bolt.DB }

// OpenStore opens (or creates) a Store in one bbolt file at path. Only
// one process may hold it: another waits up to 10 seconds, then fails.
func OpenStore(path string) (Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("lifecycle: open store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bClusters, bTasks, bEvents} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("lifecycle: open store %s: %w", path, err)
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) Close() error { return s.db.Close() }

func (s *boltStore) PutCluster(r ClusterRecord) error {
	if err := r.Spec.Name.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bClusters).Put([]byte(r.Spec.Name), raw) })
}

func (s *boltStore) Cluster(name string) (ClusterRecord, error) {
	var r ClusterRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bClusters).Get([]byte(name))
		if raw == nil {
			return fmt.Errorf("cluster %s: %w", name, kubefoundry.ErrNotFound)
		}
		return json.Unmarshal(raw, &r)
	})
	return r, err
}

func (s *boltStore) Clusters() ([]ClusterRecord, error) {
	var out []ClusterRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bClusters).ForEach(func(_, raw []byte) error {
			var r ClusterRecord
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

func (s *boltStore) DeleteCluster(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bClusters).Delete([]byte(name)) })
}

func taskKey(id int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

func (s *boltStore) PutTask(t Task) (Task, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bTasks)
		if t.ID == 0 {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			t.ID = int64(seq)
		}
		raw, err := json.Marshal(t)
		if err != nil {
			return err
		}
		return b.Put(taskKey(t.ID), raw)
	})
	return t, err
}

func (s *boltStore) Task(id int64) (Task, error) {
	var t Task
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bTasks).Get(taskKey(id))
		if raw == nil {
			return fmt.Errorf("task %d: %w", id, kubefoundry.ErrNotFound)
		}
		return json.Unmarshal(raw, &t)
	})
	return t, err
}

func (s *boltStore) Tasks() ([]Task, error) {
	var out []Task
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bTasks).ForEach(func(_, raw []byte) error {
			var t Task
			if err := json.Unmarshal(raw, &t); err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

func (s *boltStore) AddEvent(task int64, e kubefoundry.Event) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bEvents).CreateBucketIfNotExists(taskKey(task))
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return b.Put(taskKey(int64(seq)), raw)
	})
}

func (s *boltStore) Events(task int64, from int) ([]kubefoundry.Event, error) {
	if from < 0 {
		return nil, &kubefoundry.ValidationError{Object: fmt.Sprintf("events of task %d", task),
			Problems: []kubefoundry.FieldError{{Field: "from", Value: fmt.Sprint(from), Reason: "must not be negative"}}}
	}
	var out []kubefoundry.Event
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEvents).Bucket(taskKey(task))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, raw := c.Seek(taskKey(int64(from) + 1)); k != nil; k, raw = c.Next() {
			var e kubefoundry.Event
			if err := json.Unmarshal(raw, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
