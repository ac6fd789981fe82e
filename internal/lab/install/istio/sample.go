package istio

import (
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/sources"
)

const (
	helloworldManifest = "samples/helloworld/helloworld.yaml"
	curlManifest       = "samples/curl/curl.yaml"
)

// sampleAction deploys Istio's multicluster verification sample
// (https://istio.io/latest/docs/setup/install/multicluster/verify/): in
// every workload cluster an injected namespace "sample" with the
// helloworld Service and the curl client; helloworld-v1 runs in the first
// cluster and helloworld-v2 in the second (alternating beyond two), so a
// client that hears both versions reached across networks.
type sampleAction struct{}

func (sampleAction) Name() string { return "istio-verify-sample" }
func (sampleAction) Description() string {
	return "Istio verification sample: helloworld v1/v2 and curl across the workload clusters, reached from either side"
}

func (sampleAction) Execute(c *install.Context) error {
	hello, err := c.Manifests(sources.Istio, helloworldManifest)
	if err != nil {
		return err
	}
	curl, err := c.Manifests(sources.Istio, curlManifest)
	if err != nil {
		return err
	}
	for i, cl := range c.Workloads {
		version := sampleVersion(i)
		objs := sampleObjects(hello, curl, version)
		if err := c.Apply(cl, objs...); err != nil {
			return err
		}
		c.Logf("%s: namespace %s (istio-injection=enabled): helloworld Service, helloworld-%s, curl", cl.Name, SampleNamespace, version)
	}
	for i, cl := range c.Workloads {
		if err := c.WaitDeployments(cl, SampleNamespace, "helloworld-"+sampleVersion(i), "curl"); err != nil {
			return err
		}
	}
	// The guide's check: from either cluster, both versions answer.
	var want []string
	for i := range c.Workloads {
		if v := sampleVersion(i); !slices.Contains(want, v) {
			want = append(want, v)
		}
	}
	for _, cl := range c.Workloads {
		if c.DryRun {
			break
		}
		if err := waitReachable(c, cl, want); err != nil {
			return err
		}
	}
	return nil
}

// waitReachable polls the sample from one cluster until every version
// answers (cross-cluster endpoints take a moment to reach the proxies), or
// the settings' timeout passes. A simulated data plane cannot be checked:
// it says so and passes on.
func waitReachable(c *install.Context, cl *install.Cluster, want []string) error {
	deadline := time.Now().Add(c.Settings.Timeout)
	for {
		r := CheckReachability(c, cl, ReachOptions{Want: want})
		switch {
		case r.Status == Unverifiable:
			c.Logf("%s", r)
			return nil
		case r.Status == Reachable:
			c.Logf("%s", r)
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the sample is not reachable across clusters: %s (check the east-west gateways' addresses and the remote secrets: istioctl --context %s proxy-status)", r, cl.Context)
		}
		select {
		case <-c.Done():
			return c.Err()
		case <-time.After(5 * time.Second):
		}
	}
}

// sampleVersion is the helloworld version the i-th (0-based) workload
// cluster runs.
func sampleVersion(i int) string {
	if i%2 == 0 {
		return "v1"
	}
	return "v2"
}

// sampleObjects is what the guide applies to one cluster with `kubectl
// apply -n sample`: the injected namespace, helloworld.yaml's objects
// labelled service=helloworld (the Service) and version=<version> (that
// Deployment), and all of curl.yaml.
func sampleObjects(hello, curl []*unstructured.Unstructured, version string) []*unstructured.Unstructured {
	objs := []*unstructured.Unstructured{install.Namespace(SampleNamespace, map[string]string{"istio-injection": "enabled"})}
	add := func(o *unstructured.Unstructured) {
		o = o.DeepCopy()
		o.SetNamespace(SampleNamespace)
		objs = append(objs, o)
	}
	for _, o := range hello {
		if l := o.GetLabels(); l["service"] == "helloworld" || l["version"] == version {
			add(o)
		}
	}
	for _, o := range curl {
		add(o)
	}
	return objs
}
