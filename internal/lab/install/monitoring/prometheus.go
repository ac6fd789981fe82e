package monitoring

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"lockstep.dev/lockstep/gitops"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/install"
)

// MonitorsFile is the lab's PodMonitor and ServiceMonitor in the GitOps
// tree (gitops.Tree).
const MonitorsFile = "monitoring/monitor.yaml"

// monitorLabel is the label of the lab's monitors that Prometheus selects
// them by.
const monitorLabel = "monitoring"

// prometheusRBAC is the name of the ClusterRole and ClusterRoleBinding of
// the Prometheus pods.
const prometheusRBAC = "prometheus-operator-prometheus"

// Labels prometheus-operator v0.85.0 puts on the Prometheus pods
// (pkg/prometheus/server/operator.go, makeSelectorLabels).
const (
	operatorAppLabel  = "app.kubernetes.io/name"
	operatorAppValue  = "prometheus"
	operatorNameLabel = "operator.prometheus.io/name"
)

// monitors returns the lab's monitors from the GitOps tree.
func monitors() ([]*unstructured.Unstructured, error) {
	objs, err := kube.ReadYAML(gitops.Tree, MonitorsFile)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.GetNamespace() == "" {
			o.SetNamespace(Namespace)
		}
	}
	return objs, nil
}

// monitorSelector selects the monitors of kind by their `monitoring`
// label, so Prometheus scrapes exactly the lab's monitors. A monitor
// without the label is an error: Prometheus would silently skip it.
func monitorSelector(mons []*unstructured.Unstructured, kind string) (*metav1.LabelSelector, error) {
	var values []string
	for _, m := range mons {
		if m.GetKind() != kind {
			continue
		}
		v, ok := m.GetLabels()[monitorLabel]
		if !ok {
			return nil, fmt.Errorf("%s %s in %s has no %q label for Prometheus to select it by", kind, m.GetName(), MonitorsFile, monitorLabel)
		}
		values = append(values, v)
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("%s has no %s", MonitorsFile, kind)
	}
	sort.Strings(values)
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: monitorLabel, Operator: metav1.LabelSelectorOpIn, Values: values},
	}}, nil
}

// prometheusObjects are the i-th (1-based) workload's Prometheus: its RBAC
// (prometheus-operator's Documentation/platform/rbac.md), the Prometheus
// resource with the guide's external label and a Thanos sidecar, the
// sidecar's LoadBalancer Service, and the lab's monitors.
func prometheusObjects(i int, s install.Settings, mons []*unstructured.Unstructured, lbAnnotations map[string]string) ([]*unstructured.Unstructured, error) {
	podSel, err := monitorSelector(mons, "PodMonitor")
	if err != nil {
		return nil, err
	}
	svcSel, err := monitorSelector(mons, "ServiceMonitor")
	if err != nil {
		return nil, err
	}
	lbl := labels("prometheus")
	typedObjs := []runtime.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: PrometheusServiceAccount, Namespace: Namespace, Labels: lbl}},
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: prometheusRBAC, Labels: lbl},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"nodes", "nodes/metrics", "services", "endpoints", "pods"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: []string{"get", "list", "watch"}},
				{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: prometheusRBAC, Labels: lbl},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: prometheusRBAC},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: PrometheusServiceAccount, Namespace: Namespace}},
		},
	}
	rbac, err := toUnstructured(typedObjs...)
	if err != nil {
		return nil, err
	}
	out := append([]*unstructured.Unstructured{namespace()}, rbac...)
	prom, err := prometheusResource(i, s, podSel, svcSel)
	if err != nil {
		return nil, err
	}
	svc, err := toUnstructured(sidecarService(lbAnnotations))
	if err != nil {
		return nil, err
	}
	out = append(out, prom, svc[0])
	for _, m := range mons {
		out = append(out, m.DeepCopy())
	}
	return out, nil
}

// prometheusResource is the Prometheus custom resource. There is no typed
// API for it here (Lockstep does not import prometheus-operator), so it is
// built as a map; the CRD's schema checks it at apply time (strict).
func prometheusResource(i int, s install.Settings, podSel, svcSel *metav1.LabelSelector) (*unstructured.Unstructured, error) {
	pod, err := runtime.DefaultUnstructuredConverter.ToUnstructured(podSel)
	if err != nil {
		return nil, err
	}
	svc, err := runtime.DefaultUnstructuredConverter.ToUnstructured(svcSel)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "Prometheus",
		"metadata": map[string]any{
			"name":      PrometheusName,
			"namespace": Namespace,
		},
		// No image: the operator's default (Prometheus v3.5.0 for
		// operator v0.85.0), so sources.PrometheusOperator pins it.
		"spec": map[string]any{
			"replicas":           int64(1),
			"serviceAccountName": PrometheusServiceAccount,
			"externalLabels":     map[string]any{ClusterLabel: ClusterLabelValue(i)},
			// The lab's monitors live in Namespace but scrape every
			// namespace (their namespaceSelector is any: true); {} here
			// lets Prometheus pick monitors from every namespace too.
			"podMonitorSelector":              pod,
			"podMonitorNamespaceSelector":     map[string]any{},
			"serviceMonitorSelector":          svc,
			"serviceMonitorNamespaceSelector": map[string]any{},
			// The sidecar serves the StoreAPI to Thanos Query on the hub.
			// It uploads no blocks: MinIO is on the hub and not reachable
			// from here, as in the guide; Query reads recent data live.
			"thanos": map[string]any{"image": s.ThanosImage},
		},
	}}
	u.SetLabels(labels("prometheus"))
	return u, nil
}

// sidecarService exposes the Thanos sidecar's gRPC StoreAPI of the
// Prometheus pods through a LoadBalancer, the address Query dials.
func sidecarService(annotations map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: SidecarService, Namespace: Namespace, Labels: labels("prometheus"), Annotations: annotations},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{operatorAppLabel: operatorAppValue, operatorNameLabel: PrometheusName},
			Ports: []corev1.ServicePort{{
				Name: "grpc", Protocol: corev1.ProtocolTCP, Port: SidecarGRPCPort, TargetPort: intstr.FromString("grpc"),
			}},
		},
	}
}

func installPrometheus(c *install.Context) error {
	mons, err := monitors()
	if err != nil {
		return err
	}
	for i, cl := range c.Workloads {
		objs, err := prometheusObjects(i+1, c.Settings, mons, c.Fleet.LoadBalancerAnnotations)
		if err != nil {
			return err
		}
		if err := c.Apply(cl, objs...); err != nil {
			return fmt.Errorf("prometheus: %w", err)
		}
		c.Logf("%s: Prometheus %s/%s with %s=%s and a Thanos sidecar", cl.Name, Namespace, PrometheusName, ClusterLabel, ClusterLabelValue(i+1))
	}
	return nil
}
