package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/internal/transport"
)

// Config configures a Client: plain and serialisable.
type Config struct {
	// URL is the blobstore's base URL, "https://10.0.0.6:25250"; blobs
	// are under its path, as bosh-davcli puts them.
	URL string `json:"url"`
	// Username and Password are the director's basic-auth credentials.
	// An agent's client, which only uses signed URLs, leaves them empty.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// CACert is a PEM bundle of certificate authorities to trust.
	CACert string `json:"caCert,omitempty"`
	// Thumbprint is the SHA-256 (or SHA-1) digest of the server's
	// certificate in hex, with or without colons: the certificate is
	// trusted when it matches, whoever signed it.
	Thumbprint string `json:"thumbprint,omitempty"`
	// Insecure turns TLS verification off. It is never implied.
	Insecure bool `json:"insecure,omitempty"`
	// ConnectTimeout bounds the TCP connect, TLSHandshakeTimeout the TLS
	// handshake after it; 10 seconds each when zero.
	ConnectTimeout      time.Duration `json:"connectTimeout,omitempty"`
	TLSHandshakeTimeout time.Duration `json:"tlsHandshakeTimeout,omitempty"`
	// CallTimeout bounds how long a call may go without progress: no
	// byte of a request body sent, no answer, or no byte of a response
	// body received for that long fails the call with a
	// *kubefoundry.TimeoutError. 1 minute when zero. A large blob that
	// keeps moving is never cut short; only the ctx of the call bounds
	// its whole transfer.
	CallTimeout time.Duration `json:"callTimeout,omitempty"`
}

// String describes the configuration with the password redacted, the
// one in Password and any user information in URL.
func (c Config) String() string {
	return fmt.Sprintf("blobstore.Config{URL: %q, Username: %q, Password: %s, CACert: %d bytes, Thumbprint: %q, Insecure: %t, "+
		"ConnectTimeout: %s, TLSHandshakeTimeout: %s, CallTimeout: %s}",
		redactURL(c.URL), c.Username, redact(c.Password), len(c.CACert), c.Thumbprint, c.Insecure,
		c.ConnectTimeout, c.TLSHandshakeTimeout, c.CallTimeout)
}

// GoString redacts as String does, for %#v.
func (c Config) GoString() string { return c.String() }

// Client talks to a blobstore Server. With credentials it is the
// director's Blobstore; without, an agent's downloader and uploader of
// signed URLs. A Client is safe for concurrent use.
type Client struct {
	base     string
	user     string
	password string
	http     *http.Client
	tr       *http.Transport
	idle     time.Duration
	log      *zap.Logger
}

var _ Blobstore = (*Client)(nil)

// New returns a Client for cfg, which it copies.
func New(cfg Config, opts ...Option) (*Client, error) {
	var verr kubefoundry.ValidationError
	verr.Object = "blobstore.Config"
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		verr.Add("url", redactURL(cfg.URL), "want an absolute http(s) URL without credentials, query or fragment")
	}
	switch {
	case cfg.Username != "" && cfg.Password == "":
		verr.Add("password", "", "empty while username is set; give both or neither")
	case cfg.Username == "" && cfg.Password != "":
		verr.Add("username", "", "empty while password is set; give both or neither")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"connectTimeout", cfg.ConnectTimeout}, {"tlsHandshakeTimeout", cfg.TLSHandshakeTimeout}, {"callTimeout", cfg.CallTimeout}} {
		if d.v < 0 {
			verr.Add(d.field, d.v.String(), "must not be negative (zero takes the default)")
		}
	}
	tlsCfg, err := transport.Config(transport.TLS{CACert: cfg.CACert, Thumbprint: cfg.Thumbprint, Insecure: cfg.Insecure})
	verr.Merge("", err) // caCert, thumbprint
	if err := verr.Err(); err != nil {
		return nil, err
	}
	o := newOptions(opts)
	t := transport.Timeouts{Connect: cfg.ConnectTimeout, TLSHandshake: cfg.TLSHandshakeTimeout, Call: cfg.CallTimeout}.WithDefaults()
	tr := transport.NewHTTPTransport(transport.NewDialer(t, tlsCfg))
	return &Client{
		base:     strings.TrimSuffix(cfg.URL, "/"),
		user:     cfg.Username,
		password: cfg.Password,
		tr:       tr,
		http: &http.Client{
			Transport: tr,
			// A redirect could carry credentials or a signed request
			// elsewhere; the blobstore never sends one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		idle: t.Call,
		log:  o.log,
	}, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}

func (c *Client) blobURL(id string) (string, error) {
	if err := ValidateID(id); err != nil {
		return "", err
	}
	return c.base + "/" + PrefixedID(id), nil
}

// do sends a request; auth adds the director's credentials. size is
// the body's length, or -1 when unknown. The call is bounded by the
// idle bound (Config.CallTimeout) until the response body is closed, which
// the caller must do.
func (c *Client) do(ctx context.Context, method, u string, body io.Reader, size int64, auth bool) (*http.Response, error) {
	cctx, w := c.watch(ctx)
	if body != nil {
		body = &progressReader{r: body, w: w}
	}
	req, err := http.NewRequestWithContext(cctx, method, u, body)
	if err != nil {
		w.stop()
		return nil, fmt.Errorf("%w: %w", kubefoundry.ErrInvalid, redactURLError(err))
	}
	if size > 0 {
		req.ContentLength = size
		// As the agent does: the server refuses a blob too large, or
		// credentials or a signature it does not accept, before the body
		// is sent.
		req.Header.Set("Expect", "100-continue")
	}
	if auth && c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	host, op := req.URL.Host, method+" "+req.URL.Path
	res, err := c.http.Do(req)
	if err != nil {
		err = w.timeout(ctx, redactURLError(err), host, op)
		w.stop()
		return nil, err
	}
	c.log.Debug("blobstore call", zap.String("method", method), zap.String("path", req.URL.Path), zap.Int("status", res.StatusCode))
	w.touch()
	res.Body = &watchedBody{ReadCloser: res.Body, w: w, ctx: ctx, host: host, op: op}
	return res, nil
}

// redactURLError drops the query, which holds a signature, from the URL
// that net/http names in its errors.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redactURL(ue.URL)
	}
	return err
}

// errStalled is the cause of a call's ctx when the call made no progress
// for Config.CallTimeout.
var errStalled = errors.New("no progress")

// idleWatch cancels a call's ctx once it has made no progress for d.
type idleWatch struct {
	d      time.Duration
	timer  *time.Timer
	cctx   context.Context
	cancel context.CancelCauseFunc
}

func (c *Client) watch(ctx context.Context) (context.Context, *idleWatch) {
	cctx, cancel := context.WithCancelCause(ctx)
	w := &idleWatch{d: c.idle, cctx: cctx, cancel: cancel}
	w.timer = time.AfterFunc(w.d, func() { cancel(errStalled) })
	return cctx, w
}

// touch records progress.
func (w *idleWatch) touch() { w.timer.Reset(w.d) }

// stop ends the watch and releases the call's ctx.
func (w *idleWatch) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

// timeout turns err into a *kubefoundry.TimeoutError when it was the
// idle bound, not the caller's ctx, that ended the call.
func (w *idleWatch) timeout(parent context.Context, err error, host, op string) error {
	if err != nil && parent.Err() == nil && errors.Is(context.Cause(w.cctx), errStalled) {
		return &kubefoundry.TimeoutError{Host: host, Stage: kubefoundry.StageCall, Op: op, After: w.d, Err: err}
	}
	return err
}

// progressReader is a request body: it fails once ctx ends, and each
// read counts as progress.
type progressReader struct {
	r io.Reader
	w *idleWatch
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.w.cctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.touch()
	}
	return n, err
}

// watchedBody is a response body: each read counts as progress, a read
// cut short by the idle bound says so, and Close ends the watch.
type watchedBody struct {
	io.ReadCloser
	w        *idleWatch
	ctx      context.Context
	host, op string
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.touch()
	}
	if err != nil && err != io.EOF {
		err = b.w.timeout(b.ctx, err, b.host, b.op)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	b.w.stop()
	return err
}

// sizeOf is the number of bytes left in r when r can tell, and -1
// otherwise.
func sizeOf(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }: // bytes.Reader, bytes.Buffer, strings.Reader
		return int64(v.Len())
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return fi.Size() - off
	}
	return -1
}

// StatusError is an answer of the blobstore other than the one a call
// expects. It wraps the sentinel for its status: kubefoundry.ErrNotFound
// (404), ErrUnauthorized (401: the director's credentials were refused),
// ErrForbidden (403: a signature refused: missing, wrong, expired, or for
// another verb or blob), ErrAlreadyExists (409), ErrLimitExceeded (413:
// larger than the server accepts), ErrInvalid (400) and ErrUnavailable
// (5xx).
type StatusError struct {
	Method string // "GET"
	URL    string // the URL without its query, which may hold a signature
	Code   int    // 404
	Body   string // the start of the answer's body, trimmed
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Code, http.StatusText(e.Code))
	if e.Body != "" && e.Body != strings.ToLower(http.StatusText(e.Code)) {
		msg += ": " + e.Body
	}
	return msg
}

// Unwrap returns the sentinel for the status, or nil.
func (e *StatusError) Unwrap() error {
	switch {
	case e.Code == http.StatusNotFound:
		return kubefoundry.ErrNotFound
	case e.Code == http.StatusUnauthorized:
		return kubefoundry.ErrUnauthorized
	case e.Code == http.StatusForbidden:
		return kubefoundry.ErrForbidden
	case e.Code == http.StatusConflict:
		return kubefoundry.ErrAlreadyExists
	case e.Code == http.StatusRequestEntityTooLarge:
		return kubefoundry.ErrLimitExceeded
	case e.Code == http.StatusBadRequest:
		return kubefoundry.ErrInvalid
	case e.Code >= 500:
		return kubefoundry.ErrUnavailable
	}
	return nil
}

// statusError reads the start of an unexpected answer into a
// *StatusError, and closes its body.
func statusError(res *http.Response) error {
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	return &StatusError{
		Method: res.Request.Method,
		URL:    redactURL(res.Request.URL.String()),
		Code:   res.StatusCode,
		Body:   strings.TrimSpace(string(b)),
	}
}

// drain reads what is left of a small answer, so that its connection
// can be used again, and closes it.
func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	_ = res.Body.Close()
}

// Put uploads r under a new id, with the director's credentials, and
// returns the id and the digest (SHA-1 and SHA-256) of what was sent,
// checked against the digest the server returns of what it stored.
func (c *Client) Put(ctx context.Context, r io.Reader) (string, Digest, error) {
	id := NewID()
	d, err := c.PutID(ctx, id, r)
	if err != nil {
		return "", Digest{}, err
	}
	return id, d, nil
}

// PutID uploads r under id, replacing a blob of that id, with the
// director's credentials.
func (c *Client) PutID(ctx context.Context, id string, r io.Reader) (Digest, error) {
	u, err := c.blobURL(id)
	if err != nil {
		return Digest{}, err
	}
	d, err := c.upload(ctx, u, r, true)
	if err != nil {
		return Digest{}, fmt.Errorf("put blob %s: %w", id, err)
	}
	return d, nil
}

// PutSigned uploads r with a URL the director signed for PUT (an agent's
// log bundle, fetch_logs) and returns the digest of what was sent. The
// director's credentials are never sent with it. The server refuses to
// replace a blob with a signed PUT (ErrAlreadyExists).
func (c *Client) PutSigned(ctx context.Context, signedURL string, r io.Reader) (Digest, error) {
	if err := checkSignedURL(signedURL); err != nil {
		return Digest{}, err
	}
	d, err := c.upload(ctx, signedURL, r, false)
	if err != nil {
		return Digest{}, fmt.Errorf("put signed %s: %w", redactURL(signedURL), err)
	}
	return d, nil
}

func (c *Client) upload(ctx context.Context, u string, r io.Reader, auth bool) (Digest, error) {
	h, _ := newMultiHash(nil)
	res, err := c.do(ctx, http.MethodPut, u, io.TeeReader(r, h), sizeOf(r), auth)
	if err != nil {
		return Digest{}, err
	}
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusNoContent {
		return Digest{}, statusError(res)
	}
	drain(res)
	sent := h.digest()
	if stored := res.Header.Get(DigestHeader); stored != "" {
		d, err := ParseDigest(stored)
		if err != nil {
			return Digest{}, fmt.Errorf("the server's %s: %w", DigestHeader, err)
		}
		if err := sent.match(d); err != nil {
			return Digest{}, fmt.Errorf("the server stored other bytes than were sent: %w", err)
		}
	}
	return sent, nil
}

// match compares d with other by the strongest algorithm both hold.
func (d Digest) match(other Digest) error {
	var best Sum
	for _, s := range d.sums {
		if o, ok := other.Get(s.Algorithm); ok && s.Algorithm.strength() > best.Algorithm.strength() {
			best = o
		}
	}
	if best.Algorithm == "" {
		return fmt.Errorf("%w: digests %s and %s share no algorithm", kubefoundry.ErrInvalid, d, other)
	}
	mine, _ := d.Get(best.Algorithm)
	if mine.Hex != best.Hex {
		return &DigestMismatchError{Expected: mine, Actual: best}
	}
	return nil
}

// Get downloads blob id with the director's credentials. The caller
// closes the reader; a missing blob wraps kubefoundry.ErrNotFound.
func (c *Client) Get(ctx context.Context, id string) (io.ReadCloser, error) {
	u, err := c.blobURL(id)
	if err != nil {
		return nil, err
	}
	res, err := c.do(ctx, http.MethodGet, u, nil, -1, true)
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", id, err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get blob %s: %w", id, statusError(res))
	}
	return res.Body, nil
}

// Delete removes blob id; a missing blob is not an error.
func (c *Client) Delete(ctx context.Context, id string) error {
	u, err := c.blobURL(id)
	if err != nil {
		return err
	}
	res, err := c.do(ctx, http.MethodDelete, u, nil, -1, true)
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	switch res.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusNotFound:
		drain(res)
		return nil
	}
	return fmt.Errorf("delete blob %s: %w", id, statusError(res))
}

// Exists reports whether blob id is stored.
func (c *Client) Exists(ctx context.Context, id string) (bool, error) {
	u, err := c.blobURL(id)
	if err != nil {
		return false, err
	}
	res, err := c.do(ctx, http.MethodHead, u, nil, -1, true)
	if err != nil {
		return false, fmt.Errorf("blob %s exists: %w", id, err)
	}
	switch res.StatusCode {
	case http.StatusOK:
		drain(res)
		return true, nil
	case http.StatusNotFound:
		drain(res)
		return false, nil
	}
	return false, fmt.Errorf("blob %s exists: %w", id, statusError(res))
}

// Download fetches a blob with a URL the director signed for GET, writes
// it to dst, and checks it against want (its strongest algorithm) as it
// streams. A mismatch is a *DigestMismatchError naming both digests.
//
// On any error, what was written to dst is not the blob and must be
// discarded; DownloadFile does that for a file. The director's
// credentials are never sent with a signed URL.
func (c *Client) Download(ctx context.Context, signedURL string, want Digest, dst io.Writer) error {
	if err := checkSignedURL(signedURL); err != nil {
		return err
	}
	v, err := want.verifier()
	if err != nil {
		return err
	}
	where := redactURL(signedURL)
	res, err := c.do(ctx, http.MethodGet, signedURL, nil, -1, false)
	if err != nil {
		return fmt.Errorf("download %s: %w", where, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %w", where, statusError(res))
	}
	defer func() { _ = res.Body.Close() }()
	if _, err := io.Copy(io.MultiWriter(dst, v), res.Body); err != nil {
		return fmt.Errorf("download %s: %w", where, err)
	}
	if err := v.check(); err != nil {
		return fmt.Errorf("download %s: %w", where, err)
	}
	return nil
}

// DownloadFile downloads as Download does into a temporary file beside
// path and renames it to path only once the digest matched, so path holds
// the whole, verified blob or is left as it was, and no temporary file is
// left behind.
func (c *Client) DownloadFile(ctx context.Context, signedURL string, want Digest, path string) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return fmt.Errorf("download to %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := c.Download(ctx, signedURL, want, f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("download to %s: %w", path, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("download to %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("download to %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// checkSignedURL refuses what cannot be a signed blob URL.
func checkSignedURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.Contains(u.Path, "/signed/") || u.User != nil {
		return &kubefoundry.FieldError{Field: "signedURL", Value: redactURL(s), Reason: "want an absolute http(s) URL of the form <endpoint>/signed/<prefix>/<id>?st=...&ts=...&e=..."}
	}
	return nil
}

// redactURL drops from a URL, for messages, what may be a secret: the
// query (a signature) and the user information.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<not a URL>"
	}
	u.User = nil
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "REDACTED", false, "", ""
	}
	return u.String()
}
