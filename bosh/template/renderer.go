package template

import (
	"bufio"
	"bytes"
	"context"
	_ "embed" // the Ruby renderer script
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubefoundry/kubefoundry"
)

//go:embed render.rb
var script string

// maxAnswer bounds one answer line from the renderer (every template of
// one instance, base64): 256 MiB.
const maxAnswer = 256 << 20

// Option configures a Renderer.
type Option interface{ apply(*Renderer) }

type optionFunc func(*Renderer)

func (f optionFunc) apply(r *Renderer) { f(r) }

// WithRuby sets the Ruby interpreter to run; the default is "ruby" from
// PATH.
func WithRuby(path string) Option { return optionFunc(func(r *Renderer) { r.ruby = path }) }

// Renderer renders BOSH job templates with one Ruby process, started on
// the first Render and kept until Close: one process per deploy, however
// many instances and templates. It is safe for concurrent use; renders
// are serialised on the process.
type Renderer struct {
	ruby string

	mu     sync.Mutex
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *tail
	done   chan struct{} // closed when the process has exited
	seq    int
	closed bool

	started atomic.Int64
}

// New returns a Renderer; its Ruby process starts on the first Render.
func New(opts ...Option) *Renderer {
	r := &Renderer{ruby: "ruby"}
	for _, o := range opts {
		o.apply(r)
	}
	return r
}

// Processes is how many Ruby processes the Renderer has started: 1 for a
// whole deploy unless a render was cancelled (which stops the process).
func (r *Renderer) Processes() int { return int(r.started.Load()) }

// Close stops the Ruby process. The Renderer can't be used afterwards.
func (r *Renderer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.stop()
}

// stop ends the process, politely (stdin closed) and then for sure.
func (r *Renderer) stop() error {
	if r.cmd == nil {
		return nil
	}
	_ = r.in.Close()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
	return nil
}

func (r *Renderer) start() error {
	path, err := exec.LookPath(r.ruby)
	if err != nil {
		return fmt.Errorf("%w: BOSH job templates are ERB, rendered by Ruby, and %q was not found (install it: apt-get install ruby): %v",
			kubefoundry.ErrUnavailable, r.ruby, err)
	}
	cmd := exec.Command(path, "-e", script) //nolint:gosec // the interpreter is the caller's choice
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	r.stderr = &tail{max: 64 << 10}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the template renderer (%s): %w", path, err)
	}
	r.started.Add(1)
	r.cmd, r.in, r.out = cmd, in, bufio.NewReaderSize(out, 1<<20)
	r.done = make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(r.done)
	return nil
}

type request struct {
	ID       int              `json:"id"`
	Contexts []map[string]any `json:"contexts"`
	Items    []item           `json:"items"`
}

type item struct {
	Name    string `json:"name"`
	Source  []byte `json:"source"` // base64, as the script reads it
	Context int    `json:"context"`
}

type answer struct {
	ID      *int     `json:"id"`
	Fatal   string   `json:"fatal"`
	Results []result `json:"results"`
}

type result struct {
	Output []byte `json:"output"`
	Error  *struct {
		Class   string `json:"class"`
		Message string `json:"message"`
		Line    int    `json:"line"`
	} `json:"error"`
}

// Render renders every template of every job on one instance in a single
// round trip to the Ruby process, and returns the files in job order, then
// by template name. A template that raises does not stop the others: every
// failure is returned at once, each a *TemplateError naming the job, the
// template, the Ruby error and its line. Cancelling ctx stops the process
// (the next Render starts another).
func (r *Renderer) Render(ctx context.Context, inst Instance, jobs []Job) ([]File, error) {
	req := request{}
	var files []File
	var problems []error
	for i := range jobs {
		j := &jobs[i]
		if j.Spec == nil {
			problems = append(problems, fmt.Errorf("%w: job %d has no spec", kubefoundry.ErrInvalid, i))
			continue
		}
		req.Contexts = append(req.Contexts, inst.context(j))
		for _, src := range sortedKeys(j.Spec.Templates) {
			body, ok := j.Templates[src]
			if !ok {
				problems = append(problems, &TemplateError{Job: j.Spec.Name, Template: src, Class: "MissingTemplate",
					Message: "the job's spec names it, and the job has no such template"})
				continue
			}
			req.Items = append(req.Items, item{Name: j.Spec.Name + "/templates/" + src, Source: body, Context: len(req.Contexts) - 1})
			files = append(files, File{Job: j.Spec.Name, Template: src, Path: j.Spec.Templates[src]})
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if len(req.Items) == 0 {
		return nil, nil
	}
	results, err := r.roundTrip(ctx, &req)
	if err != nil {
		return nil, err
	}
	for i, res := range results {
		if res.Error != nil {
			problems = append(problems, &TemplateError{Job: files[i].Job, Template: files[i].Template,
				Class: res.Error.Class, Message: res.Error.Message, Line: res.Error.Line})
			continue
		}
		files[i].Content = res.Output
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return files, nil
}

func (r *Renderer) roundTrip(ctx context.Context, req *request) ([]result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("template renderer: closed")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.cmd == nil {
		if err := r.start(); err != nil {
			return nil, err
		}
	}
	r.seq++
	req.ID = r.seq
	line, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("template context: %w", err)
	}
	type read struct {
		line []byte
		err  error
	}
	got := make(chan read, 1)
	go func() {
		if _, err := r.in.Write(append(line, '\n')); err != nil {
			got <- read{err: err}
			return
		}
		b, err := readLine(r.out, maxAnswer)
		got <- read{b, err}
	}()
	var rd read
	select {
	case rd = <-got:
	case <-ctx.Done():
		_ = r.cmd.Process.Kill()
		<-got // the pipes close with the process
		_ = r.stop()
		return nil, fmt.Errorf("render templates: %w", ctx.Err())
	}
	if rd.err != nil {
		_ = r.cmd.Process.Kill()
		_ = r.stop()
		return nil, fmt.Errorf("template renderer stopped: %v: %s", rd.err, strings.TrimSpace(r.stderr.String()))
	}
	var a answer
	if err := json.Unmarshal(rd.line, &a); err != nil {
		return nil, fmt.Errorf("template renderer answered %.80q: %w", rd.line, err)
	}
	switch {
	case a.Fatal != "":
		return nil, fmt.Errorf("template renderer refused the request: %s", a.Fatal)
	case a.ID == nil || *a.ID != req.ID || len(a.Results) != len(req.Items):
		return nil, fmt.Errorf("template renderer answered request %v with %d results; want request %d with %d",
			a.ID, len(a.Results), req.ID, len(req.Items))
	}
	return a.Results, nil
}

// readLine reads one newline-terminated line of at most limit bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(line) > limit {
				return nil, fmt.Errorf("answer larger than %d bytes", limit)
			}
		default:
			return nil, err
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// tail keeps the last max bytes written to it (the renderer's stderr).
type tail struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
