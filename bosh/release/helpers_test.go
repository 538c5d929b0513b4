package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
)

// testEntry is one entry of a tarball a test reads or crafts.
type testEntry struct {
	Name     string
	Type     byte
	Mode     int64
	Data     []byte
	Linkname string
	Size     int64 // when not len(Data): a header that lies
}

func file(name, data string) testEntry {
	return testEntry{Name: name, Type: tar.TypeReg, Mode: 0o644, Data: []byte(data)}
}

// tarOf writes entries as a tar, gzipped unless plain.
func tarOf(t testing.TB, entries []testEntry, plain bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var gz *gzip.Writer
	if !plain {
		gz = gzip.NewWriter(&buf)
		w = gz
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := int64(len(e.Data))
		if typ != tar.TypeReg {
			size = 0
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: e.Name, Typeflag: typ, Mode: mode, Size: size, Linkname: e.Linkname}))
		if size > 0 {
			_, err := tw.Write(e.Data)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	if gz != nil {
		require.NoError(t, gz.Close())
	}
	return buf.Bytes()
}

// entriesOf reads a gzipped tar's entries.
func entriesOf(t testing.TB, data []byte) []testEntry {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var out []testEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, testEntry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, Data: b})
	}
}

func entryData(t testing.TB, entries []testEntry, name string) []byte {
	t.Helper()
	for _, e := range entries {
		if e.Name == name {
			return e.Data
		}
	}
	t.Fatalf("no entry %q", name)
	return nil
}

func replaceEntry(entries []testEntry, name string, data []byte) []testEntry {
	out := make([]testEntry, len(entries))
	copy(out, entries)
	for i := range out {
		if out[i].Name == name {
			out[i].Data = data
		}
	}
	return out
}

// copyDir copies the release directory src to a new temporary one.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	require.NoError(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	}))
	return dst
}

func create(t testing.TB, dir string, opts ...Option) ([]byte, *Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := Create(context.Background(), dir, &buf, opts...)
	require.NoError(t, err)
	return buf.Bytes(), m
}

// problems returns the "field: reason" lines of a ValidationError.
func problems(t testing.TB, err error) []string {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, kubefoundry.ErrInvalid)
	var ve *kubefoundry.ValidationError
	require.True(t, errors.As(err, &ve), "not a ValidationError: %v", err)
	out := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		out[i] = p.Error()
	}
	return out
}

// requireProblem asserts that one problem names field and contains each
// of the words.
func requireProblem(t testing.TB, probs []string, field string, words ...string) {
	t.Helper()
	for _, p := range probs {
		if !strings.HasPrefix(p, field+" ") && !strings.HasPrefix(p, field+":") {
			continue
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(p, w)
		}
		if ok {
			return
		}
	}
	t.Fatalf("no problem at %s with %q in:\n%s", field, words, strings.Join(probs, "\n"))
}
