package variables_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/variables"
)

// A CA rotated in three steps, each followed by a deploy in real life.
func ExampleStore_RotateCA() {
	dir, _ := os.MkdirTemp("", "vars")
	defer os.RemoveAll(dir)
	s, _ := variables.Open(filepath.Join(dir, "vars.json"))
	_ = s.Generate([]manifest.Variable{
		{Name: "kubo_ca", Type: "certificate", Options: manifest.Map{"is_ca": true, "common_name": "ca"}},
		{Name: "tls-kubernetes", Type: "certificate", Options: manifest.Map{"ca": "kubo_ca", "common_name": "master.cfcr.internal"}},
	})
	cas := func() int {
		v, _, _ := s.Get("tls-kubernetes")
		return strings.Count(v.(map[string]any)["ca"].(string), "BEGIN CERTIFICATE")
	}
	phase, _ := s.RotationPhase("kubo_ca")
	fmt.Println(phase, cas())

	_ = s.RotateCA("kubo_ca")
	phase, _ = s.RotationPhase("kubo_ca")
	fmt.Println(phase, cas())

	regenerated, _ := s.PromoteCA("kubo_ca")
	phase, _ = s.RotationPhase("kubo_ca")
	fmt.Println(phase, cas(), regenerated)

	_ = s.DropTransitional("kubo_ca")
	phase, _ = s.RotationPhase("kubo_ca")
	fmt.Println(phase, cas())
	// Output:
	// not rotating 1
	// new-transitional 2
	// old-transitional 2 [tls-kubernetes]
	// not rotating 1
}
