package cloudconfig

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubefoundry/kubefoundry"
)

// FuzzParse checks that no input panics or hangs Parse or ParseRuntime,
// that a rejected input is a *kubefoundry.ValidationError whose problems
// all name a field, that what Parse accepts Validate accepts, and that
// Allocate on every network of an accepted cloud config answers with
// addresses or an error, never a panic, and never one address twice.
// The seeds are the test configs and documents built to hurt.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		minimal,
		small,
		"- a\n",
		"a: &a [*a]\n",
		"networks: &n [{<<: *n}]\n",
		"networks: [{name: n, subnets: [{range: ::/0, gateway: '::1', static: ['::2 - ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe']}]}]\ncompilation: {workers: 1, network: n}\n",
		"networks: [{name: n, subnets: [{range: 10.0.0.0/31, gateway: 10.0.0.1}]}]\ncompilation: {workers: 1, network: n}\n",
		"networks: [{name: n, type: vip, subnets: [{static: [0.0.0.0/0]}]}]\ncompilation: {workers: 99999999999999999999, network: n}\n",
		"releases: [{name: a, version: 1}]\naddons: [{name: x, jobs: [{name: j, release: a}], include: {jobs: [{}]}}]\n",
		"tags: {a: *x}\n",
		"? [a]\n: b\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRejected := func(err error) {
			var verr *kubefoundry.ValidationError
			if !errors.As(err, &verr) || len(verr.Problems) == 0 {
				t.Fatalf("error is not a ValidationError with problems: %v", err)
			}
			for _, p := range verr.Problems {
				if !strings.HasPrefix(p.Field, "/") || p.Reason == "" {
					t.Fatalf("problem without a field path or reason: %+v", p)
				}
			}
		}
		if r, err := ParseRuntime(data); err != nil {
			checkRejected(err)
		} else if err := r.Validate(); err != nil {
			t.Fatalf("ParseRuntime accepted what Validate refuses: %v", err)
		}
		c, err := Parse(data)
		if err != nil {
			checkRejected(err)
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate refuses: %v", err)
		}
		for _, n := range c.Networks {
			var azs []string
			for _, z := range zonesOf(&n) {
				if c.AZ(z) != nil {
					azs = append(azs, z)
				}
			}
			req := Request{Network: n.Name, AZs: azs, Taken: map[netip.Addr]string{}}
			for i := range 5 {
				in := Instance{ID: string(rune('a' + i))}
				if len(azs) > 0 {
					in.AZ = azs[i%len(azs)]
				}
				req.Instances = append(req.Instances, in)
			}
			addrs, err := c.Allocate(req)
			if err != nil {
				continue
			}
			seen := map[netip.Addr]bool{}
			for _, a := range addrs {
				if a.IP.IsValid() && seen[a.IP] {
					t.Fatalf("network %s: %s given twice", n.Name, a.IP)
				}
				seen[a.IP] = true
			}
		}
	})
}
