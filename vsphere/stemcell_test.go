package vsphere_test

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/vsphere"
)

// writeOVA packs testdata's OVF and disk into an OVA (a tar, OVF first).
func writeOVA(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stemcell.ova")
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, name := range []string{"stemcell.ovf", "stemcell-disk1.vmdk"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b))}))
		_, err = tw.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return p
}

func TestImportStemcell(t *testing.T) {
	s := newSim(t)
	c := s.client(t)
	ctx := context.Background()
	spec := vsphere.StemcellSpec{
		Path: writeOVA(t), Name: "stemcell-test-1", Folder: "kubefoundry/stemcells",
		Cluster: simCluster, Datastore: simDatastore, Network: simNetwork,
	}
	var phases []string
	sink := kubefoundry.SinkFunc(func(e kubefoundry.Event) {
		assert.Equal(t, "import stemcell", e.Op)
		assert.Equal(t, spec.Name, e.Object)
		if len(phases) == 0 || phases[len(phases)-1] != e.Phase {
			phases = append(phases, e.Phase)
		}
	})
	sc, err := c.ImportStemcell(ctx, spec, vsphere.WithSink(sink))
	require.NoError(t, err)
	assert.True(t, sc.Imported)
	assert.Len(t, sc.SHA256, 64)
	assert.Equal(t, []string{"started", "uploading", "imported"}, phases, "the long upload is reported as it goes")

	phases = nil
	again, err := c.ImportStemcell(ctx, spec, vsphere.WithSink(sink))
	require.NoError(t, err)
	assert.Equal(t, []string{"existing"}, phases)
	assert.False(t, again.Imported, "same name and checksum: nothing is uploaded")
	assert.Equal(t, sc.Ref, again.Ref)

	t.Run("linked clones from the imported stemcell", func(t *testing.T) {
		in := specs("lambda", 2)
		for i := range in {
			in[i].Template = "kubefoundry/stemcells/" + spec.Name
			in[i].LinkedClone = true
		}
		res, err := c.ProvisionVMs(ctx, in)
		require.NoError(t, err)
		assert.Len(t, res, 2)
		assert.Zero(t, c.Stats().ByMethod["CreateSnapshot_Task"]-1, "the snapshot of the import is used")
	})

	t.Run("another image under the same name is refused", func(t *testing.T) {
		other := spec
		other.Path = filepath.Join("testdata", "stemcell.ovf")
		_, err := c.ImportStemcell(ctx, other)
		assert.ErrorIs(t, err, vsphere.ErrAlreadyExists)
	})

	t.Run("an import that died half-way is done again", func(t *testing.T) {
		half := spec
		half.Name = "stemcell-test-3"
		sc, err := c.ImportStemcell(ctx, half)
		require.NoError(t, err)
		assert.Equal(t, "kubefoundry stemcell sha256:"+sc.SHA256, vmProps(t, c, sc.Ref).Config.Annotation, "marked a stemcell once done")
		// What an import whose process died during the upload leaves: the
		// VM, still marked as being imported.
		task, err := object.NewVirtualMachine(c.Vim25(), sc.Ref).Reconfigure(ctx,
			types.VirtualMachineConfigSpec{Annotation: "kubefoundry stemcell (importing) sha256:" + sc.SHA256})
		require.NoError(t, err)
		require.NoError(t, task.Wait(ctx))

		again, err := c.ImportStemcell(ctx, half)
		require.NoError(t, err)
		assert.True(t, again.Imported, "not taken for a stemcell: imported again")
		assert.NotEqual(t, sc.Ref, again.Ref)
		assert.Equal(t, "kubefoundry stemcell sha256:"+sc.SHA256, vmProps(t, c, again.Ref).Config.Annotation)
		_, err = c.FindVM(ctx, "kubefoundry/stemcells/"+half.Name)
		require.NoError(t, err, "one VM of that name: the unfinished one is gone")
	})

	t.Run("an OVF as a template", func(t *testing.T) {
		tpl := spec
		tpl.Path, tpl.Name, tpl.AsTemplate = filepath.Join("testdata", "stemcell.ovf"), "stemcell-test-2", true
		sc, err := c.ImportStemcell(ctx, tpl)
		require.NoError(t, err)
		assert.True(t, vmProps(t, c, sc.Ref).Config.Template)
	})

	t.Run("bad input", func(t *testing.T) {
		_, err := c.ImportStemcell(ctx, vsphere.StemcellSpec{Path: "x.iso"})
		var verr *vsphere.ValidationError
		require.ErrorAs(t, err, &verr)
		assert.Len(t, verr.Problems, 5)
	})
}
