// Package nsxtnet connects Kubernetes objects to NSX-T through the nsxt
// package: a kube.NetworkProvider that gives each namespace its NSX
// network (for kube.NamespaceNetworkController, as NCP does in TKGI), and
// the conversion of networking/v1 NetworkPolicies into nsxt.NetworkPolicy
// for nsxt's DFW translation. It is the adapter between the two layers, so
// that neither kube nor nsxt imports the other.
//
//	p := &nsxtnet.Provider{Client: nsx, Topology: topo}
//	err := kubeClient.NewNamespaceNetworkController(p).Run(ctx, 2)
//
//	np, err := nsxtnet.NetworkPolicy("c1", policy)
//	_, _, err = nsx.ApplyNetworkPolicy(ctx, np)
//
// A Provider is safe for concurrent use.
package nsxtnet

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubefoundry/kubefoundry/nsxt"
)

// Provider implements kube.NetworkProvider with nsxt: EnsureNamespace and
// TeardownNamespace on the cluster of Topology. Build the cluster's
// topology with Topology.NamespacesManagedElsewhere set, so that
// BuildTopology leaves the namespaces to the controller. A namespace
// deleted and made again within NSX's purge cycle (5 minutes) waits for
// the purge in EnsureNamespace, holding one of the controller's workers;
// a Client made with nsxt.WithPurgeWait(time.Second, 0) returns
// nsxt.ErrPendingDelete at once instead, and the controller tries the
// namespace again with its backoff.
type Provider struct {
	Client   *nsxt.Client
	Topology nsxt.Topology
}

// EnsureNamespaceNetwork gives namespace its segment and subnet and
// returns the subnet, which the controller records on the namespace.
func (p *Provider) EnsureNamespaceNetwork(ctx context.Context, namespace string) (string, error) {
	n, err := p.Client.EnsureNamespace(ctx, p.Topology, namespace)
	if err != nil {
		return "", err
	}
	if !n.Subnet.IsValid() {
		return "", fmt.Errorf("nsxtnet: namespace %s has no subnet from NSX yet", namespace)
	}
	return n.Subnet.String(), nil
}

// DeleteNamespaceNetwork removes the namespace's network, found by tag.
func (p *Provider) DeleteNamespaceNetwork(ctx context.Context, namespace string) error {
	_, err := p.Client.TeardownNamespace(ctx, p.Topology.ClusterID, namespace)
	return err
}

// NetworkPolicy converts a Kubernetes NetworkPolicy of cluster clusterID.
// Named ports are carried over for nsxt to refuse with a field error;
// nothing is dropped silently.
func NetworkPolicy(clusterID string, np *networkingv1.NetworkPolicy) (nsxt.NetworkPolicy, error) {
	out := nsxt.NetworkPolicy{ClusterID: clusterID, Namespace: np.Namespace, Name: np.Name,
		PodSelector: selector(&np.Spec.PodSelector)}
	for _, t := range np.Spec.PolicyTypes {
		out.PolicyTypes = append(out.PolicyTypes, string(t))
	}
	for i, r := range np.Spec.Ingress {
		rule, err := policyRule(fmt.Sprintf("Ingress[%d]", i), r.From, r.Ports)
		if err != nil {
			return out, err
		}
		out.Ingress = append(out.Ingress, rule)
	}
	for i, r := range np.Spec.Egress {
		rule, err := policyRule(fmt.Sprintf("Egress[%d]", i), r.To, r.Ports)
		if err != nil {
			return out, err
		}
		out.Egress = append(out.Egress, rule)
	}
	if np.Namespace == "" {
		return out, &nsxt.FieldError{Field: "NetworkPolicy.Namespace", Value: "", Reason: "NetworkPolicy " + np.Name + " has no namespace"}
	}
	return out, nil
}

func policyRule(field string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) (nsxt.PolicyRule, error) {
	var r nsxt.PolicyRule
	for _, p := range peers {
		var peer nsxt.Peer
		if p.PodSelector != nil {
			s := selector(p.PodSelector)
			peer.PodSelector = &s
		}
		if p.NamespaceSelector != nil {
			s := selector(p.NamespaceSelector)
			peer.NamespaceSelector = &s
		}
		if p.IPBlock != nil {
			peer.IPBlock = &nsxt.IPBlock{CIDR: p.IPBlock.CIDR, Except: p.IPBlock.Except}
		}
		r.Peers = append(r.Peers, peer)
	}
	for i, p := range ports {
		var pp nsxt.PolicyPort
		if p.Protocol != nil {
			pp.Protocol = string(*p.Protocol)
		}
		if p.Port != nil {
			if p.Port.Type == intstr.String {
				pp.Named = p.Port.StrVal
			} else {
				pp.Port = int(p.Port.IntVal)
			}
		}
		if p.EndPort != nil {
			if p.Port == nil {
				return r, &nsxt.FieldError{Field: fmt.Sprintf("NetworkPolicy.%s.Ports[%d].EndPort", field, i),
					Value: fmt.Sprint(*p.EndPort), Reason: "endPort needs a port"}
			}
			pp.EndPort = int(*p.EndPort)
		}
		r.Ports = append(r.Ports, pp)
	}
	return r, nil
}

func selector(s *metav1.LabelSelector) nsxt.LabelSelector {
	out := nsxt.LabelSelector{MatchLabels: s.MatchLabels}
	for _, e := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, nsxt.SelectorRequirement{
			Key: e.Key, Operator: string(e.Operator), Values: e.Values})
	}
	return out
}
