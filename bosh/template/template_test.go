package template_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/template"
)

func needRuby(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ruby"); err != nil {
		t.Fatal("ruby is not installed: BOSH job templates are rendered by Ruby (.ci/run installs it; apt-get install ruby)")
	}
}

func renderer(t testing.TB) *template.Renderer {
	t.Helper()
	needRuby(t)
	r := template.New()
	t.Cleanup(func() {
		closed := make(chan struct{})
		go func() { _ = r.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Error("Close did not return within 10 s")
		}
	})
	return r
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// etcdSpec is a job spec in the shape real releases use.
var etcdSpec = &release.JobSpec{
	Name: "etcd",
	Templates: map[string]string{
		"config.yml.erb": "config/config.yml",
		"ctl.erb":        "bin/ctl",
	},
	Properties: map[string]release.Property{
		"etcd.port":          {Default: 2379},
		"etcd.peer_port":     {Default: 2380},
		"etcd.name":          {},
		"etcd.tls.enabled":   {Default: false},
		"etcd.heartbeat_ms":  {},
		"etcd.cluster_token": {Default: "k8s"},
	},
	Consumes: []release.Link{{Name: "etcd", Type: "etcd"}, {Name: "dns", Type: "dns", Optional: true}},
	Provides: []release.Link{{Name: "etcd", Type: "etcd", Properties: []string{"etcd.port"}}},
}

const configTemplate = `<%- peers = link("etcd").instances.map { |i| "#{i.name}-#{i.index}=https://#{i.address}:#{p("etcd.peer_port")}" } -%>
name: <%= spec.name %>-<%= spec.index %>
id: <%= spec.id %>
az: <%= spec.az %>
bootstrap: <%= spec.bootstrap %>
deployment: <%= spec.deployment %>
ip: <%= spec.networks.default.ip %>
address: <%= spec.address %>
job: <%= name %>/<%= index %> of <%= spec.release.name %> <%= spec.release.version %>
listen: <%= p("etcd.port") %>
token: <%= p(["etcd.missing", "etcd.cluster_token"]) %>
heartbeat: <%= p("etcd.heartbeat_ms", 100) %>
<% if_p("etcd.name") do |n| -%>
name_set: <%= n %>
<% end.else do -%>
name_set: none
<% end -%>
<% if p("etcd.tls.enabled") -%>
tls: on
<% end -%>
peers: <%= peers.join(",") %>
client_port_from_link: <%= link("etcd").p("etcd.port") %>
group: <%= link("etcd").address %>
group_z2_healthy: <%= link("etcd").address(azs: ["z2"], status: "healthy") %>
<% if_link("dns") do |d| -%>
dns: <%= d.instances.size %>
<% end.else do -%>
dns: none
<% end -%>
sum: <%= [1, 2, 3].sum * 2 %>
utf8: <%= "δ" %>`

func etcdJob(t *testing.T) template.Job {
	props, err := template.Properties(etcdSpec, map[string]any{"etcd": map[string]any{"tls": map[string]any{"enabled": true}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return template.Job{
		Spec:           etcdSpec,
		Release:        "kubo",
		ReleaseVersion: "1.2.3",
		Templates: map[string][]byte{
			"config.yml.erb": []byte(configTemplate),
			"ctl.erb":        []byte("#!/bin/bash\n<% $stdout.puts 'noise'; print 'more noise'; $stdout.flush -%>\nexec etcd --port <%= p('etcd.port') %>\n"),
		},
		Properties: props,
		Links: map[string]*template.Link{
			"etcd": {
				InstanceGroup: "master", DefaultNetwork: "default", DeploymentName: "k8s",
				Instances: []template.LinkInstance{
					{Name: "master", ID: "a1", Index: 0, AZ: "z1", Address: "10.0.0.10", Bootstrap: true},
					{Name: "master", ID: "b2", Index: 1, AZ: "z2", Address: "10.0.0.11"},
				},
				Properties: map[string]any{"etcd": map[string]any{"port": 2379}},
				AZIDs:      map[string]int{"z1": 1, "z2": 2},
			},
			"dns": nil,
		},
	}
}

var master1 = template.Instance{
	Deployment: "k8s", Group: "master", ID: "b2", Index: 1, AZ: "z2",
	Address: "10.0.0.11", IP: "10.0.0.11",
	Networks: map[string]template.Network{"default": {IP: "10.0.0.11", Netmask: "255.255.255.0", Gateway: "10.0.0.1", Default: []string{"dns", "gateway"}}},
}

func TestRender(t *testing.T) {
	r := renderer(t)
	files, err := r.Render(ctx(t), master1, []template.Job{etcdJob(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Template != "config.yml.erb" || files[0].Path != "config/config.yml" || files[1].Path != "bin/ctl" {
		t.Fatalf("files = %+v", files)
	}
	want := `name: master-1
id: b2
az: z2
bootstrap: false
deployment: k8s
ip: 10.0.0.11
address: 10.0.0.11
job: etcd/1 of kubo 1.2.3
listen: 2379
token: k8s
heartbeat: 100
name_set: none
tls: on
peers: master-0=https://10.0.0.10:2380,master-1=https://10.0.0.11:2380
client_port_from_link: 2379
group: q-s0.master.default.k8s.bosh
group_z2_healthy: q-a2s3.master.default.k8s.bosh
dns: none
sum: 12
utf8: δ`
	if got := string(files[0].Content); got != want {
		t.Errorf("config.yml:\n%s\nwant:\n%s", got, want)
	}
	if got, want := string(files[1].Content), "#!/bin/bash\nexec etcd --port 2379\n"; got != want {
		t.Errorf("ctl = %q, want %q (what a template prints must not reach its output)", got, want)
	}
}

func TestRenderErrors(t *testing.T) {
	r := renderer(t)
	spec := &release.JobSpec{
		Name: "api",
		Templates: map[string]string{
			"undeclared.erb": "a", "syntax.erb": "b", "raise.erb": "c", "link.erb": "d", "ok.erb": "e", "missing.erb": "f",
		},
		Properties: map[string]release.Property{"api.port": {Default: 8443}},
	}
	job := template.Job{Spec: spec, Templates: map[string][]byte{
		"undeclared.erb": []byte("line 1\nport: <%= p('api.prot') %>\n"),
		"syntax.erb":     []byte("<% if true %>\nno end\n"),
		"raise.erb":      []byte("\n\n<% raise ArgumentError, 'bad config' %>"),
		"link.erb":       []byte("<%= link('db').address %>"),
		"ok.erb":         []byte("<%= p('api.port') %>"),
	}, Properties: map[string]any{"api": map[string]any{"port": 8443}}}

	// A template the spec names and the job lacks is found before Ruby runs.
	_, err := r.Render(ctx(t), master1, []template.Job{job})
	var te *template.TemplateError
	if !errors.As(err, &te) || te.Template != "missing.erb" || te.Class != "MissingTemplate" {
		t.Fatalf("missing template: %v", err)
	}
	job.Templates["missing.erb"] = []byte("fine")

	_, err = r.Render(ctx(t), master1, []template.Job{job})
	if err == nil || !kubefoundry.IsInvalid(err) {
		t.Fatalf("err = %v, want template errors that are ErrInvalid", err)
	}
	got := map[string]*template.TemplateError{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		if errors.As(e, &te) {
			got[te.Template] = te
		}
	}
	for _, c := range []struct {
		template, class, message string
		line                     int
	}{
		{"undeclared.erb", "UnknownProperty", `Can't find property '["api.prot"]'`, 2},
		{"syntax.erb", "SyntaxError", "", 0},
		{"raise.erb", "ArgumentError", "bad config", 3},
		{"link.erb", "UnknownLink", "Can't find link 'db'", 1},
	} {
		e := got[c.template]
		if e == nil {
			t.Errorf("%s: no error in %v", c.template, err)
			continue
		}
		if e.Class != c.class || !strings.Contains(e.Message, c.message) || (c.line > 0 && e.Line != c.line) || e.Job != "api" {
			t.Errorf("%s: %+v, want class %s, message with %q, line %d", c.template, e, c.class, c.message, c.line)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d template errors, want 4 (ok.erb and missing.erb render): %v", len(got), err)
	}
	if !strings.Contains(err.Error(), "api/templates/undeclared.erb:2: UnknownProperty") {
		t.Errorf("message %q does not name job, template and line", err)
	}

	// The process survives failing templates.
	job.Spec.Templates = map[string]string{"ok.erb": "ok"}
	files, err := r.Render(ctx(t), master1, []template.Job{job})
	if err != nil || string(files[0].Content) != "8443" {
		t.Fatalf("after errors: %v %v", files, err)
	}
	if n := r.Processes(); n != 1 {
		t.Errorf("%d Ruby processes, want 1", n)
	}
}

func TestRenderCancelled(t *testing.T) {
	r := renderer(t)
	spec := &release.JobSpec{Name: "spin", Templates: map[string]string{"loop.erb": "loop"}}
	job := template.Job{Spec: spec, Templates: map[string][]byte{"loop.erb": []byte("<% loop {} %>")}}
	c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := r.Render(c, master1, []template.Job{job}); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a template that never ends hung Render past its context")
	}
	// The next render starts a new process.
	job.Templates["loop.erb"] = []byte("done")
	files, err := r.Render(ctx(t), master1, []template.Job{job})
	if err != nil || string(files[0].Content) != "done" {
		t.Fatalf("after cancel: %v %v", files, err)
	}
	if n := r.Processes(); n != 2 {
		t.Errorf("%d processes, want 2", n)
	}
}

func TestRenderWithoutRuby(t *testing.T) {
	r := template.New(template.WithRuby("/nonexistent/ruby"))
	defer r.Close()
	job := template.Job{Spec: &release.JobSpec{Name: "a", Templates: map[string]string{"x": "x"}}, Templates: map[string][]byte{"x": nil}}
	_, err := r.Render(ctx(t), master1, []template.Job{job})
	if !errors.Is(err, kubefoundry.ErrUnavailable) || !strings.Contains(err.Error(), "apt-get install ruby") {
		t.Fatalf("err = %v, want ErrUnavailable naming the package", err)
	}
}

func TestRenderClosed(t *testing.T) {
	r := renderer(t)
	_ = r.Close()
	job := template.Job{Spec: &release.JobSpec{Name: "a", Templates: map[string]string{"x": "x"}}, Templates: map[string][]byte{"x": nil}}
	if _, err := r.Render(ctx(t), master1, []template.Job{job}); err == nil {
		t.Fatal("render after Close succeeded")
	}
}
