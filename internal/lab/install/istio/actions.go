package istio

import (
	"fmt"
	"io/fs"

	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/gitops"
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/provider"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// Namespaces and names the actions use.
const (
	SystemNamespace  = "istio-system"
	IngressNamespace = "istio-ingress"
	SampleNamespace  = "sample"

	// NetworkLabel is the label that puts a namespace's (here istiod's)
	// workloads on an Istio network.
	NetworkLabel = "topology.istio.io/network"

	// RootCASecret is the hub Secret (in install.StateNamespace) that
	// holds the mesh's root certificate and key.
	RootCASecret = "istio-root-ca"
	// CACertsSecret is the Secret istiod reads its plugged-in CA from.
	CACertsSecret = "cacerts"

	chartsDir = "manifests/charts"
)

// Actions returns the Istio installers in pipeline order.
func Actions() []install.Action {
	return []install.Action{certsAction{}, controlPlanesAction{}, gatewaysAction{}, remoteSecretsAction{}, sampleAction{}}
}

// network returns a workload cluster's Istio network: the fleet's, else the
// provider's default name for its position.
func network(c *install.Context, cl *install.Cluster) string {
	if cl.Network != "" {
		return cl.Network
	}
	for i, w := range c.Workloads {
		if w == cl {
			return provider.NetworkName(i + 1)
		}
	}
	return ""
}

// systemNamespace is istio-system as the multi-network guide labels it.
func systemNamespace(net string) *unstructured.Unstructured {
	return install.Namespace(SystemNamespace, map[string]string{NetworkLabel: net})
}

// renderRelease renders one of the istio module's charts against cl.
func renderRelease(c *install.Context, cl *install.Cluster, r release) ([]*unstructured.Unstructured, error) {
	dir, err := c.Sources.Path(c, sources.Istio, chartsDir+"/"+r.Chart)
	if err != nil {
		return nil, err
	}
	caps, err := capabilities(cl.Kube.Discovery())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cl.Name, err)
	}
	objs, err := render(dir, r, caps, cl.Namespaced)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cl.Name, err)
	}
	return objs, nil
}

// The releases, as the multi-primary multi-network guide installs them
// with Helm.

func baseRelease() release {
	return release{Chart: "base", Name: "istio-base", Namespace: SystemNamespace}
}

func istiodRelease(s install.Settings, cluster, net string) release {
	return release{Chart: "istio-control/istio-discovery", Name: "istiod", Namespace: SystemNamespace,
		Values: map[string]any{"global": map[string]any{
			"meshID":       s.MeshID,
			"multiCluster": map[string]any{"clusterName": cluster},
			"network":      net,
			"hub":          s.IstioHub,
			"tag":          s.IstioTag,
		}, "meshConfig": meshConfig}}
}

// meshConfig is the GitOps tree's mesh config (the canary host is
// cluster-local, so a wave's canary traffic stays on that wave's canary
// pods), the data.mesh of its istio ConfigMap, as the istiod chart's
// meshConfig values. The embedded file is part of the binary: a broken one
// is a build defect, caught by the render tests.
var meshConfig = func() map[string]any {
	text, err := fs.ReadFile(gitops.Tree, "istio-resources/mesh/istio-configmap.yaml")
	if err != nil {
		panic(err)
	}
	var cm struct {
		Data struct {
			Mesh string `json:"mesh"`
		} `json:"data"`
	}
	var out map[string]any
	if err := yaml.Unmarshal(text, &cm); err != nil {
		panic(fmt.Sprintf("gitops mesh config: %v", err))
	}
	if err := yaml.Unmarshal([]byte(cm.Data.Mesh), &out); err != nil || len(out) == 0 {
		panic(fmt.Sprintf("gitops mesh config: data.mesh: %v", err))
	}
	return out
}()

// ingressRelease is the north-south gateway. Its labels are the ones the
// lab's Gateway (gitops/istio-resources) selects, istio: ingressgateway,
// and the ones its VirtualService matches as sourceLabels.
func ingressRelease() release {
	return release{Chart: "gateway", Name: "istio-ingressgateway", Namespace: IngressNamespace,
		Values: map[string]any{"labels": map[string]any{
			"app":   "istio-ingressgateway",
			"istio": "ingressgateway",
		}}}
}

// eastwestRelease is the east-west gateway gen-eastwest-gateway.sh
// describes: labels istio: eastwestgateway and the network, the requested
// network view, ports 15021/15443/15012/15017 on a LoadBalancer. The chart's
// networkGateway value produces exactly that (it also puts the network
// label on the pods and the Service, so it is not repeated in labels: the
// chart would then write the key twice).
//
// annotations (the provider's, for LoadBalancer Services) go on its Service.
func eastwestRelease(net string, annotations map[string]string) release {
	values := map[string]any{
		"name":           "istio-eastwestgateway",
		"networkGateway": net,
		"labels": map[string]any{
			"app":   "istio-eastwestgateway",
			"istio": "eastwestgateway",
		},
	}
	if len(annotations) > 0 {
		a := map[string]any{}
		for k, v := range annotations {
			a[k] = v
		}
		values["service"] = map[string]any{"annotations": a}
	}
	return release{Chart: "gateway", Name: "istio-eastwestgateway", Namespace: SystemNamespace, Values: values}
}
