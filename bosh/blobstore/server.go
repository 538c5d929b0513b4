package blobstore

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/kubefoundry/kubefoundry"
)

// DefaultMaxPutSize bounds an upload when ServerConfig.MaxPutSize is 0.
const DefaultMaxPutSize int64 = 10 << 30

// DigestHeader is the response header in which the server returns the
// multi-digest of a blob it stored from a PUT.
const DigestHeader = "X-Blob-Digest"

// Option configures a Server or a Client.
type Option interface{ apply(*options) }

type options struct {
	log *zap.Logger
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithLogger sets the logger; the default logs nothing.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) {
		if l != nil {
			o.log = l
		}
	})
}

func newOptions(opts []Option) options {
	o := options{log: zap.NewNop()}
	for _, opt := range opts {
		opt.apply(&o)
	}
	return o
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Username and Password are the director's basic-auth credentials,
	// required for every request outside /signed/.
	Username string `json:"username"`
	Password string `json:"password"`
	// Secret is the key signed URLs are checked with; the director signs
	// with a Signer of the same secret.
	Secret string `json:"secret"`
	// MaxPutSize bounds the body of a PUT, in bytes; DefaultMaxPutSize
	// when 0.
	MaxPutSize int64 `json:"maxPutSize,omitempty"`
}

// String redacts the password and the secret.
func (c ServerConfig) String() string {
	return fmt.Sprintf("blobstore.ServerConfig{Username: %q, Password: %s, Secret: %s, MaxPutSize: %d}",
		c.Username, redact(c.Password), redact(c.Secret), c.MaxPutSize)
}

// GoString redacts as String does, for %#v.
func (c ServerConfig) GoString() string { return c.String() }

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return "REDACTED"
}

// Validate reports every problem with c at once.
func (c ServerConfig) Validate() error {
	var verr kubefoundry.ValidationError
	verr.Object = "blobstore.ServerConfig"
	if c.Username == "" {
		verr.Add("username", "", "empty")
	}
	if c.Password == "" {
		verr.Add("password", "", "empty")
	}
	if len(c.Secret) < MinSecretLength {
		verr.Add("secret", "", "want at least %d bytes, got %d", MinSecretLength, len(c.Secret))
	}
	if c.MaxPutSize < 0 {
		verr.Add("maxPutSize", strconv.FormatInt(c.MaxPutSize, 10), "negative")
	}
	return verr.Err()
}

// Server is the blobstore's HTTP handler in the shape of BOSH's DAV
// blobstore (the director's nginx). The director mounts it on its TLS
// listener:
//
//	GET, HEAD, PUT, DELETE /<prefix>/<id>      basic auth (the director)
//	GET, HEAD, PUT /signed/<prefix>/<id>?st=&ts=&e=   a signed URL (agents)
//
// A signed request is checked before the store is touched, and every
// refusal (no, bad, expired or other-verb signature, another or invalid
// id) is the same 403 with the same body, so it never tells whether the
// blob exists. A signed PUT only creates: it never replaces a blob. A
// Server is safe for concurrent use.
type Server struct {
	store    *Local
	signer   *Signer
	user     [sha256.Size]byte
	password [sha256.Size]byte
	maxPut   int64
	log      *zap.Logger
	now      func() time.Time
}

// NewServer returns a Server for store.
func NewServer(store *Local, cfg ServerConfig, opts ...Option) (*Server, error) {
	if store == nil {
		return nil, &kubefoundry.FieldError{Field: "store", Reason: "nil"}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	signer, err := NewSigner(cfg.Secret)
	if err != nil {
		return nil, err
	}
	o := newOptions(opts)
	s := &Server{
		store:    store,
		signer:   signer,
		user:     sha256.Sum256([]byte(cfg.Username)),
		password: sha256.Sum256([]byte(cfg.Password)),
		maxPut:   cfg.MaxPutSize,
		log:      o.log,
		now:      time.Now,
	}
	if s.maxPut == 0 {
		s.maxPut = DefaultMaxPutSize
	}
	return s, nil
}

// Signer returns a Signer with the server's secret, for the director to
// sign URLs with.
func (s *Server) Signer() *Signer { return s.signer }

// The bodies of refusals: fixed, so that they tell nothing.
const (
	bodyForbidden    = "forbidden\n"
	bodyUnauthorized = "unauthorized\n"
)

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/signed/"); ok {
		s.serveSigned(w, r, rest)
		return
	}
	s.serveDirector(w, r, strings.TrimPrefix(r.URL.Path, "/"))
}

// parseObject reads "<prefix>/<id>", checking id and that prefix is
// Prefix(id).
func parseObject(obj string) (string, bool) {
	prefix, id, ok := strings.Cut(obj, "/")
	if !ok || ValidateID(id) != nil || prefix != Prefix(id) {
		return "", false
	}
	return id, true
}

func (s *Server) serveSigned(w http.ResponseWriter, r *http.Request, obj string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut:
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writePlain(w, http.StatusMethodNotAllowed, "method not allowed\n")
		return
	}
	id, ok := parseObject(obj)
	if !ok {
		s.forbid(w, r, errors.New("not a blob path"))
		return
	}
	q := r.URL.Query()
	if err := s.signer.Check(r.Method, obj, q.Get("st"), q.Get("ts"), q.Get("e"), s.now()); err != nil {
		s.forbid(w, r, err)
		return
	}
	if r.Method == http.MethodPut {
		s.put(w, r, id, false)
		return
	}
	s.get(w, r, id)
}

func (s *Server) forbid(w http.ResponseWriter, r *http.Request, why error) {
	// The query holds the signature, a bearer credential: only the path
	// is logged.
	s.log.Info("blobstore request refused", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr), zap.Error(why))
	writePlain(w, http.StatusForbidden, bodyForbidden)
}

func writePlain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// authorized compares the credentials in constant time.
func (s *Server) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	okUser := subtle.ConstantTimeCompare(u[:], s.user[:])
	okPass := subtle.ConstantTimeCompare(p[:], s.password[:])
	return ok && okUser&okPass == 1
}

func (s *Server) serveDirector(w http.ResponseWriter, r *http.Request, obj string) {
	if !s.authorized(r) {
		s.log.Info("blobstore request unauthorized", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("remote", r.RemoteAddr))
		w.Header().Set("WWW-Authenticate", `Basic realm="blobstore"`)
		writePlain(w, http.StatusUnauthorized, bodyUnauthorized)
		return
	}
	id, ok := parseObject(obj)
	if !ok {
		writePlain(w, http.StatusBadRequest, "not a blob path: want /<prefix>/<id>\n")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, r, id)
	case http.MethodPut:
		s.put(w, r, id, true)
	case http.MethodDelete:
		if err := s.store.Delete(r.Context(), id); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		writePlain(w, http.StatusMethodNotAllowed, "method not allowed\n")
	}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, id string) {
	f, err := s.store.open(id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// put stores the body under id. Before it reads the body (and so before
// a client that sent "Expect: 100-continue" sends it), it refuses a body
// longer than the limit and, when it may not replace, a blob that exists.
func (s *Server) put(w http.ResponseWriter, r *http.Request, id string, replace bool) {
	if r.ContentLength > s.maxPut {
		writePlain(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("larger than %d bytes\n", s.maxPut))
		return
	}
	if !replace {
		if ok, err := s.store.Exists(r.Context(), id); err != nil || ok {
			if err == nil {
				err = kubefoundry.ErrAlreadyExists
			}
			s.fail(w, r, err)
			return
		}
	}
	body := http.MaxBytesReader(w, r.Body, s.maxPut)
	d, err := s.store.put(r.Context(), id, body, replace)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writePlain(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("larger than %d bytes\n", s.maxPut))
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	w.Header().Set(DigestHeader, d.String())
	w.WriteHeader(http.StatusCreated)
}

// fail answers an error of the store, for a request already authorized.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, kubefoundry.ErrNotFound):
		writePlain(w, http.StatusNotFound, "not found\n")
	case errors.Is(err, kubefoundry.ErrAlreadyExists):
		writePlain(w, http.StatusConflict, "already exists\n")
	case errors.Is(err, kubefoundry.ErrInvalid):
		writePlain(w, http.StatusBadRequest, err.Error()+"\n")
	default:
		s.log.Error("blobstore request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		writePlain(w, http.StatusInternalServerError, "internal error\n")
	}
}
