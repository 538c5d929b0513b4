package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubefoundry/kubefoundry/kube"
	"github.com/kubefoundry/kubefoundry/lifecycle"
	"github.com/kubefoundry/kubefoundry/lifecycle/simulator"
)

// web is the workload the upgrade must keep available: 4 pods, of which
// its budget keeps 3.
const web = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 3
  selector: {matchLabels: {app: web}}
`

// upgrade runs web on the cluster, gives the platform a newer stemcell
// (cfg is the foundation as it was; the Manager returned has the newer
// one), upgrades the cluster to it and reports how few of web's pods
// were ready at worst.
func upgrade(ctx context.Context, name string, sim *simulator.Foundation, cfg lifecycle.Config, kubeconfig, kubectl string,
	p *progress, stdout, stderr io.Writer) (*lifecycle.Manager, error) {
	fmt.Fprintf(stdout, "\n$ kubectl apply -f web.yaml   # a Deployment of 4 pods and a PodDisruptionBudget keeping 3\n")
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "apply", "-f", "-")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(web), stdout, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl apply: %w", err)
	}
	kc, err := os.ReadFile(kubeconfig)
	if err != nil {
		return nil, err
	}
	rc, err := kube.RESTConfig(kc)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	ready := func() (int32, error) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		d, err := cs.AppsV1().Deployments("default").Get(rctx, "web", metav1.GetOptions{})
		if err != nil {
			return 0, err
		}
		return d.Status.ReadyReplicas, nil
	}
	deadline := time.Now().Add(2 * time.Minute)
	for n, _ := ready(); n < 4; n, _ = ready() {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("web: %d of 4 pods ready after 2 minutes", n)
		}
		time.Sleep(time.Second)
	}

	const version = "1.1"
	if cfg.Stemcell, err = sim.Stemcell(version); err != nil {
		return nil, err
	}
	cfg.StemcellVersion = version
	m, err := lifecycle.New(cfg)
	if err != nil {
		return nil, err
	}
	c, err := m.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "\nThe platform has stemcell %s/%s; cluster %s runs %s (upgrade available: %t)\n",
		cfg.StemcellOS, version, name, c.Stemcell, c.UpgradeAvailable)
	fmt.Fprintf(stdout, "Upgrading cluster %s: one VM at a time, each node drained first, web's budget held\n", name)

	// How few of web's pods were ready at worst, read every half second
	// (reads the API does not answer, while a control-plane VM is
	// replaced, count for nothing).
	var mu sync.Mutex
	least := int32(4)
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if n, err := ready(); err == nil {
				mu.Lock()
				least = min(least, n)
				mu.Unlock()
			}
		}
	}()
	start := time.Now()
	p.reset(start)
	c, err = m.Upgrade(ctx, name)
	close(stop)
	<-watched
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "Cluster %s upgraded to %s in %s; web kept at least %d of 4 pods ready (its budget: 3)\n\n$ kubectl get nodes\n",
		name, c.Stemcell, time.Since(start).Round(time.Second), least)
	cmd = exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "get", "nodes")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl get nodes: %w", err)
	}
	if least < 3 {
		return nil, fmt.Errorf("web's budget did not hold: %d of 4 pods ready at worst", least)
	}
	return m, nil
}
