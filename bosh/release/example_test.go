package release_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/kubefoundry/kubefoundry/bosh/release"
)

// A release directory made into a tarball and read back, as bosh
// create-release and bosh upload-release do.
func Example() {
	ctx := context.Background()
	var tgz bytes.Buffer
	m, err := release.Create(ctx, "testdata/release", &tgz, release.WithVersion("1.10"))
	if err != nil {
		fmt.Println(err)
		return
	}
	rel, err := release.Read(ctx, &tgz)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rel.Manifest.Name, rel.Manifest.Version, rel.Manifest.Jobs[1].Fingerprint == m.Jobs[1].Fingerprint)
	nats := rel.Job("nats")
	fmt.Println(nats.Spec.Templates["nats.conf.erb"], nats.Spec.Properties["nats.port"].Default)
	for _, f := range rel.Package("nats").Files {
		fmt.Println(f.Path, f.Mode)
	}
	// Output:
	// kf-demo 1.10 true
	// config/nats.conf 4222
	// nats/server.go -rw-r--r--
	// packaging -rw-r--r--
}

// Every problem of a job spec at once, each with its path and line.
func ExampleParseJobSpec() {
	_, err := release.ParseJobSpec([]byte("name: nats\ntemplates: {../ctl: bin/ctl}\nproperty: {}\n"))
	fmt.Println(err)
	// Output:
	// invalid job spec: /property (line 3): unknown key "property" (known: name, description, templates, packages, properties, consumes, provides); /templates/..~1ctl (line 2) "../ctl": a template under templates/ must stay inside it (no ..)
}
