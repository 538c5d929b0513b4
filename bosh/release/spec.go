package release

import (
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/internal/yamltree"
)

// ParseJobSpec reads a job's spec (jobs/<name>/spec, or job.MF in a job
// tarball). It is strict: an unknown key is a problem naming the key,
// and so is a value of the wrong kind or what Validate rejects. Every
// problem comes at once as a *kubefoundry.ValidationError whose problems
// carry the path (/properties/nats.port/default) and line.
func ParseJobSpec(data []byte) (*JobSpec, error) {
	s, _, err := parseJobSpec(data)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// parseJobSpec is ParseJobSpec returning also the lines of the spec's
// paths and, when the document is a mapping, the spec read despite its
// problems.
func parseJobSpec(data []byte) (*JobSpec, map[string]int, error) {
	w := &walker{object: "job spec"}
	root := w.document(data, "a job spec")
	if root == nil {
		return nil, nil, w.err()
	}
	var s JobSpec
	lines := map[string]int{}
	links := func(f field) []Link {
		var out []Link
		w.list(f, func(i int, e *yaml.Node, p string) {
			lines[p] = e.Line
			var l Link
			w.mapping(e, p, []string{"name", "type", "optional", "properties"}, func(f field) {
				lines[f.path] = f.line
				switch f.key {
				case "name":
					l.Name, _ = w.str(f)
				case "type":
					l.Type, _ = w.str(f)
				case "optional":
					l.Optional, _ = w.boolean(f)
				case "properties":
					l.Properties = w.strList(f)
				}
			})
			out = append(out, l)
		})
		return out
	}
	ok := w.mapping(root, "", []string{"name", "description", "templates", "packages", "properties", "consumes", "provides"}, func(f field) {
		lines[f.path] = f.line
		switch f.key {
		case "name":
			s.Name, _ = w.str(f)
		case "description":
			if !yamltree.IsNull(f.val) {
				s.Description, _ = w.str(f)
			}
		case "templates":
			w.mapping(f.val, f.path, nil, func(t field) {
				lines[t.path] = t.line
				if dst, ok := w.str(t); ok {
					if s.Templates == nil {
						s.Templates = map[string]string{}
					}
					s.Templates[t.key] = dst
				}
			})
		case "packages":
			s.Packages = w.strList(f)
		case "properties":
			w.mapping(f.val, f.path, nil, func(pf field) {
				lines[pf.path] = pf.line
				var p Property
				w.mapping(pf.val, pf.path, []string{"description", "default", "example"}, func(f field) {
					lines[f.path] = f.line
					switch f.key {
					case "description":
						if !yamltree.IsNull(f.val) {
							p.Description, _ = w.str(f)
						}
					case "default":
						p.Default = w.value(f)
					case "example":
						p.Example = w.value(f)
					}
				})
				if s.Properties == nil {
					s.Properties = map[string]Property{}
				}
				s.Properties[pf.key] = p
			})
		case "consumes":
			s.Consumes = links(f)
		case "provides":
			s.Provides = links(f)
		}
	})
	if !ok {
		return nil, nil, w.err()
	}
	if w.budget >= 0 {
		for _, p := range s.problems() {
			if w.isBad(p.Field) {
				continue
			}
			p.Line = yamltree.LineOf(lines, p.Field)
			w.probs = append(w.probs, p)
		}
	}
	return &s, lines, w.err()
}

// Validate checks a job spec: a name, template sources and destinations
// that are relative paths staying inside the job (no "..", not absolute),
// no two templates rendered to one path, packages and links named once
// each, links with a name and a type. Every problem at once, as a
// *kubefoundry.ValidationError.
func (s *JobSpec) Validate() error {
	v := kubefoundry.ValidationError{Object: "job spec", Problems: s.problems()}
	return v.Err()
}

func (s *JobSpec) problems() []kubefoundry.FieldError {
	var v kubefoundry.ValidationError
	if !validName(s.Name) {
		v.Add("/name", s.Name, "required: letters, digits, '-', '_' and '.'")
	}
	dsts := map[string]string{}
	for _, src := range sortedKeys(s.Templates) {
		dst := s.Templates[src]
		p := yamltree.Join("/templates", src)
		if why := relPathProblem(src); why != "" {
			v.Add(p, src, "a template under templates/ %s", why)
		}
		if why := relPathProblem(dst); why != "" {
			v.Add(p, dst, "the path a template renders to under the job's directory %s", why)
		} else if other, dup := dsts[path.Clean(dst)]; dup {
			v.Add(p, dst, "template %q renders to the same path", other)
		} else {
			dsts[path.Clean(dst)] = src
		}
	}
	seen := map[string]bool{}
	for i, p := range s.Packages {
		switch {
		case !validName(p):
			v.Add(fmt.Sprintf("/packages/%d", i), p, "a package name: letters, digits, '-', '_' and '.'")
		case seen[p]:
			v.Add(fmt.Sprintf("/packages/%d", i), p, "the package is listed twice")
		}
		seen[p] = true
	}
	for _, name := range sortedKeys(s.Properties) {
		if name == "" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
			v.Add(yamltree.Join("/properties", name), name, "a property name is dotted words, such as nats.port")
		}
	}
	for _, l := range []struct {
		key   string
		links []Link
	}{{"consumes", s.Consumes}, {"provides", s.Provides}} {
		names := map[string]bool{}
		for i, link := range l.links {
			p := fmt.Sprintf("/%s/%d", l.key, i)
			if link.Name == "" {
				v.Add(p+"/name", "", "required")
			} else if names[link.Name] {
				v.Add(p+"/name", link.Name, "another link of the job has this name")
			}
			names[link.Name] = true
			if link.Type == "" {
				v.Add(p+"/type", "", "required")
			}
			if l.key == "consumes" && len(link.Properties) > 0 {
				v.Add(p+"/properties", "", "only a provided link shares properties")
			}
			if l.key == "provides" && link.Optional {
				v.Add(p+"/optional", "true", "only a consumed link is optional")
			}
			for k, prop := range link.Properties {
				if _, ok := s.Properties[prop]; !ok {
					v.Add(fmt.Sprintf("%s/properties/%d", p, k), prop, "the job declares no such property")
				}
			}
		}
	}
	return v.Problems
}

// relPathProblem says what is wrong with p as a relative path that must
// stay inside its directory, or "" when nothing is.
func relPathProblem(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`):
		return "must be relative, not absolute"
	case strings.ContainsRune(p, 0):
		return "must not hold a NUL byte"
	}
	for _, seg := range strings.Split(strings.ReplaceAll(p, `\`, "/"), "/") {
		if seg == ".." {
			return "must stay inside it (no ..)"
		}
	}
	if c := path.Clean(p); c == "." {
		return "must name a file"
	}
	return ""
}

// PackageSpec is a package's spec, packages/<name>/spec in a release
// directory.
type PackageSpec struct {
	Name string `json:"name" yaml:"name"`
	// Dependencies are the packages compiled before this one and found
	// under /var/vcap/packages when it compiles.
	Dependencies []string `json:"dependencies,omitempty" yaml:"dependencies,omitempty"`
	// Files are globs, matched against the release's src/ and then
	// blobs/ directories: * and ? within a path segment, ** for any
	// number of segments, [a-z] classes and {a,b} alternatives.
	Files []string `json:"files,omitempty" yaml:"files,omitempty"`
	// ExcludedFiles are globs removing files that Files matched.
	ExcludedFiles []string `json:"excluded_files,omitempty" yaml:"excluded_files,omitempty"`
}

// ParsePackageSpec reads a package's spec, strictly as ParseJobSpec does
// a job's.
func ParsePackageSpec(data []byte) (*PackageSpec, error) {
	s, _, err := parsePackageSpec(data)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func parsePackageSpec(data []byte) (*PackageSpec, map[string]int, error) {
	w := &walker{object: "package spec"}
	root := w.document(data, "a package spec")
	if root == nil {
		return nil, nil, w.err()
	}
	var s PackageSpec
	lines := map[string]int{}
	ok := w.mapping(root, "", []string{"name", "dependencies", "files", "excluded_files"}, func(f field) {
		lines[f.path] = f.line
		switch f.key {
		case "name":
			s.Name, _ = w.str(f)
		case "dependencies":
			s.Dependencies = w.strList(f)
		case "files":
			s.Files = w.strList(f)
		case "excluded_files":
			s.ExcludedFiles = w.strList(f)
		}
	})
	if !ok {
		return nil, nil, w.err()
	}
	if w.budget >= 0 {
		for _, p := range s.problems() {
			if w.isBad(p.Field) {
				continue
			}
			p.Line = yamltree.LineOf(lines, p.Field)
			w.probs = append(w.probs, p)
		}
	}
	return &s, lines, w.err()
}

// Validate checks a package spec: a name, dependencies named once each
// and not the package itself, globs that stay inside src/ and blobs/.
func (s *PackageSpec) Validate() error {
	v := kubefoundry.ValidationError{Object: "package spec", Problems: s.problems()}
	return v.Err()
}

func (s *PackageSpec) problems() []kubefoundry.FieldError {
	var v kubefoundry.ValidationError
	if !validName(s.Name) {
		v.Add("/name", s.Name, "required: letters, digits, '-', '_' and '.'")
	}
	seen := map[string]bool{}
	for i, d := range s.Dependencies {
		p := fmt.Sprintf("/dependencies/%d", i)
		switch {
		case !validName(d):
			v.Add(p, d, "a package name: letters, digits, '-', '_' and '.'")
		case d == s.Name:
			v.Add(p, d, "a package cannot depend on itself")
		case seen[d]:
			v.Add(p, d, "the dependency is listed twice")
		}
		seen[d] = true
	}
	for _, l := range []struct {
		key   string
		globs []string
	}{{"files", s.Files}, {"excluded_files", s.ExcludedFiles}} {
		for i, g := range l.globs {
			if why := relPathProblem(g); why != "" {
				v.Add(fmt.Sprintf("/%s/%d", l.key, i), g, "a glob under src/ and blobs/ %s", why)
			} else if _, err := expandBraces(g); err != nil {
				v.Add(fmt.Sprintf("/%s/%d", l.key, i), g, "%v", err)
			} else if err := checkGlob(g); err != nil {
				v.Add(fmt.Sprintf("/%s/%d", l.key, i), g, "%v", err)
			}
		}
	}
	return v.Problems
}
