package csi

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The vSphere CSI driver's names.
const (
	DriverName      = "csi.vsphere.vmware.com"
	DriverNamespace = "vmware-system-csi"
	ConfigSecret    = "vsphere-config-secret"
	ConfigKey       = "csi-vsphere.conf"
	// ZoneKey is the node and topology label of availability zones.
	ZoneKey = "topology.kubernetes.io/zone"
)

// DriverConfig is the vSphere CSI driver's configuration for one cluster.
// String redacts the password.
type DriverConfig struct {
	ClusterID   string
	VCenter     string // host name or address
	Port        int    // 443 when zero
	User        string
	Password    string
	Datacenters []string // names or inventory paths
	// Trust: a CA file path inside the driver's container, or a thumbprint,
	// or Insecure; one of them.
	CAFile     string
	Thumbprint string
	Insecure   bool
}

func (d DriverConfig) String() string {
	return fmt.Sprintf("csi.DriverConfig{ClusterID: %q, VCenter: %q, Port: %d, User: %q, Password: %q, Datacenters: %q, CAFile: %q, Thumbprint: %q, Insecure: %t}",
		d.ClusterID, d.VCenter, d.Port, d.User, "--- REDACTED ---", d.Datacenters, d.CAFile, d.Thumbprint, d.Insecure)
}

// GoString makes %#v as safe as %v.
func (d DriverConfig) GoString() string { return d.String() }

func (d DriverConfig) validate() error {
	var p []string
	if d.ClusterID == "" {
		p = append(p, "clusterID: required")
	}
	if d.VCenter == "" {
		p = append(p, "vCenter: required")
	}
	if d.User == "" || d.Password == "" {
		p = append(p, "user and password: required")
	}
	if len(d.Datacenters) == 0 {
		p = append(p, "datacenters: at least one")
	}
	if d.CAFile == "" && d.Thumbprint == "" && !d.Insecure {
		p = append(p, "caFile, thumbprint or insecure: one is required (TLS verification cannot be left undefined)")
	}
	if len(p) > 0 {
		return fmt.Errorf("CSI driver config: %s: %w", strings.Join(p, "; "), ErrInvalidSpec)
	}
	return nil
}

// quote writes a gcfg (git-config style) value.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// Render writes csi-vsphere.conf in the driver's INI format.
func (d DriverConfig) Render() ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	port := d.Port
	if port == 0 {
		port = 443
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[Global]\ncluster-id = %s\n\n", quote(d.ClusterID))
	fmt.Fprintf(&b, "[VirtualCenter %s]\n", quote(d.VCenter))
	fmt.Fprintf(&b, "insecure-flag = %s\n", quote(strconv.FormatBool(d.Insecure)))
	fmt.Fprintf(&b, "user = %s\n", quote(d.User))
	fmt.Fprintf(&b, "password = %s\n", quote(d.Password))
	fmt.Fprintf(&b, "port = %s\n", quote(strconv.Itoa(port)))
	fmt.Fprintf(&b, "datacenters = %s\n", quote(strings.Join(d.Datacenters, ", ")))
	if d.CAFile != "" {
		fmt.Fprintf(&b, "ca-file = %s\n", quote(d.CAFile))
	}
	if d.Thumbprint != "" {
		fmt.Fprintf(&b, "thumbprint = %s\n", quote(d.Thumbprint))
	}
	return []byte(b.String()), nil
}

// Secret is the driver's configuration Secret.
func (d DriverConfig) Secret() (*corev1.Secret, error) {
	conf, err := d.Render()
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: ConfigSecret, Namespace: DriverNamespace},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{ConfigKey: conf},
	}, nil
}

// StorageClassSpec is one StorageClass backed by a storage policy.
type StorageClassSpec struct {
	Name          string
	StoragePolicy string // SPBM policy name
	Default       bool
	// Zones restricts volumes to these availability zones (volume
	// topology); empty means anywhere.
	Zones                []string
	FSType               string // ext4 when empty
	Retain               bool   // reclaim policy Retain instead of Delete
	WaitForFirstConsumer bool   // bind when a pod is scheduled, so its zone is known
}

// StorageClasses renders storage.k8s.io/v1 StorageClasses for the driver.
// At most one may be the default.
func StorageClasses(specs []StorageClassSpec) ([]*storagev1.StorageClass, error) {
	var errs []error
	defaults := 0
	out := make([]*storagev1.StorageClass, 0, len(specs))
	for i, s := range specs {
		if s.Name == "" || s.StoragePolicy == "" {
			errs = append(errs, fmt.Errorf("storageClasses[%d]: name and storagePolicy are required", i))
			continue
		}
		fs := s.FSType
		if fs == "" {
			fs = "ext4"
		}
		reclaim := corev1.PersistentVolumeReclaimDelete
		if s.Retain {
			reclaim = corev1.PersistentVolumeReclaimRetain
		}
		mode := storagev1.VolumeBindingImmediate
		if s.WaitForFirstConsumer {
			mode = storagev1.VolumeBindingWaitForFirstConsumer
		}
		sc := &storagev1.StorageClass{
			TypeMeta:             metav1.TypeMeta{APIVersion: "storage.k8s.io/v1", Kind: "StorageClass"},
			ObjectMeta:           metav1.ObjectMeta{Name: s.Name},
			Provisioner:          DriverName,
			Parameters:           map[string]string{"storagepolicyname": s.StoragePolicy, "csi.storage.k8s.io/fstype": fs},
			ReclaimPolicy:        &reclaim,
			AllowVolumeExpansion: ptrTo(true),
			VolumeBindingMode:    &mode,
		}
		if s.Default {
			defaults++
			sc.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
		}
		if len(s.Zones) > 0 {
			zones := slices.Clone(s.Zones)
			slices.Sort(zones)
			sc.AllowedTopologies = []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{{Key: ZoneKey, Values: zones}}}}
		}
		out = append(out, sc)
	}
	if defaults > 1 {
		errs = append(errs, fmt.Errorf("storageClasses: %d are marked default; at most one may be", defaults))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	return out, nil
}

func ptrTo[T any](v T) *T { return &v }
