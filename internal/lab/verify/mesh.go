package verify

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"lockstep.dev/lockstep/internal/load"
)

// PodClusters maps the names of the pods of a namespace in every cluster to
// the cluster that runs them.
func PodClusters(ctx context.Context, clusters map[string]kubernetes.Interface, namespace string) (map[string]string, error) {
	out := map[string]string{}
	for name, kc := range clusters {
		pods, err := kc.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: list pods in %s: %w", name, namespace, err)
		}
		for _, p := range pods.Items {
			out[p.Name] = name
		}
	}
	return out, nil
}

// IngressReachability sends a short burst of /hello requests through one
// cluster's ingress gateway and checks that pods of every wanted cluster
// answered: what the guide's verification does with curl, through the
// simulated data plane (meshsim) that routes across clusters like Istio's
// east-west gateways.
func IngressReachability(ctx context.Context, from, ingressURL string, podCluster map[string]string, want []string) Result {
	r := Result{Name: "Istio reachability from " + from,
		Fix: "check that helloworld is synced in every workload (lockstep status) and the meshsim logs (lockstep lab logs " + from + "/meshsim)"}
	stats, err := load.Run(ctx, []load.Target{{Cluster: from, URL: ingressURL}},
		load.Options{Rate: 25, Duration: 2 * time.Second, Timeout: 2 * time.Second})
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	cs := stats.Snapshot()[from]
	seen := map[string]int{}
	for pod, n := range cs.ByPod {
		c := podCluster[pod]
		if c == "" {
			c = "unknown pod " + pod
		}
		seen[c] += n
	}
	var missing, got []string
	for _, w := range want {
		if seen[w] == 0 {
			missing = append(missing, w)
		}
	}
	for c, n := range seen {
		got = append(got, fmt.Sprintf("%s %d", c, n))
	}
	sort.Strings(got)
	summary := fmt.Sprintf("%d requests, %d errors, answered by %s", cs.Requests, cs.Errors, strings.Join(got, ", "))
	if len(got) == 0 {
		summary = fmt.Sprintf("%d requests, %d errors, no pod answered", cs.Requests, cs.Errors)
	}
	if len(missing) > 0 {
		r.Detail = "no answer from " + strings.Join(missing, ", ") + " (" + summary + ")"
		return r
	}
	r.OK, r.Detail = true, summary
	return r
}
