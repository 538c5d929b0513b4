package kube

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/kubefoundry/kubefoundry"
	corev1 "k8s.io/api/core/v1"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	"sigs.k8s.io/yaml"
)

// EncryptionKeySize is the length of a secretbox key in bytes.
const EncryptionKeySize = 32

// Where a control-plane node keeps its encryption configuration. The API
// server mounts the directory, not the file, so that a file replaced by a
// rename (a key rotation) is seen inside its pod too.
const (
	EncryptionConfigDir  = "/etc/kubernetes/encryption"
	EncryptionConfigPath = EncryptionConfigDir + "/config.yaml"
)

// The API server flags that EncryptionAtRest sets.
const (
	encryptionConfigFlag = "encryption-provider-config"
	encryptionReloadFlag = "encryption-provider-config-automatic-reload"
)

// EncryptionKey is a key of the API server's encryption at rest: a
// 32-byte secretbox (XSalsa20 and Poly1305) key and the name the API
// server stores with every value it encrypts ("k8s:enc:secretbox:v1:" +
// Name + ":"). Its String, GoString and every fmt verb show the name
// only, never the secret, and so does its JSON (json.Marshal, slog's JSON
// handler, zap.Reflect, a journal): Secret is written as "[redacted]". A
// store that keeps keys takes Secret itself, as BootstrapSpec.Secrets
// does, and encrypts it at rest.
type EncryptionKey struct {
	// Name is made of letters, digits, '.', '_' and '-', at most 64 of
	// them; a ':' would make the prefix of stored values ambiguous.
	Name   string
	Secret []byte
}

// NewEncryptionKey returns a new random key named name.
func NewEncryptionKey(name string) (EncryptionKey, error) {
	if err := checkKeyName(name); err != nil {
		return EncryptionKey{}, fmt.Errorf("encryption key: name: %w", err)
	}
	k := EncryptionKey{Name: name, Secret: make([]byte, EncryptionKeySize)}
	if _, err := rand.Read(k.Secret); err != nil {
		return EncryptionKey{}, fmt.Errorf("encryption key: %w", err)
	}
	return k, nil
}

// MarshalJSON writes the key's name and "[redacted]" for its secret.
func (k EncryptionKey) MarshalJSON() ([]byte, error) {
	var secret *string
	if k.Secret != nil {
		secret = ptrTo(redacted)
	}
	return json.Marshal(struct {
		Name   string
		Secret *string
	}{k.Name, secret})
}

// UnmarshalJSON reads a key as MarshalJSON writes it, without its secret
// (BootstrapSpec.WithSecrets puts it back), or with the secret in base64
// as encoding/json writes a []byte.
func (k *EncryptionKey) UnmarshalJSON(b []byte) error {
	var v struct {
		Name   string
		Secret *string
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*k = EncryptionKey{Name: v.Name}
	if v.Secret == nil || *v.Secret == redacted {
		return nil
	}
	secret, err := base64.StdEncoding.DecodeString(*v.Secret)
	if err != nil {
		// Not the decoder's error: it quotes the input, a secret.
		return fmt.Errorf("encryption key %q: secret: not base64", v.Name)
	}
	k.Secret = secret
	return nil
}

// redacted stands for a secret in JSON.
const redacted = "[redacted]"

// String names the key without its secret.
func (k EncryptionKey) String() string { return "EncryptionKey{" + k.Name + "}" }

// GoString is String in Go syntax, without the secret.
func (k EncryptionKey) GoString() string { return fmt.Sprintf("kube.EncryptionKey{Name:%q}", k.Name) }

// Format prints the key as String (GoString for %#v) whatever the verb,
// so that no verb (%x, %s, %+v) reaches the secret.
func (k EncryptionKey) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, k.GoString())
		return
	}
	_, _ = io.WriteString(f, k.String())
}

// EncryptionAtRest is TKGI's "etcd encryption" Kubernetes profile: the
// API servers encrypt Resources with Keys before they write them to
// etcd.
//
// Every control-plane node must have the same keys: pass the same spec to
// InitControlPlaneUserData and to every JoinControlPlaneUserData. The
// user data is read once, when a node is made; to rotate the keys of
// running nodes, replace EncryptionConfigPath on each of them (from
// Kubernetes 1.26 the API server reads it again within a minute; before,
// restart it) in steps, each on every node before the next: [old, new],
// so that all can read the new key; [new, old], so that all write with
// it; rewrite every Secret (such as `kubectl get secrets -A -o json |
// kubectl replace -f -`), so that each is stored under the new key;
// [new]. Nodes made later get the spec's current keys.
type EncryptionAtRest struct {
	// Keys: the first encrypts, all decrypt.
	Keys []EncryptionKey
	// Resources are encrypted; ["secrets"] when empty.
	Resources []string
}

// keyNameRe is what a key name may be made of (see EncryptionKey.Name).
var keyNameRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func checkKeyName(name string) error {
	switch {
	case name == "":
		return errors.New("required")
	case !keyNameRe.MatchString(name):
		return fmt.Errorf("%q: only letters, digits, '.', '_' and '-', at most 64", name)
	}
	return nil
}

// The API server's EncryptionConfiguration (apiserver.config.k8s.io/v1),
// only as much of it as is rendered here. Local types rather than
// k8s.io/apiserver's, which would bring component-base and more into
// every user's go.mod; the API server, which parses the file strictly,
// checks these against its own in the tests.
type encryptionConfiguration struct {
	APIVersion string                  `json:"apiVersion"`
	Kind       string                  `json:"kind"`
	Resources  []encryptionResourceSet `json:"resources"`
}

type encryptionResourceSet struct {
	Resources []string             `json:"resources"`
	Providers []encryptionProvider `json:"providers"`
}

type encryptionProvider struct {
	Secretbox *encryptionKeys `json:"secretbox,omitempty"`
	Identity  *struct{}       `json:"identity,omitempty"`
}

type encryptionKeys struct {
	Keys []encryptionKeyEntry `json:"keys"`
}

type encryptionKeyEntry struct {
	Name   string `json:"name"`
	Secret string `json:"secret"` // base64
}

// EncryptionConfig renders the API server's EncryptionConfiguration (the
// file of its --encryption-provider-config) that encrypts resources
// (["secrets"] when empty) with the secretbox provider and keys, the
// first of which encrypts while all decrypt, followed by the identity
// provider, so that what was stored before encryption was turned on stays
// readable. secretbox rather than aescbc, which the Kubernetes
// documentation no longer recommends.
//
// Every problem of the input is reported at once, each naming its field
// (keys[1].secret). The result holds the keys: treat it as a secret.
func EncryptionConfig(resources []string, keys ...EncryptionKey) ([]byte, error) {
	v := kubefoundry.ValidationError{Object: "encryption config"}
	checkEncryption(&v, "", resources, keys)
	if err := v.Err(); err != nil {
		return nil, err
	}
	return renderEncryptionConfig(resources, keys)
}

func renderEncryptionConfig(resources []string, keys []EncryptionKey) ([]byte, error) {
	if len(resources) == 0 {
		resources = []string{"secrets"}
	}
	box := &encryptionKeys{Keys: make([]encryptionKeyEntry, len(keys))}
	for i, k := range keys {
		box.Keys[i] = encryptionKeyEntry{Name: k.Name, Secret: base64.StdEncoding.EncodeToString(k.Secret)}
	}
	return yaml.Marshal(encryptionConfiguration{
		APIVersion: "apiserver.config.k8s.io/v1",
		Kind:       "EncryptionConfiguration",
		Resources: []encryptionResourceSet{{
			Resources: resources,
			Providers: []encryptionProvider{{Secretbox: box}, {Identity: &struct{}{}}},
		}},
	})
}

// checkEncryption returns every problem of resources and keys, each named
// by its field under path ("" or such as "encryption.").
func checkEncryption(v *kubefoundry.ValidationError, path string, resources []string, keys []EncryptionKey) {
	bad := func(field string, format string, a ...any) { v.Add(path+field, "", format, a...) }
	if len(keys) == 0 {
		bad("keys", "at least one key required")
	}
	seen := map[string]int{}
	for i, k := range keys {
		if err := checkKeyName(k.Name); err != nil {
			bad(fmt.Sprintf("keys[%d].name", i), "%v", err)
		} else if j, dup := seen[k.Name]; dup {
			bad(fmt.Sprintf("keys[%d].name", i), "%q already names keys[%d]", k.Name, j)
		} else {
			seen[k.Name] = i
		}
		// The length only: the secret itself never goes into an error.
		if len(k.Secret) != EncryptionKeySize {
			bad(fmt.Sprintf("keys[%d].secret", i), "%d bytes, want %d", len(k.Secret), EncryptionKeySize)
		}
	}
	res := map[string]int{}
	for i, r := range resources {
		field := fmt.Sprintf("resources[%d]", i)
		switch j, dup := res[r]; {
		case r == "":
			bad(field, "empty")
		case strings.ToLower(r) != r:
			bad(field, "%q: resource names are lower case", r)
		case r == "*":
			bad(field, "%q: use \"*.\" for the core group's resources or \"*.*\" for all", r)
		case dup:
			bad(field, "%q already at resources[%d]", r, j)
		default:
			res[r] = i
		}
	}
}

// encryptionFiles are the files that give a control-plane node its
// encryption configuration, none without Encryption.
func (s *BootstrapSpec) encryptionFiles() ([]bootstrapv1.File, error) {
	if s.Encryption == nil {
		return nil, nil
	}
	if err := s.checkEncryption(); err != nil {
		return nil, err
	}
	cfg, err := renderEncryptionConfig(s.Encryption.Resources, s.Encryption.Keys)
	if err != nil {
		return nil, err
	}
	return []bootstrapv1.File{{Path: EncryptionConfigPath, Owner: "root:root", Permissions: "0600", Content: string(cfg)}}, nil
}

func (s *BootstrapSpec) checkEncryption() error {
	v := kubefoundry.ValidationError{Object: "bootstrap spec"}
	checkEncryption(&v, "encryption.", s.Encryption.Resources, s.Encryption.Keys)
	if _, set := s.APIServerArgs[encryptionConfigFlag]; set {
		v.Add("apiServerArgs["+encryptionConfigFlag+"]", "", "set by encryption; give one or the other")
	}
	return v.Err()
}

// apiServer is the ClusterConfiguration's API server: the spec's flags and
// SANs, and with Encryption its configuration flags and the directory of
// the file mounted read-only. The spec's APIServerArgs keep their values
// (encryption-provider-config is refused by checkEncryption).
func (s *BootstrapSpec) apiServer(v semver.Version) bootstrapv1.APIServer {
	if s.Encryption == nil {
		return bootstrapv1.APIServer{CertSANs: s.CertSANs, ExtraArgs: args(s.APIServerArgs)}
	}
	flags := map[string]string{encryptionConfigFlag: EncryptionConfigPath}
	// From 1.26 the API server reloads the file when it changes (it looks
	// every minute), so that keys rotate without restarting it.
	if v.Major > 1 || v.Major == 1 && v.Minor >= 26 {
		flags[encryptionReloadFlag] = "true"
	}
	maps.Copy(flags, s.APIServerArgs)
	return bootstrapv1.APIServer{
		CertSANs:  s.CertSANs,
		ExtraArgs: args(flags),
		ExtraVolumes: []bootstrapv1.HostPathMount{{
			Name: "encryption-config", HostPath: EncryptionConfigDir, MountPath: EncryptionConfigDir,
			ReadOnly: ptrTo(true), PathType: corev1.HostPathDirectoryOrCreate,
		}},
	}
}
