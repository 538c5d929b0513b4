package release

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kubefoundry/kubefoundry"
)

// Limits bound what Read, Open and ExtractPackage unpack, so that a
// hostile tarball (a tar or gzip bomb) fails with an error wrapping
// kubefoundry.ErrLimitExceeded rather than filling memory or a disk.
// A zero field takes its default.
type Limits struct {
	// EntrySize is the largest single file, in the release tarball or in
	// one of its job, package or license tarballs. Default 8 GiB.
	EntrySize int64
	// TotalSize is the most bytes read out of all tarballs together,
	// counting each inner tarball and the files it unpacks to. Default
	// 64 GiB.
	TotalSize int64
	// Entries is the most entries of all tarballs together. Default
	// 1,000,000.
	Entries int
	// MemorySize is the most bytes held in memory: release.MF and each
	// job's and the license's files together. Default 256 MiB.
	MemorySize int64
}

// DefaultLimits are the limits a zero Limits stands for.
var DefaultLimits = Limits{EntrySize: 8 << 30, TotalSize: 64 << 30, Entries: 1_000_000, MemorySize: 256 << 20}

func (l Limits) withDefaults() Limits {
	if l.EntrySize <= 0 {
		l.EntrySize = DefaultLimits.EntrySize
	}
	if l.TotalSize <= 0 {
		l.TotalSize = DefaultLimits.TotalSize
	}
	if l.Entries <= 0 {
		l.Entries = DefaultLimits.Entries
	}
	if l.MemorySize <= 0 {
		l.MemorySize = DefaultLimits.MemorySize
	}
	return l
}

// budget counts what has been unpacked against the limits.
type budget struct {
	Limits
	total   int64
	entries int
	memory  int64
}

func (b *budget) entry(where string, size int64) error {
	b.entries++
	if b.entries > b.Entries {
		return fmt.Errorf("%s: more than %d entries in all: %w", where, b.Entries, kubefoundry.ErrLimitExceeded)
	}
	if size > b.EntrySize {
		return fmt.Errorf("%s: %d bytes, more than the %d a file may have: %w", where, size, b.EntrySize, kubefoundry.ErrLimitExceeded)
	}
	b.total += size
	if b.total > b.TotalSize {
		return fmt.Errorf("%s: more than %d bytes unpacked in all: %w", where, b.TotalSize, kubefoundry.ErrLimitExceeded)
	}
	return nil
}

func (b *budget) hold(where string, size int64) error {
	b.memory += size
	if b.memory > b.MemorySize {
		return fmt.Errorf("%s: more than %d bytes of jobs, license and release.MF to hold in memory: %w", where, b.MemorySize, kubefoundry.ErrLimitExceeded)
	}
	return nil
}

// entryName checks a tar entry and returns its cleaned name ("" for the
// top directory itself). Only regular files and directories are
// accepted: links of either kind are refused, wherever they point, and
// so are devices, FIFOs and sparse files; so are absolute names, names
// with a ".." segment, a backslash or a NUL.
func entryName(h *tar.Header) (string, error) {
	name := h.Name
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("entry %q: %s: %w", h.Name, why, kubefoundry.ErrInvalid)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir: // archive/tar reads the old TypeRegA as TypeReg
	case tar.TypeSymlink, tar.TypeLink:
		return bad("links are refused (a release's tarballs hold only files and directories)")
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return bad("device files and FIFOs are refused")
	default:
		return bad(fmt.Sprintf("entry type %q is refused", h.Typeflag))
	}
	if strings.ContainsAny(name, "\\\x00") {
		return bad("backslashes and NUL bytes are refused in names")
	}
	if strings.HasPrefix(name, "/") {
		return bad("absolute names are refused")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return bad("names with .. are refused")
		}
	}
	c := path.Clean(name)
	if c == "." {
		if h.Typeflag != tar.TypeDir {
			return bad("a file without a name")
		}
		return "", nil
	}
	return c, nil
}

// walkTar reads the entries of a tar stream, checking each with
// entryName and counting it against b; fn gets the cleaned name and may
// read the file's content from r. Global PAX headers are skipped.
// Duplicate names are refused.
func walkTar(ctx context.Context, r io.Reader, where string, b *budget, fn func(h *tar.Header, name string, r io.Reader) error) error {
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: not a tar: %v: %w", where, err, kubefoundry.ErrInvalid)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := entryName(h)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if h.Size < 0 {
			return fmt.Errorf("%s: entry %q: negative size: %w", where, h.Name, kubefoundry.ErrInvalid)
		}
		if err := b.entry(where+": "+h.Name, h.Size); err != nil {
			return err
		}
		if name == "" {
			continue
		}
		if seen[name] {
			return fmt.Errorf("%s: entry %q appears twice: %w", where, name, kubefoundry.ErrInvalid)
		}
		seen[name] = true
		if h.Typeflag == tar.TypeDir {
			if err := fn(h, name, nil); err != nil {
				return err
			}
			continue
		}
		if err := fn(h, name, &ctxReader{ctx: ctx, r: io.LimitReader(tr, h.Size)}); err != nil {
			return err
		}
	}
}

// ctxReader stops reading when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// maybeGzip returns a reader of r's content, gunzipped when r starts
// with gzip's magic bytes (job and package tarballs are gzipped unless
// the release was made with --no-compression).
func maybeGzip(r io.Reader) (io.Reader, func(), error) {
	var magic [2]byte
	n, err := io.ReadFull(r, magic[:])
	head := io.MultiReader(strings.NewReader(string(magic[:n])), r)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, nil, err
	}
	if n == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(head)
		if err != nil {
			return nil, nil, err
		}
		return gz, func() { _ = gz.Close() }, nil
	}
	return head, func() {}, nil
}

// epoch is the modification time of every entry Create writes.
var epoch = time.Unix(0, 0).UTC()

// tarFile is one entry Create writes: a directory, or a file whose bytes
// are data or, when data is nil, the file at src.
type tarFile struct {
	name string
	dir  bool
	exec bool
	data []byte
	src  string
	size int64
}

// writeTar writes entries in the order given, as deterministic tar:
// epoch mtimes, uid and gid 0, no user or group names, modes 0755 for
// directories and executables and 0644 otherwise; gzipped (with no name
// or time in the gzip header, at level) unless plain.
func writeTar(ctx context.Context, w io.Writer, entries []tarFile, plain bool, level int) error {
	var gz *gzip.Writer
	out := w
	if !plain {
		var err error
		if gz, err = gzip.NewWriterLevel(w, level); err != nil {
			return err
		}
		out = gz
	}
	tw := tar.NewWriter(out)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := &tar.Header{Name: e.name, ModTime: epoch, Mode: 0o644, Typeflag: tar.TypeReg}
		switch {
		case e.dir:
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
			if !strings.HasSuffix(h.Name, "/") {
				h.Name += "/"
			}
		case e.exec:
			h.Mode = 0o755
		}
		if err := writeEntry(ctx, tw, h, e); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if gz != nil {
		return gz.Close()
	}
	return nil
}

func writeEntry(ctx context.Context, tw *tar.Writer, h *tar.Header, e tarFile) error {
	if e.dir {
		return tw.WriteHeader(h)
	}
	if e.data != nil || e.src == "" {
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(e.data)
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if e.size >= 0 && st.Size() != e.size {
		return fmt.Errorf("%s changed while the release was made", e.src)
	}
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, &ctxReader{ctx: ctx, r: f})
	return err
}

// withParents returns the files of a job, package or license tarball
// under "./", with an entry for "./" and each directory before what it
// holds, sorted by name.
func withParents(files []tarFile) []tarFile {
	dirs := map[string]bool{}
	out := []tarFile{{name: "./", dir: true}}
	for _, f := range files {
		for d := path.Dir(f.name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		out = append(out, tarFile{name: "./" + d + "/", dir: true})
	}
	for _, f := range files {
		f.name = "./" + f.name
		out = append(out, f)
	}
	sortTarFiles(out[1:])
	return out
}

func sortTarFiles(s []tarFile) {
	// Directory names end in "/", which sorts before any other byte a
	// name under it continues with only when compared segment by
	// segment: compare by segments so that a directory comes first.
	less := func(a, b string) int {
		as, bs := strings.Split(strings.TrimSuffix(a, "/"), "/"), strings.Split(strings.TrimSuffix(b, "/"), "/")
		for i := 0; i < len(as) && i < len(bs); i++ {
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
		}
		return len(as) - len(bs)
	}
	slices.SortFunc(s, func(x, y tarFile) int { return less(x.name, y.name) })
}

// fileMode is the mode a tarball's file is unpacked with.
func fileMode(h *tar.Header) fs.FileMode {
	if h.Mode&0o111 != 0 {
		return 0o755
	}
	return 0o644
}
