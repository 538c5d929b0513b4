package release

// JobSpec is a job's spec: jobs/<name>/spec in a release directory and,
// with the same keys, job.MF in a job tarball.
type JobSpec struct {
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Templates maps a template under the job's templates/ directory to
	// the path it is rendered to under /var/vcap/jobs/<job>/.
	Templates map[string]string `json:"templates,omitempty" yaml:"templates,omitempty"`
	// Packages are the release's packages the job needs on its VM.
	Packages []string `json:"packages,omitempty" yaml:"packages,omitempty"`
	// Properties are the properties the job's templates may read, by
	// dotted name ("nats.port").
	Properties map[string]Property `json:"properties,omitempty" yaml:"properties,omitempty"`
	// Consumes and Provides are the job's links.
	Consumes []Link `json:"consumes,omitempty" yaml:"consumes,omitempty"`
	Provides []Link `json:"provides,omitempty" yaml:"provides,omitempty"`
}

// Property is one property a job declares.
type Property struct {
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Default is the value when neither the job nor its instance group
	// sets one; nil means none.
	Default any `json:"default,omitempty" yaml:"default,omitempty"`
	Example any `json:"example,omitempty" yaml:"example,omitempty"`
}

// Link is a link a job consumes or provides.
type Link struct {
	Name string `json:"name" yaml:"name"`
	Type string `json:"type" yaml:"type"`
	// Optional marks a consumed link the job renders without.
	Optional bool `json:"optional,omitempty" yaml:"optional,omitempty"`
	// Properties names the job properties a provided link shares.
	Properties []string `json:"properties,omitempty" yaml:"properties,omitempty"`
}
