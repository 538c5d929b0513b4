package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/transport/transporttest"
)

const (
	testUser     = "director"
	testPassword = "director-password-a91f"
	testSecret   = "signing-secret-0123456789-7c2e"
)

// env is a blobstore Server on a Local store behind real HTTPS on
// loopback, with the director's client (basic auth) and an agent's
// client (signed URLs only), both trusting the server's certificate.
type env struct {
	store    *Local
	srv      *Server
	https    *httptest.Server
	ca       string
	director *Client
	agent    *Client
	logs     *observer.ObservedLogs
}

func testServerConfig() ServerConfig {
	return ServerConfig{Username: testUser, Password: testPassword, Secret: testSecret}
}

// newEnv starts the server; wrap, when given, stands between the
// listener and the Server (a misbehaving front end).
func newEnv(t *testing.T, cfg ServerConfig, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	store, err := NewLocal(filepath.Join(t.TempDir(), "store"))
	require.NoError(t, err)
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	srv, err := NewServer(store, cfg, WithLogger(log))
	require.NoError(t, err)
	var h http.Handler = srv
	if wrap != nil {
		h = wrap(srv)
	}
	ts, ca := startTLS(t, h)
	e := &env{store: store, srv: srv, https: ts, ca: ca, logs: logs}
	e.director = newClient(t, Config{URL: ts.URL, Username: testUser, Password: testPassword, CACert: ca}, WithLogger(log))
	e.agent = newClient(t, Config{URL: ts.URL, CACert: ca}, WithLogger(log))
	t.Cleanup(func() { e.assertNoSecretLogged(t) })
	return e
}

// startTLS serves h over HTTPS on 127.0.0.1 until the test ends, and
// returns the server and its certificate in PEM.
func startTLS(t *testing.T, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))
}

func newClient(t *testing.T, cfg Config, opts ...Option) *Client {
	t.Helper()
	c, err := New(cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// sign returns a URL the server's signer made for verb on id, good for
// an hour from now.
func (e *env) sign(t *testing.T, id, verb string) string {
	t.Helper()
	u, err := e.srv.Signer().Sign(e.https.URL, id, verb, time.Now(), time.Hour)
	require.NoError(t, err)
	return u
}

// assertNoSecretLogged checks every log entry, fields included, for the
// password, the secret and any signature.
func (e *env) assertNoSecretLogged(t *testing.T) {
	for _, entry := range e.logs.All() {
		line := entry.Message + fmt.Sprint(entry.ContextMap())
		for _, secret := range []string{testPassword, testSecret, "st="} {
			assert.NotContains(t, line, secret, "logged: %s", line)
		}
	}
}

// storedFiles lists the files of the store, temporary ones included.
func (e *env) storedFiles(t *testing.T) []string { return files(t, e.store.Dir()) }

func readAll(t *testing.T, rc io.ReadCloser) string {
	t.Helper()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	return string(b)
}

// statusCode is the code of the *StatusError in err, or 0.
func statusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestDirectorRoundTrip(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()

	id, d, err := e.director.Put(ctx, strings.NewReader("abc"))
	require.NoError(t, err)
	require.NoError(t, ValidateID(id))
	assert.Equal(t, abcSHA1+";sha256:"+abcSHA256, d.String())
	assert.Equal(t, []string{filepath.Join(Prefix(id), id)}, e.storedFiles(t), "the DAV layout <prefix>/<id>, no temporary file")

	ok, err := e.director.Exists(ctx, id)
	require.NoError(t, err)
	assert.True(t, ok)
	rc, err := e.director.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "abc", readAll(t, rc))

	// PutID replaces, and the stored digest comes back.
	d, err = e.director.PutID(ctx, id, bytes.NewReader([]byte("xyz")))
	require.NoError(t, err)
	want, _ := DigestOf(strings.NewReader("xyz"))
	assert.Equal(t, want, d)
	rc, err = e.director.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "xyz", readAll(t, rc))

	require.NoError(t, e.director.Delete(ctx, id))
	ok, err = e.director.Exists(ctx, id)
	require.NoError(t, err)
	assert.False(t, ok)
	_, err = e.director.Get(ctx, id)
	assert.True(t, kubefoundry.IsNotFound(err), "got %v", err)
	assert.Equal(t, http.StatusNotFound, statusCode(err))
	require.NoError(t, e.director.Delete(ctx, id), "deleting a missing blob is fine")

	// The wire: what davcli and nginx exchange.
	req, _ := http.NewRequest(http.MethodPut, e.https.URL+"/"+PrefixedID("wire"), strings.NewReader("abc"))
	req.SetBasicAuth(testUser, testPassword)
	res, err := e.https.Client().Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusCreated, res.StatusCode)
	assert.Equal(t, abcSHA1+";sha256:"+abcSHA256, res.Header.Get(DigestHeader))
	req, _ = http.NewRequest(http.MethodGet, e.https.URL+"/"+PrefixedID("wire"), nil)
	req.SetBasicAuth(testUser, testPassword)
	req.Header.Set("Range", "bytes=1-")
	res, err = e.https.Client().Do(req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusPartialContent, res.StatusCode, "a range, to resume a download")
	assert.Equal(t, "bc", readAll(t, res.Body))
	req, _ = http.NewRequest(http.MethodPost, e.https.URL+"/"+PrefixedID("wire"), nil)
	req.SetBasicAuth(testUser, testPassword)
	res, err = e.https.Client().Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
}

func TestDirectorWrongCredentials(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()
	id, _, err := e.director.Put(ctx, strings.NewReader("abc"))
	require.NoError(t, err)

	clients := map[string]*Client{
		"wrong password": newClient(t, Config{URL: e.https.URL, Username: testUser, Password: "wrong", CACert: e.ca}),
		"wrong username": newClient(t, Config{URL: e.https.URL, Username: "agent", Password: testPassword, CACert: e.ca}),
		"none":           e.agent,
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			_, _, err := c.Put(ctx, strings.NewReader("evil"))
			assert.ErrorIs(t, err, kubefoundry.ErrUnauthorized)
			_, err = c.PutID(ctx, id, strings.NewReader("evil"))
			assert.ErrorIs(t, err, kubefoundry.ErrUnauthorized)
			_, err = c.Get(ctx, id)
			assert.ErrorIs(t, err, kubefoundry.ErrUnauthorized)
			assert.Equal(t, http.StatusUnauthorized, statusCode(err))
			_, err = c.Exists(ctx, id)
			assert.ErrorIs(t, err, kubefoundry.ErrUnauthorized)
			assert.ErrorIs(t, c.Delete(ctx, id), kubefoundry.ErrUnauthorized)
		})
	}
	rc, err := e.director.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "abc", readAll(t, rc), "nothing was replaced or deleted")
	assert.Len(t, e.storedFiles(t), 1, "nothing was stored")
}

func TestAgentSignedGet(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()
	blob := make([]byte, 3<<20+17)
	_, _ = rand.Read(blob)
	id, d, err := e.director.Put(ctx, bytes.NewReader(blob))
	require.NoError(t, err)

	u := e.sign(t, id, "GET")
	var buf bytes.Buffer
	require.NoError(t, e.agent.Download(ctx, u, d, &buf))
	assert.Equal(t, blob, buf.Bytes())

	// Only the SHA-1 form, as old releases record it.
	sha1Only, _ := d.Get(SHA1)
	old, err := NewDigest(sha1Only)
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), "pkg.tgz")
	require.NoError(t, e.agent.DownloadFile(ctx, u, old, dst))
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.Equal(t, blob, got)
	assert.Equal(t, []string{"pkg.tgz"}, files(t, filepath.Dir(dst)), "no temporary file left")

	// The director's client downloads with a signed URL too, and sends
	// no credentials with it: the server sees none.
	var sawAuth atomic.Int32
	e2 := newEnv(t, testServerConfig(), func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, _, ok := r.BasicAuth(); ok && strings.HasPrefix(r.URL.Path, "/signed/") {
				sawAuth.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	id2, d2, err := e2.director.Put(ctx, strings.NewReader("abc"))
	require.NoError(t, err)
	require.NoError(t, e2.director.Download(ctx, e2.sign(t, id2, "GET"), d2, io.Discard))
	_, err = e2.director.PutSigned(ctx, e2.sign(t, NewID(), "PUT"), strings.NewReader("log"))
	require.NoError(t, err)
	assert.Zero(t, sawAuth.Load(), "credentials never go with a signed URL")

	// HEAD with a GET or a HEAD signature; the body is not sent.
	for _, verb := range []string{"GET", "HEAD"} {
		res, err := e.https.Client().Head(e.sign(t, id, verb))
		require.NoError(t, err)
		_ = res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode, verb)
		assert.Equal(t, int64(len(blob)), res.ContentLength, verb)
	}

	// A signed GET of a blob that is not there, once the signature is
	// good, is a 404.
	err = e.agent.Download(ctx, e.sign(t, "missing", "GET"), d, io.Discard)
	assert.True(t, kubefoundry.IsNotFound(err), "got %v", err)
}

func TestSignedRequestsRefused(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()
	id, d, err := e.director.Put(ctx, strings.NewReader("abc"))
	require.NoError(t, err)
	other, err := NewSigner(testSecret + "-other")
	require.NoError(t, err)

	good := e.sign(t, id, "GET")
	mod := func(u, k, v string) string {
		pu, err := url.Parse(u)
		require.NoError(t, err)
		q := pu.Query()
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		pu.RawQuery = q.Encode()
		return pu.String()
	}
	st := func(u string) string { pu, _ := url.Parse(u); return pu.Query().Get("st") }
	tampered := []byte(st(good))
	tampered[3] ^= 1
	signedBy := func(s *Signer, id, verb string, at time.Time, ttl time.Duration) string {
		u, err := s.Sign(e.https.URL, id, verb, at, ttl)
		require.NoError(t, err)
		return u
	}
	otherID := NewID()
	_, err = e.director.PutID(ctx, otherID, strings.NewReader("other"))
	require.NoError(t, err)

	tests := []struct {
		name string
		url  string
	}{
		{"expired", signedBy(e.srv.Signer(), id, "GET", time.Now().Add(-2*time.Hour), time.Hour)},
		{"expired two seconds ago", signedBy(e.srv.Signer(), id, "GET", time.Now().Add(-62*time.Second), time.Minute)},
		{"signed in the future", signedBy(e.srv.Signer(), id, "GET", time.Now().Add(time.Hour), time.Hour)},
		{"tampered signature", mod(good, "st", string(tampered))},
		{"longer life", mod(good, "e", "7200")},
		{"no signature", mod(good, "st", "")},
		{"no ts", mod(good, "ts", "")},
		{"no e", mod(good, "e", "")},
		{"no query", strings.Split(good, "?")[0]},
		{"another secret", signedBy(other, id, "GET", time.Now(), time.Hour)},
		{"a PUT signature", e.sign(t, id, "PUT")},
		{"another blob's signature", strings.Replace(good, PrefixedID(id), PrefixedID(otherID), 1)},
	}
	var bodies []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := e.agent.Download(ctx, tc.url, d, &buf)
			require.ErrorIs(t, err, kubefoundry.ErrForbidden)
			assert.Equal(t, http.StatusForbidden, statusCode(err))
			assert.Zero(t, buf.Len())
			if sig := st(tc.url); sig != "" {
				assert.NotContains(t, err.Error(), sig, "the signature is not in the message")
			}

			res, err := e.https.Client().Get(tc.url)
			require.NoError(t, err)
			body := readAll(t, res.Body)
			assert.Equal(t, http.StatusForbidden, res.StatusCode)
			bodies = append(bodies, body)
		})
	}
	// A refusal tells nothing: the same for a blob that is not there.
	res, err := e.https.Client().Get(mod(e.sign(t, "missing", "GET"), "e", "7200"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
	bodies = append(bodies, readAll(t, res.Body))
	for _, b := range bodies {
		assert.Equal(t, bodyForbidden, b)
	}

	// Basic auth does not stand in for a signature, and a signature
	// allows no DELETE.
	req, _ := http.NewRequest(http.MethodGet, strings.Split(good, "?")[0], nil)
	req.SetBasicAuth(testUser, testPassword)
	res, err = e.https.Client().Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
	req, _ = http.NewRequest(http.MethodDelete, good, nil)
	res, err = e.https.Client().Do(req)
	require.NoError(t, err)
	_ = res.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
	ok, err := e.director.Exists(ctx, id)
	require.NoError(t, err)
	assert.True(t, ok)

	// A signed GET does not allow a PUT.
	_, err = e.agent.PutSigned(ctx, e.sign(t, NewID(), "GET"), strings.NewReader("x"))
	assert.ErrorIs(t, err, kubefoundry.ErrForbidden)
	assert.Len(t, e.storedFiles(t), 2)
}

func TestSignedPut(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()
	id := NewID()
	u := e.sign(t, id, "PUT")

	logs := bytes.Repeat([]byte("log line\n"), 100000)
	d, err := e.agent.PutSigned(ctx, u, bytes.NewReader(logs))
	require.NoError(t, err)
	want, _ := DigestOf(bytes.NewReader(logs))
	assert.Equal(t, want, d)
	rc, err := e.director.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, string(logs), readAll(t, rc))

	// A signed PUT never replaces: the same URL again is refused and the
	// blob is left as it was.
	_, err = e.agent.PutSigned(ctx, u, io.MultiReader(strings.NewReader("evil"))) // of unknown length
	assert.ErrorIs(t, err, kubefoundry.ErrAlreadyExists)
	_, err = e.agent.PutSigned(ctx, u, strings.NewReader("evil"))
	assert.ErrorIs(t, err, kubefoundry.ErrAlreadyExists)
	rc, err = e.director.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, string(logs), readAll(t, rc))
	assert.Len(t, e.storedFiles(t), 1)

	// From a file, as fetch_logs uploads its bundle.
	f := filepath.Join(t.TempDir(), "logs.tgz")
	require.NoError(t, os.WriteFile(f, logs[:1000], 0o600))
	fh, err := os.Open(f)
	require.NoError(t, err)
	defer func() { _ = fh.Close() }()
	id2 := NewID()
	_, err = e.agent.PutSigned(ctx, e.sign(t, id2, "put"), fh)
	require.NoError(t, err)
	rc, err = e.director.Get(ctx, id2)
	require.NoError(t, err)
	assert.Equal(t, string(logs[:1000]), readAll(t, rc))

	// Not a signed URL at all.
	for _, bad := range []string{"", "ftp://h/signed/x", e.https.URL + "/" + PrefixedID(id), "https://user:pw@h/signed/" + PrefixedID(id)} {
		_, err = e.agent.PutSigned(ctx, bad, strings.NewReader("x"))
		assert.True(t, kubefoundry.IsInvalid(err), "%q: %v", bad, err)
		assert.NotContains(t, fmt.Sprint(err), "pw@")
	}
}

func TestDownloadDigestMismatch(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()
	id, _, err := e.director.Put(ctx, strings.NewReader("abc"))
	require.NoError(t, err)
	u := e.sign(t, id, "GET")

	wrong, err := ParseDigest(abcSHA1 + ";sha256:" + zero256) // the strongest is wrong
	require.NoError(t, err)
	var buf bytes.Buffer
	err = e.agent.Download(ctx, u, wrong, &buf)
	var m *DigestMismatchError
	require.ErrorAs(t, err, &m)
	assert.True(t, IsDigestMismatch(err))
	assert.Equal(t, Sum{Algorithm: SHA256, Hex: zero256}, m.Expected)
	assert.Equal(t, Sum{Algorithm: SHA256, Hex: abcSHA256}, m.Actual)
	assert.Contains(t, err.Error(), "sha256:"+zero256)
	assert.Contains(t, err.Error(), "sha256:"+abcSHA256)
	assert.NotContains(t, err.Error(), "st=")

	dir := t.TempDir()
	dst := filepath.Join(dir, "pkg.tgz")
	err = e.agent.DownloadFile(ctx, u, wrong, dst)
	require.True(t, IsDigestMismatch(err), "got %v", err)
	assert.Empty(t, files(t, dir), "no partial file, no temporary file")

	// A file already at dst is left as it was.
	require.NoError(t, os.WriteFile(dst, []byte("previous"), 0o600))
	require.True(t, IsDigestMismatch(e.agent.DownloadFile(ctx, u, wrong, dst)))
	got, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.Equal(t, "previous", string(got))
	assert.Equal(t, []string{"pkg.tgz"}, files(t, dir))

	// No digest is no check: refused before anything is fetched.
	err = e.agent.Download(ctx, u, Digest{}, io.Discard)
	assert.True(t, kubefoundry.IsInvalid(err), "got %v", err)
	// A directory that is not there.
	err = e.agent.DownloadFile(ctx, u, wrong, filepath.Join(dir, "no", "such", "dir"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// A server that stored other bytes than were sent (a front end that
// mangles uploads) is found out by the digest it returns.
func TestPutStoredDigestChecked(t *testing.T) {
	e := newEnv(t, testServerConfig(), func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				r.Body = io.NopCloser(io.MultiReader(r.Body, strings.NewReader("!")))
				r.ContentLength = -1
			}
			h.ServeHTTP(w, r)
		})
	})
	_, _, err := e.director.Put(context.Background(), strings.NewReader("abc"))
	require.True(t, IsDigestMismatch(err), "got %v", err)
	assert.Contains(t, err.Error(), "other bytes")
}

func TestTraversalRefused(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()
	root := filepath.Dir(e.store.Dir())
	outside := filepath.Join(root, "secret")
	require.NoError(t, os.WriteFile(outside, []byte("s3cr3t"), 0o600))

	// The client refuses before it sends anything.
	for _, id := range []string{"../secret", "..", "a/b", "", "%2e%2e"} {
		_, err := e.director.Get(ctx, id)
		assert.True(t, kubefoundry.IsInvalid(err), "%q: %v", id, err)
		_, err = e.director.PutID(ctx, id, strings.NewReader("x"))
		assert.True(t, kubefoundry.IsInvalid(err), "%q: %v", id, err)
		assert.True(t, kubefoundry.IsInvalid(e.director.Delete(ctx, id)), id)
		_, err = e.director.Exists(ctx, id)
		assert.True(t, kubefoundry.IsInvalid(err), id)
	}

	// The server refuses raw paths: 400 with credentials, 403 signed.
	sig := e.sign(t, "x", "GET")
	query := sig[strings.Index(sig, "?"):]
	for _, p := range []string{"/../secret", "/00/../../secret", "/00/..%2f..%2fsecret", "/%2e%2e/secret", "/00/.put-1", "/secret", "/", "/00/a/b", "/ff/x"} {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			req, err := http.NewRequest(method, e.https.URL+"/x", strings.NewReader("evil"))
			require.NoError(t, err)
			req.URL.Opaque = p // sent as is, not cleaned
			req.SetBasicAuth(testUser, testPassword)
			res, err := e.https.Client().Do(req)
			require.NoError(t, err)
			body := readAll(t, res.Body)
			assert.Equal(t, http.StatusBadRequest, res.StatusCode, "%s %s", method, p)
			assert.NotContains(t, body, "s3cr3t")
		}
		req, err := http.NewRequest(http.MethodGet, e.https.URL+"/x", nil)
		require.NoError(t, err)
		req.URL.Opaque = "/signed" + p
		req.URL.RawQuery = query[1:]
		res, err := e.https.Client().Do(req)
		require.NoError(t, err)
		body := readAll(t, res.Body)
		assert.Equal(t, http.StatusForbidden, res.StatusCode, "signed %s", p)
		assert.NotContains(t, body, "s3cr3t")
	}
	// An id the store would refuse, under its right prefix: the server
	// refuses it itself, before the store is asked.
	for _, id := range []string{".put-1", "a b", "..", "a\\b"} {
		req, err := http.NewRequest(http.MethodPut, e.https.URL+"/x", strings.NewReader("evil"))
		require.NoError(t, err)
		req.URL.Opaque = "/" + Prefix(id) + "/" + url.PathEscape(id)
		req.SetBasicAuth(testUser, testPassword)
		res, err := e.https.Client().Do(req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode, id)
		assert.Equal(t, "not a blob path: want /<prefix>/<id>\n", readAll(t, res.Body), id)
	}
	got, err := os.ReadFile(outside)
	require.NoError(t, err)
	assert.Equal(t, "s3cr3t", string(got))
	assert.Empty(t, e.storedFiles(t))
	assert.Equal(t, []string{"secret", "store"}, dirNames(t, root))
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestPutSizeLimit(t *testing.T) {
	cfg := testServerConfig()
	cfg.MaxPutSize = 1 << 20
	e := newEnv(t, cfg, nil)
	ctx := context.Background()

	// At the limit.
	_, _, err := e.director.Put(ctx, bytes.NewReader(make([]byte, 1<<20)))
	require.NoError(t, err)
	_, err = e.agent.PutSigned(ctx, e.sign(t, NewID(), "PUT"), io.MultiReader(bytes.NewReader(make([]byte, 1<<20))))
	require.NoError(t, err)
	require.Len(t, e.storedFiles(t), 2)

	over := []struct {
		name string
		put  func() error
	}{
		{"director, length known", func() error {
			_, _, err := e.director.Put(ctx, bytes.NewReader(make([]byte, 1<<20+1)))
			return err
		}},
		{"director, length unknown", func() error {
			_, _, err := e.director.Put(ctx, io.MultiReader(bytes.NewReader(make([]byte, 8<<20))))
			return err
		}},
		{"signed, length known", func() error {
			_, err := e.agent.PutSigned(ctx, e.sign(t, NewID(), "PUT"), bytes.NewReader(make([]byte, 1<<20+1)))
			return err
		}},
		{"signed, length unknown", func() error {
			_, err := e.agent.PutSigned(ctx, e.sign(t, NewID(), "PUT"), io.MultiReader(bytes.NewReader(make([]byte, 1<<20+1))))
			return err
		}},
	}
	for _, tc := range over {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.put()
			require.ErrorIs(t, err, kubefoundry.ErrLimitExceeded)
			assert.Equal(t, http.StatusRequestEntityTooLarge, statusCode(err))
			assert.Len(t, e.storedFiles(t), 2, "nothing stored, no temporary file left")
		})
	}
}

// The client fails by its own bounds, never hangs, when the server
// accepts and does not answer.
func TestClientTimeouts(t *testing.T) {
	const bound = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // the test's own bound, far above
	defer cancel()

	t.Run("silent listener: the TLS handshake", func(t *testing.T) {
		addr := transporttest.SilentListener(t)
		c := newClient(t, Config{URL: "https://" + addr, Username: "u", Password: "p", TLSHandshakeTimeout: bound})
		start := time.Now()
		_, err := c.Exists(ctx, "x")
		var te *kubefoundry.TimeoutError
		require.ErrorAs(t, err, &te, "got %v", err)
		assert.Equal(t, kubefoundry.StageTLS, te.Stage)
		assert.Less(t, time.Since(start), 20*time.Second)
	})

	// A front end that hangs by the id asked for: "hang-answer" never
	// answers (nor reads a body), "hang-body" stops after 1000 bytes of
	// 1000000, "trickle" sends 20 bytes slowly.
	release := make(chan struct{})
	wait := func(r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	hang := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch path.Base(r.URL.Path) {
			case "hang-answer":
				// Hold the connection and never answer, even once the
				// client goes: returning from the handler would send an
				// empty 200 (CI once saw one reach the agent's client as
				// a digest mismatch instead of its time-out).
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					return
				}
				wait(r)
				_ = conn.Close()
				return
			case "hang-body":
				w.Header().Set("Content-Length", "1000000")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(make([]byte, 1000))
				w.(http.Flusher).Flush()
				wait(r)
				return
			case "trickle":
				w.Header().Set("Content-Length", "20")
				w.WriteHeader(http.StatusOK)
				for range 20 {
					_, _ = w.Write([]byte("x"))
					w.(http.Flusher).Flush()
					time.Sleep(bound / 5)
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	e := newEnv(t, testServerConfig(), hang)
	// Registered after newEnv's cleanups, so it runs before them: the
	// handlers return before the server closes.
	t.Cleanup(func() { close(release) })
	director := newClient(t, Config{URL: e.https.URL + "/", Username: testUser, Password: testPassword, CACert: e.ca, CallTimeout: bound})
	agent := newClient(t, Config{URL: e.https.URL, CACert: e.ca, CallTimeout: bound})
	d, err := DigestOf(strings.NewReader("x"))
	require.NoError(t, err)

	isCallTimeout := func(t *testing.T, err error, start time.Time, op string) {
		t.Helper()
		var te *kubefoundry.TimeoutError
		require.ErrorAs(t, err, &te, "got %v", err)
		assert.Equal(t, kubefoundry.StageCall, te.Stage)
		assert.Equal(t, bound, te.After)
		assert.Equal(t, op, te.Op)
		assert.Equal(t, strings.TrimPrefix(e.https.URL, "https://"), te.Host)
		assert.True(t, kubefoundry.IsTimeout(err))
		assert.NotContains(t, err.Error(), "st=")
		assert.GreaterOrEqual(t, time.Since(start), bound, "not before the bound")
		assert.Less(t, time.Since(start), 15*time.Second, "by the bound, not the test's")
	}

	t.Run("no answer to the director", func(t *testing.T) {
		start := time.Now()
		_, err := director.Exists(ctx, "hang-answer")
		isCallTimeout(t, err, start, "HEAD /"+PrefixedID("hang-answer"))
		start = time.Now()
		_, err = director.Get(ctx, "hang-answer")
		isCallTimeout(t, err, start, "GET /"+PrefixedID("hang-answer"))
		start = time.Now()
		err = director.Delete(ctx, "hang-answer")
		isCallTimeout(t, err, start, "DELETE /"+PrefixedID("hang-answer"))
	})
	t.Run("no answer to an agent", func(t *testing.T) {
		start := time.Now()
		err := agent.Download(ctx, e.sign(t, "hang-answer", "GET"), d, io.Discard)
		isCallTimeout(t, err, start, "GET /signed/"+PrefixedID("hang-answer"))
	})
	t.Run("body stalls", func(t *testing.T) {
		dir := t.TempDir()
		start := time.Now()
		err := agent.DownloadFile(ctx, e.sign(t, "hang-body", "GET"), d, filepath.Join(dir, "pkg"))
		isCallTimeout(t, err, start, "GET /signed/"+PrefixedID("hang-body"))
		assert.Empty(t, files(t, dir), "no partial file")

		start = time.Now()
		rc, err := director.Get(ctx, "hang-body")
		require.NoError(t, err)
		_, err = io.ReadAll(rc)
		_ = rc.Close()
		isCallTimeout(t, err, start, "GET /"+PrefixedID("hang-body"))
	})
	t.Run("upload stalls", func(t *testing.T) {
		// The server reads nothing; the client's writes block once the
		// connection's buffers are full.
		start := time.Now()
		_, err := agent.PutSigned(ctx, e.sign(t, "hang-answer", "PUT"), io.LimitReader(zeros{}, 1<<30))
		isCallTimeout(t, err, start, "PUT /signed/"+PrefixedID("hang-answer"))
		start = time.Now()
		_, err = director.PutID(ctx, "hang-answer", io.LimitReader(zeros{}, 1<<30))
		isCallTimeout(t, err, start, "PUT /"+PrefixedID("hang-answer"))
	})
	t.Run("slow but steady upload is not a timeout", func(t *testing.T) {
		r := &slowReader{left: 20, gap: bound / 5}
		_, err := agent.PutSigned(ctx, e.sign(t, NewID(), "PUT"), r)
		require.NoError(t, err)
	})
	t.Run("slow but steady is not a timeout", func(t *testing.T) {
		// 20 bytes over four times the bound, no gap as long as it.
		var buf bytes.Buffer
		want, _ := DigestOf(strings.NewReader(strings.Repeat("x", 20)))
		require.NoError(t, agent.Download(ctx, e.sign(t, "trickle", "GET"), want, &buf))
		assert.Equal(t, strings.Repeat("x", 20), buf.String())
	})
}

// slowReader yields one byte every gap, left times.
type slowReader struct {
	left int
	gap  time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.gap)
	s.left--
	p[0] = 'x'
	return 1, nil
}

// zeros is an endless reader of zero bytes whose length nobody knows.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestContextCancel(t *testing.T) {
	release := make(chan struct{})
	reached := make(chan struct{}, 16)
	e := newEnv(t, testServerConfig(), func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead || r.URL.Query().Has("st") && r.Method == http.MethodGet {
				reached <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	t.Cleanup(func() { close(release) })
	d, _ := DigestOf(strings.NewReader("x"))

	calls := map[string]func(ctx context.Context) error{
		"exists": func(ctx context.Context) error { _, err := e.director.Exists(ctx, "x"); return err },
		"download": func(ctx context.Context) error {
			return e.agent.Download(ctx, e.sign(t, "x", "GET"), d, io.Discard)
		},
	}
	errs := make(chan error, len(calls))
	ctx, cancel := context.WithCancel(context.Background())
	for _, call := range calls {
		go func() { errs <- call(ctx) }()
	}
	for range calls { // both are at the server
		select {
		case <-reached:
		case <-time.After(20 * time.Second):
			t.Fatal("the calls did not reach the server")
		}
	}
	cancel()
	for range calls {
		select {
		case err := <-errs:
			assert.ErrorIs(t, err, context.Canceled)
			assert.False(t, kubefoundry.IsTimeout(err), "a cancel is not a timeout: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("a cancelled call did not return")
		}
	}

	// An upload cancelled midway leaves nothing on the server.
	ctx, cancel = context.WithCancel(context.Background())
	r := &cancelAfter{r: io.LimitReader(zeros{}, 1<<30), n: 4 << 20, cancel: cancel}
	_, _, err := e.director.Put(ctx, r)
	assert.ErrorIs(t, err, context.Canceled)
	require.Eventually(t, func() bool { return len(e.storedFiles(t)) == 0 }, 20*time.Second, 10*time.Millisecond,
		"the server removed the partial upload")
}

// cancelAfter cancels once n bytes were read from it.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestClientErrorsRedactSignature(t *testing.T) {
	// A port nobody listens on: the dial fails at once, and net/http's
	// error would name the URL, signature and all.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	s, err := NewSigner(testSecret)
	require.NoError(t, err)
	u, err := s.Sign("https://"+addr, "x", "GET", time.Now(), time.Hour)
	require.NoError(t, err)
	st := u[strings.Index(u, "st=")+3 : strings.Index(u, "&")]

	c := newClient(t, Config{URL: "https://" + addr})
	d, _ := DigestOf(strings.NewReader("x"))
	err = c.Download(context.Background(), u, d, io.Discard)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), st)
	assert.Contains(t, err.Error(), "REDACTED")
	_, err = c.PutSigned(context.Background(), u, strings.NewReader("x"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), st)
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{URL: "ftp://x", Username: "u", CACert: "nope", Thumbprint: "zz", ConnectTimeout: -1, TLSHandshakeTimeout: -1, CallTimeout: -1})
	var ve *kubefoundry.ValidationError
	require.ErrorAs(t, err, &ve)
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"url", "password", "caCert", "thumbprint", "connectTimeout", "tlsHandshakeTimeout", "callTimeout"}, fields)

	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{URL: "https://h", Password: "p"}, "username"},
		{Config{URL: "https://u:p@h"}, "url"},
		{Config{URL: "https://h?x=1"}, "url"},
		{Config{URL: "https://h#x"}, "url"},
		{Config{URL: "/relative"}, "url"},
		{Config{URL: "https://"}, "url"},
	} {
		_, err := New(tc.cfg)
		var fe *kubefoundry.FieldError
		require.ErrorAs(t, err, &fe, "%+v", tc.cfg.URL)
		assert.Equal(t, tc.field, fe.Field)
		assert.NotContains(t, err.Error(), "u:p@")
	}
	c, err := New(Config{URL: "http://h:1/base/"})
	require.NoError(t, err)
	u, err := c.blobURL("x")
	require.NoError(t, err)
	assert.Equal(t, "http://h:1/base/"+PrefixedID("x"), u, "under the endpoint's path, as davcli puts it")
	require.NoError(t, c.Close())

	_, err = NewServer(nil, testServerConfig())
	assert.True(t, kubefoundry.IsInvalid(err))
	srv, err := NewServer(&Local{dir: t.TempDir()}, ServerConfig{Username: "u", Password: "p", Secret: strings.Repeat("s", MinSecretLength)}, WithLogger(nil))
	require.NoError(t, err, "the shortest secret allowed; a nil logger is no logger")
	assert.Equal(t, DefaultMaxPutSize, srv.maxPut)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/signed/00/x", nil)) // logs the refusal
	assert.Equal(t, http.StatusForbidden, rec.Code)
	_, err = NewServer(&Local{dir: t.TempDir()}, ServerConfig{Username: "u", Password: "p", Secret: strings.Repeat("s", MinSecretLength-1)})
	assert.True(t, kubefoundry.IsInvalid(err))
	l, err := NewLocal(t.TempDir())
	require.NoError(t, err)
	_, err = NewServer(l, ServerConfig{Secret: "short", MaxPutSize: -1})
	require.ErrorAs(t, err, &ve)
	fields = nil
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	assert.ElementsMatch(t, []string{"username", "password", "secret", "maxPutSize"}, fields)
	assert.NotContains(t, err.Error(), "short")
}

func TestConfigStringRedacts(t *testing.T) {
	c := Config{URL: "https://director:" + testPassword + "@h", Username: "director", Password: testPassword}
	s := ServerConfig{Username: "director", Password: testPassword, Secret: testSecret}
	for _, v := range []any{c, &c, s, &s} {
		for _, format := range []string{"%v", "%+v", "%s", "%#v"} {
			out := fmt.Sprintf(format, v)
			assert.NotContains(t, out, testPassword, format)
			assert.NotContains(t, out, testSecret, format)
			assert.Contains(t, out, "director", format)
		}
	}
	assert.Contains(t, c.String(), "REDACTED")
	assert.Contains(t, Config{}.String(), `Password: ""`, "an empty secret shows as empty")
}

func TestServerConcurrentAgents(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()
	blob := make([]byte, 256<<10)
	_, _ = rand.Read(blob)
	id, d, err := e.director.Put(ctx, bytes.NewReader(blob))
	require.NoError(t, err)
	u := e.sign(t, id, "GET")

	const n = 16
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			var buf bytes.Buffer
			err := e.agent.Download(ctx, u, d, &buf)
			if err == nil && !bytes.Equal(buf.Bytes(), blob) {
				err = errors.New("other bytes")
			}
			errs <- err
		})
		wg.Go(func() {
			_, err := e.agent.PutSigned(ctx, e.sign(t, NewID(), "PUT"), bytes.NewReader(blob[:1000]))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Len(t, e.storedFiles(t), n+1)
}

// An upload the server refuses by its headers (credentials, signature,
// size, a signed PUT of a blob that exists) is refused before its body
// is sent, as the agent's uploads are ("Expect: 100-continue").
func TestRefusedUploadNotSent(t *testing.T) {
	cfg := testServerConfig()
	cfg.MaxPutSize = 4 << 20
	e := newEnv(t, cfg, nil)
	ctx := context.Background()
	existing := NewID()
	_, err := e.director.PutID(ctx, existing, strings.NewReader("abc"))
	require.NoError(t, err)
	wrong := newClient(t, Config{URL: e.https.URL, Username: testUser, Password: "wrong", CACert: e.ca})
	forged, err := NewSigner(testSecret + "-forged")
	require.NoError(t, err)
	forgedURL, err := forged.Sign(e.https.URL, NewID(), "PUT", time.Now(), time.Hour)
	require.NoError(t, err)

	tests := []struct {
		name     string
		size     int
		sentinel error
		put      func(r io.Reader) error
	}{
		{"wrong credentials", 1 << 20, kubefoundry.ErrUnauthorized, func(r io.Reader) error { _, _, err := wrong.Put(ctx, r); return err }},
		{"forged signature", 1 << 20, kubefoundry.ErrForbidden, func(r io.Reader) error { _, err := e.agent.PutSigned(ctx, forgedURL, r); return err }},
		{"too large", 4<<20 + 1, kubefoundry.ErrLimitExceeded, func(r io.Reader) error { _, _, err := e.director.Put(ctx, r); return err }},
		{"signed PUT of a blob that exists", 1 << 20, kubefoundry.ErrAlreadyExists, func(r io.Reader) error {
			_, err := e.agent.PutSigned(ctx, e.sign(t, existing, "PUT"), r)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(make([]byte, tc.size))}
			require.ErrorIs(t, tc.put(r), tc.sentinel)
			assert.Zero(t, r.read.Load(), "bytes of the body read")
		})
	}
	assert.Len(t, e.storedFiles(t), 1)
}

// countingReader counts what is read from it, and tells its length.
type countingReader struct {
	r    *bytes.Reader
	read atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingReader) Len() int { return c.r.Len() }

func TestSizeOf(t *testing.T) {
	sr := strings.NewReader("abcdef")
	_, _ = sr.Read(make([]byte, 2))
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	_, err = f.WriteString("0123456789")
	require.NoError(t, err)
	_, err = f.Seek(3, io.SeekStart)
	require.NoError(t, err)
	closed, err := os.Create(filepath.Join(t.TempDir(), "closed"))
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer func() { _ = pr.Close(); _ = pw.Close(); _ = f.Close() }()

	for _, tc := range []struct {
		name string
		r    io.Reader
		want int64
	}{
		{"bytes.Reader", bytes.NewReader(make([]byte, 7)), 7},
		{"strings.Reader, partly read", sr, 4},
		{"bytes.Buffer", bytes.NewBufferString("abc"), 3},
		{"file, from its offset", f, 7},
		{"closed file", closed, -1},
		{"pipe", pr, -1},
		{"unknown", io.MultiReader(sr), -1},
	} {
		assert.Equal(t, tc.want, sizeOf(tc.r), tc.name)
	}
}

func TestStatusError(t *testing.T) {
	for _, tc := range []struct {
		code     int
		body     string
		sentinel error
		msg      string
	}{
		{400, "not a blob path", kubefoundry.ErrInvalid, "GET https://h/x: 400 Bad Request: not a blob path"},
		{401, "unauthorized", kubefoundry.ErrUnauthorized, "GET https://h/x: 401 Unauthorized"},
		{403, "forbidden", kubefoundry.ErrForbidden, "GET https://h/x: 403 Forbidden"},
		{404, "not found", kubefoundry.ErrNotFound, "GET https://h/x: 404 Not Found"},
		{409, "already exists", kubefoundry.ErrAlreadyExists, "GET https://h/x: 409 Conflict: already exists"},
		{413, "larger than 10 bytes", kubefoundry.ErrLimitExceeded, "GET https://h/x: 413 Request Entity Too Large: larger than 10 bytes"},
		{500, "", kubefoundry.ErrUnavailable, "GET https://h/x: 500 Internal Server Error"},
		{503, "", kubefoundry.ErrUnavailable, "GET https://h/x: 503 Service Unavailable"},
		{499, "", nil, "GET https://h/x: 499 "},
		{302, "", nil, "GET https://h/x: 302 Found"},
	} {
		err := &StatusError{Method: "GET", URL: "https://h/x", Code: tc.code, Body: tc.body}
		assert.Equal(t, tc.msg, err.Error())
		if tc.sentinel == nil {
			assert.NoError(t, err.Unwrap(), tc.code)
			continue
		}
		assert.ErrorIs(t, err, tc.sentinel, tc.code)
		for _, other := range []error{kubefoundry.ErrInvalid, kubefoundry.ErrUnauthorized, kubefoundry.ErrForbidden, kubefoundry.ErrNotFound,
			kubefoundry.ErrAlreadyExists, kubefoundry.ErrLimitExceeded, kubefoundry.ErrUnavailable} {
			if other != tc.sentinel {
				assert.NotErrorIs(t, err, other, tc.code)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://h:1/signed/00/x?st=sig&ts=1&e=2": "https://h:1/signed/00/x?REDACTED",
		"https://u:pw@h/x":                        "https://h/x",
		"https://u@h/x#frag":                      "https://h/x?REDACTED",
		"https://h/x?":                            "https://h/x?REDACTED",
		"https://h/x":                             "https://h/x",
		"https://h":                               "https://h",
		"https://h/%zz?st=sig":                    "<not a URL>",
	} {
		assert.Equal(t, want, redactURL(in), in)
	}
}

func TestDigestMatch(t *testing.T) {
	abc, err := DigestOf(strings.NewReader("abc"), SHA1, SHA256)
	require.NoError(t, err)
	parse := func(s string) Digest { d, err := ParseDigest(s); require.NoError(t, err); return d }

	assert.NoError(t, abc.match(parse(abcSHA1)), "SHA-1 alone, as a server of old releases may answer")
	assert.NoError(t, abc.match(parse("sha256:"+abcSHA256+";sha512:"+abcSHA512)))
	assert.NoError(t, abc.match(parse(abcSHA1+";sha256:"+abcSHA256)))
	// The strongest shared algorithm decides.
	err = abc.match(parse(zeroSHA1 + ";sha256:" + abcSHA256))
	assert.NoError(t, err, "a wrong weaker sum is not read")
	err = abc.match(parse(abcSHA1 + ";sha256:" + zero256))
	var m *DigestMismatchError
	require.ErrorAs(t, err, &m)
	assert.Equal(t, Sum{Algorithm: SHA256, Hex: abcSHA256}, m.Expected)
	assert.Equal(t, Sum{Algorithm: SHA256, Hex: zero256}, m.Actual)
	err = abc.match(parse(zeroSHA1))
	require.ErrorAs(t, err, &m)
	assert.Equal(t, SHA1, m.Expected.Algorithm)
	// Nothing shared is not a match.
	sha512Only := parse("sha512:" + abcSHA512)
	sha1Only := parse(abcSHA1)
	assert.True(t, kubefoundry.IsInvalid(sha1Only.match(sha512Only)))
}

// A store that fails is a 500 to the client (ErrUnavailable), logged by
// the server as an error, with no secret in the log.
func TestServerStoreFailure(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()
	id := NewID()
	// The blob's prefix directory cannot be made: a file is in its way.
	require.NoError(t, os.WriteFile(filepath.Join(e.store.Dir(), Prefix(id)), []byte("in the way"), 0o600))
	_, err := e.director.PutID(ctx, id, strings.NewReader("abc"))
	require.ErrorIs(t, err, kubefoundry.ErrUnavailable)
	assert.Equal(t, http.StatusInternalServerError, statusCode(err))
	assert.NotContains(t, err.Error(), e.store.Dir(), "the server's paths stay in its log")
	_, err = e.agent.PutSigned(ctx, e.sign(t, id, "PUT"), strings.NewReader("abc"))
	require.ErrorIs(t, err, kubefoundry.ErrUnavailable)
	_, err = e.director.Get(ctx, id)
	require.ErrorIs(t, err, kubefoundry.ErrUnavailable)

	failed := e.logs.FilterMessage("blobstore request failed").All()
	require.Len(t, failed, 3)
	assert.Equal(t, zapcore.ErrorLevel, failed[0].Level)
	assert.Contains(t, fmt.Sprint(failed[0].ContextMap()), Prefix(id))
}

// openFiles counts this process's open file descriptors (Linux).
func openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd to count open files with")
	}
	return len(ents)
}

// A failed download or upload closes its temporary file itself, not
// the garbage collector some time later: an agent that retries a bad
// blob all day does not run out of descriptors.
func TestFailuresCloseFiles(t *testing.T) {
	e := newEnv(t, testServerConfig(), nil)
	ctx := context.Background()
	id, d, err := e.director.Put(ctx, strings.NewReader("abc"))
	require.NoError(t, err)
	u := e.sign(t, id, "GET")
	wrong, err := ParseDigest(zeroSHA1)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, e.agent.Download(ctx, u, d, io.Discard)) // a connection to reuse

	// Without the collector, whose finalizers would close what leaked.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const n = 50
	before := openFiles(t)
	for range n {
		require.True(t, IsDigestMismatch(e.agent.DownloadFile(ctx, u, wrong, filepath.Join(dir, "pkg"))))
		_, err := e.store.PutID(ctx, NewID(), &failingReader{n: 100})
		require.Error(t, err)
	}
	require.NoError(t, e.agent.Close())
	require.Eventually(t, func() bool { return openFiles(t) <= before+5 }, 10*time.Second, 20*time.Millisecond,
		"open files: %d before %d failures", before, n)
	assert.Empty(t, files(t, dir))
}
