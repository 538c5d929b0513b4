package stemcell_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/stemcell"
)

const realMF = `---
name: bosh-vsphere-esxi-ubuntu-jammy-go_agent
version: '1.108'
bosh_protocol: 1
api_version: 3
sha1: 2a1d4be3f9e4a0b3e0a2e6b1d0c0f3a9e1b2c3d4
operating_system: ubuntu-jammy
stemcell_formats:
- vsphere-ovf
- vsphere-ova
cloud_properties:
  name: bosh-vsphere-esxi-ubuntu-jammy-go_agent
  version: '1.108'
  infrastructure: vsphere
  hypervisor: esxi
  disk: 5120
  disk_format: ovf
  container_format: bare
  os_type: linux
  os_distro: ubuntu
  architecture: x86_64
  root_device_name: "/dev/sda1"
`

func TestParseManifest(t *testing.T) {
	m, err := stemcell.ParseManifest([]byte(realMF))
	require.NoError(t, err)
	assert.Equal(t, "1.108", m.Version)
	assert.Equal(t, "1", m.BoshProtocol)
	assert.Equal(t, 3, m.APIVersion)
	assert.Equal(t, []string{"vsphere-ovf", "vsphere-ova"}, m.StemcellFormats)
	assert.Equal(t, "vsphere", m.CloudProperties["infrastructure"])

	m, err = stemcell.ParseManifest([]byte("name: s\nversion: 1.10\noperating_system: ubuntu-jammy\nsha1: sha256:" + string(bytes.Repeat([]byte("a"), 64)) + "\n"))
	require.NoError(t, err)
	assert.Equal(t, "1.10", m.Version, "an unquoted version keeps its digits")

	_, err = stemcell.ParseManifest([]byte("name: 'bad name'\nsha1: xyz\napi_version: -1\n"))
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"/name", "/version", "/operating_system", "/sha1", "/api_version"}, fields, "every problem at once")

	_, err = stemcell.ParseManifest([]byte(realMF + "surprise: 1\n"))
	require.ErrorContains(t, err, "surprise", "an unknown key is refused by name")
}

func writeOVF(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"stemcell.ovf", "stemcell-disk1.vmdk"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "vsphere", "testdata", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	return filepath.Join(dir, "stemcell.ovf")
}

// TestCreateLightAndRead: a light stemcell made from an OVF reads back with
// its manifest and an image whose digest matches; the image unpacks to the
// OVF and its disk.
func TestCreateLightAndRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "light.tgz")
	f, err := os.Create(p)
	require.NoError(t, err)
	require.NoError(t, stemcell.CreateLight(f, writeOVF(t), stemcell.Manifest{Name: "kf-light-ubuntu-jammy", Version: "0.1", OperatingSystem: "ubuntu-jammy", APIVersion: 3}))
	require.NoError(t, f.Close())

	sc, err := stemcell.Read(p, t.TempDir())
	require.NoError(t, err)
	assert.Equal(t, "kf-light-ubuntu-jammy", sc.Manifest.Name)
	assert.Equal(t, []string{"vsphere-ovf"}, sc.Manifest.StemcellFormats)
	assert.Len(t, sc.Manifest.SHA1, 40)
	names := tarNames(t, sc.ImagePath)
	assert.ElementsMatch(t, []string{"stemcell.ovf", "stemcell-disk1.vmdk"}, names)
}

func tarNames(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var out []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		out = append(out, h.Name)
	}
	return out
}

type entry struct {
	hdr  tar.Header
	body []byte
}

func tarball(t *testing.T, entries ...entry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.tgz")
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		h.Mode = 0o644
		require.NoError(t, tw.WriteHeader(&h))
		_, err := tw.Write(e.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return p
}

// TestReadRefuses: a tampered image, traversal, links, a missing manifest.
func TestReadRefuses(t *testing.T) {
	mf := []byte("name: s\nversion: '1'\noperating_system: ubuntu-jammy\nsha1: 0000000000000000000000000000000000000000\n")
	for _, tc := range []struct {
		name    string
		entries []entry
		want    string
	}{
		{"tampered image", []entry{{tar.Header{Name: "stemcell.MF"}, mf}, {tar.Header{Name: "image"}, []byte("not the image")}}, "digest"},
		{"traversal", []entry{{tar.Header{Name: "../stemcell.MF"}, mf}}, "only plain files"},
		{"link", []entry{{tar.Header{Name: "image", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}, nil}}, "only plain files"},
		{"no manifest", []entry{{tar.Header{Name: "image"}, []byte("x")}}, "no stemcell.MF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stemcell.Read(tarball(t, tc.entries...), t.TempDir())
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// FuzzParseManifest: no input panics the manifest reader.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(realMF))
	f.Add([]byte("name: [\nversion: {"))
	f.Add([]byte("version: 1.10\nbosh_protocol: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := stemcell.ParseManifest(data)
		if err == nil && m.Validate() != nil {
			t.Fatal("a manifest that parsed must be valid")
		}
	})
}
