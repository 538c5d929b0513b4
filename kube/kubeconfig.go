package kube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig renders a kubeconfig for user on cluster, authenticating with
// a client certificate, in the format kubectl reads.
func Kubeconfig(cluster, server string, serverCA []byte, user string, kp *KeyPair) ([]byte, error) {
	key, err := KeyPEM(kp.Key)
	if err != nil {
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: serverCA}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: CertPEM(kp.Cert), ClientKeyData: key}
	ctxName := user + "@" + cluster
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: user}
	cfg.CurrentContext = ctxName
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: %w", user, err)
	}
	return out, nil
}

// RESTConfig turns kubeconfig bytes into a client configuration.
func RESTConfig(kubeconfig []byte) (*rest.Config, error) {
	return clientcmd.RESTConfigFromKubeConfig(kubeconfig)
}
