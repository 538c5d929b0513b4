package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kubefoundry/kubefoundry"
)

// Blobstore stores blobs by id. Implementations are safe for concurrent
// use.
type Blobstore interface {
	// Put stores the bytes of r under a new random id and returns the id
	// and the digest (SHA-1 and SHA-256) of what was stored.
	Put(ctx context.Context, r io.Reader) (id string, digest Digest, err error)
	// Get opens blob id for reading; a missing blob wraps
	// kubefoundry.ErrNotFound. The caller closes the reader.
	Get(ctx context.Context, id string) (io.ReadCloser, error)
	// Delete removes blob id. A missing blob is not an error.
	Delete(ctx context.Context, id string) error
	// Exists reports whether blob id is stored.
	Exists(ctx context.Context, id string) (bool, error)
}

// Local is a Blobstore in a directory, laid out as BOSH's DAV blobstore:
// blob id at <dir>/<Prefix(id)>/<id>. Blobs are written to a temporary
// file beside their final path, synced and renamed, so a reader sees a
// whole blob or none. A Local is safe for concurrent use; two Puts to the
// same id leave one of the two blobs whole.
type Local struct {
	dir string
}

var _ Blobstore = (*Local)(nil)

// NewLocal returns a Local storing under dir, creating dir if needed.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, &kubefoundry.FieldError{Field: "dir", Reason: "empty"}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blobstore dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("blobstore dir: %w", err)
	}
	return &Local{dir: abs}, nil
}

// Dir is the directory the blobs are stored in.
func (l *Local) Dir() string { return l.dir }

// path returns the blob's file, once id is checked.
func (l *Local) path(id string) (string, error) {
	if err := ValidateID(id); err != nil {
		return "", err
	}
	return filepath.Join(l.dir, Prefix(id), id), nil
}

// Put stores r under a new id.
func (l *Local) Put(ctx context.Context, r io.Reader) (string, Digest, error) {
	id := NewID()
	d, err := l.PutID(ctx, id, r)
	if err != nil {
		return "", Digest{}, err
	}
	return id, d, nil
}

// PutID stores r under id, replacing a blob of that id, and returns the
// digest of what was stored. When r fails or ctx ends, nothing is stored
// and no temporary file is left.
func (l *Local) PutID(ctx context.Context, id string, r io.Reader) (Digest, error) {
	return l.put(ctx, id, r, true)
}

// Create stores r under id like PutID, but fails with an error wrapping
// kubefoundry.ErrAlreadyExists, storing nothing, when blob id exists.
func (l *Local) Create(ctx context.Context, id string, r io.Reader) (Digest, error) {
	return l.put(ctx, id, r, false)
}

func (l *Local) put(ctx context.Context, id string, r io.Reader, replace bool) (_ Digest, err error) {
	p, err := l.path(id)
	if err != nil {
		return Digest{}, err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Digest{}, fmt.Errorf("put blob %s: %w", id, err)
	}
	// The temporary name starts with '.', which no id may, so it is never
	// served, and sits in the blob's directory so the rename is atomic.
	f, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return Digest{}, fmt.Errorf("put blob %s: %w", id, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil || !replace {
			_ = os.Remove(tmp)
		}
	}()
	h, _ := newMultiHash(nil)
	if _, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: r}); err != nil {
		return Digest{}, fmt.Errorf("put blob %s: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		return Digest{}, fmt.Errorf("put blob %s: %w", id, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return Digest{}, fmt.Errorf("put blob %s: %w", id, err)
	}
	if replace {
		err = os.Rename(tmp, p)
	} else {
		// A hard link fails when the name exists, atomically; the
		// temporary name is removed by the deferred call.
		err = os.Link(tmp, p)
		if errors.Is(err, fs.ErrExist) {
			return Digest{}, fmt.Errorf("put blob %s: %w", id, kubefoundry.ErrAlreadyExists)
		}
	}
	if err != nil {
		return Digest{}, fmt.Errorf("put blob %s: %w", id, err)
	}
	syncDir(dir)
	return h.digest(), nil
}

// syncDir makes a rename in dir durable, where the system allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Get opens blob id.
func (l *Local) Get(_ context.Context, id string) (io.ReadCloser, error) {
	f, err := l.open(id)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (l *Local) open(id string) (*os.File, error) {
	p, err := l.path(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", id, kubefoundry.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id, err)
	}
	return f, nil
}

// Delete removes blob id; a missing blob is not an error.
func (l *Local) Delete(_ context.Context, id string) error {
	p, err := l.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	return nil
}

// Exists reports whether blob id is stored.
func (l *Local) Exists(_ context.Context, id string) (bool, error) {
	p, err := l.path(id)
	if err != nil {
		return false, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blob %s: %w", id, err)
	}
	return fi.Mode().IsRegular(), nil
}

// ctxReader fails its reads once ctx ends.
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
