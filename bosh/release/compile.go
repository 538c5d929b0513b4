package release

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kubefoundry/kubefoundry"
)

var stemcellRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[0-9A-Za-z][0-9A-Za-z.+_-]*$`)

// Compile turns the source release at src into a release compiled for
// stemcell ("ubuntu-jammy/1.108"), written to out: what a director's
// compilation VMs make of it and `bosh export-release` writes, made on
// this machine. Each package's packaging script runs with bash -e in a
// directory holding the package's files, dependencies first, with the
// variables a compilation VM sets: BOSH_COMPILE_TARGET (that directory),
// BOSH_INSTALL_TARGET (an empty directory the script fills, which becomes
// compiled_packages/<name>.tgz), BOSH_PACKAGE_NAME, BOSH_PACKAGE_VERSION
// and BOSH_PACKAGES_DIR (where each dependency's install target is, as
// <dir>/<name>). It is meant for packages whose scripts build for this
// machine's OS (Go programs, binaries copied in), as a stemcell of the
// same OS runs them.
//
// Jobs and the license are copied as they are. The compiled release has
// the source release's name, version and fingerprints; its packages'
// SHA-1s are those of the compiled tarballs, written deterministically,
// so the same source gives the same compiled release. A script that
// fails is an error naming the package with the end of its output; out
// then holds nothing usable.
func Compile(ctx context.Context, src, stemcell string, out io.Writer, opts ...Option) (*Manifest, error) {
	if !stemcellRe.MatchString(stemcell) {
		ve := kubefoundry.ValidationError{Object: "release.Compile"}
		ve.Add("stemcell", stemcell, `is not "<os>/<version>", such as ubuntu-jammy/1.108`)
		return nil, ve.Err()
	}
	o := buildOptions(opts)
	rel, err := Open(ctx, src, opts...)
	if err != nil {
		return nil, err
	}
	if len(rel.Manifest.Packages) == 0 && len(rel.Manifest.CompiledPackages) > 0 {
		return nil, fmt.Errorf("%s: already compiled (for %s): %w", src, rel.Manifest.CompiledPackages[0].Stemcell, kubefoundry.ErrInvalid)
	}
	tmp, err := os.MkdirTemp(o.tempDir, "bosh-compile-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	installed := filepath.Join(tmp, "packages")
	if err := os.Mkdir(installed, 0o755); err != nil {
		return nil, err
	}

	m := rel.Manifest
	byName := map[string]PackageRef{}
	for _, p := range m.Packages {
		byName[p.Name] = p
	}
	var order []PackageRef
	seen := map[string]bool{}
	var visit func(name string)
	visit = func(name string) { // Create and Read refuse cycles
		if seen[name] {
			return
		}
		seen[name] = true
		for _, d := range byName[name].Dependencies {
			visit(d)
		}
		order = append(order, byName[name])
	}
	for _, p := range m.Packages {
		visit(p.Name)
	}

	tgzs := map[string]string{}
	for i, p := range order {
		work := filepath.Join(tmp, "compile", p.Name)
		install := filepath.Join(installed, p.Name)
		if err := os.MkdirAll(install, 0o755); err != nil {
			return nil, err
		}
		if err := rel.ExtractPackage(ctx, p.Name, work); err != nil {
			return nil, err
		}
		var output bytes.Buffer
		cmd := exec.CommandContext(ctx, "bash", "-e", "packaging")
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "BOSH_COMPILE_TARGET="+work, "BOSH_INSTALL_TARGET="+install, "BOSH_PACKAGE_NAME="+p.Name,
			"BOSH_PACKAGE_VERSION="+p.Version, "BOSH_PACKAGES_DIR="+installed)
		cmd.Stdout, cmd.Stderr = &output, &output
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("compile package %s: packaging: %w: %s", p.Name, err, tail(output.String(), 2000))
		}
		if err := os.RemoveAll(work); err != nil {
			return nil, err
		}
		files, err := installedFiles(install)
		if err != nil {
			return nil, fmt.Errorf("compile package %s: %w", p.Name, err)
		}
		tgzs[p.Name] = filepath.Join(tmp, fmt.Sprintf("%d.tgz", i))
		digest, _, err := writeTarFile(ctx, tgzs[p.Name], withParents(files), false, o.gzipLevel(), SHA1)
		if err != nil {
			return nil, err
		}
		m.CompiledPackages = append(m.CompiledPackages, CompiledPackageRef{Name: p.Name, Version: p.Version,
			Fingerprint: p.Fingerprint, SHA1: digest, Stemcell: stemcell, Dependencies: p.Dependencies})
	}
	// In release.MF's order, as the source release listed them.
	pos := map[string]int{}
	for i, p := range rel.Manifest.Packages {
		pos[p.Name] = i
	}
	compiled := make([]CompiledPackageRef, len(m.CompiledPackages))
	for _, c := range m.CompiledPackages {
		compiled[pos[c.Name]] = c
	}
	m.CompiledPackages, m.Packages = compiled, nil
	if err := m.Validate(); err != nil {
		return nil, err
	}
	mf, err := m.Marshal()
	if err != nil {
		return nil, err
	}

	// The jobs and the license, copied from the source tarball.
	kept := map[string]string{}
	f, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gzr, closeGz, err := maybeGzip(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", src, err, kubefoundry.ErrInvalid)
	}
	defer closeGz()
	b := &budget{Limits: o.limits}
	err = walkTar(ctx, gzr, src, b, func(h *tar.Header, n string, content io.Reader) error {
		if content == nil || !(strings.HasPrefix(n, "jobs/") || n == "license.tgz") {
			return nil
		}
		p := filepath.Join(tmp, "kept-"+strings.ReplaceAll(n, "/", "-"))
		w, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, content)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		kept[n] = p
		return err
	})
	if err != nil {
		return nil, err
	}
	entries := []tarFile{{name: "release.MF", data: mf}}
	if len(m.Jobs) > 0 {
		entries = append(entries, tarFile{name: "jobs/", dir: true})
		for _, j := range m.Jobs {
			entries = append(entries, tarFile{name: "jobs/" + j.Name + ".tgz", src: kept["jobs/"+j.Name+".tgz"], size: -1})
		}
	}
	if len(m.CompiledPackages) > 0 {
		entries = append(entries, tarFile{name: "compiled_packages/", dir: true})
		for _, c := range m.CompiledPackages {
			entries = append(entries, tarFile{name: "compiled_packages/" + c.Name + ".tgz", src: tgzs[c.Name], size: -1})
		}
	}
	if m.License != nil {
		entries = append(entries, tarFile{name: "license.tgz", src: kept["license.tgz"], size: -1})
	}
	if err := writeTar(ctx, out, entries, false, o.gzipLevel()); err != nil {
		return nil, err
	}
	return &m, nil
}

// installedFiles lists what a packaging script installed, refusing what
// a release cannot hold (links, devices).
func installedFiles(dir string) ([]tarFile, error) {
	var files []tarFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil // withParents writes the directories of the files
		case !d.Type().IsRegular():
			return fmt.Errorf("the install target holds %s, which is not a regular file or a directory: %w", filepath.ToSlash(rel), kubefoundry.ErrInvalid)
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, tarFile{name: filepath.ToSlash(rel), exec: st.Mode()&0o111 != 0, src: p, size: st.Size()})
		return nil
	})
	return files, err
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
