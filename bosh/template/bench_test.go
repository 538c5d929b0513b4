package template_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/template"
)

// benchRelease is a 5-job release whose templates do what real ones do:
// properties with defaults, loops over link instances, spec fields.
func benchRelease(b *testing.B) []template.Job {
	const tmpl = `# <%= spec.deployment %>/<%= spec.name %>/<%= spec.index %> (<%= spec.id %>) in <%= spec.az %>
listen: <%= spec.address %>:<%= p("port") %>
<% if_p("tls.cert") do |cert| -%>
cert: |
  <%= cert.lines.map(&:strip).join("\n  ") %>
<% end.else do -%>
tls: off
<% end -%>
peers:
<% link("peers").instances.each do |i| -%>
- <%= i.name %>/<%= i.index %> <%= i.address %>:<%= link("peers").p("port") %> <%= i.bootstrap ? "bootstrap" : "" %>
<% end -%>
flags: <%= p("flags", []).map { |k, v| "--#{k}=#{v}" }.join(" ") %>
group: <%= link("peers").address(status: "healthy") %>
`
	var jobs []template.Job
	for j := 0; j < 5; j++ {
		name := fmt.Sprintf("job%d", j)
		spec := &release.JobSpec{
			Name:      name,
			Templates: map[string]string{"config.yml.erb": "config/config.yml", "ctl.erb": "bin/ctl", "env.erb": "config/env"},
			Properties: map[string]release.Property{
				"port": {Default: 8000 + j}, "tls.cert": {}, "flags": {Default: map[string]any{"v": 2, "logtostderr": true}},
			},
		}
		props, err := template.Properties(spec, map[string]any{"tls": map[string]any{"cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		peers := &template.Link{InstanceGroup: "master", DefaultNetwork: "default", DeploymentName: "k8s",
			Properties: map[string]any{"port": 8000 + j}}
		for i := 0; i < 3; i++ {
			peers.Instances = append(peers.Instances, template.LinkInstance{Name: "master", Index: i, ID: fmt.Sprint(i), Address: fmt.Sprintf("10.0.0.%d", 10+i), Bootstrap: i == 0})
		}
		jobs = append(jobs, template.Job{
			Spec: spec, Release: "kubo", ReleaseVersion: "1.0", Properties: props,
			Templates: map[string][]byte{"config.yml.erb": []byte(tmpl), "ctl.erb": []byte("#!/bin/bash\nexec /var/vcap/packages/<%= name %>/bin/<%= name %> --port <%= p('port') %>\n"), "env.erb": []byte("INDEX=<%= index %>\n")},
			Links:     map[string]*template.Link{"peers": peers},
		})
	}
	return jobs
}

// BenchmarkRenderTemplates renders every template of 100 instances of a
// 5-job release (1500 templates) per deploy: instances per second, and
// Ruby processes started per deploy (target: 1).
func BenchmarkRenderTemplates(b *testing.B) {
	needRuby(b)
	jobs := benchRelease(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const instances = 100
	processes := 0
	start := time.Now()
	for n := 0; n < b.N; n++ {
		r := template.New() // one Renderer, so one Ruby process, per deploy
		for i := 0; i < instances; i++ {
			inst := template.Instance{Deployment: "k8s", Group: "worker", ID: fmt.Sprintf("w%d", i), Index: i, AZ: "z1",
				Address: fmt.Sprintf("10.0.1.%d", i), IP: fmt.Sprintf("10.0.1.%d", i)}
			files, err := r.Render(ctx, inst, jobs)
			if err != nil {
				b.Fatal(err)
			}
			if len(files) != 15 {
				b.Fatalf("%d files, want 15", len(files))
			}
		}
		processes += r.Processes()
		_ = r.Close()
	}
	b.ReportMetric(float64(instances*b.N)/time.Since(start).Seconds(), "instances/s")
	b.ReportMetric(float64(processes)/float64(b.N), "ruby-processes/deploy")
}
