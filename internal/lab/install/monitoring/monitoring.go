package monitoring

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// Names and ports of what the actions install, for `lab verify` and the
// docs. Everything lives in Namespace, on the hub or in each workload.
const (
	// Namespace holds the whole stack in every cluster.
	Namespace = "monitoring"

	// OperatorDeployment is prometheus-operator's Deployment (workloads).
	OperatorDeployment = "prometheus-operator"
	// PrometheusName is the Prometheus resource of each workload. The
	// operator's external label prometheus="monitoring/prometheus-operator"
	// comes from it, which the guide's PrometheusDown rule matches.
	PrometheusName = "prometheus-operator"
	// PrometheusServiceAccount runs the Prometheus pods (workloads).
	PrometheusServiceAccount = "prometheus"
	// SidecarService is the LoadBalancer Service of each workload's Thanos
	// sidecar, the guide's name.
	SidecarService = "prometheus-operator-prometheus-thanos"
	// SidecarGRPCPort is the sidecar's StoreAPI port.
	SidecarGRPCPort = 10901
	// ClusterLabel is the Prometheus external label naming the workload
	// (values from ClusterLabelValue).
	ClusterLabel = "cluster"
	// ReplicaLabel is the external label prometheus-operator sets to the
	// Prometheus pod's name; Query deduplicates on it.
	ReplicaLabel = "prometheus_replica"

	// ObjstoreCredentialsSecret holds the generated object-storage
	// credentials (hub) under ObjstoreAccessKey and ObjstoreSecretKey.
	ObjstoreCredentialsSecret = "thanos-objstore-credentials"
	ObjstoreAccessKey         = "access-key"
	ObjstoreSecretKey         = "secret-key"
	// ObjstoreUser is the generated access key (MinIO's root user).
	ObjstoreUser = "thanos"
	// ObjstoreSecret holds Thanos' objstore.yml (key ObjstoreFile),
	// derived from ObjstoreCredentialsSecret on every run.
	ObjstoreSecret = "thanos-objstore"
	ObjstoreFile   = "objstore.yml"
	// Bucket is the bucket Thanos writes to.
	Bucket = "thanos"
	// MinIOService and MinIOPort are MinIO's S3 API; MinIOConsolePort is
	// its web console.
	MinIOService     = "minio"
	MinIOPort        = 9000
	MinIOConsolePort = 9001
	// BucketJob creates Bucket once MinIO answers.
	BucketJob = "minio-create-bucket"

	// Thanos components (hub): each is a Deployment and a Service of
	// that name.
	QueryService     = "thanos-query"
	StoreService     = "thanos-storegateway"
	CompactorService = "thanos-compactor"
	RulerService     = "thanos-ruler"
	// QueryHTTPPort is Query's Service port for the Prometheus HTTP API
	// (the guide's port); the other components' HTTP port is ThanosHTTPPort.
	QueryHTTPPort  = 9090
	ThanosHTTPPort = 10902
	ThanosGRPCPort = 10901
	// QueryURL is Query's in-cluster URL: Grafana's datasource, the
	// Ruler's --query.
	QueryURL = "http://thanos-query.monitoring.svc:9090"
	// QueryEndpointsConfigMap holds QueryEndpointsFile, Query's endpoint
	// SD file, written from the sidecars' LoadBalancer addresses.
	QueryEndpointsConfigMap = "thanos-query-endpoints"
	QueryEndpointsFile      = "endpoints.yaml"
	// RulesConfigMap holds the Ruler's rule file.
	RulesConfigMap = "thanos-ruler-rules"

	// GrafanaService is Grafana's Deployment and ClusterIP Service (hub).
	GrafanaService = "grafana"
	GrafanaPort    = 3000
	// GrafanaAdminSecret holds the generated admin credentials under
	// GrafanaUserKey and GrafanaPasswordKey.
	GrafanaAdminSecret = "grafana-admin"
	GrafanaUserKey     = "admin-user"
	GrafanaPasswordKey = "admin-password"
	GrafanaAdminUser   = "admin"
	// DatasourceUID is the uid of Grafana's Thanos datasource.
	DatasourceUID = "thanos"
	// LockstepDashboardUID is the uid of the Lockstep dashboard.
	LockstepDashboardUID = "lockstep-fleet"
)

// ClusterLabelValue is the `cluster` external label of the i-th (1-based)
// workload's Prometheus, as in the guide: data-producer-1, data-producer-2.
func ClusterLabelValue(i int) string { return "data-producer-" + strconv.Itoa(i) }

// Actions returns the monitoring installers in order.
func Actions() []install.Action {
	return []install.Action{
		action{"prometheus-operator", "prometheus-operator in the workload clusters (" + sources.PrometheusOperator.Version + ", upstream bundle.yaml)", installOperator},
		action{"prometheus", "Prometheus with a Thanos sidecar in the workload clusters (external label cluster=data-producer-N)", installPrometheus},
		action{"thanos", "MinIO and Thanos (Query, Store Gateway, Compactor, Ruler) on the hub", installThanos},
		action{"grafana", "Grafana with the Thanos datasource and the Istio and Lockstep dashboards on the hub", installGrafana},
	}
}

type action struct {
	name, description string
	execute           func(*install.Context) error
}

func (a action) Name() string                     { return a.name }
func (a action) Description() string              { return a.description }
func (a action) Execute(c *install.Context) error { return a.execute(c) }

// labels are the common labels of what this package builds.
func labels(component string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       component,
		"app.kubernetes.io/part-of":    "lockstep-monitoring",
		"app.kubernetes.io/managed-by": "lockstep",
	}
}

// selector is the subset of labels a Deployment and its Service select on.
func selector(component string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": component}
}

// hash is a short digest of content for pod-template annotations: a change
// of a mounted file that the program does not re-read restarts the pods,
// and the same content gives the same template, so reruns change nothing.
func hash(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// toUnstructured converts typed objects for server-side apply: it sets
// apiVersion and kind from client-go's scheme, and drops status and the
// null fields (such as creationTimestamp) that typed zero values convert
// to, so the apply owns only what a builder set.
func toUnstructured(objs ...runtime.Object) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		gvks, _, err := scheme.Scheme.ObjectKinds(obj)
		if err != nil {
			return nil, fmt.Errorf("convert %T: %w", obj, err)
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, fmt.Errorf("convert %T: %w", obj, err)
		}
		delete(m, "status")
		pruneNil(m)
		u := &unstructured.Unstructured{Object: m}
		u.SetGroupVersionKind(gvks[0])
		out = append(out, u)
	}
	return out, nil
}

func pruneNil(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
				continue
			}
			pruneNil(e)
		}
	case []any:
		for _, e := range t {
			pruneNil(e)
		}
	}
}

// namespace is Namespace, labelled so that Lockstep's apply owns a field
// of it: an apply that owns nothing leaves no managed fields, and the API
// server then rewrites them on the next apply (a spurious change).
func namespace() *unstructured.Unstructured {
	return install.Namespace(Namespace, map[string]string{"app.kubernetes.io/managed-by": "lockstep"})
}
