package cpi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Request is one CPI call as the director writes it to the CPI's stdin.
type Request struct {
	Method     string            `json:"method"`
	Arguments  []json.RawMessage `json:"arguments"`
	Context    RequestContext    `json:"context"`
	APIVersion int               `json:"api_version,omitempty"`
}

// RequestContext is the request's context: who calls, and the CPI
// config's properties for this CPI (kept in Properties).
type RequestContext struct {
	DirectorUUID string         `json:"director_uuid,omitempty"`
	RequestID    string         `json:"request_id,omitempty"`
	VM           *VMContext     `json:"vm,omitempty"`
	Properties   map[string]any `json:"-"`
}

// VMContext says which stemcell API version the VM's stemcell has.
type VMContext struct {
	Stemcell struct {
		APIVersion int `json:"api_version,omitempty"`
	} `json:"stemcell"`
}

// MarshalJSON writes the known keys and the properties side by side, as
// the director does.
func (rc RequestContext) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range rc.Properties {
		m[k] = v
	}
	if rc.DirectorUUID != "" {
		m["director_uuid"] = rc.DirectorUUID
	}
	if rc.RequestID != "" {
		m["request_id"] = rc.RequestID
	}
	if rc.VM != nil {
		m["vm"] = rc.VM
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the known keys and keeps the rest as Properties.
func (rc *RequestContext) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	type known struct {
		DirectorUUID string     `json:"director_uuid,omitempty"`
		RequestID    string     `json:"request_id,omitempty"`
		VM           *VMContext `json:"vm,omitempty"`
	}
	var k known
	if err := json.Unmarshal(b, &k); err != nil {
		return err
	}
	rc.DirectorUUID, rc.RequestID, rc.VM = k.DirectorUUID, k.RequestID, k.VM
	rc.Properties = nil
	for key, v := range m {
		switch key {
		case "director_uuid", "request_id", "vm":
			continue
		}
		var val any
		if err := json.Unmarshal(v, &val); err != nil {
			return err
		}
		if rc.Properties == nil {
			rc.Properties = map[string]any{}
		}
		rc.Properties[key] = val
	}
	return nil
}

// Response is a CPI's answer on its stdout: a result or an error, and a
// log.
type Response struct {
	Result any    `json:"result"`
	Error  *Error `json:"error"`
	Log    string `json:"log"`
}

type requestContextKey struct{}

// WithRequestContext returns ctx carrying rc: Serve gives each call the
// request's context this way, and External sends the one ctx carries.
func WithRequestContext(ctx context.Context, rc RequestContext) context.Context {
	return context.WithValue(ctx, requestContextKey{}, rc)
}

// RequestContextFrom returns the request context ctx carries.
func RequestContextFrom(ctx context.Context) (RequestContext, bool) {
	rc, ok := ctx.Value(requestContextKey{}).(RequestContext)
	return rc, ok
}

// maxRequest bounds what Serve reads from stdin.
const maxRequest = 64 << 20

// Serve answers one request read from in with c, writing the response to
// out, as a CPI executable does for each call. Errors c returns go into
// the response (an *Error as it is, any other as CloudError); Serve's own
// error is only for a response it could not write.
func Serve(ctx context.Context, c CPI, in io.Reader, out io.Writer) error {
	res := Response{}
	var req Request
	data, err := io.ReadAll(io.LimitReader(in, maxRequest+1))
	switch {
	case err != nil:
		res.Error = Errorf(CloudError, false, "read request: %v", err)
	case len(data) > maxRequest:
		res.Error = Errorf(CloudError, false, "request larger than %d bytes", maxRequest)
	default:
		if err := json.Unmarshal(data, &req); err != nil {
			res.Error = Errorf(CloudError, false, "request is not a CPI request: %v", err)
		}
	}
	if res.Error == nil {
		result, err := dispatch(WithRequestContext(ctx, req.Context), c, req)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				ce = &Error{Type: CloudError, Message: err.Error()}
			}
			res.Error = ce
		} else {
			res.Result = result
		}
	}
	return json.NewEncoder(out).Encode(res)
}

// args decodes a request's arguments into dst, one each, and says how
// many were wanted when they do not match.
func args(req Request, dst ...any) error {
	if len(req.Arguments) != len(dst) {
		return Errorf(CloudError, false, "%s takes %d arguments, got %d", req.Method, len(dst), len(req.Arguments))
	}
	for i, d := range dst {
		if err := json.Unmarshal(req.Arguments[i], d); err != nil {
			return Errorf(CloudError, false, "%s: argument %d: %v", req.Method, i+1, err)
		}
	}
	return nil
}

func dispatch(ctx context.Context, c CPI, req Request) (any, error) {
	var (
		cid, cid2, path, agent string
		props                  CloudProps
		nets                   Networks
		disks                  []string
		env                    Env
		md                     Metadata
		size                   int
		res                    VMResources
	)
	switch req.Method {
	case "info":
		if err := args(req); err != nil {
			return nil, err
		}
		return c.Info(ctx)
	case "create_stemcell":
		if err := args(req, &path, &props); err != nil {
			return nil, err
		}
		return c.CreateStemcell(ctx, path, props)
	case "delete_stemcell":
		if err := args(req, &cid); err != nil {
			return nil, err
		}
		return nil, c.DeleteStemcell(ctx, cid)
	case "create_vm":
		if err := args(req, &agent, &cid, &props, &nets, &disks, &env); err != nil {
			return nil, err
		}
		vm, got, err := c.CreateVM(ctx, agent, cid, props, nets, disks, env)
		if err != nil {
			return nil, err
		}
		if req.APIVersion < 2 {
			return vm, nil // v1 answers the cid alone
		}
		return []any{vm, got}, nil
	case "delete_vm":
		if err := args(req, &cid); err != nil {
			return nil, err
		}
		return nil, c.DeleteVM(ctx, cid)
	case "has_vm":
		if err := args(req, &cid); err != nil {
			return nil, err
		}
		return c.HasVM(ctx, cid)
	case "reboot_vm":
		if err := args(req, &cid); err != nil {
			return nil, err
		}
		return nil, c.RebootVM(ctx, cid)
	case "set_vm_metadata":
		if err := args(req, &cid, &md); err != nil {
			return nil, err
		}
		return nil, c.SetVMMetadata(ctx, cid, md)
	case "calculate_vm_cloud_properties":
		if err := args(req, &res); err != nil {
			return nil, err
		}
		return c.CalculateVMCloudProperties(ctx, res)
	case "create_disk":
		var vm *string
		if err := args(req, &size, &props, &vm); err != nil {
			return nil, err
		}
		if vm != nil {
			cid = *vm
		}
		return c.CreateDisk(ctx, size, props, cid)
	case "delete_disk":
		if err := args(req, &cid); err != nil {
			return nil, err
		}
		return nil, c.DeleteDisk(ctx, cid)
	case "has_disk":
		if err := args(req, &cid); err != nil {
			return nil, err
		}
		return c.HasDisk(ctx, cid)
	case "attach_disk":
		if err := args(req, &cid, &cid2); err != nil {
			return nil, err
		}
		hint, err := c.AttachDisk(ctx, cid, cid2)
		if err != nil || req.APIVersion < 2 {
			return nil, err
		}
		return hint, nil
	case "detach_disk":
		if err := args(req, &cid, &cid2); err != nil {
			return nil, err
		}
		return nil, c.DetachDisk(ctx, cid, cid2)
	case "resize_disk":
		if err := args(req, &cid, &size); err != nil {
			return nil, err
		}
		return nil, c.ResizeDisk(ctx, cid, size)
	case "set_disk_metadata":
		if err := args(req, &cid, &md); err != nil {
			return nil, err
		}
		return nil, c.SetDiskMetadata(ctx, cid, md)
	case "get_disks":
		if err := args(req, &cid); err != nil {
			return nil, err
		}
		return c.GetDisks(ctx, cid)
	case "snapshot_disk":
		if err := args(req, &cid, &md); err != nil {
			return nil, err
		}
		return c.SnapshotDisk(ctx, cid, md)
	case "delete_snapshot":
		if err := args(req, &cid); err != nil {
			return nil, err
		}
		return nil, c.DeleteSnapshot(ctx, cid)
	}
	return nil, Errorf(NotImplemented, false, "method %q is not implemented", req.Method)
}

// External is a CPI executable (a CPI release's bin/cpi), called as the
// director calls it: a process per call, one JSON request on its stdin,
// one JSON response read from its stdout whatever its exit status, its
// stderr kept for the error when the response cannot be read. It
// implements CPI.
type External struct {
	Path string   // the executable
	Args []string // its arguments, such as a config file
	Env  []string // its environment; nil inherits this process's
	// Context is sent with every call, unless the call's ctx carries one
	// (WithRequestContext).
	Context RequestContext
	// LastLog receives each response's log, when set.
	LastLog func(method, log string)
}

// maxOutput bounds what External keeps of a CPI's stdout and stderr.
const maxOutput = 64 << 20

type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// call runs one method and decodes its result into result (nil to drop it).
func (e *External) call(ctx context.Context, method string, result any, arguments ...any) error {
	req := Request{Method: method, Context: e.Context, APIVersion: APIVersion, Arguments: make([]json.RawMessage, len(arguments))}
	if rc, ok := RequestContextFrom(ctx); ok {
		req.Context = rc
	}
	for i, a := range arguments {
		b, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("cpi %s: argument %d: %w", method, i+1, err)
		}
		req.Arguments[i] = b
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("cpi %s: %w", method, err)
	}
	cmd := exec.CommandContext(ctx, e.Path, e.Args...)
	cmd.Env = e.Env
	cmd.Stdin = bytes.NewReader(body)
	stdout, stderr := &limitedBuffer{max: maxOutput}, &limitedBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("cpi %s: %w", method, ctx.Err())
	}
	var res struct {
		Result json.RawMessage `json:"result"`
		Error  *Error          `json:"error"`
		Log    string          `json:"log"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return fmt.Errorf("cpi %s: no response from %s (%v): %w; stderr: %s", method, e.Path, runErr, err, tail(stderr.String(), 2048))
	}
	if e.LastLog != nil {
		e.LastLog(method, res.Log)
	}
	if res.Error != nil {
		return res.Error
	}
	if result == nil || len(res.Result) == 0 || string(res.Result) == "null" {
		return nil
	}
	if err := json.Unmarshal(res.Result, result); err != nil {
		return fmt.Errorf("cpi %s: result %s: %w", method, tail(string(res.Result), 256), err)
	}
	return nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (e *External) Info(ctx context.Context) (Info, error) {
	var i Info
	return i, e.call(ctx, "info", &i)
}

func (e *External) CreateStemcell(ctx context.Context, imagePath string, cloudProps CloudProps) (string, error) {
	var cid string
	return cid, e.call(ctx, "create_stemcell", &cid, imagePath, nonNil(cloudProps))
}

func (e *External) DeleteStemcell(ctx context.Context, stemcellCID string) error {
	return e.call(ctx, "delete_stemcell", nil, stemcellCID)
}

func (e *External) CreateVM(ctx context.Context, agentID, stemcellCID string, cloudProps CloudProps, networks Networks, diskCIDs []string, env Env) (string, Networks, error) {
	var raw json.RawMessage
	if diskCIDs == nil {
		diskCIDs = []string{}
	}
	if networks == nil {
		networks = Networks{}
	}
	if env == nil {
		env = Env{}
	}
	if err := e.call(ctx, "create_vm", &raw, agentID, stemcellCID, nonNil(cloudProps), networks, diskCIDs, env); err != nil {
		return "", nil, err
	}
	// v2: [cid, networks]; a v1 CPI answers the cid alone.
	var cid string
	if json.Unmarshal(raw, &cid) == nil {
		return cid, nil, nil
	}
	var pair []json.RawMessage
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) == 0 {
		return "", nil, fmt.Errorf("cpi create_vm: result %s is neither a cid nor [cid, networks]", tail(string(raw), 256))
	}
	if err := json.Unmarshal(pair[0], &cid); err != nil {
		return "", nil, fmt.Errorf("cpi create_vm: vm cid: %w", err)
	}
	var nets Networks
	if len(pair) > 1 {
		if err := json.Unmarshal(pair[1], &nets); err != nil {
			return cid, nil, fmt.Errorf("cpi create_vm: networks: %w", err)
		}
	}
	return cid, nets, nil
}

func (e *External) DeleteVM(ctx context.Context, vmCID string) error {
	return e.call(ctx, "delete_vm", nil, vmCID)
}

func (e *External) HasVM(ctx context.Context, vmCID string) (bool, error) {
	var ok bool
	return ok, e.call(ctx, "has_vm", &ok, vmCID)
}

func (e *External) RebootVM(ctx context.Context, vmCID string) error {
	return e.call(ctx, "reboot_vm", nil, vmCID)
}

func (e *External) SetVMMetadata(ctx context.Context, vmCID string, metadata Metadata) error {
	return e.call(ctx, "set_vm_metadata", nil, vmCID, metadata)
}

func (e *External) CalculateVMCloudProperties(ctx context.Context, resources VMResources) (CloudProps, error) {
	var p CloudProps
	return p, e.call(ctx, "calculate_vm_cloud_properties", &p, resources)
}

func (e *External) CreateDisk(ctx context.Context, sizeMB int, cloudProps CloudProps, vmCID string) (string, error) {
	var vm any
	if vmCID != "" {
		vm = vmCID
	}
	var cid string
	return cid, e.call(ctx, "create_disk", &cid, sizeMB, nonNil(cloudProps), vm)
}

func (e *External) DeleteDisk(ctx context.Context, diskCID string) error {
	return e.call(ctx, "delete_disk", nil, diskCID)
}

func (e *External) HasDisk(ctx context.Context, diskCID string) (bool, error) {
	var ok bool
	return ok, e.call(ctx, "has_disk", &ok, diskCID)
}

func (e *External) AttachDisk(ctx context.Context, vmCID, diskCID string) (DiskHint, error) {
	var hint json.RawMessage
	return hint, e.call(ctx, "attach_disk", &hint, vmCID, diskCID)
}

func (e *External) DetachDisk(ctx context.Context, vmCID, diskCID string) error {
	return e.call(ctx, "detach_disk", nil, vmCID, diskCID)
}

func (e *External) ResizeDisk(ctx context.Context, diskCID string, newSizeMB int) error {
	return e.call(ctx, "resize_disk", nil, diskCID, newSizeMB)
}

func (e *External) SetDiskMetadata(ctx context.Context, diskCID string, metadata Metadata) error {
	return e.call(ctx, "set_disk_metadata", nil, diskCID, metadata)
}

func (e *External) GetDisks(ctx context.Context, vmCID string) ([]string, error) {
	var cids []string
	return cids, e.call(ctx, "get_disks", &cids, vmCID)
}

func (e *External) SnapshotDisk(ctx context.Context, diskCID string, metadata Metadata) (string, error) {
	var cid string
	return cid, e.call(ctx, "snapshot_disk", &cid, diskCID, metadata)
}

func (e *External) DeleteSnapshot(ctx context.Context, snapshotCID string) error {
	return e.call(ctx, "delete_snapshot", nil, snapshotCID)
}

func nonNil(p CloudProps) CloudProps {
	if p == nil {
		return CloudProps{}
	}
	return p
}

var _ CPI = (*External)(nil)

// ServeError answers the request on in with err, for a CPI executable
// that could not even start (a bad config, a vCenter that refuses it): the
// caller reads a response on stdout whatever happened. An *Error is sent
// as it is; any other as a CloudError the caller may retry.
func ServeError(in io.Reader, out io.Writer, err error) error {
	_, _ = io.Copy(io.Discard, io.LimitReader(in, maxRequest))
	var ce *Error
	if !errors.As(err, &ce) {
		ce = &Error{Type: CloudError, Message: err.Error(), OKToRetry: true}
	}
	return json.NewEncoder(out).Encode(Response{Error: ce})
}
