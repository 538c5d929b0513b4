package vspheretest

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// StemcellImage packs package vsphere's test OVF and disk as a vSphere
// stemcell's image file (a gzipped tar) in a temporary directory of tb,
// and returns its path: what a CPI's create_stemcell takes.
func StemcellImage(tb testing.TB) string {
	tb.Helper()
	_, self, _, ok := runtime.Caller(0)
	require.True(tb, ok, "where vspheretest is")
	testdata := filepath.Join(filepath.Dir(self), "..", "testdata")
	p := filepath.Join(tb.TempDir(), "image")
	f, err := os.Create(p)
	require.NoError(tb, err)
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, name := range []string{"stemcell.ovf", "stemcell-disk1.vmdk"} {
		b, err := os.ReadFile(filepath.Join(testdata, name))
		require.NoError(tb, err)
		require.NoError(tb, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}))
		_, err = tw.Write(b)
		require.NoError(tb, err)
	}
	require.NoError(tb, tw.Close())
	require.NoError(tb, gz.Close())
	return p
}
