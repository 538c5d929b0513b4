// Package vcflags gives the example commands the vCenter flags govc users
// expect, with the same environment variables as defaults: GOVC_URL,
// GOVC_USERNAME, GOVC_PASSWORD, GOVC_DATACENTER, GOVC_INSECURE,
// GOVC_TLS_CA_CERTS (CA files, separated by ':') and GOVC_TLS_KNOWN_HOSTS
// (a file of "host thumbprint" lines, as govc writes it).
package vcflags

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/vim25/soap"

	"github.com/kubefoundry/kubefoundry/vsphere"
)

// VCenter holds the parsed flags.
type VCenter struct {
	URL, Username, Password, Datacenter string
	Insecure                            bool
	CACerts                             string // files, separated by os.PathListSeparator
	Thumbprint                          string
	KnownHosts                          string // file
	ConnectTimeout, TLSTimeout, Call    time.Duration
}

// Register adds the flags to fs.
func Register(fs *flag.FlagSet) *VCenter {
	v := &VCenter{}
	fs.StringVar(&v.URL, "url", os.Getenv("GOVC_URL"), "vCenter URL; empty starts an in-process simulator (env GOVC_URL)")
	fs.StringVar(&v.Username, "username", os.Getenv("GOVC_USERNAME"), "user name (env GOVC_USERNAME)")
	fs.StringVar(&v.Password, "password", os.Getenv("GOVC_PASSWORD"), "password (env GOVC_PASSWORD)")
	fs.StringVar(&v.Datacenter, "datacenter", os.Getenv("GOVC_DATACENTER"), "datacenter (env GOVC_DATACENTER)")
	insecure, _ := strconv.ParseBool(os.Getenv("GOVC_INSECURE"))
	fs.BoolVar(&v.Insecure, "insecure", insecure, "skip TLS verification (env GOVC_INSECURE)")
	fs.StringVar(&v.CACerts, "ca-certs", os.Getenv("GOVC_TLS_CA_CERTS"), "PEM files of CAs to trust, separated by ':' (env GOVC_TLS_CA_CERTS)")
	fs.StringVar(&v.Thumbprint, "thumbprint", "", "SHA-256 or SHA-1 thumbprint of vCenter's certificate (default: from -known-hosts)")
	fs.StringVar(&v.KnownHosts, "known-hosts", os.Getenv("GOVC_TLS_KNOWN_HOSTS"), "file of 'host thumbprint' lines (env GOVC_TLS_KNOWN_HOSTS)")
	fs.DurationVar(&v.ConnectTimeout, "connect-timeout", 0, "bound on a TCP connect (default 10s)")
	fs.DurationVar(&v.TLSTimeout, "tls-timeout", 0, "bound on a TLS handshake (default 10s)")
	fs.DurationVar(&v.Call, "call-timeout", 0, "bound on one SOAP call (default 1m)")
	return v
}

// Config turns the flags into a vsphere.Config: CA files are read, and the
// thumbprint is looked up in the known-hosts file by the URL's host when
// -thumbprint is not given.
func (v *VCenter) Config() (vsphere.Config, error) {
	cfg := vsphere.Config{URL: v.URL, Username: v.Username, Password: v.Password, Datacenter: v.Datacenter,
		Insecure: v.Insecure, Thumbprint: v.Thumbprint,
		ConnectTimeout: v.ConnectTimeout, TLSHandshakeTimeout: v.TLSTimeout, CallTimeout: v.Call}
	var pem []string
	for _, f := range filepath.SplitList(v.CACerts) {
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, fmt.Errorf("-ca-certs: %w", err)
		}
		pem = append(pem, string(b))
	}
	cfg.CACert = strings.Join(pem, "\n")
	if cfg.Thumbprint == "" && v.KnownHosts != "" {
		u, err := soap.ParseURL(v.URL)
		if err != nil || u == nil {
			return cfg, fmt.Errorf("-url %q cannot be parsed", redact(v.URL))
		}
		tp, err := lookup(v.KnownHosts, u)
		if err != nil {
			return cfg, err
		}
		cfg.Thumbprint = tp
	}
	return cfg, nil
}

// lookup finds u's host in a known-hosts file; a host without an entry is
// no error (verification then uses the CAs).
func lookup(file string, u *url.URL) (string, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("-known-hosts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && (fields[0] == u.Host || fields[0] == u.Hostname()) {
			return fields[1], nil
		}
	}
	return "", sc.Err()
}

func redact(raw string) string {
	if i, j := strings.Index(raw, "//"), strings.LastIndex(raw, "@"); i >= 0 && j > i {
		return raw[:i+2] + "--- REDACTED ---" + raw[j:]
	}
	return raw
}
