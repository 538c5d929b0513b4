package release

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sampleMF = `name: os-conf
version: 1.10
commit_hash: 9bd04e0
uncommitted_changes: false
jobs:
- name: monit
  version: 18993a3f4b4326685cc9a67fed330f2634257eb44e13505eea08bfc0f89c35e3
  fingerprint: 18993a3f4b4326685cc9a67fed330f2634257eb44e13505eea08bfc0f89c35e3
  sha1: sha256:eb65093aece08ec56b24109be9990d2334021624359edd2dd7f2c2dd6116b632
  packages: []
- name: api
  version: "2"
  fingerprint: 4130de1cabfe9c169f0209c195ce7533fb5e5e7f
  sha1: 5fb26a9e24874a8541a65101838d323aa1984e51
  packages: [golang]
packages:
- name: golang
  version: 8a4fde656f31e3a9eb65f9e103910f50658e7a3a
  fingerprint: 8a4fde656f31e3a9eb65f9e103910f50658e7a3a
  sha1: 74df35d9c45ead42b4f372e3cfc3fd366701abcc
  dependencies: []
license:
  version: 8e4174f96e7d8edb37c82965f0c61222e80a5ea2992f55f1e7cc7f4ef800600c
  fingerprint: 8e4174f96e7d8edb37c82965f0c61222e80a5ea2992f55f1e7cc7f4ef800600c
  sha1: sha256:04c3b4248f79a27f6a9a3e1c4a2e762ec7058e30b4661d75f0a1670a64501540
no_compression: false
`

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest([]byte(sampleMF))
	require.NoError(t, err)
	assert.Equal(t, "1.10", m.Version, "a version stays as written")
	assert.Equal(t, "2", m.Jobs[1].Version)
	assert.Equal(t, []string{}, m.Jobs[0].Packages)
	assert.Equal(t, []string{"golang"}, m.Jobs[1].Packages)
	require.NotNil(t, m.License)
	assert.Equal(t, "sha256:04c3b4248f79a27f6a9a3e1c4a2e762ec7058e30b4661d75f0a1670a64501540", m.License.SHA1)

	out, err := m.Marshal()
	require.NoError(t, err)
	back, err := ParseManifest(out)
	require.NoError(t, err)
	assert.Equal(t, m, back)
	assert.Contains(t, string(out), `version: "1.10"`)

	// The Ruby CLI's !binary values.
	ruby, err := ParseManifest([]byte("name: r\nversion: !binary |-\n  MQ==\ncommit_hash: abc\nuncommitted_changes: false\n"))
	require.NoError(t, err)
	assert.Equal(t, "1", ruby.Version)

	compiled, err := ParseManifest([]byte(`name: c
version: "3"
compiled_packages:
- {name: a, version: ab, fingerprint: ab, sha1: 74df35d9c45ead42b4f372e3cfc3fd366701abcc, stemcell: ubuntu-jammy/1.108, dependencies: []}
jobs:
- {name: j, version: ab, fingerprint: ab, sha1: 74df35d9c45ead42b4f372e3cfc3fd366701abcc, packages: [a]}
`))
	require.NoError(t, err)
	assert.Equal(t, "ubuntu-jammy/1.108", compiled.CompiledPackages[0].Stemcell)
	out, err = compiled.Marshal()
	require.NoError(t, err)
	back, err = ParseManifest(out)
	require.NoError(t, err)
	assert.Equal(t, compiled, back)
}

func TestParseManifestProblems(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		want  [][]string // field, words
		count int
	}{
		{"unknown keys, every one at once", "name: a\nversion: \"1\"\nfoo: 1\njobs:\n- name: j\n  version: a\n  fingerprint: a\n  sha1: 74df35d9c45ead42b4f372e3cfc3fd366701abcc\n  sha256: x\n", [][]string{{"/foo (line 3)", `unknown key "foo"`}, {"/jobs/0/sha256 (line 9)", `unknown key "sha256"`}}, 2},
		{"bad values", "name: a b\nversion:\njobs:\n- name: j\n  version: a\n  fingerprint: a-b\n  sha1: abc\n  packages: [nope]\n", [][]string{
			{"/name (line 1)", "letters"},
			{"/version (line 2)", "must be a string"},
			{"/jobs/name=j/fingerprint (line 6)", "letters and digits"},
			{"/jobs/name=j/sha1 (line 7)", "40 hex"},
			{"/jobs/name=j/packages/0 (line 8)", "no package"},
		}, 5},
		{"duplicates and cycles", `name: a
version: "1"
packages:
- {name: p, version: a, fingerprint: a, sha1: 74df35d9c45ead42b4f372e3cfc3fd366701abcc, dependencies: [q]}
- {name: q, version: a, fingerprint: a, sha1: 74df35d9c45ead42b4f372e3cfc3fd366701abcc, dependencies: [p]}
- {name: q, version: a, fingerprint: a, sha1: 74df35d9c45ead42b4f372e3cfc3fd366701abcc}
`, [][]string{{"/packages/2/name", "another package"}, {"/packages/name=p/dependencies", "cycle", "p -> q -> p"}}, 2},
		{"kinds", "name: [a]\nversion: \"1\"\nuncommitted_changes: maybe\njobs: {a: 1}\n", [][]string{
			{"/name (line 1)", "must be a string"}, {"/uncommitted_changes (line 3)", "true or false"}, {"/jobs (line 4)", "must be a list"},
		}, 3},
		{"not YAML", "name: [\n", [][]string{{"/", "not YAML"}}, 1},
		{"not a mapping", "- a\n", [][]string{{"/", "must be a mapping"}}, 1},
		{"two documents", "name: a\n---\nname: b\n", [][]string{{"/", "another starts"}}, 1},
		{"an alias bomb", "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nname: *b\n", [][]string{{"/", ""}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tt.doc))
			probs := problems(t, err)
			for _, w := range tt.want {
				if w[0] == "/" && w[1] == "" {
					continue
				}
				requireProblem(t, probs, w[0], w[1:]...)
			}
			if tt.count > 0 {
				assert.Len(t, probs, tt.count, "%q", probs)
			}
		})
	}
}

func TestManifestValidateInGo(t *testing.T) {
	m := Manifest{Name: "r", Version: "1", Jobs: []JobRef{{Name: "j", Version: "a", Fingerprint: "a", SHA1: "sha256:" + "ab"}}}
	requireProblem(t, problems(t, m.Validate()), "/jobs/name=j/sha1", "sha256:<64 hex digits>")
}
