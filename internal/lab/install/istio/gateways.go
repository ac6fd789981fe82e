package istio

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/sources"
)

const (
	ingressGateway  = "istio-ingressgateway"
	eastwestGateway = "istio-eastwestgateway"
	// exposeServices is Istio's sample that opens the east-west gateway
	// to the mesh's services (the cross-network-gateway Gateway).
	exposeServices = "samples/multicluster/expose-services.yaml"
)

// gatewaysAction installs, per workload cluster, the ingress gateway the
// lab's Gateway resources select and the east-west gateway through which
// the other networks reach this cluster's services, then exposes the
// services on it (AUTO_PASSTHROUGH on 15443 for *.local).
//
// The gateway pods are injected by istiod (sidecar.istio.io/inject: "true",
// image: auto); on a simulated data plane the injector fails open (see
// controlPlanesAction), so the pods are created as they are.
type gatewaysAction struct{}

func (gatewaysAction) Name() string { return "istio-gateways" }
func (gatewaysAction) Description() string {
	return "Istio gateways: ingress and east-west gateways, services exposed across networks"
}

func (gatewaysAction) Execute(c *install.Context) error {
	expose, err := c.Manifests(sources.Istio, exposeServices)
	if err != nil {
		return err
	}
	for _, cl := range c.Workloads {
		net := network(c, cl)
		// A label of its own: a Namespace applied with no fields is
		// recorded with no owner, and the next apply adds one (a change).
		objs := []*unstructured.Unstructured{install.Namespace(IngressNamespace, map[string]string{"app.kubernetes.io/managed-by": "lockstep"})}
		for _, r := range []release{ingressRelease(), eastwestRelease(net, c.Fleet.LoadBalancerAnnotations)} {
			o, err := renderRelease(c, cl, r)
			if err != nil {
				return err
			}
			objs = append(objs, o...)
		}
		sortForApply(objs)
		// The Gateway is an Istio resource (`kubectl apply -n
		// istio-system -f expose-services.yaml` in the guide): after the
		// Deployments, like any custom resource.
		for _, o := range expose {
			o = o.DeepCopy()
			o.SetNamespace(SystemNamespace)
			objs = append(objs, o)
		}
		if err := c.Apply(cl, objs...); err != nil {
			return err
		}
	}
	for _, cl := range c.Workloads {
		if err := c.WaitDeployments(cl, IngressNamespace, ingressGateway); err != nil {
			return err
		}
		if err := c.WaitDeployments(cl, SystemNamespace, eastwestGateway); err != nil {
			return err
		}
		addr, err := waitLoadBalancer(c, cl, SystemNamespace, eastwestGateway, c.Settings.Timeout)
		if err != nil {
			return err
		}
		c.Logf("%s: east-west gateway of %s at %s (15443 tls, 15012 tls-istiod, 15017 tls-webhook)", cl.Name, network(c, cl), addr)
	}
	return nil
}

// waitLoadBalancer waits until a LoadBalancer Service has an address and
// returns it. Istio finds a network's gateway through that address: without
// one, the other networks cannot reach this cluster.
func waitLoadBalancer(c *install.Context, cl *install.Cluster, namespace, name string, timeout time.Duration) (string, error) {
	if c.DryRun {
		return "(dry run)", nil
	}
	var addr string
	var last error
	err := wait.PollUntilContextTimeout(c, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		svc, err := cl.Kube.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil
		}
		addr = lbAddress(svc)
		return addr != "", nil
	})
	if err != nil {
		msg := "no address"
		if last != nil {
			msg = last.Error()
		}
		return "", fmt.Errorf("%s: LoadBalancer Service %s/%s has no external address after %s (%s): the cluster needs a LoadBalancer implementation (cloud-provider-kind on kind)",
			cl.Name, namespace, name, timeout, msg)
	}
	return addr, nil
}

func lbAddress(svc *corev1.Service) string {
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		switch {
		case in.IP != "":
			out = append(out, in.IP)
		case in.Hostname != "":
			out = append(out, in.Hostname)
		}
	}
	return strings.Join(out, ",")
}
