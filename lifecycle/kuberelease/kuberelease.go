package kuberelease

import (
	"compress/gzip"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/kubefoundry/kubefoundry"
	"github.com/kubefoundry/kubefoundry/bosh/release"
)

// Name is the release's name.
const Name = "kubefoundry-kubernetes"

//go:embed all:release
var tree embed.FS

// Binaries are the programs the release packages, built for the
// stemcell's OS and architecture (linux/amd64 for vSphere stemcells):
// each the path of an executable file.
type Binaries struct {
	Etcd                  string
	KubeAPIServer         string
	KubeControllerManager string
	KubeScheduler         string
	Kubectl               string
	// Kubelet is the workers' kubelet: on a simulated foundation kwok
	// (sigs.k8s.io/kwok/cmd/kwok), which `make tools` builds.
	Kubelet string
}

// BinariesIn are the binaries as `make tools` lays them out in dir: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and
// kwok (the simulated kubelet). Validate says whether they are there.
func BinariesIn(dir string) Binaries {
	return Binaries{Etcd: filepath.Join(dir, "etcd"), KubeAPIServer: filepath.Join(dir, "kube-apiserver"),
		KubeControllerManager: filepath.Join(dir, "kube-controller-manager"), KubeScheduler: filepath.Join(dir, "kube-scheduler"),
		Kubectl: filepath.Join(dir, "kubectl"), Kubelet: filepath.Join(dir, "kwok")}
}

// packages are the release's packages and the binary each holds.
func (b Binaries) packages() []struct{ name, path, field string } {
	return []struct{ name, path, field string }{
		{"etcd", b.Etcd, "Etcd"},
		{"kube-apiserver", b.KubeAPIServer, "KubeAPIServer"},
		{"kube-controller-manager", b.KubeControllerManager, "KubeControllerManager"},
		{"kube-scheduler", b.KubeScheduler, "KubeScheduler"},
		{"kubectl", b.Kubectl, "Kubectl"},
		{"kwok", b.Kubelet, "Kubelet"},
	}
}

// Validate checks that every binary is given and is an executable file,
// every problem at once.
func (b Binaries) Validate() error {
	ve := kubefoundry.ValidationError{Object: "kuberelease.Binaries"}
	for _, p := range b.packages() {
		if p.path == "" {
			ve.Add(p.field, "", "required: the path of the %s program", p.name)
			continue
		}
		st, err := os.Stat(p.path)
		switch {
		case err != nil:
			ve.Add(p.field, p.path, "%v", errors.Unwrap(err))
		case !st.Mode().IsRegular():
			ve.Add(p.field, p.path, "is not a regular file")
		case st.Mode().Perm()&0o111 == 0:
			ve.Add(p.field, p.path, "is not executable")
		}
	}
	return ve.Err()
}

// Build writes the Kubernetes release, compiled for stemcell
// ("ubuntu-jammy/1.108"), with the given version, to out: what
// Director.UploadRelease takes. The jobs and templates are the SDK's own
// (embedded); the packages hold the binaries as given. Build works in a
// temporary directory under tmpDir (the system's when empty) and removes
// it. Its tarballs are gzip without compression (stored blocks), which
// every agent reads: compressing half a gigabyte of binaries to half
// their size takes a minute of CPU, and several under the race detector;
// opts (release.WithCompressionLevel) may ask otherwise.
func Build(ctx context.Context, bins Binaries, version, stemcell, tmpDir string, out io.Writer, opts ...release.Option) (*release.Manifest, error) {
	if err := bins.Validate(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(tmpDir, "kuberelease-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "release")
	if err := writeTree(dir); err != nil {
		return nil, err
	}
	for _, p := range bins.packages() {
		if err := place(p.path, filepath.Join(dir, "src", p.name, p.name)); err != nil {
			return nil, fmt.Errorf("kuberelease: %s: %w", p.field, err)
		}
	}
	src := filepath.Join(tmp, "source.tgz")
	f, err := os.Create(src)
	if err != nil {
		return nil, err
	}
	ropts := append([]release.Option{release.WithCompressionLevel(gzip.NoCompression), release.WithTempDir(tmp)}, opts...)
	_, err = release.Create(ctx, dir, f, append([]release.Option{release.WithVersion(version), release.WithNoCompression()}, ropts...)...)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("kuberelease: %w", err)
	}
	// The sources are in source.tgz now; free the disk they took.
	if err := os.RemoveAll(filepath.Join(dir, "src")); err != nil {
		return nil, err
	}
	m, err := release.Compile(ctx, src, stemcell, out, ropts...)
	if err != nil {
		return nil, fmt.Errorf("kuberelease: %w", err)
	}
	return m, nil
}

// writeTree writes the embedded release directory to dir.
func writeTree(dir string) error {
	return fs.WalkDir(tree, "release", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel("release", filepath.FromSlash(p))
		if err != nil {
			return err
		}
		target := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := tree.ReadFile(path.Clean(p))
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// place puts the file src at dst: a hard link when both are on one file
// system, else a copy.
func place(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// Digest writes the release's own jobs and packaging (what Build adds to
// the binaries) to w, file by file: it changes when they do, for a cache
// of built releases.
func Digest(w io.Writer) error {
	return fs.WalkDir(tree, "release", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := tree.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s %d\n%s\n", p, len(b), b)
		return err
	})
}
