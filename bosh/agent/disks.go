package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kubefoundry/kubefoundry/bosh/cpi"
)

// Mounter mounts an agent's persistent disks.
type Mounter interface {
	// Mount makes the disk (found by the hint the CPI gave when it
	// attached it) the directory target, preparing it first when new.
	Mount(ctx context.Context, diskCID string, hint cpi.DiskHint, target string) error
	// Unmount undoes Mount; target is then no longer the disk.
	Unmount(ctx context.Context, target string) error
}

// DirMounter stands in for block devices where there are none (a
// sandboxed agent): a persistent disk is the directory Dir/<disk cid>,
// made on first mount, and it is mounted by a symbolic link at the
// target. As a disk on a cloud, its data outlives the VM that mounted it,
// and the next VM it is attached to sees it.
type DirMounter struct {
	Dir string
}

// Mount links target to the disk's directory. A target that is a
// directory with something in it is refused: mounting over it would hide
// data that is not on the disk.
func (m DirMounter) Mount(_ context.Context, diskCID string, _ cpi.DiskHint, target string) error {
	if err := safeName(diskCID); err != nil {
		return fmt.Errorf("disk cid %q: %w", diskCID, err)
	}
	disk := filepath.Join(m.Dir, diskCID)
	if err := os.MkdirAll(disk, 0o755); err != nil {
		return err
	}
	st, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case st.Mode()&fs.ModeSymlink != 0:
		if err := os.Remove(target); err != nil {
			return err
		}
	case st.IsDir():
		entries, err := os.ReadDir(target)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			return fmt.Errorf("%s holds data that is not on a disk: not mounting over it", target)
		}
		if err := os.Remove(target); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s is not a directory", target)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	return os.Symlink(disk, target)
}

// Unmount removes the link at target.
func (m DirMounter) Unmount(_ context.Context, target string) error {
	st, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s is not a mounted disk", target)
	}
	return os.Remove(target)
}

// mounts is which disk is mounted where: at store, and at the migration
// target while a disk's data moves to a new one. It is kept in the
// agent's state directory, so it survives a restart of the agent.
type mounts struct {
	Store     string `json:"store,omitempty"`
	Migration string `json:"migration,omitempty"`
}

func (a *Agent) mountsFile() string { return filepath.Join(a.layout.StateDir(), "disks.json") }

func (a *Agent) loadMounts() (mounts, error) {
	var m mounts
	b, err := os.ReadFile(a.mountsFile())
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

func (a *Agent) saveMounts(m mounts) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeFileAtomic(a.mountsFile(), b)
}

// writeFileAtomic writes b to path through a temporary file renamed into
// place.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// migrationTarget is where a second disk is mounted while data moves to
// it (bosh-agent's /var/vcap/store_migration_target).
func (l Layout) migrationTarget() string { return filepath.Join(l.Root, "store_migration_target") }

// diskArg is the disk cid a disk method names.
func diskArgs(args json.RawMessage, n int) ([]string, error) {
	var list []string
	if err := json.Unmarshal(args, &list); err != nil || len(list) < n {
		return nil, fmt.Errorf("want %d disk cid(s)", n)
	}
	for _, c := range list[:n] {
		if err := safeName(c); err != nil {
			return nil, fmt.Errorf("disk cid %q: %w", c, err)
		}
	}
	return list[:n], nil
}

func (a *Agent) mounter() (Mounter, error) {
	if a.cfg.Mounter == nil {
		return nil, errors.New("this agent has no Mounter: it cannot mount persistent disks")
	}
	return a.cfg.Mounter, nil
}

// settings are the agent's settings as they are now: read again when the
// agent can (a disk just attached is in them), else as it started with.
func (a *Agent) settings(ctx context.Context) (cpi.AgentSettings, error) {
	if a.cfg.ReloadSettings == nil {
		return a.cfg.Settings, nil
	}
	return a.cfg.ReloadSettings(ctx)
}

// diskOp runs a disk method: n disk cids from its arguments, the
// Mounter, and what is mounted, one method at a time.
func (a *Agent) diskOp(args json.RawMessage, n int, fn func(cids []string, mt Mounter, m mounts) (any, error)) (any, error) {
	cids, err := diskArgs(args, n)
	if err != nil {
		return nil, err
	}
	mt, err := a.mounter()
	if err != nil {
		return nil, err
	}
	a.diskMu.Lock()
	defer a.diskMu.Unlock()
	m, err := a.loadMounts()
	if err != nil {
		return nil, err
	}
	return fn(cids, mt, m)
}

// mountDiskMethod mounts a persistent disk the settings list: at store,
// or at the migration target when store has another disk. A disk already
// mounted is left as it is.
func (a *Agent) mountDiskMethod(ctx context.Context, args json.RawMessage) (any, error) {
	return a.diskOp(args, 1, func(cids []string, mt Mounter, m mounts) (any, error) {
		cid := cids[0]
		if m.Store == cid || m.Migration == cid {
			return map[string]any{}, nil
		}
		s, err := a.settings(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the settings: %w", err)
		}
		hint, ok := s.Disks.Persistent[cid]
		if !ok {
			return nil, fmt.Errorf("persistent disk %s is not in the agent's settings (attached?)", cid)
		}
		target := a.layout.StoreDir()
		switch {
		case m.Store == "":
			m.Store = cid
		case m.Migration == "":
			target, m.Migration = a.layout.migrationTarget(), cid
		default:
			return nil, fmt.Errorf("disks %s and %s are mounted already", m.Store, m.Migration)
		}
		if err := mt.Mount(ctx, cid, hint, target); err != nil {
			return nil, fmt.Errorf("mounting disk %s: %w", cid, err)
		}
		return map[string]any{}, a.saveMounts(m)
	})
}

// unmountDiskMethod unmounts a persistent disk, wherever it is mounted.
func (a *Agent) unmountDiskMethod(ctx context.Context, args json.RawMessage) (any, error) {
	return a.diskOp(args, 1, func(cids []string, mt Mounter, m mounts) (any, error) {
		cid := cids[0]
		var target string
		switch cid {
		case m.Store:
			target, m.Store = a.layout.StoreDir(), ""
		case m.Migration:
			target, m.Migration = a.layout.migrationTarget(), ""
		default:
			return map[string]any{"message": fmt.Sprintf("Partition of %s is not mounted", cid)}, nil
		}
		if err := mt.Unmount(ctx, target); err != nil {
			return nil, fmt.Errorf("unmounting disk %s: %w", cid, err)
		}
		if err := a.saveMounts(m); err != nil {
			return nil, err
		}
		return map[string]any{"message": fmt.Sprintf("Unmounted partition of %s", cid)}, nil
	})
}

// listDiskMethod lists the mounted persistent disks.
func (a *Agent) listDiskMethod(context.Context, json.RawMessage) (any, error) {
	a.diskMu.Lock()
	defer a.diskMu.Unlock()
	m, err := a.loadMounts()
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, c := range []string{m.Store, m.Migration} {
		if c != "" {
			out = append(out, c)
		}
	}
	return out, nil
}

// migrateDiskMethod moves the data of the disk at store to the disk at
// the migration target, then mounts the new disk at store: as bosh-agent
// does when a persistent disk changes size or type. The old disk is left
// unmounted, its data as it was.
func (a *Agent) migrateDiskMethod(ctx context.Context, args json.RawMessage) (any, error) {
	return a.diskOp(args, 2, func(cids []string, mt Mounter, m mounts) (any, error) {
		from, to := cids[0], cids[1]
		if m.Store != from || m.Migration != to {
			return nil, fmt.Errorf("migrate_disk %s -> %s: mounted are %q at store and %q at the migration target", from, to, m.Store, m.Migration)
		}
		s, err := a.settings(ctx)
		if err != nil {
			return nil, err
		}
		hint, ok := s.Disks.Persistent[to]
		if !ok {
			return nil, fmt.Errorf("migrate_disk: disk %s is not in the agent's settings", to)
		}
		if err := copyTree(ctx, a.layout.StoreDir(), a.layout.migrationTarget()); err != nil {
			return nil, fmt.Errorf("copying the data of disk %s to %s: %w", from, to, err)
		}
		if err := mt.Unmount(ctx, a.layout.migrationTarget()); err != nil {
			return nil, err
		}
		if err := mt.Unmount(ctx, a.layout.StoreDir()); err != nil {
			return nil, err
		}
		m = mounts{}
		if err := a.saveMounts(m); err != nil {
			return nil, err
		}
		if err := mt.Mount(ctx, to, hint, a.layout.StoreDir()); err != nil {
			return nil, err
		}
		m.Store = to
		return map[string]any{}, a.saveMounts(m)
	})
}

// copyTree copies the files, directories and links under src into dst,
// with their modes and, when the agent may (as root), their owners, as
// bosh-agent's migration keeps them; what dst has of the same names is
// replaced. Directories are made writable while they are filled and get
// their modes at the end, so a read-only one is copied whole.
func copyTree(ctx context.Context, src, dst string) error {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	type dir struct {
		path string
		mode fs.FileMode
	}
	var dirs []dir
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dir{out, info.Mode().Perm()})
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			_ = os.Remove(out)
			if err := os.Symlink(link, out); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(p, out, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets, devices and pipes are not data
		}
		return chown(out, info)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chmod(dirs[i].path, dirs[i].mode); err != nil {
			return err
		}
	}
	return nil
}

// chown gives path the owner of info, when the agent may: a non-root
// agent (a sandbox) keeps its own.
func chown(path string, info fs.FileInfo) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	err := os.Lchown(path, int(st.Uid), int(st.Gid))
	if errors.Is(err, fs.ErrPermission) {
		return nil
	}
	return err
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// updateSettingsMethod records what the director sends with
// update_settings (trusted_certs, disk_associations, ...) in the agent's
// state directory, as bosh-agent keeps it, and answers "updated".
func (a *Agent) updateSettingsMethod(_ context.Context, args json.RawMessage) (any, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(args, &list); err != nil || len(list) < 1 {
		return nil, errors.New("want one argument, the settings to update")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(list[0], &obj); err != nil {
		return nil, fmt.Errorf("update_settings: want an object: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(a.layout.StateDir(), "update_settings.json"), list[0]); err != nil {
		return nil, err
	}
	return "updated", nil
}
