package template_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/links"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/template"
)

// From a release directory to rendered files, as a deploy does it: create
// the release tarball, read it back, resolve the manifest's links against
// its job specs, bind each job's properties, and render every template of
// every instance with one Ruby process.
func TestRenderRelease(t *testing.T) {
	needRuby(t)
	var tgz bytes.Buffer
	if _, err := release.Create(ctx(t), "../release/testdata/release", &tgz, release.WithName("demo"), release.WithVersion("1.0")); err != nil {
		t.Fatal(err)
	}
	rel, err := release.Read(ctx(t), &tgz)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse([]byte(`name: demo
releases: [{name: demo, version: "1.0"}]
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}]
update: {canaries: 1, max_in_flight: 1, canary_watch_time: 1000, update_watch_time: 1000}
instance_groups:
- name: bus
  instances: 2
  vm_type: small
  stemcell: default
  networks: [{name: default}]
  jobs:
  - name: nats
    release: demo
    properties: {nats: {password: s3cret, cluster: [10.0.0.2, 10.0.0.3]}}
- name: web
  instances: 1
  vm_type: small
  stemcell: default
  networks: [{name: default}]
  jobs:
  - name: api
    release: demo
    properties: {api: {tls: {enabled: true}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	specs := func(relName, job string) (*release.JobSpec, error) {
		if j := rel.Job(job); j != nil && relName == "demo" {
			return &j.Spec, nil
		}
		return nil, fmt.Errorf("%w: job %q", kubefoundry.ErrNotFound, job)
	}
	l, err := links.Resolve(m, specs, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Where the plan put the instances.
	addr := map[string][]string{"bus": {"10.0.0.2", "10.0.0.3"}, "web": {"10.0.1.2"}}
	instancesOf := func(group string) []template.LinkInstance {
		var out []template.LinkInstance
		for i, a := range addr[group] {
			out = append(out, template.LinkInstance{Name: group, Index: i, ID: fmt.Sprintf("%s-%d", group, i), Address: a, Bootstrap: i == 0})
		}
		return out
	}
	props := map[string]map[string]any{}
	for _, g := range m.InstanceGroups {
		for _, j := range g.Jobs {
			p, err := template.Properties(specs2(t, specs, j.Name), j.Properties, g.Properties, m.Properties)
			if err != nil {
				t.Fatal(err)
			}
			props[g.Name+"/"+j.Name] = p
		}
	}

	r := renderer(t)
	rendered := map[string]string{}
	for _, g := range m.InstanceGroups {
		for i := range addr[g.Name] {
			var jobs []template.Job
			for _, j := range g.Jobs {
				rj := rel.Job(j.Name)
				tj := template.Job{Spec: &rj.Spec, Release: "demo", ReleaseVersion: "1.0", Templates: rj.Templates,
					Properties: props[g.Name+"/"+j.Name], Links: map[string]*template.Link{}}
				for name, b := range l.For(g.Name, j.Name) {
					var pp map[string]any
					if b.Provider != nil {
						pp = props[b.Provider.Group+"/"+b.Provider.Job]
						tj.Links[name] = b.Link(instancesOf(b.Provider.Group), pp, "default", nil)
					} else {
						tj.Links[name] = nil
					}
				}
				jobs = append(jobs, tj)
			}
			files, err := r.Render(ctx(t), template.Instance{Deployment: "demo", Group: g.Name, Index: i, Address: addr[g.Name][i]}, jobs)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				rendered[fmt.Sprintf("%s/%d/%s/%s", g.Name, i, f.Job, f.Path)] = string(f.Content)
			}
		}
	}
	if n := r.Processes(); n != 1 {
		t.Errorf("%d Ruby processes for the deploy, want 1", n)
	}
	for file, want := range map[string][]string{
		"bus/1/nats/config/nats.conf": {"port: 4222", "user: nats", `password: "s3cret"`, "routes = [nats://10.0.0.2:4223, nats://10.0.0.3:4223]"},
		"web/0/api/config/config.yml": {"listen: 0.0.0.0:8080", "tls_enabled: true", "nats: 10.0.0.2:4222,10.0.0.3:4222"},
		"web/0/api/config/bpm.yml":    {"executable: /var/vcap/packages/api/bin/api"},
		"bus/0/nats/bin/ctl":          {"exec /var/vcap/packages/nats/bin/nats-server"},
	} {
		got, ok := rendered[file]
		if !ok {
			t.Errorf("%s was not rendered (rendered: %d files)", file, len(rendered))
			continue
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s lacks %q:\n%s", file, w, got)
			}
		}
	}
	if strings.Contains(rendered["web/0/api/config/config.yml"], "database") {
		t.Error("the optional database link has no provider, and the template rendered its if_link branch")
	}
	if len(rendered) != 2*2+1*2 {
		t.Errorf("%d files rendered, want 6", len(rendered))
	}
}

func specs2(t *testing.T, specs links.Specs, job string) *release.JobSpec {
	t.Helper()
	s, err := specs("demo", job)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
