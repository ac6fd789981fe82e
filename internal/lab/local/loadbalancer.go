package local

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// LoadBalancerPrefix is the first three octets of the addresses a bare
// fleet gives LoadBalancer Services: 198.18.<cluster index>.<n>, in the
// benchmarking range (RFC 2544) that is never routed, so nobody mistakes
// them for reachable addresses. kwok runs no data plane behind them.
const LoadBalancerPrefix = "198.18."

// startLoadBalancers runs, inside the supervisor, what cloud-provider-kind
// or MetalLB do on kind: every Service of type LoadBalancer gets an
// ingress address in its status, so installers that discover addresses (the
// Thanos sidecars' for Thanos Query, Istio's east-west gateways) work on the
// bare fleet as on a cloud.
func (f *fleet) startLoadBalancers(ctx context.Context) error {
	for _, c := range f.clusters {
		cs, err := f.clientset(c)
		if err != nil {
			return err
		}
		go allocateLoadBalancers(ctx, cs, LoadBalancerPrefix+strconv.Itoa(f.index(c))+".", func(format string, args ...any) {
			f.s.Progressf("      "+c+": "+format, args...)
		})
	}
	return nil
}

// allocateLoadBalancers polls the cluster's Services every second until ctx
// ends. Addresses are kept once given; a new one is the lowest unused host
// number under prefix.
func allocateLoadBalancers(ctx context.Context, cs kubernetes.Interface, prefix string, logf func(string, ...any)) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := allocateOnce(ctx, cs, prefix, logf); err != nil && ctx.Err() == nil {
			logf("load balancer allocator: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func allocateOnce(ctx context.Context, cs kubernetes.Interface, prefix string, logf func(string, ...any)) error {
	svcs, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	used := map[string]bool{}
	var pending []corev1.Service
	for _, s := range svcs.Items {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			used[s.Status.LoadBalancer.Ingress[0].IP] = true
			continue
		}
		pending = append(pending, s)
	}
	next := 1
	for i := range pending {
		s := &pending[i]
		for used[prefix+strconv.Itoa(next)] {
			next++
		}
		if next > 254 {
			return fmt.Errorf("no address left under %s0/24", prefix)
		}
		ip := prefix + strconv.Itoa(next)
		used[ip] = true
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		if _, err := cs.CoreV1().Services(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("service %s/%s: %w", s.Namespace, s.Name, err)
		}
		logf("service %s/%s gets load balancer address %s", s.Namespace, s.Name, ip)
	}
	return nil
}

// waitNodes waits for the kwok nodes of every cluster that has some.
func (f *fleet) waitNodes(ctx context.Context) error {
	for _, c := range f.nodeClusters() {
		if err := f.waitNodesReady(ctx, c); err != nil {
			return err
		}
	}
	return nil
}
