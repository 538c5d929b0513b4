package release

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

// compileDir is a release whose package app needs its dependency lib at
// compile time, through BOSH_PACKAGES_DIR, as a compilation VM gives it.
func compileDir(t *testing.T, appPackaging string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config/final.yml"), "---\nfinal_name: kf-compile\n")
	writeFile(t, filepath.Join(dir, "src/lib/greeting"), "hello\n")
	writeFile(t, filepath.Join(dir, "packages/lib/spec"), "---\nname: lib\nfiles: [lib/greeting]\n")
	writeFile(t, filepath.Join(dir, "packages/lib/packaging"),
		"mkdir -p $BOSH_INSTALL_TARGET/share\ncp lib/greeting $BOSH_INSTALL_TARGET/share/\necho \"$BOSH_PACKAGE_NAME $BOSH_PACKAGE_VERSION\" > $BOSH_INSTALL_TARGET/share/who\n")
	writeFile(t, filepath.Join(dir, "src/app/run"), "#!/bin/sh\ncat /var/vcap/packages/lib/share/greeting\n")
	writeFile(t, filepath.Join(dir, "packages/app/spec"), "---\nname: app\ndependencies: [lib]\nfiles: [app/run]\n")
	writeFile(t, filepath.Join(dir, "packages/app/packaging"), appPackaging)
	writeFile(t, filepath.Join(dir, "jobs/web/spec"), "---\nname: web\ntemplates: {ctl.erb: bin/ctl}\npackages: [app]\nproperties: {}\n")
	writeFile(t, filepath.Join(dir, "jobs/web/monit"), "")
	writeFile(t, filepath.Join(dir, "jobs/web/templates/ctl.erb"), "#!/bin/sh\nexec /var/vcap/packages/app/bin/run\n")
	writeFile(t, filepath.Join(dir, "LICENSE"), "MIT\n")
	return dir
}

const appPackaging = `set -e
mkdir -p $BOSH_INSTALL_TARGET/bin
cp app/run $BOSH_INSTALL_TARGET/bin/run
chmod +x $BOSH_INSTALL_TARGET/bin/run
test "$(pwd)" = "$BOSH_COMPILE_TARGET"
cp $BOSH_PACKAGES_DIR/lib/share/greeting $BOSH_INSTALL_TARGET/greeting-from-lib
`

func sourceTarball(t *testing.T, dir string) (string, *Manifest) {
	t.Helper()
	data, m := create(t, dir, WithVersion("3"))
	p := filepath.Join(t.TempDir(), "source.tgz")
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p, m
}

func TestCompile(t *testing.T) {
	ctx := context.Background()
	src, sm := sourceTarball(t, compileDir(t, appPackaging))
	var out bytes.Buffer
	m, err := Compile(ctx, src, "ubuntu-jammy/1.108", &out)
	require.NoError(t, err)

	p := filepath.Join(t.TempDir(), "compiled.tgz")
	require.NoError(t, os.WriteFile(p, out.Bytes(), 0o644))
	rel, err := Open(ctx, p)
	require.NoError(t, err, "the compiled release reads back whole")
	assert.Equal(t, *m, rel.Manifest)
	assert.Equal(t, "kf-compile", m.Name)
	assert.Equal(t, "3", m.Version)
	assert.Empty(t, m.Packages, "no source package is left")
	require.Len(t, m.CompiledPackages, 2)
	for i, c := range m.CompiledPackages {
		assert.Equal(t, sm.Packages[i].Name, c.Name, "release.MF's order")
		assert.Equal(t, sm.Packages[i].Fingerprint, c.Fingerprint)
		assert.Equal(t, sm.Packages[i].Version, c.Version)
		assert.Equal(t, sm.Packages[i].Dependencies, c.Dependencies)
		assert.Equal(t, "ubuntu-jammy/1.108", c.Stemcell)
	}
	assert.Equal(t, sm.Jobs, m.Jobs, "jobs are copied as they are")
	assert.Equal(t, sm.License, m.License)
	assert.Equal(t, "#!/bin/sh\nexec /var/vcap/packages/app/bin/run\n", string(rel.Job("web").Templates["ctl.erb"]))

	app := t.TempDir()
	require.NoError(t, rel.ExtractPackage(ctx, "app", app))
	b, err := os.ReadFile(filepath.Join(app, "greeting-from-lib"))
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(b), "the dependency was installed before, in BOSH_PACKAGES_DIR")
	st, err := os.Stat(filepath.Join(app, "bin/run"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm(), "executables stay executable")
	lib := t.TempDir()
	require.NoError(t, rel.ExtractPackage(ctx, "lib", lib))
	b, err = os.ReadFile(filepath.Join(lib, "share/who"))
	require.NoError(t, err)
	assert.Equal(t, "lib "+sm.Packages[1].Version+"\n", string(b), "BOSH_PACKAGE_NAME and BOSH_PACKAGE_VERSION")

	var again bytes.Buffer
	_, err = Compile(ctx, src, "ubuntu-jammy/1.108", &again)
	require.NoError(t, err)
	assert.Equal(t, out.Bytes(), again.Bytes(), "the same source compiles to the same bytes")

	// Stored gzip: larger, still gzip (what agents read), the same content.
	var stored bytes.Buffer
	_, err = Compile(ctx, src, "ubuntu-jammy/1.108", &stored, WithCompressionLevel(gzip.NoCompression))
	require.NoError(t, err)
	assert.Greater(t, stored.Len(), out.Len())
	assert.Equal(t, []byte{0x1f, 0x8b}, stored.Bytes()[:2], "gzip")
	sp := filepath.Join(t.TempDir(), "stored.tgz")
	require.NoError(t, os.WriteFile(sp, stored.Bytes(), 0o644))
	srel, err := Open(ctx, sp)
	require.NoError(t, err)
	assert.Equal(t, rel.Manifest.Jobs, srel.Manifest.Jobs)
	sapp := t.TempDir()
	require.NoError(t, srel.ExtractPackage(ctx, "app", sapp))
	b, err = os.ReadFile(filepath.Join(sapp, "greeting-from-lib"))
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(b))
	_, err = Compile(ctx, src, "ubuntu-jammy/1.108", &bytes.Buffer{}, WithCompressionLevel(42))
	require.Error(t, err, "a level gzip does not know")

	_, err = Compile(ctx, p, "ubuntu-jammy/1.108", &bytes.Buffer{})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid, "a compiled release is not compiled again")
	assert.ErrorContains(t, err, "already compiled")
}

func TestCompileRefuses(t *testing.T) {
	ctx := context.Background()
	src, _ := sourceTarball(t, compileDir(t, appPackaging))
	for _, sc := range []string{"", "ubuntu-jammy", "/1.1", "ubuntu-jammy/"} {
		_, err := Compile(ctx, src, sc, &bytes.Buffer{})
		var ve *kubefoundry.ValidationError
		require.ErrorAs(t, err, &ve, "stemcell %q", sc)
		assert.Equal(t, "stemcell", ve.Problems[0].Field)
	}

	failing, _ := sourceTarball(t, compileDir(t, "echo compiling app\necho no compiler here >&2\nexit 3\n"))
	_, err := Compile(ctx, failing, "ubuntu-jammy/1.108", &bytes.Buffer{})
	require.Error(t, err)
	assert.ErrorContains(t, err, "compile package app")
	assert.ErrorContains(t, err, "no compiler here", "the script's output says why")

	linked, _ := sourceTarball(t, compileDir(t, "ln -s /etc/passwd $BOSH_INSTALL_TARGET/passwd\n"))
	_, err = Compile(ctx, linked, "ubuntu-jammy/1.108", &bytes.Buffer{})
	require.ErrorIs(t, err, kubefoundry.ErrInvalid, "a link in the install target cannot go in a release")
	assert.ErrorContains(t, err, "passwd")
}
