package kube_test

import (
	"fmt"
	"log"
	"net"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubefoundry/kubefoundry/kube"
)

// A cluster's PKI, the API server's serving certificate and an admin
// kubeconfig, as kubectl reads it.
func ExampleNewPKI() {
	pki, err := kube.NewPKI("c1")
	if err != nil {
		log.Fatal(err)
	}
	serving, err := pki.ClusterCA.IssueServing(kube.APIServerSANs(net.ParseIP("10.96.0.1"), "", []net.IP{net.ParseIP("10.0.0.10")}, []string{"c1.example.com"}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("API server names:", len(serving.Cert.DNSNames), "first", serving.Cert.DNSNames[0], "last", serving.Cert.DNSNames[len(serving.Cert.DNSNames)-1])
	admin, err := pki.ClusterCA.IssueClient("admin", []string{"system:masters"}, kube.CertValidity)
	if err != nil {
		log.Fatal(err)
	}
	raw, err := kube.Kubeconfig("c1", "https://10.0.0.10:8443", kube.CertPEM(pki.ClusterCA.Cert), "admin", admin)
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		log.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	fmt.Println("context:", cfg.CurrentContext, "cluster:", ctx.Cluster, "user:", ctx.AuthInfo)
	fmt.Println("server:", cfg.Clusters[ctx.Cluster].Server)
	fmt.Println("admin groups:", admin.Cert.Subject.Organization)
	// Output:
	// API server names: 6 first kubernetes last c1.example.com
	// context: admin@c1 cluster: c1 user: admin
	// server: https://10.0.0.10:8443
	// admin groups: [system:masters]
}

// Add-on manifests, several YAML documents in one file, become objects in
// order, each with its kind and name.
func ExampleParseManifests() {
	objs, err := kube.ParseManifests([]byte(`apiVersion: v1
kind: Namespace
metadata:
  name: monitoring
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: monitoring
data:
  retention: 15d
`))
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range objs {
		fmt.Println(o.GetKind(), o.GetNamespace(), o.GetName())
	}
	// Output:
	// Namespace  monitoring
	// ConfigMap monitoring settings
}
