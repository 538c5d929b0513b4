package stemcell

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1" //nolint:gosec // BOSH's stemcell.MF records SHA-1 (or sha256: prefixed) digests
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubefoundry/kubefoundry"
)

// Manifest is a stemcell's stemcell.MF.
type Manifest struct {
	Name            string         `json:"name"`
	Version         string         `json:"version"`
	BoshProtocol    string         `json:"bosh_protocol,omitempty"`
	APIVersion      int            `json:"api_version,omitempty"`
	SHA1            string         `json:"sha1"` // of the image: hex SHA-1, or "sha256:<hex>"
	OperatingSystem string         `json:"operating_system"`
	StemcellFormats []string       `json:"stemcell_formats,omitempty"`
	CloudProperties map[string]any `json:"cloud_properties,omitempty"`
}

// Stemcell is a stemcell read from its tarball: its manifest, and its
// image, unpacked.
type Stemcell struct {
	Manifest  Manifest
	ImagePath string // the image file, in the directory Read unpacked it to
}

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	versionRe = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]*$`)
	digestRe  = regexp.MustCompile(`^([0-9a-f]{40}|sha256:[0-9a-f]{64})$`)
)

// ParseManifest reads stemcell.MF; every problem at once, as a
// *kubefoundry.ValidationError.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	// version and bosh_protocol are strings in BOSH's manifests but often
	// written as numbers ("1.108" reads as a float); read them as they are.
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, &kubefoundry.ValidationError{Object: "stemcell.MF", Problems: []kubefoundry.FieldError{{Field: "/", Reason: "not YAML: " + err.Error()}}}
	}
	for _, k := range []string{"version", "bosh_protocol"} {
		if v, ok := raw[k]; ok && v != nil {
			if _, isString := v.(string); !isString {
				raw[k] = strings.TrimSpace(numberText(data, k, v))
			}
		}
	}
	fixed, err := yaml.Marshal(raw)
	if err == nil {
		err = yaml.UnmarshalStrict(fixed, &m)
	}
	if err != nil {
		return nil, &kubefoundry.ValidationError{Object: "stemcell.MF", Problems: []kubefoundry.FieldError{{Field: "/", Reason: err.Error()}}}
	}
	return &m, m.Validate()
}

// numberText is the text a number was written with in the YAML, so that
// "1.10" stays "1.10" rather than becoming 1.1.
func numberText(data []byte, key string, v any) string {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `:\s*([^\s#]+)`)
	if m := re.FindSubmatch(data); m != nil {
		return string(m[1])
	}
	return fmt.Sprint(v)
}

// Validate checks the manifest: every problem at once.
func (m *Manifest) Validate() error {
	v := kubefoundry.ValidationError{Object: "stemcell.MF"}
	if !nameRe.MatchString(m.Name) {
		v.Add("/name", m.Name, "required: letters, digits, '.', '_' and '-'")
	}
	if !versionRe.MatchString(m.Version) {
		v.Add("/version", m.Version, "required: such as 1.108 or 621.74")
	}
	if m.OperatingSystem == "" {
		v.Add("/operating_system", "", "required, such as ubuntu-jammy")
	}
	if !digestRe.MatchString(m.SHA1) {
		v.Add("/sha1", m.SHA1, "the image's digest: 40 hex digits (SHA-1) or sha256:<64 hex digits>")
	}
	if m.APIVersion < 0 {
		v.Add("/api_version", fmt.Sprint(m.APIVersion), "must not be negative")
	}
	return v.Err()
}

// Marshal writes the manifest as stemcell.MF.
func (m *Manifest) Marshal() ([]byte, error) { return yaml.Marshal(m) }

// Limits on what Read unpacks.
const (
	maxManifest = 1 << 20
	maxImage    = 64 << 30
)

// Read unpacks a stemcell tarball (a gzipped tar of stemcell.MF, image and
// optional extras such as stemcell_dpkg_l.txt) into dir, refusing
// anything but plain files at its top and what is larger than the
// limits, and checks the image against the manifest's digest.
func Read(tarball, dir string) (*Stemcell, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("stemcell %s: not a gzipped tar: %w", tarball, err)
	}
	tr := tar.NewReader(gz)
	var mf []byte
	var image string
	var sum1, sum256 string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("stemcell %s: %w", tarball, err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag == tar.TypeDir && name == "." {
			continue
		}
		if h.Typeflag != tar.TypeReg || path.IsAbs(name) || strings.Contains(name, "/") || name == ".." || name == "." {
			return nil, fmt.Errorf("stemcell %s: entry %q: only plain files at the top of the tarball", tarball, h.Name)
		}
		switch name {
		case "stemcell.MF":
			if h.Size > maxManifest {
				return nil, fmt.Errorf("stemcell %s: stemcell.MF larger than %d bytes", tarball, maxManifest)
			}
			if mf, err = io.ReadAll(io.LimitReader(tr, maxManifest)); err != nil {
				return nil, err
			}
		case "image":
			if h.Size > maxImage {
				return nil, fmt.Errorf("stemcell %s: image larger than %d bytes", tarball, int64(maxImage))
			}
			image = filepath.Join(dir, "image")
			h1, h256 := sha1.New(), sha256.New() //nolint:gosec
			if err := writeFile(image, io.TeeReader(io.LimitReader(tr, h.Size), io.MultiWriter(h1, h256))); err != nil {
				return nil, err
			}
			sum1, sum256 = hex.EncodeToString(h1.Sum(nil)), "sha256:"+hex.EncodeToString(h256.Sum(nil))
		}
	}
	if mf == nil {
		return nil, fmt.Errorf("stemcell %s: no stemcell.MF", tarball)
	}
	m, err := ParseManifest(mf)
	if err != nil {
		return nil, fmt.Errorf("stemcell %s: %w", tarball, err)
	}
	if image == "" {
		return nil, fmt.Errorf("stemcell %s: no image", tarball)
	}
	if m.SHA1 != sum1 && m.SHA1 != sum256 {
		return nil, fmt.Errorf("stemcell %s: the image's digest is %s, stemcell.MF says %s: %w", tarball, sum1, m.SHA1, kubefoundry.ErrInvalid)
	}
	return &Stemcell{Manifest: *m, ImagePath: image}, nil
}

func writeFile(p string, r io.Reader) error {
	out, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// CreateLight writes a light vSphere stemcell tarball to out: its image
// is a gzipped tar of the OVF at ovf and the files it references beside
// it (every other file in its directory), and its stemcell.MF is m with
// the image's SHA-1 filled in. What the simulator and tests deploy.
func CreateLight(out io.Writer, ovf string, m Manifest) error {
	dir := filepath.Dir(ovf)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var img bytes.Buffer
	if err := tarGz(&img, func(tw *tar.Writer) error {
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			if err := writeEntry(tw, e.Name(), b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	sum := sha1.Sum(img.Bytes()) //nolint:gosec
	m.SHA1 = hex.EncodeToString(sum[:])
	if len(m.StemcellFormats) == 0 {
		m.StemcellFormats = []string{"vsphere-ovf"}
	}
	if err := m.Validate(); err != nil {
		return err
	}
	mf, err := m.Marshal()
	if err != nil {
		return err
	}
	return tarGz(out, func(tw *tar.Writer) error {
		if err := writeEntry(tw, "stemcell.MF", mf); err != nil {
			return err
		}
		return writeEntry(tw, "image", img.Bytes())
	})
}

func tarGz(out io.Writer, fill func(*tar.Writer) error) error {
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	if err := fill(tw); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeEntry(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}
