package monitoring

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// BundleFile is prometheus-operator's single-file install (CRDs, RBAC,
// the operator's Deployment and Service) in sources.PrometheusOperator.
const BundleFile = "bundle.yaml"

// bundleNamespace is where bundle.yaml puts the operator.
const bundleNamespace = "default"

// operatorObjects moves the bundle's objects from default to Namespace,
// with the ClusterRoleBinding's subject, as the operator's docs do with
// `sed s/namespace: default/...`. The Namespace comes first.
func operatorObjects(bundle []*unstructured.Unstructured, namespaced func(*unstructured.Unstructured) bool) []*unstructured.Unstructured {
	install.SetNamespace(bundle, bundleNamespace, Namespace, namespaced)
	return append([]*unstructured.Unstructured{namespace()}, bundle...)
}

func installOperator(c *install.Context) error {
	bundle, err := c.Manifests(sources.PrometheusOperator, BundleFile)
	if err != nil {
		return err
	}
	for _, cl := range c.Workloads {
		objs := make([]*unstructured.Unstructured, len(bundle))
		for i, o := range bundle {
			objs[i] = o.DeepCopy()
		}
		if err := c.Apply(cl, operatorObjects(objs, cl.Namespaced)...); err != nil {
			return fmt.Errorf("prometheus-operator: %w", err)
		}
		c.Logf("%s: prometheus-operator %s applied in %s", cl.Name, sources.PrometheusOperator.Version, Namespace)
	}
	for _, cl := range c.Workloads {
		if err := c.WaitDeployments(cl, Namespace, OperatorDeployment); err != nil {
			return err
		}
	}
	return nil
}
