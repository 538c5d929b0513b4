package links_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/links"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/release"
	"github.com/kubefoundry/kubefoundry/bosh/template"
)

// The jobs of a small Kubernetes release, as their specs declare links.
var kubo = map[string]*release.JobSpec{
	"etcd": {
		Name:       "etcd",
		Properties: map[string]release.Property{"etcd.port": {Default: 2379}, "etcd.secret": {}},
		Provides:   []release.Link{{Name: "etcd", Type: "etcd", Properties: []string{"etcd.port"}}},
		Consumes:   []release.Link{{Name: "etcd", Type: "etcd"}},
		Templates:  map[string]string{"peers.erb": "config/peers"},
	},
	"kube-apiserver": {
		Name:       "kube-apiserver",
		Properties: map[string]release.Property{"port": {Default: 8443}, "admin-password": {}},
		Provides:   []release.Link{{Name: "kube-apiserver", Type: "kube-apiserver", Properties: []string{"port"}}},
		Consumes:   []release.Link{{Name: "etcd", Type: "etcd"}, {Name: "cloud-provider", Type: "cloud-provider", Optional: true}},
	},
	"kubelet": {
		Name: "kubelet",
		Consumes: []release.Link{
			{Name: "kube-apiserver", Type: "kube-apiserver"},
			{Name: "cloud-provider", Type: "cloud-provider", Optional: true},
			{Name: "registry", Type: "registry", Optional: true},
		},
		Templates: map[string]string{"kubeconfig.erb": "config/kubeconfig"},
	},
	"harbor": {Name: "harbor", Provides: []release.Link{{Name: "registry", Type: "registry"}}},
}

func specs(rel, job string) (*release.JobSpec, error) {
	if s, ok := kubo[job]; ok && rel == "kubo" {
		return s, nil
	}
	return nil, fmt.Errorf("%w: no job %q in release %q", kubefoundry.ErrNotFound, job, rel)
}

func parse(t *testing.T, yaml string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(strings.ReplaceAll(yaml, "\t", "  ")))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const head = `name: k8s
releases: [{name: kubo, version: "1.0"}]
stemcells: [{alias: default, os: ubuntu-jammy, version: latest}]
update: {canaries: 1, max_in_flight: 1, canary_watch_time: 1000, update_watch_time: 1000}
`

func TestResolve(t *testing.T) {
	m := parse(t, head+`instance_groups:
- name: master
	instances: 3
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: etcd
		release: kubo
		provides: {etcd: {as: etcd-main, shared: true}}
	- name: kube-apiserver
		release: kubo
		consumes: {cloud-provider: nil}
- name: worker
	instances: 2
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: kubelet
		release: kubo
		consumes:
			kube-apiserver: {from: kube-apiserver, network: pods, ip_addresses: true}
			registry:
				instances: [{address: harbor.example.com}]
				properties: {ca: pem}
`)
	l, err := links.Resolve(m, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	etcd := l.For("master", "etcd")["etcd"]
	if etcd == nil || etcd.Provider == nil || etcd.Provider.Group != "master" || etcd.Provider.Alias != "etcd-main" || !etcd.Provider.Shared {
		t.Errorf("etcd's own link = %+v, want the aliased, shared provider on master", etcd)
	}
	if b := l.For("master", "kube-apiserver")["etcd"]; b.Provider != etcd.Provider {
		t.Errorf("kube-apiserver's etcd = %+v, want the one etcd provider (found by type)", b)
	}
	if b := l.For("master", "kube-apiserver")["cloud-provider"]; b == nil || b.Provider != nil || b.Manual != nil {
		t.Errorf("cloud-provider set to nil = %+v, want bound to nothing", b)
	}
	api := l.For("worker", "kubelet")["kube-apiserver"]
	if api.Provider == nil || api.Provider.Job != "kube-apiserver" || api.Network != "pods" || !api.IPAddresses {
		t.Errorf("kubelet's kube-apiserver = %+v", api)
	}
	if b := l.For("worker", "kubelet")["cloud-provider"]; b == nil || b.Provider != nil {
		t.Errorf("optional link with no provider = %+v, want bound to nothing", b)
	}
	reg := l.For("worker", "kubelet")["registry"]
	if reg.Manual == nil || reg.Manual.Instances[0].Address != "harbor.example.com" || reg.Manual.Properties["ca"] != "pem" {
		t.Errorf("manual registry link = %+v", reg)
	}
	if sh := l.Shared(); len(sh) != 1 || sh[0] != etcd.Provider {
		t.Errorf("shared = %v, want the etcd provider alone", sh)
	}

	// Another deployment consumes the shared etcd by deployment and alias.
	other := parse(t, strings.Replace(head, "name: k8s", "name: other", 1)+`instance_groups:
- name: api
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: kube-apiserver
		release: kubo
		consumes: {etcd: {from: etcd-main, deployment: k8s}}
`)
	lo, err := links.Resolve(other, specs, l.Shared())
	if err != nil {
		t.Fatal(err)
	}
	if b := lo.For("api", "kube-apiserver")["etcd"]; b.Provider != etcd.Provider {
		t.Errorf("cross-deployment etcd = %+v", b)
	}
}

func TestResolveProblems(t *testing.T) {
	m := parse(t, head+`instance_groups:
- name: master
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: etcd
		release: kubo
		provides: {etcd: {as: etcd-a}, etcdd: {}}
	- name: kube-apiserver
		release: kubo
		consumes: {etcd: {from: etcd-b}, cloud-provider: {from: etcd-a}, cloud: {}}
- name: master2
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: etcd
		release: kubo
		provides: {etcd: {as: etcd-b}}
- name: worker
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: kubelet
		release: kubo
		consumes: {registry: {from: x, instances: []}}
	- name: mystery
		release: kubo
	- name: harbor
		release: kubo
		custom_provider_definitions: [{name: registry, type: registry}]
`)
	_, err := links.Resolve(m, specs, nil)
	var verr *kubefoundry.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	got := map[string]string{}
	for _, p := range verr.Problems {
		got[p.Field] = p.Reason
	}
	want := map[string]string{
		"instance_groups/name=master/jobs/name=etcd/provides/etcdd":                       `does not provide a link "etcdd"`,
		"instance_groups/name=master/jobs/name=etcd/consumes/etcd":                        "2 providers in deployment k8s",
		"instance_groups/name=master2/jobs/name=etcd/consumes/etcd":                       "2 providers in deployment k8s",
		"instance_groups/name=master/jobs/name=kube-apiserver/consumes/cloud-provider":    `wants type cloud-provider, and master/etcd provides "etcd-a" with type etcd`,
		"instance_groups/name=master/jobs/name=kube-apiserver/consumes/cloud":             `does not consume a link "cloud"`,
		"instance_groups/name=worker/jobs/name=kubelet/consumes/registry":                 "cannot also name a provider",
		"instance_groups/name=worker/jobs/name=mystery":                                   `no job "mystery"`,
		"instance_groups/name=worker/jobs/name=harbor/custom_provider_definitions/0/name": `already provides a link "registry"`,
	}
	for field, reason := range want {
		if !strings.Contains(got[field], reason) {
			t.Errorf("%s: %q, want it to say %q", field, got[field], reason)
		}
	}
	var extra []string
	for field := range got {
		if _, ok := want[field]; !ok {
			extra = append(extra, field+": "+got[field])
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("unexpected problems: %s", strings.Join(extra, "; "))
	}
	// The explicit from: etcd-b resolves, since etcd-b is unique.
	if _, ok := got["instance_groups/name=master/jobs/name=kube-apiserver/consumes/etcd"]; ok {
		t.Error("from: etcd-b was reported though exactly one provider has that alias")
	}
}

func TestResolveRequiredNil(t *testing.T) {
	m := parse(t, head+`instance_groups:
- name: master
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: kube-apiserver
		release: kubo
		consumes: {etcd: nil}
`)
	_, err := links.Resolve(m, specs, nil)
	if err == nil || !strings.Contains(err.Error(), `link "etcd" (type etcd) is not optional and the manifest sets it to nil`) {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveCustomProviderAndBlocked(t *testing.T) {
	m := parse(t, head+`instance_groups:
- name: registry
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: harbor
		release: kubo
		provides: {registry: ~}
	- name: etcd
		release: kubo
		custom_provider_definitions: [{name: mirror, type: registry, properties: [etcd.port]}]
- name: worker
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: kubelet
		release: kubo
		consumes: {kube-apiserver: {instances: [{address: 10.0.0.5}]}}
`)
	l, err := links.Resolve(m, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := l.For("worker", "kubelet")["registry"].Provider
	if reg == nil || !reg.Custom || reg.Job != "etcd" || reg.Name != "mirror" {
		t.Fatalf("registry = %+v, want the custom provider (harbor's own is blocked with nil)", reg)
	}
}

// A resolved link reaches a template: instances, shared properties only,
// and the group address on the consumer's chosen network.
func TestBindingLinkRendered(t *testing.T) {
	if _, err := exec.LookPath("ruby"); err != nil {
		t.Fatal("ruby is not installed (apt-get install ruby)")
	}
	m := parse(t, head+`instance_groups:
- name: master
	instances: 2
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: kube-apiserver
		release: kubo
		properties: {port: 6443, admin-password: secret}
		consumes: {etcd: {from: etcd}}
	- name: etcd
		release: kubo
- name: worker
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: kubelet
		release: kubo
		consumes: {kube-apiserver: {network: pods}}
`)
	l, err := links.Resolve(m, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	apiProps, err := template.Properties(kubo["kube-apiserver"], m.InstanceGroups[0].Jobs[0].Properties, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := l.For("worker", "kubelet")["kube-apiserver"]
	link := b.Link([]template.LinkInstance{{Name: "master", Index: 0, ID: "m0", Address: "10.0.1.10", AZ: "z1"}, {Name: "master", Index: 1, ID: "m1", Address: "10.0.1.11", AZ: "z2"}},
		apiProps, "default", map[string]int{"z1": 1, "z2": 2})
	if !reflect.DeepEqual(link.Properties, map[string]any{"port": 6443}) {
		t.Errorf("link properties = %v, want only the shared port (never admin-password)", link.Properties)
	}
	etcdLink := l.For("master", "kube-apiserver")["etcd"].Link(nil,
		map[string]any{"etcd": map[string]any{"port": 2379, "secret": "s"}}, "default", nil)
	if !reflect.DeepEqual(etcdLink.Properties, map[string]any{"etcd": map[string]any{"port": 2379}}) {
		t.Errorf("etcd link properties = %v, want only the shared etcd.port", etcdLink.Properties)
	}
	if l.For("worker", "kubelet")["registry"].Link(nil, nil, "default", nil) != nil {
		t.Error("an unbound optional link gave a template link")
	}

	r := template.New()
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	files, err := r.Render(ctx, template.Instance{Deployment: "k8s", Group: "worker"}, []template.Job{{
		Spec: kubo["kubelet"],
		Templates: map[string][]byte{"kubeconfig.erb": []byte(
			`server: https://<%= link("kube-apiserver").instances.first.address %>:<%= link("kube-apiserver").p("port") %>
group: <%= link("kube-apiserver").address %>
<% if_link("registry") do |r| %>registry<% end.else do %>no registry<% end %>`)},
		Links: map[string]*template.Link{"kube-apiserver": link, "registry": nil},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := "server: https://10.0.1.10:6443\ngroup: q-s0.master.pods.k8s.bosh\nno registry"
	if got := string(files[0].Content); got != want {
		t.Errorf("rendered %q, want %q", got, want)
	}
}

func TestResolveMalformed(t *testing.T) {
	m := parse(t, head+`instance_groups:
- name: master
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: etcd
		release: kubo
		provides: {etcd: {as: "", shared: "yes"}}
	- name: kube-apiserver
		release: kubo
		consumes: {etcd: {instances: [{name: x}], properties: [1]}}
	- name: harbor
		release: kubo
		consumes: {x: {}}
- name: worker
	instances: 1
	vm_type: small
	stemcell: default
	networks: [{name: default}]
	jobs:
	- name: kubelet
		release: kubo
		consumes: {kube-apiserver: {from: api, deployment: other}}
`)
	unshared := &links.Provider{Deployment: "other", Group: "g", Job: "kube-apiserver", Name: "kube-apiserver", Alias: "api", Type: "kube-apiserver"}
	_, err := links.Resolve(m, specs, []*links.Provider{unshared})
	var verr *kubefoundry.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	got := map[string]string{}
	for _, p := range verr.Problems {
		got[p.Field] = p.Reason
	}
	for field, reason := range map[string]string{
		"instance_groups/name=master/jobs/name=etcd/provides/etcd/as":           "non-empty string",
		"instance_groups/name=master/jobs/name=etcd/provides/etcd/shared":       "true or false",
		"instance_groups/name=master/jobs/name=kube-apiserver/consumes/etcd":    "instances/0: needs an address; properties: must be a mapping",
		"instance_groups/name=master/jobs/name=harbor/consumes/x":               "its spec consumes: none",
		"instance_groups/name=worker/jobs/name=kubelet/consumes/kube-apiserver": "is not shared",
	} {
		if !strings.Contains(got[field], reason) {
			t.Errorf("%s: %q, want it to say %q (all: %v)", field, got[field], reason, err)
		}
	}
}
