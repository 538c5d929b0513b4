package opsfile_test

import (
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
)

// A manifest, an ops-file that scales the workers and adds a variable, and
// interpolation from provided values before generated ones: what
// `bosh int manifest.yml -o scale.yml -v worker_vm_type=large
// --vars-store creds.yml` prints.
func Example() {
	manifest := []byte(`name: cluster-1
instance_groups:
- name: master
  instances: 1
  jobs:
  - name: kube-apiserver
    properties:
      admin_password: ((admin_password))
- name: worker
  instances: 3
  vm_type: ((worker_vm_type))
variables:
- name: admin_password
  type: password
`)
	scale := []byte(`- type: replace
  path: /instance_groups/name=worker/instances
  value: 5
- type: replace
  path: /instance_groups/name=worker/jobs?/-
  value:
    name: kubelet
    properties:
      password: ((kubelet_password))
- type: replace
  path: /variables/-
  value:
    name: kubelet_password
    type: password
`)

	var doc yaml.Node
	if err := yaml.Unmarshal(manifest, &doc); err != nil {
		fmt.Println(err)
		return
	}
	ops, err := opsfile.ParseOps(scale)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := opsfile.Apply(&doc, ops); err != nil {
		fmt.Println(err)
		return
	}
	provided := opsfile.Map{"worker_vm_type": "large"}
	generated := opsfile.Map{"admin_password": "a1b2c3", "kubelet_password": "d4e5f6"}
	if err := opsfile.Interpolate(&doc, opsfile.Multi{provided, generated}); err != nil {
		fmt.Println(err)
		return
	}

	enc := yaml.NewEncoder(os.Stdout)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		fmt.Println(err)
	}
	// Output:
	// name: cluster-1
	// instance_groups:
	//   - name: master
	//     instances: 1
	//     jobs:
	//       - name: kube-apiserver
	//         properties:
	//           admin_password: a1b2c3
	//   - name: worker
	//     instances: 5
	//     vm_type: large
	//     jobs:
	//       - name: kubelet
	//         properties:
	//           password: d4e5f6
	// variables:
	//   - name: admin_password
	//     type: password
	//   - name: kubelet_password
	//     type: password
}

// Every missing variable is named at once, with the lines that use it.
func ExampleInterpolate_missing() {
	var doc yaml.Node
	_ = yaml.Unmarshal([]byte("a: ((zone))\nb: https://((host)):((port))\nc: ((zone))\n"), &doc)
	err := opsfile.Interpolate(&doc, opsfile.Map{"port": 443})
	fmt.Println(err)
	// Output:
	// expected to find variables: host (line 2), zone (lines 1, 3)
}

// A failing op names its index, path and ops-file line, and its error: text.
func ExampleApply_error() {
	var doc yaml.Node
	_ = yaml.Unmarshal([]byte("instance_groups:\n- name: worker\n  instances: 3\n"), &doc)
	ops, _ := opsfile.ParseOps([]byte(`- type: replace
  path: /instance_groups/name=master/instances
  value: 3
  error: apply this ops-file to a manifest with a master group
`))
	fmt.Println(opsfile.Apply(&doc, ops))
	// Output:
	// op 0 (replace "/instance_groups/name=master/instances", line 1): apply this ops-file to a manifest with a master group: expected exactly one array item to match "/instance_groups/name=master", found none (line 2)
}
