package release

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// Manifest is a release's release.MF: what the release tarball holds,
// each job, package and license by name, fingerprint and digest.
type Manifest struct {
	Name    string
	Version string
	// CommitHash is the release directory's git commit, as bosh
	// create-release records it; UncommittedChanges whether it was dirty.
	CommitHash         string
	UncommittedChanges bool
	Jobs               []JobRef
	Packages           []PackageRef
	// CompiledPackages are a compiled release's packages, under
	// compiled_packages/ in its tarball.
	CompiledPackages []CompiledPackageRef
	License          *LicenseRef
	// NoCompression records that the job and package tarballs are plain
	// tar rather than gzipped tar (bosh create-release --no-compression
	// writes it); Read accepts either regardless.
	NoCompression bool
}

// JobRef is a job in release.MF.
type JobRef struct {
	Name string
	// Version is the job's fingerprint in releases made by today's CLI.
	Version     string
	Fingerprint string
	// SHA1 is the digest of jobs/<name>.tgz: 40 hex digits (SHA-1) or
	// "sha256:" and 64 hex digits.
	SHA1 string
	// Packages are the packages the job's spec names. Older releases
	// leave them out of release.MF: nil is that, and an empty non-nil
	// list is "packages: []".
	Packages []string
}

// PackageRef is a package in release.MF.
type PackageRef struct {
	Name         string
	Version      string
	Fingerprint  string
	SHA1         string // of packages/<name>.tgz, as JobRef.SHA1
	Dependencies []string
}

// CompiledPackageRef is a compiled package in a compiled release's
// release.MF.
type CompiledPackageRef struct {
	Name         string
	Version      string
	Fingerprint  string
	SHA1         string // of compiled_packages/<name>.tgz
	Stemcell     string // the OS and version it was compiled on: "ubuntu-jammy/1.108"
	Dependencies []string
}

// LicenseRef is the license in release.MF: license.tgz, made of the
// release directory's LICENSE* and NOTICE* files.
type LicenseRef struct {
	Version     string
	Fingerprint string
	SHA1        string // of license.tgz
}

const manifestObject = "release.MF"

var (
	digestRe      = regexp.MustCompile(`^([0-9a-f]{40}|sha256:[0-9a-f]{64})$`)
	fingerprintRe = regexp.MustCompile(`^[0-9A-Za-z]+$`)
	versionRe     = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]*$`)
)

// ParseManifest reads release.MF. It reports every problem at once as a
// *kubefoundry.ValidationError whose problems carry the path of the field
// (/jobs/name=nats/sha1) and its line: unknown keys by name, values of the
// wrong kind, and what Validate checks. Versions keep the text they were
// written with (version: 1.10 is "1.10"), and the Ruby CLI's
// "!binary" values are decoded.
func ParseManifest(data []byte) (*Manifest, error) {
	w := &walker{object: manifestObject}
	root := w.document(data, "release.MF")
	if root == nil {
		return nil, w.err()
	}
	var m Manifest
	lines := map[string]int{}
	ok := w.mapping(root, "", []string{"name", "version", "commit_hash", "uncommitted_changes", "jobs", "packages", "compiled_packages", "license", "no_compression"}, func(f field) {
		lines[f.path] = f.line
		switch f.key {
		case "name":
			m.Name, _ = w.str(f)
		case "version":
			m.Version, _ = w.str(f)
		case "commit_hash":
			if !yamltree.IsNull(f.val) {
				m.CommitHash, _ = w.str(f)
			}
		case "uncommitted_changes":
			m.UncommittedChanges, _ = w.boolean(f)
		case "no_compression":
			m.NoCompression, _ = w.boolean(f)
		case "jobs":
			w.list(f, func(i int, e *yaml.Node, p string) {
				lines[p] = e.Line
				var j JobRef
				w.mapping(e, p, []string{"name", "version", "fingerprint", "sha1", "packages"}, func(f field) {
					lines[f.path] = f.line
					switch f.key {
					case "name":
						j.Name, _ = w.str(f)
					case "version":
						j.Version, _ = w.str(f)
					case "fingerprint":
						j.Fingerprint, _ = w.str(f)
					case "sha1":
						j.SHA1, _ = w.str(f)
					case "packages":
						if j.Packages = w.strList(f); j.Packages == nil {
							j.Packages = []string{}
						}
					}
				})
				m.Jobs = append(m.Jobs, j)
			})
		case "packages":
			w.list(f, func(i int, e *yaml.Node, p string) {
				lines[p] = e.Line
				var r PackageRef
				w.mapping(e, p, []string{"name", "version", "fingerprint", "sha1", "dependencies"}, func(f field) {
					lines[f.path] = f.line
					switch f.key {
					case "name":
						r.Name, _ = w.str(f)
					case "version":
						r.Version, _ = w.str(f)
					case "fingerprint":
						r.Fingerprint, _ = w.str(f)
					case "sha1":
						r.SHA1, _ = w.str(f)
					case "dependencies":
						r.Dependencies = w.strList(f)
					}
				})
				m.Packages = append(m.Packages, r)
			})
		case "compiled_packages":
			w.list(f, func(i int, e *yaml.Node, p string) {
				lines[p] = e.Line
				var r CompiledPackageRef
				w.mapping(e, p, []string{"name", "version", "fingerprint", "sha1", "stemcell", "dependencies"}, func(f field) {
					lines[f.path] = f.line
					switch f.key {
					case "name":
						r.Name, _ = w.str(f)
					case "version":
						r.Version, _ = w.str(f)
					case "fingerprint":
						r.Fingerprint, _ = w.str(f)
					case "sha1":
						r.SHA1, _ = w.str(f)
					case "stemcell":
						r.Stemcell, _ = w.str(f)
					case "dependencies":
						r.Dependencies = w.strList(f)
					}
				})
				m.CompiledPackages = append(m.CompiledPackages, r)
			})
		case "license":
			if yamltree.IsNull(f.val) {
				return
			}
			var l LicenseRef
			if w.mapping(f.val, f.path, []string{"version", "fingerprint", "sha1"}, func(f field) {
				lines[f.path] = f.line
				switch f.key {
				case "version":
					l.Version, _ = w.str(f)
				case "fingerprint":
					l.Fingerprint, _ = w.str(f)
				case "sha1":
					l.SHA1, _ = w.str(f)
				}
			}) {
				m.License = &l
			}
		}
	})
	if !ok {
		return nil, w.err()
	}
	if w.budget >= 0 {
		// Validate's paths use name= selectors; the lines were recorded by
		// index, so map each back.
		for _, p := range m.problems() {
			at := indexPath(p.Field, &m)
			if w.isBad(at) {
				continue
			}
			p.Line = yamltree.LineOf(lines, at)
			w.probs = append(w.probs, p)
		}
	}
	if err := w.err(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks a manifest built or changed in Go by the rules
// ParseManifest applies: names, versions, fingerprints and digests
// present and well formed, names unique, dependencies and job packages
// naming packages of the release, no dependency cycle. It returns every
// problem at once as a *kubefoundry.ValidationError.
func (m *Manifest) Validate() error {
	v := kubefoundry.ValidationError{Object: manifestObject, Problems: m.problems()}
	return v.Err()
}

func (m *Manifest) problems() []kubefoundry.FieldError {
	var v kubefoundry.ValidationError
	if !validName(m.Name) {
		v.Add("/name", m.Name, "required: letters, digits, '-', '_' and '.'")
	}
	if !versionRe.MatchString(m.Version) {
		v.Add("/version", m.Version, "required: such as 1.10, 23.0.3 or 0+dev.1")
	}
	checkRef := func(path, name, version, fingerprint, sha1 string) {
		if !validName(name) {
			v.Add(path+"/name", name, "required: letters, digits, '-', '_' and '.'")
		}
		if !versionRe.MatchString(version) {
			v.Add(path+"/version", version, "required: the fingerprint, or a version such as 1.2")
		}
		if !fingerprintRe.MatchString(fingerprint) {
			v.Add(path+"/fingerprint", fingerprint, "required: letters and digits (a hex digest)")
		}
		if !digestRe.MatchString(sha1) {
			v.Add(path+"/sha1", sha1, "the tarball's digest: 40 hex digits (SHA-1) or sha256:<64 hex digits>")
		}
	}
	pkgs := map[string]bool{}
	deps := map[string][]string{}
	seen := map[string]bool{}
	for i, j := range m.Jobs {
		p := refPath("/jobs", i, j.Name)
		checkRef(p, j.Name, j.Version, j.Fingerprint, j.SHA1)
		if seen[j.Name] && j.Name != "" {
			v.Add(fmt.Sprintf("/jobs/%d/name", i), j.Name, "another job has this name")
		}
		seen[j.Name] = true
	}
	for i, r := range m.Packages {
		p := refPath("/packages", i, r.Name)
		checkRef(p, r.Name, r.Version, r.Fingerprint, r.SHA1)
		if pkgs[r.Name] && r.Name != "" {
			v.Add(fmt.Sprintf("/packages/%d/name", i), r.Name, "another package has this name")
		}
		pkgs[r.Name] = true
		if _, dup := deps[r.Name]; !dup {
			deps[r.Name] = r.Dependencies
		}
	}
	compiled := map[string]bool{}
	for i, r := range m.CompiledPackages {
		p := refPath("/compiled_packages", i, r.Name)
		checkRef(p, r.Name, r.Version, r.Fingerprint, r.SHA1)
		if r.Stemcell == "" {
			v.Add(p+"/stemcell", "", "required: the OS and stemcell version it was compiled on, such as ubuntu-jammy/1.108")
		}
		if compiled[r.Name] && r.Name != "" {
			v.Add(fmt.Sprintf("/compiled_packages/%d/name", i), r.Name, "another compiled package has this name")
		}
		compiled[r.Name] = true
		if _, dup := deps[r.Name]; !dup {
			deps[r.Name] = r.Dependencies
		}
	}
	known := func(n string) bool { return pkgs[n] || compiled[n] }
	for i, r := range m.Packages {
		for k, d := range r.Dependencies {
			if !known(d) {
				v.Add(fmt.Sprintf("%s/dependencies/%d", refPath("/packages", i, r.Name), k), d, "no package of the release has this name")
			}
		}
	}
	for i, r := range m.CompiledPackages {
		for k, d := range r.Dependencies {
			if !known(d) {
				v.Add(fmt.Sprintf("%s/dependencies/%d", refPath("/compiled_packages", i, r.Name), k), d, "no package of the release has this name")
			}
		}
	}
	for i, j := range m.Jobs {
		for k, d := range j.Packages {
			if !known(d) {
				v.Add(fmt.Sprintf("%s/packages/%d", refPath("/jobs", i, j.Name), k), d, "no package of the release has this name")
			}
		}
	}
	for _, c := range cycles(deps) {
		v.Add("/packages/name="+c[0]+"/dependencies", strings.Join(c, " -> "), "packages depend on each other in a cycle")
	}
	if l := m.License; l != nil {
		if !versionRe.MatchString(l.Version) {
			v.Add("/license/version", l.Version, "required: the license's fingerprint")
		}
		if !fingerprintRe.MatchString(l.Fingerprint) {
			v.Add("/license/fingerprint", l.Fingerprint, "required: letters and digits (a hex digest)")
		}
		if !digestRe.MatchString(l.SHA1) {
			v.Add("/license/sha1", l.SHA1, "license.tgz's digest: 40 hex digits (SHA-1) or sha256:<64 hex digits>")
		}
	}
	return v.Problems
}

// refPath is the path of a list element: by name= when it has a valid
// name, by index otherwise.
func refPath(list string, i int, name string) string {
	if validName(name) {
		return list + "/name=" + name
	}
	return fmt.Sprintf("%s/%d", list, i)
}

// indexPath turns a name= path back into the index path the parser
// recorded lines under.
func indexPath(p string, m *Manifest) string {
	for _, l := range []struct {
		prefix string
		names  []string
	}{
		{"/jobs/name=", namesOf(m.Jobs, func(j JobRef) string { return j.Name })},
		{"/packages/name=", namesOf(m.Packages, func(r PackageRef) string { return r.Name })},
		{"/compiled_packages/name=", namesOf(m.CompiledPackages, func(r CompiledPackageRef) string { return r.Name })},
	} {
		rest, ok := strings.CutPrefix(p, l.prefix)
		if !ok {
			continue
		}
		name, tail, _ := strings.Cut(rest, "/")
		for i, n := range l.names {
			if n == name {
				out := fmt.Sprintf("%s%d", strings.TrimSuffix(l.prefix, "name="), i)
				if tail != "" {
					out += "/" + tail
				}
				return out
			}
		}
	}
	return p
}

func namesOf[T any](s []T, name func(T) string) []string {
	out := make([]string, len(s))
	for i, e := range s {
		out[i] = name(e)
	}
	return out
}

// cycles finds the dependency cycles among packages: each once, as the
// names along it, starting and ending with the same package.
func cycles(deps map[string][]string) [][]string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var out [][]string
	var path []string
	var visit func(n string)
	visit = func(n string) {
		state[n] = onPath
		path = append(path, n)
		for _, d := range deps[n] {
			if _, ok := deps[d]; !ok {
				continue
			}
			switch state[d] {
			case unseen:
				visit(d)
			case onPath:
				for i := len(path) - 1; i >= 0; i-- {
					if path[i] == d {
						c := append(append([]string{}, path[i:]...), d)
						out = append(out, c)
						break
					}
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
	}
	for _, n := range sortedKeys(deps) {
		if state[n] == unseen {
			visit(n)
		}
	}
	return out
}

// Marshal writes the manifest as release.MF, in bosh create-release's key
// order; ParseManifest(Marshal(m)) equals m.
func (m *Manifest) Marshal() ([]byte, error) {
	type job struct {
		Name        string    `yaml:"name"`
		Version     string    `yaml:"version"`
		Fingerprint string    `yaml:"fingerprint"`
		SHA1        string    `yaml:"sha1"`
		Packages    *[]string `yaml:"packages,omitempty"`
	}
	type pkg struct {
		Name         string   `yaml:"name"`
		Version      string   `yaml:"version"`
		Fingerprint  string   `yaml:"fingerprint"`
		SHA1         string   `yaml:"sha1"`
		Dependencies []string `yaml:"dependencies"`
	}
	type compiled struct {
		Name         string   `yaml:"name"`
		Version      string   `yaml:"version"`
		Fingerprint  string   `yaml:"fingerprint"`
		SHA1         string   `yaml:"sha1"`
		Stemcell     string   `yaml:"stemcell"`
		Dependencies []string `yaml:"dependencies"`
	}
	type license struct {
		Version     string `yaml:"version"`
		Fingerprint string `yaml:"fingerprint"`
		SHA1        string `yaml:"sha1"`
	}
	type manifest struct {
		Name               string     `yaml:"name"`
		Version            string     `yaml:"version"`
		CommitHash         string     `yaml:"commit_hash"`
		UncommittedChanges bool       `yaml:"uncommitted_changes"`
		Jobs               []job      `yaml:"jobs,omitempty"`
		Packages           []pkg      `yaml:"packages,omitempty"`
		CompiledPackages   []compiled `yaml:"compiled_packages,omitempty"`
		License            *license   `yaml:"license,omitempty"`
		NoCompression      bool       `yaml:"no_compression,omitempty"`
	}
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	out := manifest{Name: m.Name, Version: m.Version, CommitHash: m.CommitHash, UncommittedChanges: m.UncommittedChanges, NoCompression: m.NoCompression}
	for _, j := range m.Jobs {
		out.Jobs = append(out.Jobs, job{j.Name, j.Version, j.Fingerprint, j.SHA1, nil})
		if j.Packages != nil {
			out.Jobs[len(out.Jobs)-1].Packages = &j.Packages
		}
	}
	for _, p := range m.Packages {
		out.Packages = append(out.Packages, pkg{p.Name, p.Version, p.Fingerprint, p.SHA1, nonNil(p.Dependencies)})
	}
	for _, p := range m.CompiledPackages {
		out.CompiledPackages = append(out.CompiledPackages, compiled{p.Name, p.Version, p.Fingerprint, p.SHA1, p.Stemcell, nonNil(p.Dependencies)})
	}
	if l := m.License; l != nil {
		out.License = &license{l.Version, l.Fingerprint, l.SHA1}
	}
	return yaml.Marshal(out)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
