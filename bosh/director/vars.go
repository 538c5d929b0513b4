package director

import (
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/manifest"
	"github.com/kubefoundry/kubefoundry/bosh/mbus"
	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
	"github.com/kubefoundry/kubefoundry/bosh/variables"
)

// manifestOf reads a manifest as the director deploys it: the variables
// its variables block declares generated first when generate (into the
// deployment's variables store), then
// every ((placeholder)) interpolated from that store, then parsed and
// checked. Without a variables block or a placeholder, no store is needed.
func (d *Director) manifestOf(raw []byte, generate bool) (*manifest.Manifest, error) {
	var head struct {
		Name      string              `yaml:"name"`
		Variables []manifest.Variable `yaml:"variables"`
	}
	if err := yaml.Unmarshal(raw, &head); err != nil {
		// manifest.Parse says what is wrong, with the line.
		return manifest.Parse(raw)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return manifest.Parse(raw)
	}
	if !hasPlaceholder(&doc) && len(head.Variables) == 0 {
		return manifest.Parse(raw)
	}
	vars, err := d.variables(head.Name)
	if err != nil {
		return nil, err
	}
	if generate {
		if err := vars.Generate(head.Variables); err != nil {
			return nil, fmt.Errorf("deployment %s: variables: %w", head.Name, err)
		}
	}
	if err := opsfile.Interpolate(&doc, vars); err != nil {
		return nil, fmt.Errorf("deployment %s: %w", head.Name, err)
	}
	return manifest.ParseNode(&doc)
}

// variables opens a deployment's variables store: in the director's
// Store, or with Config.VariablesDir in VariablesDir/<deployment>.json.
func (d *Director) variables(deployment string) (*variables.Store, error) {
	if d.cfg.VariablesDir == "" {
		return variables.OpenBackend(storeVariables{st: d.cfg.Store, deployment: deployment})
	}
	// The name becomes a file name: it must be a plain one.
	if err := mbus.ValidateAgentID(deployment); err != nil {
		return nil, &kubefoundry.ValidationError{Object: "manifest", Problems: []kubefoundry.FieldError{{Field: "/name", Value: deployment,
			Reason: "a deployment with variables needs a name of letters, digits and hyphens"}}}
	}
	if err := os.MkdirAll(d.cfg.VariablesDir, 0o700); err != nil {
		return nil, err
	}
	return variables.Open(filepath.Join(d.cfg.VariablesDir, deployment+".json"))
}

// storeVariables keeps a deployment's variables in the director's Store.
type storeVariables struct {
	st         Store
	deployment string
}

func (s storeVariables) Load() ([]byte, error)     { return s.st.Variables(s.deployment) }
func (s storeVariables) Save(content []byte) error { return s.st.PutVariables(s.deployment, content) }
func (s storeVariables) String() string {
	return "of deployment " + s.deployment + " in the director's state"
}

// hasPlaceholder reports whether a value or key of the tree holds "((".
func hasPlaceholder(n *yaml.Node) bool {
	if n.Kind == yaml.ScalarNode && containsPlaceholder(n.Value) {
		return true
	}
	for _, c := range n.Content {
		if hasPlaceholder(c) {
			return true
		}
	}
	return false
}

func containsPlaceholder(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '(' && s[i+1] == '(' {
			return true
		}
	}
	return false
}

// Variables opens the deployment's variables store, where the values its
// manifests' ((placeholders)) are interpolated from are kept: a caller
// reads what the director generated (a CA to issue more certificates
// from) or puts values of its own before deploying (a value put is never
// regenerated).
func (d *Director) Variables(deployment string) (*variables.Store, error) {
	return d.variables(deployment)
}
