package director_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/director"
)

func TestStoreConfigVersions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := director.OpenStore(path)
	require.NoError(t, err)

	v1, created, err := s.PutConfig(director.ConfigCloud, "default", []byte("one"))
	require.NoError(t, err)
	assert.True(t, created)
	same, created, err := s.PutConfig(director.ConfigCloud, "default", []byte("one"))
	require.NoError(t, err)
	assert.False(t, created, "the same content is no new version")
	assert.Equal(t, v1.ID, same.ID)
	v2, _, err := s.PutConfig(director.ConfigCloud, "default", []byte("two"))
	require.NoError(t, err)
	assert.Greater(t, v2.ID, v1.ID)
	_, _, err = s.PutConfig(director.ConfigCloud, "vsphere-2", []byte("other"))
	require.NoError(t, err)
	_, _, err = s.PutConfig(director.ConfigRuntime, "dns", []byte("dns"))
	require.NoError(t, err)

	cur, err := s.Configs(director.ConfigCloud)
	require.NoError(t, err)
	require.Len(t, cur, 2)
	assert.Equal(t, "default", cur[0].Name)
	assert.Equal(t, "two", string(cur[0].Content))
	assert.Equal(t, "vsphere-2", cur[1].Name)
	all, err := s.Configs("")
	require.NoError(t, err)
	assert.Len(t, all, 3)

	ended, err := s.DeleteConfig(director.ConfigCloud, "vsphere-2")
	require.NoError(t, err)
	assert.True(t, ended)
	ended, err = s.DeleteConfig(director.ConfigCloud, "vsphere-2")
	require.NoError(t, err)
	assert.False(t, ended, "nothing left to end")
	cur, err = s.Configs(director.ConfigCloud)
	require.NoError(t, err)
	assert.Len(t, cur, 1)

	require.NoError(t, s.Close())
	s, err = director.OpenStore(path)
	require.NoError(t, err)
	defer s.Close()
	old, err := s.Config(v1.ID)
	require.NoError(t, err, "an old version stays readable by id")
	assert.Equal(t, "one", string(old.Content))
	hist, err := s.ConfigVersions(director.ConfigCloud, "vsphere-2")
	require.NoError(t, err)
	require.Len(t, hist, 2)
	assert.True(t, hist[0].Deleted, "newest first: the deletion")
	_, err = s.Config(999)
	assert.True(t, kubefoundry.IsNotFound(err))
}

// A store written before config versions kept one cloud and one runtime
// config by type; opening it makes them the first versions of the
// default configs.
func TestStoreMigratesUnversionedConfigs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("configs"))
		if err != nil {
			return err
		}
		if err := b.Put([]byte("cloud"), []byte("azs: []")); err != nil {
			return err
		}
		return b.Put([]byte("runtime"), []byte("releases: []"))
	}))
	require.NoError(t, db.Close())

	s, err := director.OpenStore(path)
	require.NoError(t, err)
	defer s.Close()
	all, err := s.Configs("")
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, director.ConfigRecord{ID: all[0].ID, Type: "cloud", Name: "default", Content: []byte("azs: []"), Created: all[0].Created}, all[0])
	assert.Equal(t, "runtime", all[1].Type)
	assert.Equal(t, "releases: []", string(all[1].Content))
}

func TestStoreVariables(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	s, err := director.OpenStore(path)
	require.NoError(t, err)
	v, err := s.Variables("k8s")
	require.NoError(t, err)
	assert.Nil(t, v)
	require.NoError(t, s.PutVariables("k8s", []byte(`{"$format":2}`)))
	require.NoError(t, s.Close())
	s, err = director.OpenStore(path)
	require.NoError(t, err)
	defer s.Close()
	v, err = s.Variables("k8s")
	require.NoError(t, err)
	assert.Equal(t, `{"$format":2}`, string(v))
}
