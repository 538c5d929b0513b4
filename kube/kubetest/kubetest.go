// Package kubetest starts a real Kubernetes control plane for tests: etcd,
// kube-apiserver and kube-controller-manager, on free loopback ports in a
// temporary directory, from binaries built by `make tools` (no Docker, no
// downloads). Users of kubefoundry can test their own code with it too.
//
// The controller manager runs only the controllers that API-level tests
// need and that work without kubelets: disruption (PodDisruptionBudget
// status, without which every eviction is refused), namespace,
// garbagecollector, serviceaccount, serviceaccount-token and
// clusterrole-aggregation (which fills the built-in admin, edit and view
// ClusterRoles; without it they grant nothing), deployment and replicaset.
// There is no kubelet, and no scheduler unless WithScheduler asks for one:
// pods are never run, unless StartNode adds simulated nodes (kwok.go).
//
// Options change the API server of one environment: WithClientCA,
// WithAPIServerArgs, WithEncryptionConfig (encryption at rest), and
// WithEtcd, which starts a further API server on another environment's
// etcd; WithControllerManagerArgs and WithScheduler change what runs
// beside it.
//
// Share one environment among a package's tests through TestMain:
//
//	var env *kubetest.Environment
//	var envErr error
//
//	func TestMain(m *testing.M) {
//		env, envErr = kubetest.Start(context.Background())
//		code := m.Run()
//		if env != nil {
//			env.Stop()
//		}
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		env := kubetest.Need(t, env, envErr) // skips, or fails under KUBEFOUNDRY_REQUIRE_KUBE=1
//		cs := kubernetes.NewForConfigOrDie(env.Config)
//		...
//	}
//
// An Environment is safe for concurrent use; Stop must be called once.
package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ErrNoBinaries is returned by Start when the control plane's binaries are
// not built (etcd, kube-apiserver, kube-controller-manager, and
// kube-scheduler for WithScheduler), and by StartNode without kwok.
// `make tools` builds them into the repository's bin directory.
var ErrNoBinaries = errors.New("kubetest: Kubernetes binaries not built; run `make tools`")

// RequireEnv names the environment variable that turns a missing control
// plane from a skipped test into a failed one. `make test` sets it to 1.
const RequireEnv = "KUBEFOUNDRY_REQUIRE_KUBE"

// BinDirEnv names the environment variable that points at the binaries;
// without it Start looks for bin/ in the working directory and its parents.
const BinDirEnv = "KUBEFOUNDRY_KUBE_BIN"

// Environment is a running control plane.
type Environment struct {
	// Config is an admin client configuration (system:masters).
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file for kubectl.
	Kubeconfig string
	// ServerCA is the PEM certificate that signs the API server's.
	ServerCA []byte
	// EtcdURL is etcd's client URL (plain http on loopback).
	EtcdURL string
	// ClientCAFile is the API server's --client-ca-file, when WithClientCA
	// was given; SetClientCA replaces its content.
	ClientCAFile string
	// EncryptionConfigFile is the API server's
	// --encryption-provider-config, when WithEncryptionConfig was given.
	EncryptionConfigFile string
	// Dir holds the certificates, data and logs; Stop removes it.
	Dir string
	// BinDir holds the binaries, kubectl included when it was built.
	BinDir string

	mu    sync.Mutex // guards procs
	procs []*process

	kwokMu sync.Mutex // guards kwokRBAC
	// kwokRBAC is set once StartNode has granted nodes what kwok needs.
	kwokRBAC bool
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// stop sends SIGTERM and waits for the process to exit, for 10 s before it
// kills it; it returns how the process ended (nil: exit status 0).
func (p *process) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Start starts etcd, kube-apiserver and kube-controller-manager (and
// kube-scheduler, WithScheduler) and waits until the API server answers
// /readyz. The API server runs with the flags kubeadm gives the control
// planes this SDK bootstraps (privileged pods allowed, the Node authorizer
// and NodeRestriction), so that real add-on manifests apply as on a
// cluster; only the ServiceAccount admission plugin is off. Ports are picked free on loopback;
// if another process takes one first, Start tries again with new ones.
func Start(ctx context.Context, opts ...Option) (*Environment, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	if o.scheduler {
		if fi, err := os.Stat(filepath.Join(bin, "kube-scheduler")); err != nil || fi.IsDir() {
			return nil, fmt.Errorf("%w (no kube-scheduler in %s)", ErrNoBinaries, bin)
		}
	}
	for attempt := 1; ; attempt++ {
		env, err := start(ctx, bin, o)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return env, err
		}
	}
}

// An Option adjusts the control plane.
type Option func(*options)

type options struct {
	clientCA      []byte
	apiServerArgs []string
	kcmArgs       []string
	scheduler     bool
	encryption    []byte
	etcdURL       string
}

// WithClientCA makes the API server accept client certificates signed by
// the CAs in pemCerts (its --client-ca-file), so that kubeconfigs made with
// a cluster's own PKI can be tested against it.
func WithClientCA(pemCerts []byte) Option {
	return func(o *options) { o.clientCA = pemCerts }
}

// WithAPIServerArgs adds flags ("--name=value") to kube-apiserver's,
// after the environment's own, so that they win where they overlap.
func WithAPIServerArgs(args ...string) Option {
	return func(o *options) { o.apiServerArgs = append(o.apiServerArgs, args...) }
}

// WithControllerManagerArgs adds flags to kube-controller-manager's, after
// the environment's own. Most flags then win where they overlap, but a
// further --controllers adds to the environment's list rather than
// replacing it (a string-slice flag given twice accumulates): for example
// --controllers=nodelifecycle, with --node-monitor-grace-period, for tests
// of nodes going NotReady.
func WithControllerManagerArgs(args ...string) Option {
	return func(o *options) { o.kcmArgs = append(o.kcmArgs, args...) }
}

// WithScheduler starts kube-scheduler too (`make tools` builds it), so that
// pods are bound to nodes; without it they stay Pending.
func WithScheduler() Option {
	return func(o *options) { o.scheduler = true }
}

// WithEncryptionConfig writes config, an EncryptionConfiguration, into the
// environment's directory and makes the API server encrypt at rest with
// it (its --encryption-provider-config); EncryptionConfigFile names the
// file.
func WithEncryptionConfig(config []byte) Option {
	return func(o *options) { o.encryption = config }
}

// WithEtcd starts no etcd but uses the one at url, such as another
// Environment's EtcdURL: two API servers on one store, as in a cluster of
// several control-plane nodes (each environment runs its own controller
// manager, without leader election). Stop leaves that etcd running; it
// must outlive the environment.
func WithEtcd(url string) Option {
	return func(o *options) { o.etcdURL = url }
}

func start(ctx context.Context, bin string, o options) (_ *Environment, err error) {
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, err
	}
	env := &Environment{Dir: dir, BinDir: bin}
	defer func() {
		if err != nil {
			env.Stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]

	etcdURL := o.etcdURL
	if etcdURL == "" {
		etcdURL = "http://127.0.0.1:" + strconv.Itoa(etcdClient)
		peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
		etcd, err := env.start("etcd",
			"--name=kubetest",
			"--data-dir="+filepath.Join(dir, "etcd"),
			"--listen-client-urls="+etcdURL,
			"--advertise-client-urls="+etcdURL,
			"--listen-peer-urls="+peerURL,
			"--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=kubetest="+peerURL,
			"--unsafe-no-fsync",
			"--log-level=warn",
		)
		if err != nil {
			return nil, err
		}
		if err := waitHTTP(ctx, http.DefaultClient, etcdURL+"/health", nil, etcd); err != nil {
			return nil, err
		}
	}
	env.EtcdURL = etcdURL

	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	saKey, saPub, err := writeServiceAccountKeys(dir)
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	var extra []string
	if len(o.clientCA) > 0 {
		caFile := filepath.Join(dir, "client-ca.crt")
		if err := os.WriteFile(caFile, o.clientCA, 0o644); err != nil {
			return nil, err
		}
		extra = append(extra, "--client-ca-file="+caFile)
		env.ClientCAFile = caFile
	}
	if len(o.encryption) > 0 {
		file := filepath.Join(dir, "encryption-config.yaml")
		if err := os.WriteFile(file, o.encryption, 0o600); err != nil {
			return nil, err
		}
		extra = append(extra, "--encryption-provider-config="+file)
		env.EncryptionConfigFile = file
	}
	apiserver, err := env.start("kube-apiserver", slices.Concat(extra, []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + certDir,
		"--token-auth-file=" + tokens,
		// As kubeadm: the Node authorizer holds a node's credentials
		// (system:node:<name>) to its own Node, Lease and pods.
		"--authorization-mode=Node,RBAC",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none",
		// As kubeadm runs it on the nodes this SDK bootstraps, so that the
		// manifests of real CNI and CSI add-ons (privileged node plugins)
		// are accepted here as there.
		"--allow-privileged=true",
		"--enable-admission-plugins=NodeRestriction",
		// The one difference: no kubelet runs here, and with the
		// ServiceAccount plugin every pod a test makes would first wait
		// for its namespace's default account.
		"--disable-admission-plugins=ServiceAccount",
		"--enable-bootstrap-token-auth",
	}, o.apiServerArgs)...)
	if err != nil {
		return nil, err
	}
	host := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the certificate is not written yet; the readiness probe only
	if err := waitHTTP(ctx, insecure, host+"/readyz", map[string]string{"Authorization": "Bearer " + token}, apiserver); err != nil {
		return nil, err
	}
	insecure.CloseIdleConnections()
	ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		return nil, fmt.Errorf("kubetest: the API server's self-signed certificate: %w", err)
	}
	env.ServerCA = ca
	env.Config = &rest.Config{Host: host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}

	env.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := writeKubeconfig(env.Kubeconfig, host, ca, token); err != nil {
		return nil, err
	}
	if _, err := env.start("kube-controller-manager", slices.Concat([]string{
		"--kubeconfig=" + env.Kubeconfig,
		"--controllers=disruption,namespace,garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation,deployment,replicaset",
		"--service-account-private-key-file=" + saKey,
		"--root-ca-file=" + filepath.Join(certDir, "apiserver.crt"),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
	}, o.kcmArgs)...); err != nil {
		return nil, err
	}
	if o.scheduler {
		if _, err := env.start("kube-scheduler",
			"--kubeconfig="+env.Kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=0",
		); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// Need returns env for a test that needs the control plane. When Start
// failed it skips the test, or fails it if KUBEFOUNDRY_REQUIRE_KUBE=1 or
// the failure was anything but missing binaries.
func Need(t testing.TB, env *Environment, startErr error) *Environment {
	t.Helper()
	switch {
	case startErr == nil && env != nil:
		return env
	case errors.Is(startErr, ErrNoBinaries) && os.Getenv(RequireEnv) != "1":
		t.Skipf("no Kubernetes control plane: %v (set %s=1 to make this a failure)", startErr, RequireEnv)
	case startErr == nil:
		t.Fatal("kubetest: no environment")
	default:
		t.Fatalf("kubetest: %v", startErr)
	}
	return nil
}

// Kubectl runs the kubectl built with the control plane, with the admin
// kubeconfig unless args give a --kubeconfig of their own.
func (e *Environment) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	kubectl := filepath.Join(e.BinDir, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		return nil, fmt.Errorf("kubetest: kubectl: %w", ErrNoBinaries)
	}
	// The admin kubeconfig unless args name another.
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--kubeconfig") }) {
		args = append([]string{"--kubeconfig=" + e.Kubeconfig}, args...)
	}
	cmd := exec.CommandContext(ctx, kubectl, args...)
	return cmd.CombinedOutput()
}

// SetClientCA replaces the CAs the API server accepts client certificates
// from. The API server notices the file change by itself, within moments.
func (e *Environment) SetClientCA(pemCerts []byte) error {
	if e.ClientCAFile == "" {
		return errors.New("kubetest: started without WithClientCA")
	}
	tmp := e.ClientCAFile + ".new"
	if err := os.WriteFile(tmp, pemCerts, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, e.ClientCAFile)
}

// Stop ends the processes, newest first (the nodes StartNode started
// before the control plane), and removes Dir.
func (e *Environment) Stop() {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		_ = procs[i].stop()
	}
	if e.Dir != "" {
		_ = os.RemoveAll(e.Dir)
	}
}

func (e *Environment) start(name string, args ...string) (*process, error) {
	return e.startProcess(name, name, filepath.Join(e.Dir, name+".log"), nil, args...)
}

// startProcess starts the binary bin of BinDir with args and env (added to
// this process's environment), its output appended to the file log, and
// records it for Stop.
func (e *Environment) startProcess(name, bin, log string, env []string, args ...string) (*process, error) {
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(e.BinDir, bin), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("kubetest: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// waitHTTP polls url until it answers 200, the process exits, or 60 s pass.
func waitHTTP(ctx context.Context, c *http.Client, url string, header map[string]string, p *process) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		select {
		case <-p.done:
			return false, fmt.Errorf("%s exited", p.name)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := c.Do(req)
		if err != nil {
			return false, nil
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("kubetest: %s not ready: %w; last log lines:\n%s", p.name, err, tail(p.log, 20))
	}
	return nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func findBinDir() (string, error) {
	want := []string{"etcd", "kube-apiserver", "kube-controller-manager"}
	has := func(dir string) bool {
		for _, b := range want {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(BinDirEnv); d != "" {
		if has(d) {
			return d, nil
		}
		return "", fmt.Errorf("%w (in %s=%s)", ErrNoBinaries, BinDirEnv, d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if has(filepath.Join(d, "bin")) {
			return filepath.Join(d, "bin"), nil
		}
		if filepath.Dir(d) == d {
			return "", ErrNoBinaries
		}
	}
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", b), nil
}

func writeServiceAccountKeys(dir string) (keyPath, pubPath string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	keyPath, pubPath = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return "", "", err
	}
	return keyPath, pubPath, nil
}

func writeKubeconfig(path, host string, ca []byte, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: ca}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "admin"}
	cfg.CurrentContext = "kubetest"
	return clientcmd.WriteToFile(*cfg, path)
}
