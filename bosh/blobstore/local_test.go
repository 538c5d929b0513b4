package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kubefoundry/kubefoundry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// files lists every file under dir, relative, temporary ones included.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	}))
	return out
}

func TestNewIDAndPrefix(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		require.Regexp(t, re, id)
		require.NoError(t, ValidateID(id))
		require.False(t, seen[id])
		seen[id] = true
	}
	// As bosh-davcli computes it: the first byte of the SHA-1 of the id
	// (computed apart with sha1sum).
	assert.Equal(t, "0d", Prefix("0ca907f2-dde8-4413-a304-9076c9d0978b"))
	assert.Equal(t, "0d/0ca907f2-dde8-4413-a304-9076c9d0978b", PrefixedID("0ca907f2-dde8-4413-a304-9076c9d0978b"))
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"", ".", "..", "../etc", "a/b", `a\b`, "/abs", ".hidden", "a b", "a%2fb", "é", strings.Repeat("a", MaxIDLength+1), "a\x00"} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			err := ValidateID(id)
			require.Error(t, err)
			assert.True(t, kubefoundry.IsInvalid(err))
		})
	}
	for _, id := range []string{"a", "0ca907f2-dde8-4413-a304-9076c9d0978b", "logs.tgz", "a..b", strings.Repeat("a", MaxIDLength),
		"azAZ09", "z", "Z", "9", "A", "0", "-", "_", "a.", "a.-_"} {
		assert.NoError(t, ValidateID(id), id)
	}
	// The characters just outside each allowed range.
	for _, c := range "`{@[/:" + ",+~" {
		assert.True(t, kubefoundry.IsInvalid(ValidateID("a"+string(c))), "%q", c)
	}

	// The value shown is cut at 80 characters, never a whole long id.
	var fe *kubefoundry.FieldError
	require.ErrorAs(t, ValidateID(strings.Repeat("x", MaxIDLength+1)), &fe)
	assert.Equal(t, strings.Repeat("x", 80)+"...", fe.Value)
	require.ErrorAs(t, ValidateID(strings.Repeat("x", 79)+"/"), &fe)
	assert.Equal(t, strings.Repeat("x", 79)+"/", fe.Value, "80 characters are shown whole")
	assert.Equal(t, "id", fe.Field)
}

func TestLocalRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := NewLocal(dir)
	require.NoError(t, err)

	id, d, err := l.Put(ctx, strings.NewReader("abc"))
	require.NoError(t, err)
	assert.Equal(t, abcSHA1+";sha256:"+abcSHA256, d.String())
	assert.Equal(t, []string{filepath.Join(Prefix(id), id)}, files(t, dir), "DAV layout, no temporary file left")

	ok, err := l.Exists(ctx, id)
	require.NoError(t, err)
	assert.True(t, ok)
	rc, err := l.Get(ctx, id)
	require.NoError(t, err)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	assert.Equal(t, "abc", string(b))

	// PutID replaces; Create does not.
	_, err = l.PutID(ctx, id, strings.NewReader("xyz"))
	require.NoError(t, err)
	_, err = l.Create(ctx, id, strings.NewReader("123"))
	assert.ErrorIs(t, err, kubefoundry.ErrAlreadyExists)
	rc, err = l.Get(ctx, id)
	require.NoError(t, err)
	b, _ = io.ReadAll(rc)
	_ = rc.Close()
	assert.Equal(t, "xyz", string(b))
	assert.Len(t, files(t, dir), 1, "the refused Create left no temporary file")

	require.NoError(t, l.Delete(ctx, id))
	require.NoError(t, l.Delete(ctx, id), "deleting a missing blob is fine")
	ok, err = l.Exists(ctx, id)
	require.NoError(t, err)
	assert.False(t, ok)
	_, err = l.Get(ctx, id)
	assert.True(t, kubefoundry.IsNotFound(err))
}

func TestLocalRefusesTraversal(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	l, err := NewLocal(dir)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "secret"), []byte("s"), 0o600))

	for _, id := range []string{"../secret", "../../secret", "..", "ab/../../secret", "/etc/passwd"} {
		_, err := l.PutID(ctx, id, strings.NewReader("x"))
		assert.True(t, kubefoundry.IsInvalid(err), id)
		_, err = l.Get(ctx, id)
		assert.True(t, kubefoundry.IsInvalid(err), id)
		assert.True(t, kubefoundry.IsInvalid(l.Delete(ctx, id)), id)
		_, err = l.Exists(ctx, id)
		assert.True(t, kubefoundry.IsInvalid(err), id)
	}
	assert.Empty(t, files(t, dir))
	_, err = os.Stat(filepath.Join(root, "secret"))
	assert.NoError(t, err, "nothing outside the store was touched")
}

// failingReader yields some bytes, then fails.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestLocalPutFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocal(dir)
	require.NoError(t, err)
	id := NewID()
	_, err = l.PutID(context.Background(), id, &failingReader{n: 10000})
	require.ErrorContains(t, err, "disk on fire")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.PutID(ctx, id, strings.NewReader("abc"))
	require.ErrorIs(t, err, context.Canceled)

	assert.Empty(t, files(t, dir), "no blob, no temporary file")
}

func TestLocalConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(t.TempDir())
	require.NoError(t, err)

	const n = 32
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			id, _, err := l.Put(ctx, bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 10000+i)))
			ids[i] = id
			errs <- err
		})
	}
	// And many writers of one id: a reader sees one whole blob.
	same := NewID()
	for i := range n {
		wg.Go(func() {
			_, err := l.PutID(ctx, same, bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 50000)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for i, id := range ids {
		rc, err := l.Get(ctx, id)
		require.NoError(t, err)
		b, _ := io.ReadAll(rc)
		_ = rc.Close()
		assert.Equal(t, bytes.Repeat([]byte{byte(i)}, 10000+i), b)
	}
	rc, err := l.Get(ctx, same)
	require.NoError(t, err)
	b, _ := io.ReadAll(rc)
	_ = rc.Close()
	require.Len(t, b, 50000)
	assert.Equal(t, bytes.Repeat(b[:1], 50000), b, "one writer's bytes, whole")
	assert.Len(t, files(t, l.Dir()), n+1)
}
