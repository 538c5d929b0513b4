package agent_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/agent"
	"github.com/kubefoundry/kubefoundry/bosh/agent/agenttest"
	"github.com/kubefoundry/kubefoundry/bosh/cpi"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

type world struct{ *agenttest.World }

func newWorld(t *testing.T) *world { return &world{agenttest.Start(t)} }

func (w *world) settings(t *testing.T, agentID string) cpi.AgentSettings {
	return w.Settings(t, agentID)
}

func (w *world) startAgent(t *testing.T, s cpi.AgentSettings, root string) *agent.Agent {
	return w.StartAgent(t, s, root)
}

type file = agenttest.File

func tgz(t *testing.T, files map[string]file) []byte { return agenttest.TGZ(t, files) }

func (w *world) blob(t *testing.T, name, version string, b []byte) agent.BlobRef {
	return w.Blob(t, name, version, b)
}

func (w *world) call(t *testing.T, agentID, method string, args ...any) (json.RawMessage, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return w.Director.Call(ctx, agentID, method, args...)
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(raw, &v), string(raw))
	return v
}

// release is a package and a job's rendered templates, as the director
// would upload them: the job's process is the package's program; its
// drain script answers -1 once, then 0, noting its arguments.
func (w *world) spec(t *testing.T, root, configHash string) *agent.ApplySpec {
	t.Helper()
	pkg := w.blob(t, "greeter", "1.0", tgz(t, map[string]file{
		"bin/greet": {Mode: 0o755, Body: `#!/bin/sh
trap 'echo term >> "$MARKS"; exit 0' TERM
echo "greeting $GREETING"
while :; do sleep 0.05; done
`},
	}))
	marks := filepath.Join(root, "sys", "log", "web", "marks")
	rendered := w.blob(t, "", "", tgz(t, map[string]file{
		"web/config/bpm.yml": {Mode: 0o644, Body: `processes:
- name: greeter
  executable: /var/vcap/packages/greeter/bin/greet
  env: {GREETING: "` + configHash + `", MARKS: /var/vcap/sys/log/web/marks}
`},
		"web/bin/drain": {Mode: 0o755, Body: `#!/bin/sh
echo "$@" >> ` + marks + `
echo "next:$BOSH_JOB_NEXT_STATE" >> ` + marks + `.next
if [ "$1" = job_check_status ]; then echo 0; else echo -1; fi
`},
		"web/bin/post-start":     {Mode: 0o755, Body: "#!/bin/sh\necho post-start ran\n"},
		"sidecar/bin/post-start": {Mode: 0o755, Body: "#!/bin/sh\necho no upstream >&2\nexit 2\n"},
	}))
	return &agent.ApplySpec{
		Deployment: "cf", Job: agent.JobSpec{Name: "web-ig", Templates: []agent.JobRef{{Name: "web", Version: "abc"}, {Name: "sidecar", Version: "def"}}},
		Index: 2, ID: "3f1c-uuid", AZ: "z1", ConfigurationHash: configHash,
		Packages:                 map[string]agent.BlobRef{"greeter": pkg},
		RenderedTemplatesArchive: &rendered,
	}
}

func TestAgentEndToEnd(t *testing.T) {
	w := newWorld(t)
	const id = "agent-e2e"
	root := t.TempDir()
	a := w.startAgent(t, w.settings(t, id), root)
	closed := false
	defer func() {
		if !closed {
			a.Close()
		}
	}()

	var hbMu sync.Mutex
	var hbs []mbus.Heartbeat
	hctx, hcancel := context.WithCancel(t.Context())
	defer hcancel()
	require.NoError(t, w.Director.Heartbeats(hctx, func(agentID string, hb mbus.Heartbeat) {
		if agentID == id {
			hbMu.Lock()
			hbs = append(hbs, hb)
			hbMu.Unlock()
		}
	}))
	lastHB := func() (mbus.Heartbeat, bool) {
		hbMu.Lock()
		defer hbMu.Unlock()
		if len(hbs) == 0 {
			return mbus.Heartbeat{}, false
		}
		return hbs[len(hbs)-1], true
	}

	v, err := w.call(t, id, "ping")
	require.NoError(t, err)
	assert.Equal(t, "pong", decode[string](t, v))

	v, err = w.call(t, id, "get_state")
	require.NoError(t, err)
	st := decode[map[string]any](t, v)
	assert.Equal(t, id, st["agent_id"])
	assert.Equal(t, "running", st["job_state"], "no process, nothing failing: as bosh-agent says of an empty monit")
	assert.Equal(t, map[string]any{"name": "vm-" + id}, st["vm"])

	spec := w.spec(t, root, "hash-1")
	v, err = w.call(t, id, "apply", spec)
	require.NoError(t, err)
	assert.Equal(t, "applied", decode[string](t, v))
	l := a.Layout()
	assert.FileExists(t, filepath.Join(l.PackageLink("greeter"), "bin", "greet"))
	assert.FileExists(t, filepath.Join(l.JobLink("web"), "config", "bpm.yml"))
	assert.FileExists(t, filepath.Join(l.JobLink("sidecar"), "bin", "post-start"))

	v, err = w.call(t, id, "start")
	require.NoError(t, err)
	assert.Equal(t, "started", decode[string](t, v))
	agenttest.Eventually(t, func() bool {
		v, err := w.call(t, id, "get_state")
		return err == nil && decode[map[string]any](t, v)["job_state"] == "running"
	}, "the job never runs")
	assert.Contains(t, readFile(t, filepath.Join(l.LogDir("web"), "greeter.stdout.log")), "greeting hash-1")

	v, err = w.call(t, id, "get_state", "full")
	require.NoError(t, err)
	st = decode[map[string]any](t, v)
	assert.Equal(t, "cf", st["deployment"])
	assert.EqualValues(t, 2, st["index"])
	assert.Equal(t, "hash-1", st["configuration_hash"])
	procs := st["processes"].([]any)
	require.Len(t, procs, 1)
	assert.Equal(t, "greeter", procs[0].(map[string]any)["name"])
	assert.Equal(t, "running", procs[0].(map[string]any)["state"])
	require.Contains(t, st, "vitals")
	assert.Contains(t, st["vitals"].(map[string]any)["disk"], "system")

	agenttest.Eventually(t, func() bool { hb, ok := lastHB(); return ok && hb.JobState == "running" }, "no heartbeat saying running")
	hb, _ := lastHB()
	assert.Equal(t, "cf", hb.Deployment)
	require.NotNil(t, hb.Job)
	assert.Equal(t, "web-ig", *hb.Job)
	require.NotNil(t, hb.Index)
	assert.Equal(t, 2, *hb.Index)
	assert.Equal(t, "3f1c-uuid", hb.NodeID)
	assert.Equal(t, 1, hb.NumberOfProcesses)

	v, err = w.call(t, id, "run_script", "post-start", map[string]any{})
	require.Error(t, err, "the sidecar's post-start fails")
	var ae *mbus.AgentError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, ae.Message, "1 of 2 post-start scripts failed. Failed Jobs: sidecar. Successful Jobs: web.")
	assert.Contains(t, ae.Message, "exit status 2")
	assert.Contains(t, readFile(t, filepath.Join(l.LogDir("web"), "post-start.stdout.log")), "post-start ran")
	assert.Contains(t, readFile(t, filepath.Join(l.LogDir("sidecar"), "post-start.stderr.log")), "no upstream")
	_ = v

	next := *spec
	next.ConfigurationHash = "hash-2"
	next.PersistentDisk = 2048
	start := time.Now()
	v, err = w.call(t, id, "drain", "update", next)
	require.NoError(t, err)
	assert.EqualValues(t, 0, decode[int](t, v))
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "waited the second the drain script asked for")
	assert.Equal(t, "job_unchanged hash_changed\njob_check_status hash_unchanged\n", readFile(t, filepath.Join(l.LogDir("web"), "marks")),
		"asked with the update's arguments, then again for its status after the wait")
	assert.Contains(t, readFile(t, filepath.Join(l.LogDir("web"), "marks.next")), `next:{"persistent_disk":2048}`,
		"the next spec in BOSH_JOB_NEXT_STATE, as bosh-agent presents it")

	_, err = w.call(t, id, "drain", "shutdown")
	require.NoError(t, err)
	assert.Contains(t, readFile(t, filepath.Join(l.LogDir("web"), "marks")), "job_check_status hash_unchanged\njob_shutdown hash_unchanged\n")
	_, err = w.call(t, id, "drain", "sideways")
	assert.ErrorContains(t, err, `unknown drain type "sideways"`)
	_, err = w.call(t, id, "drain", "update")
	assert.ErrorContains(t, err, "want the new spec")

	v, err = w.call(t, id, "stop")
	require.NoError(t, err)
	assert.Equal(t, "stopped", decode[string](t, v))
	assert.Contains(t, readFile(t, filepath.Join(l.LogDir("web"), "marks")), "term\n", "the process was stopped with TERM")
	v, err = w.call(t, id, "get_state")
	require.NoError(t, err)
	assert.Equal(t, "stopped", decode[map[string]any](t, v)["job_state"])

	// A new agent on the same root (the VM rebooted) knows what it was
	// given.
	a.Close()
	closed = true
	b := w.startAgent(t, w.settings(t, id), root)
	defer b.Close()
	v, err = w.call(t, id, "get_state")
	require.NoError(t, err)
	st = decode[map[string]any](t, v)
	assert.Equal(t, "hash-1", st["configuration_hash"])
	assert.Equal(t, "web-ig", st["job"].(map[string]any)["name"])
}

func TestApplyRefusesABlobThatIsNotWhatTheSpecSays(t *testing.T) {
	w := newWorld(t)
	const id = "agent-digest"
	root := t.TempDir()
	a := w.startAgent(t, w.settings(t, id), root)
	defer a.Close()

	spec := w.spec(t, root, "h")
	other := w.blob(t, "greeter", "1.0", []byte("not the package"))
	p := spec.Packages["greeter"]
	p.SHA1 = other.SHA1 // the package's bytes, another blob's digest
	spec.Packages["greeter"] = p
	_, err := w.call(t, id, "apply", spec)
	var ae *mbus.AgentError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, ae.Message, "package greeter/1.0")
	assert.Contains(t, strings.ToLower(ae.Message), "digest")
	assert.NoDirExists(t, a.Layout().PackageDir("greeter", "1.0"), "nothing unpacked")
	assert.NoFileExists(t, a.Layout().PackageLink("greeter"))
	entries, _ := os.ReadDir(filepath.Join(root, "data", "tmp"))
	assert.Empty(t, entries, "no download left behind")

	v, err := w.call(t, id, "get_state")
	require.NoError(t, err)
	assert.NotContains(t, decode[map[string]any](t, v), "deployment", "no spec recorded")

	// A spec that is not whole is refused naming every field.
	_, err = w.call(t, id, "apply", agent.ApplySpec{Job: agent.JobSpec{Templates: []agent.JobRef{{Name: "../x", Version: "1"}}},
		Packages: map[string]agent.BlobRef{"p": {Version: "1"}}})
	require.ErrorAs(t, err, &ae)
	for _, f := range []string{"job.templates[0].name", "packages.p.blobstore_id", "packages.p.sha1", "rendered_templates_archive"} {
		assert.Contains(t, ae.Message, f)
	}
}

func TestApplyRefusesATarballThatLeavesItsDirectory(t *testing.T) {
	w := newWorld(t)
	const id = "agent-tar"
	root := t.TempDir()
	a := w.startAgent(t, w.settings(t, id), root)
	defer a.Close()
	spec := w.spec(t, root, "h")
	spec.Packages["greeter"] = w.blob(t, "greeter", "1.0", tgz(t, map[string]file{"../../escaped": {Mode: 0o644, Body: "x"}}))
	_, err := w.call(t, id, "apply", spec)
	var ae *mbus.AgentError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, ae.Message, "leaves the directory")
	assert.NoFileExists(t, filepath.Join(root, "..", "escaped"))
	assert.NoFileExists(t, filepath.Join(root, "data", "escaped"))
}

func TestStartValidatesSettings(t *testing.T) {
	_, err := agent.Start(t.Context(), agent.Config{Settings: cpi.AgentSettings{AgentID: "a b", Blobstore: map[string]any{"provider": "s3"}}})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	for _, f := range []string{"Root", "settings.agent_id", "settings.env.bosh.mbus.cert.certificate", "settings.env.bosh.mbus.cert.private_key",
		"settings.blobstore.provider", "settings.blobstore.options.endpoint"} {
		assert.Contains(t, fields, f)
	}
}

func TestDecodeGuestinfoSettings(t *testing.T) {
	s, err := agent.DecodeGuestinfoSettings("eyJhZ2VudF9pZCI6ImEtMSIsIm1idXMiOiJ0bHM6Ly8xMC4wLjAuNDo0MjIyIn0=", "base64")
	require.NoError(t, err)
	assert.Equal(t, "a-1", s.AgentID)
	assert.Equal(t, "tls://10.0.0.4:4222", s.MBus)
	_, err = agent.DecodeGuestinfoSettings("{}", "gzip")
	assert.ErrorIs(t, err, kubefoundry.ErrInvalid)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return ""
	}
	require.NoError(t, err)
	return string(b)
}

func TestApplyEdges(t *testing.T) {
	w := newWorld(t)
	const id = "agent-edges"
	root := t.TempDir()
	a := w.startAgent(t, w.settings(t, id), root)
	l := a.Layout()
	var ae *mbus.AgentError

	// Names that would leave their directory, each named.
	spec := w.spec(t, root, "h")
	spec.Job.Templates = append(spec.Job.Templates, agent.JobRef{Name: "..", Version: "1"}, agent.JobRef{Name: "x", Version: "."})
	spec.Packages[""] = agent.BlobRef{Version: "1", BlobstoreID: "b", SHA1: spec.Packages["greeter"].SHA1}
	_, err := w.call(t, id, "apply", spec)
	require.ErrorAs(t, err, &ae)
	for _, f := range []string{"job.templates[2].name", "job.templates[3].version", "packages."} {
		assert.Contains(t, ae.Message, f)
	}

	// A blob by its signed URL alone is enough; a job the archive lacks
	// is named.
	spec = w.spec(t, root, "h")
	spec.Job.Templates = append(spec.Job.Templates, agent.JobRef{Name: "missing", Version: "1"})
	p := spec.Packages["greeter"]
	p.BlobstoreID = ""
	spec.Packages["greeter"] = p
	_, err = w.call(t, id, "apply", spec)
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, ae.Message, "has no directory for job missing")

	// Absolute names in a tarball are refused.
	spec = w.spec(t, root, "h")
	spec.Packages["greeter"] = w.blob(t, "greeter", "abs", tgz(t, map[string]file{"/etc/evil": {Mode: 0o644, Body: "x"}}))
	_, err = w.call(t, id, "apply", spec)
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, ae.Message, "leaves the directory")

	// A job dropped from the spec loses its link.
	spec = w.spec(t, root, "h")
	_, err = w.call(t, id, "apply", spec)
	require.NoError(t, err)
	assert.True(t, isDir(l.JobLink("sidecar")))
	spec.Job.Templates = spec.Job.Templates[:1]
	_, err = w.call(t, id, "apply", spec)
	require.NoError(t, err)
	assert.False(t, isDir(l.JobLink("sidecar")), "sidecar is gone")
	assert.True(t, isDir(l.JobLink("web")))
	// With no jobs at all, no rendered archive is needed.
	spec.Job.Templates, spec.RenderedTemplatesArchive = nil, nil
	_, err = w.call(t, id, "apply", spec)
	require.NoError(t, err)
	assert.False(t, isDir(l.JobLink("web")), "no jobs, no links")
}

func TestApplyByIDWithCredentials(t *testing.T) {
	w := newWorld(t)
	const id = "agent-by-id"
	s := w.settings(t, id)
	opts := s.Blobstore["options"].(map[string]any)
	opts["user"], opts["password"] = "director", "director-password"
	root := t.TempDir()
	a := w.startAgent(t, s, root)
	spec := w.spec(t, root, "h")
	for name, p := range spec.Packages {
		p.SignedURL = ""
		spec.Packages[name] = p
	}
	spec.RenderedTemplatesArchive.SignedURL = ""
	_, err := w.call(t, id, "apply", spec)
	require.NoError(t, err)
	assert.FileExists(t, filepath.Join(a.Layout().PackageLink("greeter"), "bin", "greet"))
}

func TestApplyBoundsWhatABlobUnpacksTo(t *testing.T) {
	w := newWorld(t)
	const id = "agent-bound"
	root := t.TempDir()
	a, err := agent.Start(t.Context(), agent.Config{Settings: w.settings(t, id), Root: root, MaxBlobSize: 100, HeartbeatInterval: time.Second})
	require.NoError(t, err)
	defer a.Close()
	spec := w.spec(t, root, "h")
	spec.Packages["greeter"] = w.blob(t, "greeter", "big", tgz(t, map[string]file{"a": {Mode: 0o644, Body: strings.Repeat("x", 60)}, "b": {Mode: 0o644, Body: strings.Repeat("y", 60)}}))
	_, err = w.call(t, id, "apply", spec)
	var ae *mbus.AgentError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, ae.Message, "more than 100 bytes")

	_, err = agent.Start(t.Context(), agent.Config{Settings: w.settings(t, id), Root: root, HeartbeatInterval: -time.Second})
	assert.ErrorContains(t, err, "HeartbeatInterval")
}

// isDir follows links.
func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// TestApplyCutShortIsTakenUp: an apply that fails half-way (the second
// package's blob is not what its digest says) keeps what it finished;
// the apply run again fetches only what is missing (the first package's
// blob is gone from the blobstore by then, so fetching it again would
// fail).
func TestApplyCutShortIsTakenUp(t *testing.T) {
	w := newWorld(t)
	const id = "agent-resume"
	root := t.TempDir()
	a := w.startAgent(t, w.settings(t, id), root)
	spec := w.spec(t, root, "h")
	good := w.blob(t, "acl", "1", tgz(t, map[string]file{"lib/libacl.so": {Mode: 0o644, Body: "acl"}}))
	spec.Packages["acl"] = good
	bad := spec.Packages["greeter"]
	bad.SHA1 = good.SHA1
	spec.Packages["greeter"] = bad
	_, err := w.call(t, id, "apply", spec)
	require.Error(t, err, "greeter's digest is wrong")
	assert.FileExists(t, filepath.Join(a.Layout().PackageDir("greeter", "1.0"), "..", "..", "acl", "1", "lib", "libacl.so"),
		"acl, fetched before greeter (by name order), is kept")

	require.NoError(t, w.Store.Delete(t.Context(), good.BlobstoreID))
	spec = w.spec(t, root, "h")
	spec.Packages["acl"] = good
	_, err = w.call(t, id, "apply", spec)
	require.NoError(t, err, "acl is not fetched again")
	assert.FileExists(t, filepath.Join(a.Layout().PackageLink("acl"), "lib", "libacl.so"))
	assert.FileExists(t, filepath.Join(a.Layout().PackageLink("greeter"), "bin", "greet"))
}

// TestErrandsAndLogs: run_errand runs a job's bin/run and answers its exit
// code and output, a failing errand being a result, not an error;
// fetch_logs packs sys/log and uploads it, by id with the agent's
// credentials or to the director's signed URL.
func TestErrandsAndLogs(t *testing.T) {
	w := newWorld(t)
	const id = "agent-errand"
	s := w.settings(t, id)
	opts := s.Blobstore["options"].(map[string]any)
	opts["user"], opts["password"] = "director", "director-password"
	root := t.TempDir()
	w.startAgent(t, s, root)
	spec := w.spec(t, root, "h")
	errand := w.blob(t, "", "", tgz(t, map[string]file{
		"smoke/bin/run":      {Mode: 0o755, Body: "#!/bin/sh\necho \"checked $BOSH_JOB_NAME\"\necho 'one check failed' >&2\nexit 3\n"},
		"web/bin/post-start": {Mode: 0o755, Body: "#!/bin/sh\necho post-start ran\n"},
	}))
	spec.Job.Templates = []agent.JobRef{{Name: "web", Version: "abc"}, {Name: "smoke", Version: "1"}}
	spec.RenderedTemplatesArchive = &errand
	_, err := w.call(t, id, "apply", spec)
	require.NoError(t, err)

	// Jobs with no bpm.yml: started, nothing runs, nothing fails.
	_, err = w.call(t, id, "start")
	require.NoError(t, err)
	v, err := w.call(t, id, "get_state")
	require.NoError(t, err)
	assert.Equal(t, "running", decode[map[string]any](t, v)["job_state"], "an instance of scripts only is running, as for BOSH")

	v, err = w.call(t, id, "run_errand")
	require.NoError(t, err, "a failing errand is a result")
	res := decode[agent.ErrandResult](t, v)
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, "checked smoke\n", res.Stdout)
	assert.Equal(t, "one check failed\n", res.Stderr)
	_, err = w.call(t, id, "run_errand", "web")
	assert.ErrorContains(t, err, "no applied job web with bin/run")
	_, err = w.call(t, id, "run_script", "post-start", map[string]any{})
	require.NoError(t, err)

	v, err = w.call(t, id, "fetch_logs", "job", []string{})
	require.NoError(t, err)
	out := decode[map[string]string](t, v)
	rc, err := w.Store.Get(t.Context(), out["blobstore_id"])
	require.NoError(t, err)
	files := untgz(t, rc)
	assert.Equal(t, "checked smoke\n", files["./smoke/errand.stdout.log"])
	assert.Equal(t, "post-start ran\n", files["./web/post-start.stdout.log"])
	assert.NotEmpty(t, out["sha1"])

	logID := "log-bundle-1"
	u, err := w.Blobs.Signer().Sign(w.HTTPS.URL, logID, "PUT", time.Now(), time.Minute)
	require.NoError(t, err)
	_, err = w.call(t, id, "fetch_logs_with_signed_url", map[string]any{"signed_url": u, "log_type": "job", "filters": []string{}})
	require.NoError(t, err)
	rc, err = w.Store.Get(t.Context(), logID)
	require.NoError(t, err)
	assert.Contains(t, untgz(t, rc), "./smoke/errand.stderr.log")
	_, err = w.call(t, id, "fetch_logs", "kernel")
	assert.ErrorContains(t, err, `log type "kernel"`)
	left, err := os.ReadDir(filepath.Join(root, "data", "tmp"))
	if !errors.Is(err, fs.ErrNotExist) {
		require.NoError(t, err)
	}
	assert.Empty(t, left, "the bundles are packed in temporary files, removed once sent")
}

func untgz(t *testing.T, rc io.ReadCloser) map[string]string {
	t.Helper()
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[h.Name] = string(b)
	}
}

// TestSyncDNS: the records blob is written whole where the VM's resolver
// reads it, by id or by signed URL; an older or equal version changes
// nothing; a blob that is not what its digest says writes nothing.
func TestSyncDNS(t *testing.T) {
	w := newWorld(t)
	const id = "agent-dns"
	s := w.settings(t, id)
	opts := s.Blobstore["options"].(map[string]any)
	opts["user"], opts["password"] = "director", "director-password"
	root := t.TempDir()
	w.startAgent(t, s, root)
	path := filepath.Join(root, agent.DNSRecordsPath)

	v2 := w.blob(t, "", "", []byte(`{"version":2,"records":[["10.0.0.10","web-0.example"]]}`))
	v, err := w.call(t, id, "sync_dns", v2.BlobstoreID, v2.SHA1.String(), 2)
	require.NoError(t, err)
	assert.Equal(t, "synced", decode[string](t, v))
	assert.Contains(t, readFile(t, path), `"web-0.example"`)

	v1 := w.blob(t, "", "", []byte(`{"version":1,"records":[]}`))
	_, err = w.call(t, id, "sync_dns_with_signed_url", map[string]any{"signed_url": v1.SignedURL, "multi_digest": v1.SHA1.String(), "version": 1})
	require.NoError(t, err)
	assert.Contains(t, readFile(t, path), `"version":2`, "an older version changes nothing")

	v3 := w.blob(t, "", "", []byte(`{"version":3,"records":[]}`))
	_, err = w.call(t, id, "sync_dns_with_signed_url", map[string]any{"signed_url": v3.SignedURL, "multi_digest": v2.SHA1.String(), "version": 3})
	require.Error(t, err, "v3's bytes with v2's digest")
	assert.Contains(t, readFile(t, path), `"version":2`)
	_, err = w.call(t, id, "sync_dns_with_signed_url", map[string]any{"signed_url": v3.SignedURL, "multi_digest": v3.SHA1.String(), "version": 3})
	require.NoError(t, err)
	assert.Equal(t, `{"version":3,"records":[]}`, readFile(t, path))
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no download left behind")

	notJSON := w.blob(t, "", "", []byte("web-0 10.0.0.10"))
	_, err = w.call(t, id, "sync_dns", notJSON.BlobstoreID, notJSON.SHA1.String(), 4)
	assert.ErrorContains(t, err, "not JSON")
	_, err = w.call(t, id, "sync_dns", "only-an-id")
	assert.ErrorContains(t, err, "want [blobstore_id, sha1, version]")
}

// TestApplyRefusesLinksChainedOutOfTheDirectory: each link stays inside
// on paper (d/l -> .., d/l/m -> ..), but followed one through the other
// they lead out; the file under them is refused, nothing is written
// outside.
func TestApplyRefusesLinksChainedOutOfTheDirectory(t *testing.T) {
	w := newWorld(t)
	const id = "agent-chain"
	root := t.TempDir()
	w.startAgent(t, w.settings(t, id), root)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: ".."},
		{Name: "d/l/m", Typeflag: tar.TypeSymlink, Linkname: ".."},
	} {
		require.NoError(t, tw.WriteHeader(h))
	}
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "d/l/m/escaped.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
	_, err := tw.Write([]byte("x"))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())

	spec := w.spec(t, root, "h")
	spec.Packages["greeter"] = w.blob(t, "greeter", "chain", buf.Bytes())
	_, err = w.call(t, id, "apply", spec)
	var ae *mbus.AgentError
	require.ErrorAs(t, err, &ae)
	assert.Contains(t, ae.Message, "leaves the directory")
	found := false
	_ = filepath.WalkDir(filepath.Dir(root), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "escaped.txt" {
			found = true
		}
		return nil
	})
	assert.False(t, found, "escaped.txt was written")
}

// TestApplyKeepsOnlyWhatTheSpecNames: after an apply, the package and job
// versions the spec no longer names are gone, and so are the links of
// packages it dropped.
func TestApplyKeepsOnlyWhatTheSpecNames(t *testing.T) {
	w := newWorld(t)
	const id = "agent-keep"
	root := t.TempDir()
	a := w.startAgent(t, w.settings(t, id), root)
	l := a.Layout()
	spec := w.spec(t, root, "h1")
	spec.Packages["extra"] = w.blob(t, "extra", "1", tgz(t, map[string]file{"x": {Mode: 0o644, Body: "x"}}))
	_, err := w.call(t, id, "apply", spec)
	require.NoError(t, err)
	oldJob, err := filepath.EvalSymlinks(l.JobLink("web"))
	require.NoError(t, err)

	next := w.spec(t, root, "h2")
	p := next.Packages["greeter"]
	p.Version = "2.0"
	next.Packages["greeter"] = p
	_, err = w.call(t, id, "apply", next)
	require.NoError(t, err)
	assert.NoDirExists(t, l.PackageDir("greeter", "1.0"), "the old version is gone")
	assert.DirExists(t, l.PackageDir("greeter", "2.0"))
	assert.NoDirExists(t, filepath.Join(root, "data", "packages", "extra"), "a dropped package is gone")
	assert.NoFileExists(t, l.PackageLink("extra"), "and its link")
	assert.NoDirExists(t, oldJob, "the old rendered job is gone")
	assert.True(t, isDir(l.JobLink("web")), "the applied one is there")
	assert.FileExists(t, filepath.Join(l.PackageLink("greeter"), "bin", "greet"))
}

// TestAlertsForFailingProcesses: a process that exits is an alert on the
// bus, as bosh-agent forwards monit's.
func TestAlertsForFailingProcesses(t *testing.T) {
	w := newWorld(t)
	const id = "agent-alerts"
	w.startAgent(t, w.settings(t, id), t.TempDir())
	alerts := make(chan mbus.Alert, 16)
	actx, acancel := context.WithCancel(t.Context())
	defer acancel()
	require.NoError(t, w.Director.Alerts(actx, func(agentID string, a mbus.Alert) {
		if agentID == id {
			select {
			case alerts <- a:
			default:
			}
		}
	}))
	pkg := w.blob(t, "crasher", "1", tgz(t, map[string]file{"bin/crash": {Mode: 0o755, Body: "#!/bin/sh\necho no config >&2\nexit 3\n"}}))
	rendered := w.blob(t, "", "", tgz(t, map[string]file{
		"api/config/bpm.yml": {Mode: 0o644, Body: "processes:\n- name: api\n  executable: /var/vcap/packages/crasher/bin/crash\n"}}))
	spec := &agent.ApplySpec{Deployment: "cf", Job: agent.JobSpec{Name: "api-ig", Templates: []agent.JobRef{{Name: "api", Version: "1"}}},
		Packages: map[string]agent.BlobRef{"crasher": pkg}, RenderedTemplatesArchive: &rendered}
	_, err := w.call(t, id, "apply", spec)
	require.NoError(t, err)
	_, err = w.call(t, id, "start")
	require.NoError(t, err)
	select {
	case a := <-alerts:
		assert.Equal(t, 1, a.Severity)
		assert.Equal(t, "api/api - Does not exist - restart", a.Title)
		assert.Contains(t, a.Summary, "exit status 3")
		assert.NotEmpty(t, a.ID)
		assert.InDelta(t, time.Now().Unix(), a.CreatedAt, 60)
	case <-time.After(30 * time.Second):
		t.Fatal("no alert for a process that exits")
	}
}

// TestCancelledErrandIsTerminated: an errand whose task is cancelled gets
// SIGTERM, and the time to finish what it was doing, before SIGKILL.
func TestCancelledErrandIsTerminated(t *testing.T) {
	w := newWorld(t)
	const id = "agent-cancel"
	root := t.TempDir()
	w.startAgent(t, w.settings(t, id), root)
	rendered := w.blob(t, "", "", tgz(t, map[string]file{
		"smoke/bin/run": {Mode: 0o755, Body: "#!/bin/sh\ntrap 'echo got term; exit 7' TERM\necho started\nwhile :; do sleep 0.05; done\n"}}))
	spec := &agent.ApplySpec{Deployment: "cf", Job: agent.JobSpec{Name: "smoke", Templates: []agent.JobRef{{Name: "smoke", Version: "1"}}},
		Packages: map[string]agent.BlobRef{}, RenderedTemplatesArchive: &rendered}
	_, err := w.call(t, id, "apply", spec)
	require.NoError(t, err)
	log := filepath.Join(root, "sys", "log", "smoke", "errand.stdout.log")
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		agenttest.Eventually(t, func() bool {
			b, _ := os.ReadFile(log)
			return strings.Contains(string(b), "started")
		}, "the errand did not start")
		cancel()
	}()
	_, err = w.Director.Call(ctx, id, "run_errand", "smoke")
	require.Error(t, err, "the call ends with its ctx")
	agenttest.Eventually(t, func() bool {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), "got term")
	}, "the cancelled errand was not sent SIGTERM")
}
