package manifest_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
)

func ExampleParse() {
	m, err := manifest.Parse([]byte(`name: k8s
releases:
- {name: kubo, version: 1.19.0}
stemcells:
- {alias: default, os: ubuntu-jammy, version: latest}
update: {canaries: 1, max_in_flight: 30%, canary_watch_time: 1000-30000, update_watch_time: 1000-30000}
instance_groups:
- name: worker
  instances: 10
  jobs: [{name: kubelet, release: kubo}]
  vm_type: large
  stemcell: default
  networks: [{name: nodes}]
`))
	if err != nil {
		log.Fatal(err)
	}
	w := m.InstanceGroup("worker")
	u := m.UpdateFor(w)
	fmt.Println("canaries:", u.Canaries.Of(w.Instances))
	fmt.Println("then at once:", u.MaxInFlight.Of(w.Instances))
	fmt.Println("canary healthy within:", u.CanaryWatchTime.Max())
	// Output:
	// canaries: 1
	// then at once: 3
	// canary healthy within: 30s
}

func ExampleParse_problems() {
	_, err := manifest.Parse([]byte(`name: k8s
releases:
- {name: kubo, version: 1.19.0}
stemcells:
- {alias: default, os: ubuntu-jammy, version: latest}
update: {canaries: 1, max_in_flight: thirty, canary_watch_time: 1000, update_watch_time: 1000}
instance_groups:
- name: worker
  instances: 2
  jobs: [{name: kubelet, release: kubernetes}]
  vm_type: large
  stemcell: default
  networks: [{name: nodes, static_ips: [10.0.0.10]}]
  replicas: 2
`))
	var verr *kubefoundry.ValidationError
	if errors.As(err, &verr) {
		for _, p := range verr.Problems {
			fmt.Printf("line %d: %s: %s\n", p.Line, p.Field, p.Reason)
		}
	}
	// Output:
	// line 6: /update/max_in_flight: is neither a count (2) nor a percentage (30%)
	// line 10: /instance_groups/name=worker/jobs/name=kubelet/release: is not a release in releases
	// line 13: /instance_groups/name=worker/networks/name=nodes/static_ips: names 1 address for 2 instances: BOSH needs exactly one static IP per instance
	// line 14: /instance_groups/name=worker/replicas: unknown key "replicas"
}

func ExampleMaxInFlight_Of() {
	for _, s := range []string{"4", "30%", "10%"} {
		m, err := manifest.ParseMaxInFlight(s)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s of 5 instances: %d at once\n", m, m.Of(5))
	}
	// Output:
	// 4 of 5 instances: 4 at once
	// 30% of 5 instances: 1 at once
	// 10% of 5 instances: 1 at once
}
