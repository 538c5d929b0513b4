package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agenttest"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
)

// diskAgent starts an agent whose settings the test changes (as a CPI
// attaching a disk does) and whose disks are directories under disks.
func (w *world) diskAgent(t *testing.T, id, root, disks string, mu *sync.Mutex, s *cpi.AgentSettings) *agent.Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	a, err := agent.Start(ctx, agent.Config{Settings: *s, Root: root, HeartbeatInterval: 100 * time.Millisecond,
		Supervisor: agenttest.FastSupervisor, Mounter: agent.DirMounter{Dir: disks},
		ReloadSettings: func(context.Context) (cpi.AgentSettings, error) {
			mu.Lock()
			defer mu.Unlock()
			return *s, nil
		}}, agent.WithLogger(zaptest.NewLogger(t)))
	require.NoError(t, err)
	t.Cleanup(a.Close)
	return a
}

// TestPersistentDisks: a disk attached after the agent started is found
// in its settings read again and mounted at store; a second one at the
// migration target, and migrate_disk moves the data to it (modes and links
// kept) and mounts it at store, leaving the old one as it was; unmount and
// list say what is mounted, which survives a restart of the agent.
func TestPersistentDisks(t *testing.T) {
	w := newWorld(t)
	root, disks := t.TempDir(), t.TempDir()
	t.Cleanup(func() {
		// A read-only directory is left on the disks: writable again, so
		// that the temporary directory can go when not root.
		_ = filepath.WalkDir(disks, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	var mu sync.Mutex
	s := w.settings(t, "agent-disks")
	a := w.diskAgent(t, "agent-disks", root, disks, &mu, &s)
	attach := func(cid string) {
		mu.Lock()
		defer mu.Unlock()
		if s.Disks.Persistent == nil {
			s.Disks.Persistent = map[string]cpi.DiskHint{}
		}
		s.Disks.Persistent[cid] = json.RawMessage(`{"id":"` + cid + `"}`)
	}
	list := func() []string {
		t.Helper()
		v, err := w.call(t, "agent-disks", "list_disk")
		require.NoError(t, err)
		return decode[[]string](t, v)
	}
	store := a.Layout().StoreDir()

	_, err := w.call(t, "agent-disks", "mount_disk", "disk-1")
	require.ErrorContains(t, err, "persistent disk disk-1 is not in the agent's settings")
	attach("disk-1")
	for range 2 {
		_, err = w.call(t, "agent-disks", "mount_disk", "disk-1")
		require.NoError(t, err, "mounting, and mounting again")
	}
	assert.Equal(t, []string{"disk-1"}, list())
	require.NoError(t, os.MkdirAll(filepath.Join(store, "db"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(store, "db", "data"), []byte("rows"), 0o640))
	require.NoError(t, os.Symlink("data", filepath.Join(store, "db", "current")))
	require.NoError(t, os.Mkdir(filepath.Join(store, "ro"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(store, "ro", "kept"), []byte("k"), 0o444))
	require.NoError(t, os.Chmod(filepath.Join(store, "ro"), 0o555))
	root0 := os.Geteuid() == 0
	if root0 {
		require.NoError(t, os.Lchown(filepath.Join(store, "db", "data"), 1000, 1001), "jobs' data belongs to vcap, not root")
	}
	b, err := os.ReadFile(filepath.Join(disks, "disk-1", "db", "data"))
	require.NoError(t, err)
	assert.Equal(t, "rows", string(b), "what is written to store is on the disk")

	attach("disk-2")
	_, err = w.call(t, "agent-disks", "mount_disk", "disk-2")
	require.NoError(t, err)
	assert.Equal(t, []string{"disk-1", "disk-2"}, list())
	_, err = w.call(t, "agent-disks", "migrate_disk", "disk-2", "disk-1")
	require.ErrorContains(t, err, "mounted are", "the disks the wrong way round")
	_, err = w.call(t, "agent-disks", "migrate_disk", "disk-1", "disk-2")
	require.NoError(t, err)
	assert.Equal(t, []string{"disk-2"}, list())
	b, err = os.ReadFile(filepath.Join(disks, "disk-2", "db", "data"))
	require.NoError(t, err)
	assert.Equal(t, "rows", string(b), "the data moved to the new disk")
	st, err := os.Stat(filepath.Join(store, "db", "data"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), st.Mode().Perm())
	link, err := os.Readlink(filepath.Join(store, "db", "current"))
	require.NoError(t, err)
	assert.Equal(t, "data", link)
	ro, err := os.Stat(filepath.Join(store, "ro"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o555), ro.Mode().Perm(), "a read-only directory is copied whole, and keeps its mode")
	_, err = os.Stat(filepath.Join(store, "ro", "kept"))
	require.NoError(t, err)
	if root0 {
		fi, err := os.Stat(filepath.Join(store, "db", "data"))
		require.NoError(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		assert.Equal(t, []uint32{1000, 1001}, []uint32{st.Uid, st.Gid}, "the owner is kept")
	}
	_, err = os.Stat(filepath.Join(disks, "disk-1", "db", "data"))
	require.NoError(t, err, "the old disk keeps its data")

	// The agent restarts: what is mounted is remembered.
	a.Close()
	w.diskAgent(t, "agent-disks", root, disks, &mu, &s)
	assert.Equal(t, []string{"disk-2"}, list())

	v, err := w.call(t, "agent-disks", "unmount_disk", "disk-2")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"message": "Unmounted partition of disk-2"}, decode[map[string]string](t, v))
	v, err = w.call(t, "agent-disks", "unmount_disk", "disk-2")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"message": "Partition of disk-2 is not mounted"}, decode[map[string]string](t, v))
	assert.Empty(t, list())
	_, err = os.Lstat(store)
	require.ErrorIs(t, err, os.ErrNotExist, "store is no longer the disk")

	// A store with data of its own is not mounted over.
	require.NoError(t, os.MkdirAll(store, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(store, "stray"), nil, 0o644))
	_, err = w.call(t, "agent-disks", "mount_disk", "disk-1")
	require.ErrorContains(t, err, "holds data that is not on a disk")
	assert.Empty(t, list())

	v, err = w.call(t, "agent-disks", "update_settings", map[string]any{"trusted_certs": "CERT"})
	require.NoError(t, err)
	assert.Equal(t, `"updated"`, string(v))
	b, err = os.ReadFile(filepath.Join(root, "bosh", "update_settings.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"trusted_certs":"CERT"}`, string(b))
}

// TestDisksNeedAMounter: an agent without a Mounter says so.
func TestDisksNeedAMounter(t *testing.T) {
	w := newWorld(t)
	s := w.settings(t, "agent-nomount")
	s.Disks.Persistent = map[string]cpi.DiskHint{"disk-1": json.RawMessage(`"/dev/sdc"`)}
	w.startAgent(t, s, t.TempDir())
	_, err := w.call(t, "agent-nomount", "mount_disk", "disk-1")
	require.ErrorContains(t, err, "no Mounter")
	_, err = w.call(t, "agent-nomount", "mount_disk", "../x")
	require.ErrorContains(t, err, "must be a non-empty name")
}
