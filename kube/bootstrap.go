package kube

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/blang/semver/v4"
	"github.com/kubefoundry/kubefoundry"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	"sigs.k8s.io/cluster-api/bootstrap/kubeadm/pkg/cloudinit"
	kubeadmtypes "sigs.k8s.io/cluster-api/bootstrap/kubeadm/pkg/types"
	"sigs.k8s.io/cluster-api/bootstrap/kubeadm/pkg/types/upstream"
	"sigs.k8s.io/cluster-api/util/certs"
	"sigs.k8s.io/cluster-api/util/secret"
)

// NodeNameFromMetadata is the node name cloud-init renders from the
// instance's standard local_hostname, which the VMware datasource reads
// from the local-hostname that vsphere.ProvisionVMs puts in guestinfo
// metadata (the VM's name).
const NodeNameFromMetadata = "{{ v1.local_hostname }}"

// BootstrapSpec is what kubeadm needs to make or join a cluster. The YAML
// it becomes is rendered by Cluster API's own kubeadm bootstrap code (its
// v1beta2 types, their conversion to kubeadm's API for the Kubernetes
// version, and its cloud-init templates), not written by hand here.
//
// A spec holds secrets, the bootstrap token and the encryption keys, and
// shows none of them however it is printed or marshalled: String, every
// fmt verb, JSON (json.Marshal, and so slog's JSON handler, zap.Reflect
// and a journal) write the token's ID and the keys' names only. The
// secrets leave a spec only through Secrets, and return to one read back
// from its JSON through WithSecrets.
type BootstrapSpec struct {
	ClusterName       string
	KubernetesVersion string // such as "v1.36.3"
	// ControlPlaneEndpoint is the load balancer's "host:port" (TKGI: the
	// NSX virtual server on 8443).
	ControlPlaneEndpoint string
	PodSubnet            string // default 10.244.0.0/16
	ServiceSubnet        string // default 10.96.0.0/12
	DNSDomain            string // default cluster.local
	// CertSANs are extra names of the API server certificate.
	CertSANs []string
	// APIServerArgs and KubeletArgs are extra flags, as in TKGI's
	// Kubernetes profiles.
	APIServerArgs map[string]string
	KubeletArgs   map[string]string
	// Token is the bootstrap token joining nodes use ("abcdef.0123456789abcdef").
	Token               string
	PreKubeadmCommands  []string
	PostKubeadmCommands []string
	// KubeVIP, when set, runs kube-vip on the control-plane nodes to hold
	// ControlPlaneEndpoint's address: the control-plane load balancer of
	// a cluster without NSX. The API servers then listen on the
	// endpoint's port.
	KubeVIP *KubeVIP
	// Encryption, when set, makes the API servers encrypt Secrets (or the
	// resources it names) before they store them in etcd: the control-
	// plane nodes get its configuration file (EncryptionConfigPath, root
	// only) and their API servers the flags and the mount that read it.
	// Every control-plane node must have the same keys: pass the same
	// Encryption to InitControlPlaneUserData and every
	// JoinControlPlaneUserData. Workers get nothing of it.
	Encryption *EncryptionAtRest
}

// String describes the spec without its secrets: the token's ID only, and
// the names of the encryption keys.
func (s BootstrapSpec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "BootstrapSpec{%s %s, endpoint %s", s.ClusterName, s.KubernetesVersion, s.ControlPlaneEndpoint)
	if id, _, ok := strings.Cut(s.Token, "."); ok {
		fmt.Fprintf(&b, ", token %s.<redacted>", id)
	} else if s.Token != "" {
		b.WriteString(", token <redacted>")
	}
	if s.KubeVIP != nil {
		fmt.Fprintf(&b, ", kube-vip %s", s.KubeVIP.Address)
	}
	if e := s.Encryption; e != nil {
		names := make([]string, len(e.Keys))
		for i, k := range e.Keys {
			names[i] = k.Name
		}
		res := e.Resources
		if len(res) == 0 {
			res = []string{"secrets"}
		}
		fmt.Fprintf(&b, ", encryption of %v with keys %v", res, names)
	}
	b.WriteString("}")
	return b.String()
}

// MarshalJSON writes the spec's fields as encoding/json would, but the
// token as its ID and "[redacted]" and each encryption key without its
// secret (see EncryptionKey.MarshalJSON). json.Unmarshal reads it back
// without the secrets; WithSecrets puts them back.
func (s BootstrapSpec) MarshalJSON() ([]byte, error) {
	type fields BootstrapSpec // the fields, without this method
	f := fields(s)
	f.Token = redactToken(s.Token)
	return json.Marshal(f)
}

// redactToken keeps the ID of a bootstrap token ("abcdef.[redacted]"),
// and nothing of anything else.
func redactToken(token string) string {
	if token == "" {
		return ""
	}
	if id, _, ok := strings.Cut(token, "."); ok && id != "" {
		return id + "." + redacted
	}
	return redacted
}

// BootstrapSecrets are the secrets of a BootstrapSpec, which everything
// else leaves out: the bootstrap token and the encryption keys' secrets.
// It is for the store that keeps a cluster's state, and carries secrets:
// json.Marshal of it writes them in full (zap.Reflect too), so encrypt
// what it becomes at rest, and never journal or log it. Its String, every
// fmt verb and slog show the token's ID and the keys' names only.
type BootstrapSecrets struct {
	// Token is the bootstrap token, "<id>.<secret>".
	Token string `json:"token,omitempty"`
	// EncryptionKeys are the secrets of Encryption.Keys by key name.
	EncryptionKeys map[string][]byte `json:"encryptionKeys,omitempty"`
}

// String names what the secrets are for, without them.
func (b BootstrapSecrets) String() string {
	return fmt.Sprintf("BootstrapSecrets{token %s, keys %v}", redactToken(b.Token), slices.Sorted(maps.Keys(b.EncryptionKeys)))
}

// GoString is String: %#v must not print the secrets either.
func (b BootstrapSecrets) GoString() string { return b.String() }

// Format prints String whatever the verb.
func (b BootstrapSecrets) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, b.String()) }

// LogValue is String, so that slog's JSON handler does not marshal the
// secrets.
func (b BootstrapSecrets) LogValue() slog.Value { return slog.StringValue(b.String()) }

// Secrets returns the spec's secrets: the one way they leave it, for the
// store that keeps a cluster's state (see BootstrapSecrets).
func (s BootstrapSpec) Secrets() BootstrapSecrets {
	b := BootstrapSecrets{Token: s.Token}
	if s.Encryption != nil {
		for _, k := range s.Encryption.Keys {
			if k.Secret != nil {
				if b.EncryptionKeys == nil {
					b.EncryptionKeys = map[string][]byte{}
				}
				b.EncryptionKeys[k.Name] = slices.Clone(k.Secret)
			}
		}
	}
	return b
}

// WithSecrets returns s with the secrets of sec put back, as a spec read
// from its JSON needs them: the token, and the secret of each encryption
// key by its name. Encryption is copied, never changed in place. A token
// of another ID than the spec's, and a secret missing for a token or key
// that has none, are refused, every problem at once, as a
// *kubefoundry.ValidationError that never quotes a secret.
func (s BootstrapSpec) WithSecrets(sec BootstrapSecrets) (BootstrapSpec, error) {
	v := kubefoundry.ValidationError{Object: "bootstrap spec secrets"}
	id := func(t string) string { id, _, _ := strings.Cut(t, "."); return id }
	switch {
	case sec.Token != "" && s.Token != "" && id(s.Token) != id(sec.Token):
		v.Add("token", "", "the secrets' token has ID %q, the spec's %q", id(sec.Token), id(s.Token))
	case sec.Token != "":
		s.Token = sec.Token
	case strings.HasSuffix(s.Token, redacted):
		v.Add("token", "", "redacted, and the secrets hold no token")
	}
	if s.Encryption != nil {
		e := *s.Encryption
		e.Keys = slices.Clone(e.Keys)
		for i, k := range e.Keys {
			if secret, ok := sec.EncryptionKeys[k.Name]; ok {
				e.Keys[i].Secret = slices.Clone(secret)
			} else if k.Secret == nil {
				v.Add(fmt.Sprintf("encryption.keys[%d].secret", i), "", "the secrets hold none for key %q", k.Name)
			}
		}
		s.Encryption = &e
	}
	if err := v.Err(); err != nil {
		return BootstrapSpec{}, err
	}
	return s, nil
}

// GoString is String: %#v must not print the secrets either.
func (s BootstrapSpec) GoString() string { return s.String() }

// Format prints the spec as String whatever the verb: fmt would print
// the fields themselves for verbs such as %d.
func (s BootstrapSpec) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

func (s *BootstrapSpec) defaults() (semver.Version, error) {
	if s.PodSubnet == "" {
		s.PodSubnet = "10.244.0.0/16"
	}
	if s.ServiceSubnet == "" {
		s.ServiceSubnet = "10.96.0.0/12"
	}
	if s.DNSDomain == "" {
		s.DNSDomain = "cluster.local"
	}
	verr := kubefoundry.ValidationError{Object: "bootstrap spec"}
	for _, f := range []struct{ name, v string }{{"clusterName", s.ClusterName}, {"kubernetesVersion", s.KubernetesVersion},
		{"controlPlaneEndpoint", s.ControlPlaneEndpoint}, {"token", s.Token}} {
		if f.v == "" {
			verr.Add(f.name, "", "required")
		}
	}
	var v semver.Version
	if s.KubernetesVersion != "" {
		var err error
		if v, err = semver.ParseTolerant(s.KubernetesVersion); err != nil {
			verr.Add("kubernetesVersion", s.KubernetesVersion, "%v", err)
		}
	}
	if s.Token != "" {
		if _, err := bootstrapv1.NewBootstrapTokenString(s.Token); err != nil {
			// Not the parser's error: it quotes the token, a secret.
			verr.Add("token", "", "not a bootstrap token: want <6 of [a-z0-9]>.<16 of [a-z0-9]>, as NewBootstrapToken makes")
		}
	}
	if s.KubeVIP != nil && s.ControlPlaneEndpoint != "" {
		if _, err := s.kubeVIPPort(); err != nil {
			verr.Merge("", err)
		}
	}
	if err := verr.Err(); err != nil {
		return semver.Version{}, err
	}
	return v, nil
}

// controlPlaneBase is base for a control-plane node, with the encryption
// configuration and kube-vip's files and commands when the spec asks for
// them, and the port the API server binds (0: kubeadm's default).
func (s *BootstrapSpec) controlPlaneBase(v semver.Version, init bool) (cloudinit.BaseUserData, int32, error) {
	b := s.base(true, v)
	enc, err := s.encryptionFiles()
	if err != nil {
		return b, 0, err
	}
	b.AdditionalFiles = append(b.AdditionalFiles, enc...)
	if s.KubeVIP == nil {
		return b, 0, nil
	}
	port, err := s.kubeVIPPort()
	if err != nil {
		return b, 0, err
	}
	// By major and minor only: a 1.29 pre-release needs it too.
	superAdmin := v.Major > 1 || v.Major == 1 && v.Minor >= 29
	files, post, err := s.kubeVIPFiles(port, init, superAdmin)
	if err != nil {
		return b, 0, err
	}
	b.AdditionalFiles = append(b.AdditionalFiles, files...)
	b.PostKubeadmCommands = append(post, b.PostKubeadmCommands...)
	return b, port, nil
}

func args(m map[string]string) []bootstrapv1.Arg {
	out := make([]bootstrapv1.Arg, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, bootstrapv1.Arg{Name: k, Value: ptrTo(m[k])})
	}
	return out
}

func (s *BootstrapSpec) clusterConfiguration(v semver.Version) (string, error) {
	cc := &bootstrapv1.ClusterConfiguration{
		ControlPlaneEndpoint: s.ControlPlaneEndpoint,
		APIServer:            s.apiServer(v),
	}
	ver := s.KubernetesVersion
	return kubeadmtypes.MarshalClusterConfigurationForVersion(cc, v, &upstream.AdditionalData{
		KubernetesVersion: &ver, ClusterName: &s.ClusterName, DNSDomain: &s.DNSDomain,
		ServiceSubnet: &s.ServiceSubnet, PodSubnet: &s.PodSubnet,
	})
}

func (s *BootstrapSpec) nodeRegistration() bootstrapv1.NodeRegistrationOptions {
	return bootstrapv1.NodeRegistrationOptions{Name: NodeNameFromMetadata, KubeletExtraArgs: args(s.KubeletArgs)}
}

func (s *BootstrapSpec) base(controlPlane bool, v semver.Version) cloudinit.BaseUserData {
	return cloudinit.BaseUserData{
		PreKubeadmCommands:  s.PreKubeadmCommands,
		PostKubeadmCommands: s.PostKubeadmCommands,
		ControlPlane:        controlPlane,
		KubernetesVersion:   v,
	}
}

// certificates are the cluster's CAs and service-account key as Cluster
// API writes them to a control-plane node (/etc/kubernetes/pki).
func (p *PKI) certificates() (secret.Certificates, error) {
	set := secret.NewCertificatesForInitialControlPlane(nil)
	pair := func(ca *CA) (*certs.KeyPair, error) {
		key, err := KeyPEM(ca.Key)
		if err != nil {
			return nil, err
		}
		return &certs.KeyPair{Cert: CertPEM(ca.Cert), Key: key}, nil
	}
	for purpose, ca := range map[secret.Purpose]*CA{secret.ClusterCA: p.ClusterCA, secret.EtcdCA: p.EtcdCA, secret.FrontProxyCA: p.FrontProxyCA} {
		kp, err := pair(ca)
		if err != nil {
			return nil, err
		}
		set.GetByPurpose(purpose).KeyPair = kp
	}
	pub, err := x509.MarshalPKIXPublicKey(&p.ServiceKey.PublicKey)
	if err != nil {
		return nil, err
	}
	key, err := KeyPEM(p.ServiceKey)
	if err != nil {
		return nil, err
	}
	set.GetByPurpose(secret.ServiceAccount).KeyPair = &certs.KeyPair{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), Key: key}
	return set, nil
}

// InitControlPlaneUserData is the cloud-init user data of the first
// control-plane node: the cluster's CAs and keys, and `kubeadm init`.
// It holds private keys, and with Encryption the encryption keys: treat it
// as a secret.
func (p *PKI) InitControlPlaneUserData(s BootstrapSpec) ([]byte, error) {
	v, err := s.defaults()
	if err != nil {
		return nil, err
	}
	// The base first: it checks Encryption, which the ClusterConfiguration
	// then relies on.
	base, port, err := s.controlPlaneBase(v, true)
	if err != nil {
		return nil, err
	}
	cc, err := s.clusterConfiguration(v)
	if err != nil {
		return nil, err
	}
	tok, _ := bootstrapv1.NewBootstrapTokenString(s.Token)
	ic, err := kubeadmtypes.MarshalInitConfigurationForVersion(&bootstrapv1.InitConfiguration{
		BootstrapTokens:  []bootstrapv1.BootstrapToken{{Token: *tok, TTLSeconds: ptrTo(int32(24 * 3600)), Groups: []string{"system:bootstrappers:kubeadm:default-node-token"}, Usages: []string{"signing", "authentication"}}},
		NodeRegistration: s.nodeRegistration(),
		LocalAPIEndpoint: bootstrapv1.APIEndpoint{BindPort: port},
	}, v)
	if err != nil {
		return nil, err
	}
	set, err := p.certificates()
	if err != nil {
		return nil, err
	}
	return cloudinit.NewInitControlPlane(&cloudinit.ControlPlaneInput{
		BaseUserData: base, Certificates: set, ClusterConfiguration: cc, InitConfiguration: ic,
	})
}

// JoinControlPlaneUserData is the cloud-init user data of a further
// control-plane node. It holds private keys: treat it as a secret.
//
// kubeadm join takes the ClusterConfiguration, and with it the API
// server's flags and mounts, from the cluster (the kubeadm-config
// ConfigMap that init stored); with Encryption this user data therefore
// adds only the configuration file, which must hold the keys the first
// node has.
func (p *PKI) JoinControlPlaneUserData(s BootstrapSpec) ([]byte, error) {
	v, err := s.defaults()
	if err != nil {
		return nil, err
	}
	base, port, err := s.controlPlaneBase(v, false)
	if err != nil {
		return nil, err
	}
	jc, err := p.joinConfiguration(s, v, &bootstrapv1.JoinControlPlane{LocalAPIEndpoint: bootstrapv1.APIEndpoint{BindPort: port}})
	if err != nil {
		return nil, err
	}
	set, err := p.certificates()
	if err != nil {
		return nil, err
	}
	return cloudinit.NewJoinControlPlane(&cloudinit.ControlPlaneJoinInput{
		BaseUserData: base, Certificates: set, BootstrapToken: s.Token, JoinConfiguration: jc,
	})
}

// WorkerUserData is the cloud-init user data of a worker: `kubeadm join`
// with the bootstrap token, pinned to the cluster CA by its hash. It holds
// no private key, only the (short-lived) token.
func (p *PKI) WorkerUserData(s BootstrapSpec) ([]byte, error) {
	v, err := s.defaults()
	if err != nil {
		return nil, err
	}
	jc, err := p.joinConfiguration(s, v, nil)
	if err != nil {
		return nil, err
	}
	return cloudinit.NewNode(&cloudinit.NodeInput{BaseUserData: s.base(false, v), JoinConfiguration: jc})
}

// joinConfiguration joins a worker, or a control-plane node when cp is
// not nil.
func (p *PKI) joinConfiguration(s BootstrapSpec, v semver.Version, cp *bootstrapv1.JoinControlPlane) (string, error) {
	jc := &bootstrapv1.JoinConfiguration{
		NodeRegistration: s.nodeRegistration(),
		Discovery: bootstrapv1.Discovery{BootstrapToken: bootstrapv1.BootstrapTokenDiscovery{
			Token: s.Token, APIServerEndpoint: s.ControlPlaneEndpoint, CACertHashes: []string{CACertHash(p.ClusterCA.Cert)},
		}},
		ControlPlane: cp,
	}
	return kubeadmtypes.MarshalJoinConfigurationForVersion(jc, v)
}

// CACertHash is kubeadm's discovery pin of a CA: "sha256:" and the hash of
// its public key (SubjectPublicKeyInfo).
func CACertHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NewBootstrapToken returns a random kubeadm bootstrap token.
func NewBootstrapToken() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	pick := func(n int) (string, error) {
		b := make([]byte, n)
		for i := range b {
			k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
			if err != nil {
				return "", err
			}
			b[i] = alphabet[k.Int64()]
		}
		return string(b), nil
	}
	id, err := pick(6)
	if err != nil {
		return "", err
	}
	sec, err := pick(16)
	if err != nil {
		return "", err
	}
	return id + "." + sec, nil
}

// BootstrapTokenSecret is the kube-system Secret that makes token valid for
// joining nodes until ttl from now, in the bootstrap-token format the API
// server's bootstrap authenticator reads.
func BootstrapTokenSecret(token string, ttl time.Duration) (*corev1.Secret, error) {
	t, err := bootstrapv1.NewBootstrapTokenString(token)
	if err != nil {
		return nil, fmt.Errorf("bootstrap token: %w", err)
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + t.ID, Namespace: metav1.NamespaceSystem},
		Type:       corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{
			"token-id":                       t.ID,
			"token-secret":                   t.Secret,
			"expiration":                     time.Now().Add(ttl).UTC().Format(time.RFC3339),
			"usage-bootstrap-authentication": "true",
			"usage-bootstrap-signing":        "true",
			"auth-extra-groups":              "system:bootstrappers:kubeadm:default-node-token",
			"description":                    "kubefoundry node join token",
		},
	}, nil
}
