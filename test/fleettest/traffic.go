package fleettest

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"lockstep.dev/lockstep/internal/lab/local"
)

// Load sends GET /hello to the ingress gateways of the given clusters, one
// request every 20 ms on each, until ctx ends; wait on the WaitGroup.
func Load(ctx context.Context, t testing.TB, clusters ...string) *sync.WaitGroup {
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, c := range clusters {
		url := F.State.URLs[local.IngressURLKey(c)]
		if url == "" {
			t.Fatalf("no ingress URL for %s", c)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if resp, err := hc.Get(url + "/hello"); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	return &wg
}

// InjectFault makes every pod of revision in cluster fail all requests,
// through meshsim's fault annotation, until ctx ends. Annotating pods
// rather than the template keeps the pod-template hash, hence the
// revision, identical in every cluster.
func InjectFault(ctx context.Context, t testing.TB, cluster, ns, revision string) {
	cs := Clientset(t, cluster)
	patch := []byte(`{"metadata":{"annotations":{"meshsim.lockstep.dev/error-rate":"1"}}}`)
	go func() {
		for ctx.Err() == nil {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "rollouts-pod-template-hash=" + revision})
			if err == nil {
				for _, p := range pods.Items {
					if p.Annotations["meshsim.lockstep.dev/error-rate"] != "1" {
						_, _ = cs.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
}
