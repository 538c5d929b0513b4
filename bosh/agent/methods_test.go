package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUpdateParams(t *testing.T) {
	cur := &ApplySpec{Job: JobSpec{Name: "web", Templates: []JobRef{{Name: "nginx", Version: "1"}}}, ConfigurationHash: "h1",
		Packages: map[string]BlobRef{"nginx": {Version: "1"}, "pcre": {Version: "8"}}}
	same := *cur
	assert.Equal(t, []string{"job_unchanged", "hash_unchanged"}, updateParams(cur, &same))

	next := *cur
	next.ConfigurationHash = "h2"
	next.Packages = map[string]BlobRef{"nginx": {Version: "2"}, "pcre": {Version: "8"}, "zlib": {Version: "1"}}
	assert.Equal(t, []string{"job_unchanged", "hash_changed", "nginx", "zlib"}, updateParams(cur, &next),
		"the packages whose version changes or that are new, by name")

	for _, job := range []JobSpec{
		{Name: "web2", Templates: cur.Job.Templates},
		{Name: "web", Templates: []JobRef{{Name: "nginx", Version: "2"}}},
		{Name: "web", Templates: []JobRef{{Name: "nginx", Version: "1"}, {Name: "syslog", Version: "1"}}},
	} {
		next := *cur
		next.Job = job
		assert.Equal(t, []string{"job_changed", "hash_unchanged"}, updateParams(cur, &next), "%+v", job)
	}
	assert.Equal(t, []string{"job_changed", "hash_changed", "nginx", "pcre"}, updateParams(nil, cur), "nothing applied before")
}

func TestSpecJSON(t *testing.T) {
	assert.Equal(t, "", specJSON(nil))
	assert.Equal(t, `{"persistent_disk":1024}`, specJSON(&ApplySpec{Deployment: "cf", PersistentDisk: 1024,
		Properties: map[string]any{"password": "secret"}}), "only the disk, as bosh-agent presents it; never the properties")
}
