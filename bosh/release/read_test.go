package release

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

func readBytes(data []byte, opts ...Option) (*Release, error) {
	return Read(context.Background(), bytes.NewReader(data), opts...)
}

func TestReadDigestMismatch(t *testing.T) {
	for _, alg := range []Algorithm{SHA1, SHA256} {
		t.Run(alg.String(), func(t *testing.T) {
			data, m := create(t, demo, WithAlgorithm(alg))
			entries := entriesOf(t, data)
			// Swap in another job tarball under nats's name.
			other := entryData(t, entries, "jobs/api.tgz")
			_, err := readBytes(tarOf(t, replaceEntry(entries, "jobs/nats.tgz", other), false))
			probs := problems(t, err)
			want := alg.Digest(other)
			requireProblem(t, probs, "jobs/nats.tgz", "digest mismatch", want, m.Jobs[1].SHA1)
			assert.Len(t, probs, 1)

			// A package tarball changed by one byte.
			pkg := bytes.Clone(entryData(t, entries, "packages/golang.tgz"))
			pkg[len(pkg)-1] ^= 1
			_, err = readBytes(tarOf(t, replaceEntry(entries, "packages/golang.tgz", pkg), false))
			requireProblem(t, problems(t, err), "packages/golang.tgz", "digest mismatch", alg.Digest(pkg))

			lic := append(bytes.Clone(entryData(t, entries, "license.tgz")), 0)
			_, err = readBytes(tarOf(t, replaceEntry(entries, "license.tgz", lic), false))
			requireProblem(t, problems(t, err), "license.tgz", "digest mismatch")
		})
	}
}

// rewrap rebuilds a release from its entries with release.MF changed by
// edit and the named job tarball's files replaced by files (digests kept
// right), so that what is checked is the content, not the digest.
func rewrap(t *testing.T, data []byte, job string, files []testEntry) []byte {
	t.Helper()
	entries := entriesOf(t, data)
	inner := tarOf(t, files, false)
	mf := string(entryData(t, entries, "release.MF"))
	old := SHA1.Digest(entryData(t, entries, "jobs/"+job+".tgz"))
	mf = strings.Replace(mf, old, SHA1.Digest(inner), 1)
	entries = replaceEntry(entries, "jobs/"+job+".tgz", inner)
	return tarOf(t, replaceEntry(entries, "release.MF", []byte(mf)), false)
}

func TestReadChecksJobsAgainstReleaseMF(t *testing.T) {
	data, _ := create(t, demo)
	monit := file("./monit", "")
	tests := []struct {
		name  string
		files []testEntry
		field string
		words []string
	}{
		{"job.MF names another job", []testEntry{file("./job.MF", "name: api\n"), monit}, "jobs/smoke-tests.tgz/job.MF/name", []string{"smoke-tests"}},
		{"a template job.MF names is missing", []testEntry{file("./job.MF", "name: smoke-tests\ntemplates: {run.erb: bin/run}\n"), monit}, "jobs/smoke-tests.tgz/job.MF/templates/run.erb", []string{"templates/run.erb"}},
		{"a template job.MF does not name", []testEntry{file("./job.MF", "name: smoke-tests\n"), file("./templates/extra.erb", "x")}, "jobs/smoke-tests.tgz/templates/extra.erb", []string{"does not name"}},
		{"packages release.MF does not give", []testEntry{file("./job.MF", "name: smoke-tests\npackages: [nats]\n")}, "jobs/smoke-tests.tgz/job.MF/packages", []string{"release.MF"}},
		{"no job.MF", []testEntry{monit}, "jobs/smoke-tests.tgz", []string{"no job.MF"}},
		{"job.MF with an unknown key", []testEntry{file("./job.MF", "name: smoke-tests\ntemplate: {}\n")}, "jobs/smoke-tests.tgz/job.MF/template (line 2)", []string{`unknown key "template"`}},
		{"an unexpected file", []testEntry{file("./job.MF", "name: smoke-tests\n"), file("./bin/run", "x")}, "jobs/smoke-tests.tgz/bin/run", []string{"unexpected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readBytes(rewrap(t, data, "smoke-tests", tt.files))
			requireProblem(t, problems(t, err), tt.field, tt.words...)
		})
	}

	t.Run("every problem at once", func(t *testing.T) {
		entries := entriesOf(t, data)
		var kept []testEntry
		for _, e := range entries {
			if e.Name != "jobs/api.tgz" {
				kept = append(kept, e)
			}
		}
		kept = append(kept, testEntry{Name: "packages/stray.tgz", Type: tar.TypeReg, Data: tarOf(t, []testEntry{file("packaging", "")}, false)})
		pkg := append(bytes.Clone(entryData(t, entries, "packages/nats.tgz")), 0)
		kept = replaceEntry(kept, "packages/nats.tgz", pkg)
		_, err := readBytes(tarOf(t, kept, false))
		probs := problems(t, err)
		requireProblem(t, probs, "jobs/api.tgz", "does not hold it")
		requireProblem(t, probs, "packages/stray.tgz", "does not list it")
		requireProblem(t, probs, "packages/nats.tgz", "digest mismatch")
		assert.Len(t, probs, 3)
	})
}

func TestReadRefusesHostileTarballs(t *testing.T) {
	data, _ := create(t, demo)
	good := entriesOf(t, data)
	with := func(extra ...testEntry) []byte {
		return tarOf(t, append(append([]testEntry{}, good...), extra...), false)
	}
	// A job tarball with one hostile entry, its digest right in release.MF.
	innerHostile := func(e testEntry) []byte {
		return rewrap(t, data, "smoke-tests", []testEntry{file("./job.MF", "name: smoke-tests\n"), e})
	}
	// A package tarball with one hostile entry, its digest right.
	hostilePackage := func(e testEntry) []byte {
		entries := entriesOf(t, data)
		inner := tarOf(t, []testEntry{file("packaging", "true\n"), e}, false)
		mf := strings.Replace(string(entryData(t, entries, "release.MF")), SHA1.Digest(entryData(t, entries, "packages/nats.tgz")), SHA1.Digest(inner), 1)
		entries = replaceEntry(replaceEntry(entries, "packages/nats.tgz", inner), "release.MF", []byte(mf))
		return tarOf(t, entries, false)
	}
	tests := []struct {
		name   string
		data   []byte
		limits Limits
		words  []string
		sent   error
	}{
		{"an absolute name", with(file("/etc/cron.d/x", "x")), Limits{}, []string{"/etc/cron.d/x", "absolute"}, kubefoundry.ErrInvalid},
		{"a .. name", with(file("../x", "x")), Limits{}, []string{"../x", "names with .. are refused"}, kubefoundry.ErrInvalid},
		{"a .. inside", with(file("jobs/../../x", "x")), Limits{}, []string{"names with .. are refused"}, kubefoundry.ErrInvalid},
		{"traversal in a package tarball", hostilePackage(file("../../evil", "x")), Limits{}, []string{"packages/nats.tgz", "names with .. are refused"}, kubefoundry.ErrInvalid},
		{"a link in a package tarball", hostilePackage(testEntry{Name: "bin", Type: tar.TypeSymlink, Linkname: "/usr/bin"}), Limits{}, []string{"packages/nats.tgz", "links are refused"}, kubefoundry.ErrInvalid},
		{"a symlink out", with(testEntry{Name: "jobs/x", Type: tar.TypeSymlink, Linkname: "/etc"}), Limits{}, []string{"links are refused"}, kubefoundry.ErrInvalid},
		{"a symlink in", with(testEntry{Name: "jobs/x", Type: tar.TypeSymlink, Linkname: "nats.tgz"}), Limits{}, []string{"links are refused"}, kubefoundry.ErrInvalid},
		{"a hard link", with(testEntry{Name: "x", Type: tar.TypeLink, Linkname: "/etc/shadow"}), Limits{}, []string{"links are refused"}, kubefoundry.ErrInvalid},
		{"a device", with(testEntry{Name: "dev", Type: tar.TypeChar}), Limits{}, []string{"device"}, kubefoundry.ErrInvalid},
		{"a FIFO", with(testEntry{Name: "fifo", Type: tar.TypeFifo}), Limits{}, []string{"FIFO"}, kubefoundry.ErrInvalid},
		{"a backslash", with(file(`..\x`, "x")), Limits{}, []string{"backslash"}, kubefoundry.ErrInvalid},
		{"a duplicate", with(file("release.MF", "name: x\n")), Limits{}, []string{"twice"}, kubefoundry.ErrInvalid},
		{"an unexpected entry", with(file("bin/evil", "x")), Limits{}, []string{"unexpected entry"}, kubefoundry.ErrInvalid},
		{"traversal in a job tarball", innerHostile(file("./templates/../../../x", "x")), Limits{}, []string{"jobs/smoke-tests.tgz", "names with .. are refused"}, kubefoundry.ErrInvalid},
		{"an absolute name in a job tarball", innerHostile(file("/var/vcap/x", "x")), Limits{}, []string{"jobs/smoke-tests.tgz", "absolute"}, kubefoundry.ErrInvalid},
		{"a symlink in a job tarball", innerHostile(testEntry{Name: "./templates/run.erb", Type: tar.TypeSymlink, Linkname: "/etc/shadow"}), Limits{}, []string{"jobs/smoke-tests.tgz", "links are refused"}, kubefoundry.ErrInvalid},
		{"an entry over the size limit", data, Limits{EntrySize: 1000}, []string{"more than the 1000"}, kubefoundry.ErrLimitExceeded},
		{"over the total limit", data, Limits{TotalSize: 5000}, []string{"5000 bytes unpacked"}, kubefoundry.ErrLimitExceeded},
		{"too many entries", data, Limits{Entries: 10}, []string{"more than 10 entries"}, kubefoundry.ErrLimitExceeded},
		{"too much to hold", data, Limits{MemorySize: 2000}, []string{"in memory"}, kubefoundry.ErrLimitExceeded},
		{"no release.MF", tarOf(t, good[1:], false), Limits{}, []string{"no release.MF"}, kubefoundry.ErrInvalid},
		{"not a tarball", []byte("\x1f\x8b garbage"), Limits{}, nil, kubefoundry.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readBytes(tt.data, WithLimits(tt.limits))
			require.Error(t, err)
			require.ErrorIs(t, err, tt.sent)
			for _, w := range tt.words {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// A gzip bomb: a small tarball claiming a huge file fails at its header,
// before anything is read.
func TestReadRefusesATarBomb(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "release.MF", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40}))
	_, err := readBytes(buf.Bytes())
	require.ErrorIs(t, err, kubefoundry.ErrLimitExceeded)
	_, err = readBytes(buf.Bytes(), WithLimits(Limits{EntrySize: 1 << 41, TotalSize: 1 << 41}))
	require.ErrorIs(t, err, kubefoundry.ErrLimitExceeded, "release.MF is bounded on its own")
}

func TestExtractPackage(t *testing.T) {
	ctx := context.Background()
	data, _ := create(t, demo)
	path := filepath.Join(t.TempDir(), "r.tgz")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	rel, err := Open(ctx, path)
	require.NoError(t, err)

	out := filepath.Join(t.TempDir(), "golang")
	require.NoError(t, rel.ExtractPackage(ctx, "golang", out))
	blob, err := os.ReadFile(filepath.Join(demo, "blobs", "golang", "go1.26.0.linux-amd64.tar.gz"))
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(out, "golang", "go1.26.0.linux-amd64.tar.gz"))
	require.NoError(t, err)
	assert.Equal(t, blob, got)

	// Never over an existing file.
	require.Error(t, rel.ExtractPackage(ctx, "golang", out))

	require.ErrorIs(t, rel.ExtractPackage(ctx, "nope", t.TempDir()), kubefoundry.ErrNotFound)

	// The tarball changed after Open: the digest is checked again, and
	// what was written is removed.
	entries := entriesOf(t, data)
	pkg := bytes.Clone(entryData(t, entries, "packages/nats.tgz"))
	pkg[len(pkg)-1] ^= 1
	require.NoError(t, os.WriteFile(path, tarOf(t, replaceEntry(entries, "packages/nats.tgz", pkg), false), 0o644))
	dir := t.TempDir()
	err = rel.ExtractPackage(ctx, "nats", dir)
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	assert.Contains(t, err.Error(), "digest mismatch")
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left)

	streamed, err := readBytes(data)
	require.NoError(t, err)
	require.ErrorIs(t, streamed.ExtractPackage(ctx, "nats", t.TempDir()), kubefoundry.ErrInvalid)
}

// TestCopyPackage: the package's tarball as the release holds it, its
// digest checked again as it is copied.
func TestCopyPackage(t *testing.T) {
	ctx := context.Background()
	data, m := create(t, demo)
	path := filepath.Join(t.TempDir(), "r.tgz")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	rel, err := Open(ctx, path)
	require.NoError(t, err)

	entries := entriesOf(t, data)
	var buf bytes.Buffer
	require.NoError(t, rel.CopyPackage(ctx, "nats", &buf))
	assert.Equal(t, entryData(t, entries, "packages/nats.tgz"), buf.Bytes())
	sum := sha1.Sum(buf.Bytes())
	i := slices.IndexFunc(m.Packages, func(p PackageRef) bool { return p.Name == "nats" })
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, m.Packages[i].SHA1, hex.EncodeToString(sum[:]), "what release.MF says")
	require.ErrorIs(t, rel.CopyPackage(ctx, "nope", io.Discard), kubefoundry.ErrNotFound)

	pkg := bytes.Clone(entryData(t, entries, "packages/nats.tgz"))
	pkg[len(pkg)-1] ^= 1
	require.NoError(t, os.WriteFile(path, tarOf(t, replaceEntry(entries, "packages/nats.tgz", pkg), false), 0o644))
	err = rel.CopyPackage(ctx, "nats", io.Discard)
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	assert.Contains(t, err.Error(), "digest mismatch")

	streamed, err := readBytes(data)
	require.NoError(t, err)
	require.ErrorIs(t, streamed.CopyPackage(ctx, "nats", io.Discard), kubefoundry.ErrInvalid)
}

func TestReadCancelled(t *testing.T) {
	data, _ := create(t, demo)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Read(ctx, bytes.NewReader(data))
	require.ErrorIs(t, err, context.Canceled)
}
