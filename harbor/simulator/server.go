package simulator

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-openapi/loads"
	"github.com/go-openapi/runtime"
	"github.com/go-openapi/runtime/middleware"
	"github.com/go-openapi/runtime/middleware/untyped"
	"github.com/go-openapi/spec"
	"github.com/go-openapi/strfmt"
	"github.com/go-openapi/swag"
	"github.com/go-openapi/validate"
)

// swagger.yaml is go-client's own api/v2.0/swagger.yaml, copied by go
// generate (TestSpecIsGoClients keeps it equal to the module's).
//
//go:generate sh -c "cp \"$(go list -m -f '{{.Dir}}' github.com/goharbor/go-client)/api/v2.0/swagger.yaml\" swagger.yaml && chmod 644 swagger.yaml"
//go:embed swagger.yaml
var specYAML []byte

// Spec is the swagger document the simulator validates against.
func Spec() []byte { return specYAML }

// Config configures a simulator.
type Config struct {
	// AdminPassword of user admin; Harbor12345 when empty.
	AdminPassword string
	// Users are extra local users that exist from the start.
	Users []User
	// Addr is the loopback address to listen on; 127.0.0.1:0 by default.
	Addr string
}

// User is a local Harbor user.
type User struct {
	Name, Password string
	Admin          bool
}

// Server is a Harbor v2.0 API simulator over HTTP on loopback. Every
// request and every response is validated against go-client's
// swagger.yaml with go-openapi's validators; a response that does not
// match the spec is answered 500 naming the violation, so a simulator bug
// cannot pass for Harbor. It is safe for concurrent use.
type Server struct {
	URL string

	http *httptest.Server
	doc  *loads.Document
	mctx *middleware.Context

	adminPassword string
	closed        chan struct{} // closed by Close
	closeOnce     sync.Once

	mu     sync.Mutex
	st     *state
	faults []*Fault
	now    func() time.Time
	// off is what Advance added to the clock, in nanoseconds; atomic, as
	// the clock is read with and without mu held.
	off atomic.Int64
	// requests counts the requests served, as Requests reports them.
	requests atomic.Int64
}

// Requests is how many HTTP requests the simulator has been sent, for a
// test or benchmark to count what a client call costs.
func (s *Server) Requests() int64 { return s.requests.Load() }

// New starts a simulator.
func New(cfg Config) (*Server, error) {
	if cfg.AdminPassword == "" {
		cfg.AdminPassword = "Harbor12345"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("simulator: Config.Addr %q is not a loopback IP address and port", cfg.Addr)
	}
	doc, err := loadSpec()
	if err != nil {
		return nil, err
	}
	api := untyped.NewAPI(doc).WithJSONDefaults()
	api.RegisterConsumer("application/merge-patch+json", runtime.JSONConsumer())
	api.RegisterConsumer("text/plain", runtime.TextConsumer())
	api.RegisterProducer("text/plain", runtime.TextProducer())
	api.RegisterConsumer("multipart/form-data", runtime.JSONConsumer())
	api.RegisterProducer("application/octet-stream", runtime.ByteStreamProducer())
	api.RegisterConsumer("application/octet-stream", runtime.ByteStreamConsumer())
	api.RegisterAuth("basic", runtime.AuthenticatorFunc(func(any) (bool, any, error) { return false, nil, nil }))
	for method, paths := range doc.Analyzer.Operations() {
		for path := range paths {
			api.RegisterOperation(method, path, runtime.OperationHandlerFunc(func(any) (any, error) { return nil, nil }))
		}
	}
	s := &Server{doc: doc, mctx: middleware.NewContext(doc, api, nil), now: time.Now,
		adminPassword: cfg.AdminPassword, closed: make(chan struct{})}
	middleware.NewRouter(s.mctx, nil) // builds the context's router from the spec
	s.st = newState(cfg)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s.http = httptest.NewUnstartedServer(s)
	s.http.Listener.Close()
	s.http.Listener = ln
	s.http.Start()
	s.URL = s.http.URL
	return s, nil
}

var (
	specOnce sync.Once
	specDoc  *loads.Document
	specErr  error
)

// loadSpec parses and analyses swagger.yaml once per process; the
// document is only read after that.
func loadSpec() (*loads.Document, error) {
	specOnce.Do(func() {
		yml, err := swag.BytesToYAMLDoc(specYAML)
		if err != nil {
			specErr = fmt.Errorf("simulator: swagger.yaml: %w", err)
			return
		}
		js, err := swag.YAMLToJSON(yml)
		if err != nil {
			specErr = fmt.Errorf("simulator: swagger.yaml: %w", err)
			return
		}
		specDoc, specErr = loads.Analyzed(js, "")
		if specErr != nil {
			return
		}
		amendSpec(specDoc)
	})
	return specDoc, specErr
}

// amendSpec makes the spec read as Harbor's own go-swagger server reads
// it: an object schema with no properties ("type: object", or a map whose
// values are "type: object") becomes interface{} there and takes any JSON
// value; go-client sends strings, numbers and booleans in such places
// (replication filter values, retention and immutable rule params, GC
// parameters). Without this the validator would refuse requests Harbor
// serves. Nothing else is changed.
func amendSpec(doc *loads.Document) {
	untyped := func(sc *spec.Schema) bool {
		return sc != nil && sc.Type.Contains("object") && len(sc.Properties) == 0 && sc.AdditionalProperties == nil && sc.Ref.String() == ""
	}
	defs := doc.Spec().Definitions
	for name, def := range defs {
		changed := false
		for pname, prop := range def.Properties {
			switch {
			case untyped(&prop):
				prop = spec.Schema{SchemaProps: spec.SchemaProps{Description: prop.Description}}
			case prop.AdditionalProperties != nil && untyped(prop.AdditionalProperties.Schema):
				prop.AdditionalProperties = &spec.SchemaOrBool{Allows: true}
			default:
				continue
			}
			def.Properties[pname] = prop
			changed = true
		}
		if changed {
			defs[name] = def
		}
	}
}

// Close stops the server; answers held back by a Fault's Delay end at
// once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	s.http.Close()
}

// Advance moves the simulator's clock forward, so robots expire; a
// negative d moves it back, so that what is created next is dated in the
// past. It is safe to call while requests are served.
func (s *Server) Advance(d time.Duration) { s.off.Add(int64(d)) }

func (s *Server) clock() time.Time { return s.now().Add(time.Duration(s.off.Load())) }

// herr is an error answered in Harbor's {"errors":[...]} shape.
type herr struct {
	status int
	code   string
	msg    string
}

func (e *herr) Error() string { return e.msg }

func errf(status int, format string, args ...any) *herr {
	code := map[int]string{400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
		409: "CONFLICT", 412: "PRECONDITION", 422: "UNPROCESSABLE_ENTITY", 500: "UNKNOWN", 501: "NOT_IMPLEMENTED"}[status]
	if code == "" {
		code = "UNKNOWN" // Harbor's general code
	}
	return &herr{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// call is one validated request.
type call struct {
	r      *http.Request
	op     string
	params map[string]any
	who    *principal
}

func (c *call) str(name string) string {
	v, _ := c.params[name].(string)
	return v
}

func (c *call) int64(name string) (int64, bool) {
	switch v := c.params[name].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case float64:
		return int64(v), true
	}
	return 0, false
}

func (c *call) bool(name string) bool { b, _ := c.params[name].(bool); return b }

// body decodes the body parameter into v.
func (c *call) body(name string, v any) error {
	raw, ok := c.params[name]
	if !ok {
		return errf(http.StatusBadRequest, "missing body %s", name)
	}
	b, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return errf(http.StatusBadRequest, "body %s: %v", name, err)
	}
	return nil
}

// reply is what a handler answers.
type reply struct {
	status  int
	body    any
	headers map[string]string
}

type handler func(s *Server, c *call) (reply, error)

// handlers maps swagger operation ids to what the simulator does; each
// resource's file adds its own. An operation not listed answers 501.
var handlers = map[string]handler{}

// page cuts a list by the page and page_size parameters, with
// X-Total-Count as Harbor sends it.
func page[T any](c *call, all []T) reply {
	n, _ := c.int64("page")
	size, _ := c.int64("page_size")
	if n < 1 {
		n = 1
	}
	if size < 1 {
		size = 10
	}
	start := min(int((n-1)*size), len(all))
	end := min(start+int(size), len(all))
	body := all[start:end]
	if body == nil {
		body = []T{}
	}
	return reply{body: body, headers: map[string]string{"X-Total-Count": strconv.Itoa(len(all))}}
}

// ts is a time as Harbor writes it.
func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if f := s.fault(r); f != nil && s.serveFault(w, r, f) {
		return
	}
	if r.URL.Path == "/service/token" && r.Method == http.MethodGet {
		s.serveToken(w, r) // core's registry token service; not in the API spec
		return
	}
	// Harbor's request-id middleware gives a request without X-Request-Id
	// one before anything else sees it.
	if r.Header.Get("X-Request-Id") == "" {
		r.Header.Set("X-Request-Id", strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	route, r, ok := s.mctx.RouteInfo(r)
	if !ok {
		s.write(w, r, nil, reply{}, errf(http.StatusNotFound, "no such API: %s %s", r.Method, r.URL.Path))
		return
	}
	op := route.Operation.ID
	h, ok := handlers[op]
	if !ok {
		s.write(w, r, route, reply{}, errf(http.StatusNotImplemented, "the simulator does not implement %s", op))
		return
	}
	// As in Harbor, credentials that do not authenticate (wrong, disabled,
	// expired) leave the request anonymous: open APIs still answer, the
	// rest say 401.
	who, _ := s.authenticate(r)
	params, r, err := s.mctx.BindAndValidate(r, route)
	if err != nil {
		s.write(w, r, route, reply{}, errf(http.StatusBadRequest, "invalid request for %s: %v", op, err))
		return
	}
	m, _ := params.(map[string]any)
	rep, err := h(s, &call{r: r, op: op, params: m, who: who})
	s.write(w, r, route, rep, err)
}

// write validates the reply against the operation's responses and sends
// it; an answer the spec does not allow becomes a 500 that says why.
func (s *Server) write(w http.ResponseWriter, r *http.Request, route *middleware.MatchedRoute, rep reply, err error) {
	if err != nil {
		e, ok := err.(*herr)
		if !ok {
			e = errf(http.StatusInternalServerError, "%v", err)
		}
		rep = reply{status: e.status, body: map[string]any{"errors": []any{map[string]any{"code": e.code, "message": e.msg}}}}
	}
	if rep.status == 0 {
		rep.status = http.StatusOK
	}
	var payload []byte
	if rep.body != nil {
		if b, ok := rep.body.([]byte); ok {
			payload = b
		} else {
			payload, err = json.Marshal(rep.body)
			if err != nil {
				rep.status, payload = 500, []byte(fmt.Sprintf(`{"errors":[{"code":"UNKNOWN","message":%q}]}`, err.Error()))
			}
		}
	}
	if route != nil {
		if verr := s.validateResponse(route.Operation, rep.status, payload); verr != nil {
			rep.status = http.StatusInternalServerError
			payload, _ = json.Marshal(map[string]any{"errors": []any{map[string]any{"code": "UNKNOWN",
				"message": "simulator answer violates swagger.yaml: " + verr.Error() + "; the answer was: " + string(payload)}}})
		}
	}
	w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id"))
	for k, v := range rep.headers {
		w.Header().Set(k, v)
	}
	if payload != nil {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(payload)
}

// validateResponse checks a status and body against the operation.
func (s *Server) validateResponse(op *spec.Operation, status int, payload []byte) error {
	if op.Responses == nil {
		return nil
	}
	resp, ok := op.Responses.StatusCodeResponses[status]
	switch {
	case ok:
	case status >= 400 && op.Responses.Default != nil:
		resp = *op.Responses.Default
	case status >= 400:
		// Harbor answers some errors its spec does not list (getProject's
		// 404, for one); those must still carry its Errors body.
		resp = spec.Response{ResponseProps: spec.ResponseProps{Schema: spec.RefSchema("#/definitions/Errors")}}
	default:
		return fmt.Errorf("%s has no %d response", op.ID, status)
	}
	if ref := resp.Ref.String(); ref != "" {
		name := strings.TrimPrefix(ref, "#/responses/")
		r, ok := s.doc.Spec().Responses[name]
		if !ok {
			return fmt.Errorf("unresolved %s", ref)
		}
		resp = r
	}
	if resp.Schema == nil {
		return nil
	}
	var data any
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &data); err != nil {
			return fmt.Errorf("%s %d: body is not JSON: %w", op.ID, status, err)
		}
	}
	res := validate.NewSchemaValidator(resp.Schema, s.doc.Spec(), "", strfmt.Default).Validate(data)
	if res != nil && !res.IsValid() {
		return fmt.Errorf("%s %d: %v", op.ID, status, res.AsError())
	}
	return nil
}
