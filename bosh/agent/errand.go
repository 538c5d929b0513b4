package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrandResult is run_errand's value, as bosh-agent answers it.
type ErrandResult struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
}

// errandOutputLimit bounds the stdout and stderr an errand's answer
// carries (the whole output is in sys/log/<job>/errand.*.log).
const errandOutputLimit = 64 << 10

// runErrandMethod runs bin/run of the job named in the first argument, or
// of the first applied job that has one, to completion (cancel_task kills
// it), and answers its exit code and the ends of its output. An errand
// that exits non-zero is a result, not a failure of the method.
func (a *Agent) runErrandMethod(ctx context.Context, args json.RawMessage) (any, error) {
	var list []json.RawMessage
	_ = json.Unmarshal(args, &list)
	var want string
	if len(list) > 0 {
		_ = json.Unmarshal(list[0], &want) // an options hash in older directors: no name
	}
	jobs, _, err := a.jobs()
	if err != nil {
		return nil, err
	}
	job := ""
	for _, j := range jobs {
		if _, err := os.Stat(a.layout.Script(j, "run")); err == nil && (want == "" || want == j) {
			job = j
			break
		}
	}
	if job == "" {
		if want != "" {
			return nil, fmt.Errorf("no applied job %s with bin/run", want)
		}
		return nil, errors.New("no applied job has bin/run: this instance has no errand")
	}
	logDir := a.layout.LogDir(job)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	var logs []*os.File
	for _, stream := range []string{"stdout", "stderr"} {
		f, err := os.OpenFile(filepath.Join(logDir, "errand."+stream+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			closeAll(logs)
			return nil, err
		}
		logs = append(logs, f)
	}
	defer closeAll(logs)
	var out, errOut bytes.Buffer
	cmd := exec.Command(a.layout.Script(job, "run"))
	cmd.Dir = a.layout.JobLink(job)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "BOSH_JOB_NAME=" + job}
	cmd.Stdout = &tail{buf: &out, f: logs[0]}
	cmd.Stderr = &tail{buf: &errOut, f: logs[1]}
	err = runGroup(ctx, cmd)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		if ws := ee.ExitCode(); ws >= 0 {
			return ErrandResult{ExitCode: ws, Stdout: out.String(), Stderr: errOut.String()}, nil
		}
		return nil, fmt.Errorf("errand %s: %s", job, exitReason(err))
	case err != nil:
		return nil, fmt.Errorf("errand %s: %w", job, err)
	}
	return ErrandResult{ExitCode: 0, Stdout: out.String(), Stderr: errOut.String()}, nil
}

// tail keeps the last errandOutputLimit bytes in buf and writes all to f.
type tail struct {
	buf *bytes.Buffer
	f   *os.File
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if over := t.buf.Len() - errandOutputLimit; over > 0 {
		t.buf.Next(over)
	}
	return t.f.Write(p)
}

// fetchLogsMethod answers fetch_logs [log_type, filters]: it packs the
// jobs' logs (sys/log; "agent" packs the agent's own, bosh/log) into a
// gzipped tarball, uploads it with the agent's blobstore credentials, and
// answers {"blobstore_id", "sha1"}.
func (a *Agent) fetchLogsMethod(ctx context.Context, args json.RawMessage) (any, error) {
	if a.blobs.ByID == nil {
		return nil, errors.New("fetch_logs: the agent has no blobstore credentials: use fetch_logs_with_signed_url")
	}
	var list []json.RawMessage
	_ = json.Unmarshal(args, &list)
	kind := ""
	if len(list) > 0 {
		_ = json.Unmarshal(list[0], &kind)
	}
	f, err := a.packLogs(ctx, kind)
	if err != nil {
		return nil, err
	}
	defer closeAndRemove(f)
	id, d, err := a.blobs.ByID.Put(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("fetch_logs: upload: %w", err)
	}
	return map[string]any{"blobstore_id": id, "sha1": d.String()}, nil
}

// fetchLogsSignedMethod answers fetch_logs_with_signed_url [{signed_url,
// log_type, filters}]: the same tarball, put to the director's signed URL;
// the answer is {"sha1"}.
func (a *Agent) fetchLogsSignedMethod(ctx context.Context, args json.RawMessage) (any, error) {
	var list []struct {
		SignedURL string `json:"signed_url"`
		LogType   string `json:"log_type"`
	}
	if err := json.Unmarshal(args, &list); err != nil || len(list) == 0 || list[0].SignedURL == "" {
		return nil, errors.New("want [{signed_url, log_type, filters}]")
	}
	f, err := a.packLogs(ctx, list[0].LogType)
	if err != nil {
		return nil, err
	}
	defer closeAndRemove(f)
	d, err := a.blobs.Signed.PutSigned(ctx, list[0].SignedURL, f)
	if err != nil {
		return nil, fmt.Errorf("fetch_logs: upload: %w", err)
	}
	return map[string]any{"sha1": d.String()}, nil
}

// closeAndRemove closes and removes a temporary file.
func closeAndRemove(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// packLogs tars the log directory of kind ("job" or empty: sys/log;
// "agent": bosh/log) into a temporary file under data/tmp, bounded by
// MaxBlobSize, and returns it open at its start; the caller closes and
// removes it (closeAndRemove). Logs can be large: they are never held in
// memory whole.
func (a *Agent) packLogs(ctx context.Context, kind string) (_ *os.File, err error) {
	dir := filepath.Join(a.layout.Root, "sys", "log")
	switch kind {
	case "", "job":
	case "agent":
		dir = filepath.Join(a.layout.StateDir(), "log")
	default:
		return nil, fmt.Errorf("fetch_logs: log type %q: want job or agent", kind)
	}
	tmpDir := filepath.Join(a.layout.Root, "data", "tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(tmpDir, "logs-*.tgz")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			closeAndRemove(out)
		}
	}()
	zw := gzip.NewWriter(out)
	tw := tar.NewWriter(zw)
	var total int64
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return fs.SkipAll
		}
		if err != nil || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if total += fi.Size(); total > a.cfg.MaxBlobSize {
			return fmt.Errorf("logs exceed %d bytes", a.cfg.MaxBlobSize)
		}
		if err := tw.WriteHeader(&tar.Header{Name: "./" + filepath.ToSlash(rel), Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = io.CopyN(tw, f, fi.Size())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetch_logs: %s: %w", strings.TrimPrefix(dir, a.layout.Root), err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return out, nil
}

// DNSRecordsPath is where sync_dns writes the deployment's DNS records,
// under the root (/var/vcap/instance/dns/records.json on a VM).
const DNSRecordsPath = "instance/dns/records.json"

// syncDNSMethod answers sync_dns [blobstore_id, sha1, version] and
// sync_dns_with_signed_url [{signed_url, multi_digest, version}]: it
// fetches the records blob, checks its digest and that it is JSON, and
// writes it to DNSRecordsPath (atomically) unless the records there are
// of that version or newer; the answer is "synced".
func (a *Agent) syncDNSMethod(signed bool) func(ctx context.Context, args json.RawMessage) (any, error) {
	return func(ctx context.Context, args json.RawMessage) (any, error) {
		// One at a time, so a slow older version never lands after a newer.
		a.dnsMu.Lock()
		defer a.dnsMu.Unlock()
		var ref BlobRef
		var version uint64
		if signed {
			var list []struct {
				SignedURL   string `json:"signed_url"`
				MultiDigest string `json:"multi_digest"`
				Version     uint64 `json:"version"`
			}
			if err := json.Unmarshal(args, &list); err != nil || len(list) == 0 {
				return nil, errors.New("want [{signed_url, multi_digest, version}]")
			}
			ref.SignedURL, version = list[0].SignedURL, list[0].Version
			if err := ref.SHA1.UnmarshalText([]byte(list[0].MultiDigest)); err != nil {
				return nil, fmt.Errorf("multi_digest: %w", err)
			}
		} else {
			var list []json.RawMessage
			if err := json.Unmarshal(args, &list); err != nil || len(list) < 3 {
				return nil, errors.New("want [blobstore_id, sha1, version]")
			}
			var digest string
			if json.Unmarshal(list[0], &ref.BlobstoreID) != nil || json.Unmarshal(list[1], &digest) != nil || json.Unmarshal(list[2], &version) != nil {
				return nil, errors.New("want [blobstore_id, sha1, version]")
			}
			if err := ref.SHA1.UnmarshalText([]byte(digest)); err != nil {
				return nil, fmt.Errorf("sha1: %w", err)
			}
		}
		dst := filepath.Join(a.layout.Root, filepath.FromSlash(DNSRecordsPath))
		if cur, err := os.ReadFile(dst); err == nil {
			var have struct {
				Version uint64 `json:"version"`
			}
			if json.Unmarshal(cur, &have) == nil && have.Version >= version {
				return "synced", nil
			}
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		file, err := a.blobs.fetch(ctx, ref, filepath.Dir(dst))
		if err != nil {
			return nil, fmt.Errorf("sync_dns: %w", err)
		}
		b, err := os.ReadFile(file)
		if err == nil && !json.Valid(b) {
			err = errors.New("the records are not JSON")
		}
		if err != nil {
			_ = os.Remove(file)
			return nil, fmt.Errorf("sync_dns: %w", err)
		}
		if err := os.Chmod(file, 0o644); err != nil {
			_ = os.Remove(file)
			return nil, err
		}
		if err := os.Rename(file, dst); err != nil {
			_ = os.Remove(file)
			return nil, err
		}
		return "synced", nil
	}
}
