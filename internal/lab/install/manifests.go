package install

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// Manifests reads and decodes a YAML file of a pinned upstream source.
func (c *Context) Manifests(src sources.Source, path string) ([]*unstructured.Unstructured, error) {
	b, err := c.Sources.ReadFile(c, src, path)
	if err != nil {
		return nil, err
	}
	objs, err := kube.DecodeYAML(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", src, path, err)
	}
	return objs, nil
}

// SetNamespace moves the namespaced objects of an upstream manifest into
// namespace, and points the subjects of its (Cluster)RoleBindings that named
// from there, as `kubectl apply -n` plus a kustomize namespace would.
func SetNamespace(objs []*unstructured.Unstructured, from, namespace string, namespaced func(*unstructured.Unstructured) bool) {
	for _, o := range objs {
		if namespaced(o) {
			o.SetNamespace(namespace)
		}
		switch o.GetKind() {
		case "ClusterRoleBinding", "RoleBinding":
			subs, found, _ := unstructured.NestedSlice(o.Object, "subjects")
			if !found {
				// Setting it back would add "subjects: null", a field
				// the manifest never had.
				continue
			}
			for _, s := range subs {
				m, ok := s.(map[string]any)
				if ok && m["kind"] == "ServiceAccount" && (m["namespace"] == from || m["namespace"] == nil) {
					m["namespace"] = namespace
				}
			}
			_ = unstructured.SetNestedSlice(o.Object, subs, "subjects")
		}
	}
}

// Namespaced tells namespaced kinds from cluster-scoped ones through the
// cluster's REST mapping.
func (cl *Cluster) Namespaced(o *unstructured.Unstructured) bool {
	m, err := cl.Applier.Mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
	if err != nil {
		// Unknown yet (a CRD's instance before the CRD): assume namespaced
		// unless it is a known cluster-scoped kind.
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
			"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy",
			"ValidatingAdmissionPolicyBinding", "PriorityClass", "StorageClass", "IngressClass", "APIService":
			return false
		}
		return true
	}
	return m.Scope.Name() == "namespace"
}

// Object builds an object Lockstep writes itself: top-level fields (spec,
// data, rules, ...), its name and namespace (empty: cluster-scoped), and
// Lockstep's managed-by label (kube.Object). mods adjust the rest (labels,
// annotations).
func Object(apiVersion, kind, namespace, name string, fields map[string]any, mods ...func(*unstructured.Unstructured)) *unstructured.Unstructured {
	u := kube.Object(apiVersion, kind, namespace, name, fields)
	for _, m := range mods {
		m(u)
	}
	return u
}
