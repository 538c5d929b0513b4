package release

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseJobSpec(t *testing.T) {
	s, err := ParseJobSpec([]byte(`---
name: nats
description: bus
templates: {ctl.erb: bin/ctl, conf/nats.conf.erb: config/nats.conf}
packages: [nats]
consumes:
- {name: peers, type: nats, optional: true}
provides:
- {name: nats, type: nats, properties: [nats.port]}
properties:
  nats.port: {description: port, default: 4222, example: 4223}
  nats.tls:
    default: {enabled: true, ciphers: [a, b]}
  nats.empty:
`))
	require.NoError(t, err)
	assert.Equal(t, JobSpec{
		Name:        "nats",
		Description: "bus",
		Templates:   map[string]string{"ctl.erb": "bin/ctl", "conf/nats.conf.erb": "config/nats.conf"},
		Packages:    []string{"nats"},
		Consumes:    []Link{{Name: "peers", Type: "nats", Optional: true}},
		Provides:    []Link{{Name: "nats", Type: "nats", Properties: []string{"nats.port"}}},
		Properties: map[string]Property{
			"nats.port":  {Description: "port", Default: 4222, Example: 4223},
			"nats.tls":   {Default: map[string]any{"enabled": true, "ciphers": []any{"a", "b"}}},
			"nats.empty": {},
		},
	}, *s)
}

func TestParseJobSpecProblems(t *testing.T) {
	_, err := ParseJobSpec([]byte(`name: nats
templates:
  ../../etc/passwd: bin/x
  ok.erb: /etc/cron.d/x
  a.erb: bin/run
  b.erb: bin/run
packages: [nats, nats]
properties:
  nats.port: {descripton: typo}
consumes:
- {name: x}
provides:
- {name: p, type: t, optional: true, shared: true}
logs: {}
`))
	probs := problems(t, err)
	requireProblem(t, probs, "/templates/..~1..~1etc~1passwd (line 3)", "no ..")
	requireProblem(t, probs, "/templates/ok.erb (line 4)", "relative")
	requireProblem(t, probs, "/templates/b.erb (line 6)", "same path")
	requireProblem(t, probs, "/packages/1", "twice")
	requireProblem(t, probs, "/properties/nats.port/descripton (line 9)", `unknown key "descripton"`)
	requireProblem(t, probs, "/consumes/0/type", "required")
	requireProblem(t, probs, "/provides/0/shared (line 13)", `unknown key "shared"`)
	requireProblem(t, probs, "/provides/0/optional", "only a consumed link")
	requireProblem(t, probs, "/logs (line 14)", `unknown key "logs"`)
	assert.Len(t, probs, 9, "%q", probs)
}

func TestParsePackageSpec(t *testing.T) {
	s, err := ParsePackageSpec([]byte("name: api\ndependencies: [golang]\nfiles: [api/**/*]\nexcluded_files: ['**/*_test.go']\n"))
	require.NoError(t, err)
	assert.Equal(t, PackageSpec{Name: "api", Dependencies: []string{"golang"}, Files: []string{"api/**/*"}, ExcludedFiles: []string{"**/*_test.go"}}, *s)

	_, err = ParsePackageSpec([]byte("name: api\ndependencies: [api, golang, golang]\nfiles: [../x, /abs, 'a/[', '{a,b']\nfile: x\n"))
	probs := problems(t, err)
	requireProblem(t, probs, "/file (line 4)", `unknown key "file"`)
	requireProblem(t, probs, "/dependencies/0", "itself")
	requireProblem(t, probs, "/dependencies/2", "twice")
	requireProblem(t, probs, "/files/0", "no ..")
	requireProblem(t, probs, "/files/1", "relative")
	requireProblem(t, probs, "/files/2", "not a glob")
	requireProblem(t, probs, "/files/3", "without its }")
	assert.Len(t, probs, 7, "%q", probs)
}

func TestGlob(t *testing.T) {
	tests := []struct {
		glob, name string
		want       bool
	}{
		{"a/*", "a/b", true},
		{"a/*", "a/b/c", false},
		{"a/*", "a/.hidden", true},
		{"a/**/*", "a/b", true},
		{"a/**/*", "a/b/c/d", true},
		{"a/**/*", "b/c", false},
		{"**/*.go", "x.go", true},
		{"**/*.go", "a/b/x.go", true},
		{"**/*.go", "a/b/x.c", false},
		{"a/**", "a/b/c", true},
		{"{a,b}/x", "b/x", true},
		{"{a,b}/x", "c/x", false},
		{"a/{x,y{1,2}}.go", "a/y2.go", true},
		{"a/[xy].go", "a/y.go", true},
		{"a/?.go", "a/yy.go", false},
		{"./a/b", "a/b", true},
		{"golang/go*.linux-amd64.tar.gz", "golang/go1.26.0.linux-amd64.tar.gz", true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, globMatch(tt.glob, tt.name), "%s ~ %s", tt.glob, tt.name)
	}
	_, err := expandBraces(string(make([]byte, 0)) + "{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}")
	require.Error(t, err, "2^11 alternatives are too many")
}
