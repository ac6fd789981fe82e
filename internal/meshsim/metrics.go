package meshsim

import (
	"cmp"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Reporter values: the client-side proxy (here the ingress gateway)
// reports "source", the server-side sidecar of the pod "destination".
const (
	ReporterSource      = "source"
	ReporterDestination = "destination"
)

// Response flags meshsim sets, with Envoy's meaning.
const (
	// FlagNone marks a request that Envoy saw no trouble with, even if the
	// application answered an error.
	FlagNone = "-"
	// FlagNoHealthyUpstream: the chosen service had no Ready endpoint.
	FlagNoHealthyUpstream = "UH"
	// FlagNoRoute: no route matched, for instance no VirtualService.
	FlagNoRoute = "NR"
	// FlagUpstreamFailure: the connection to the upstream failed.
	FlagUpstreamFailure = "UF"
	// FlagDownstreamDisconnect: the client went away before the answer.
	FlagDownstreamDisconnect = "DC"
)

// DurationBuckets are Istio's default buckets for
// istio_request_duration_milliseconds.
var DurationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// metricLabels are Istio's standard labels, in the order
// Record.labelValues fills them.
var metricLabels = []string{
	"reporter",
	"source_workload",
	"source_workload_namespace",
	"source_principal",
	"source_app",
	"source_version",
	"source_cluster",
	"destination_workload",
	"destination_workload_namespace",
	"destination_principal",
	"destination_app",
	"destination_version",
	"destination_service",
	"destination_service_name",
	"destination_service_namespace",
	"destination_cluster",
	"request_protocol",
	"response_code",
	"response_flags",
	"grpc_response_status",
	"connection_security_policy",
	"source_canonical_service",
	"destination_canonical_service",
	"source_canonical_revision",
	"destination_canonical_revision",
}

// Record is one request as one proxy reports it.
type Record struct {
	// Reporter is ReporterSource or ReporterDestination.
	Reporter    string
	Source      Peer
	Destination Peer
	// Service is the destination service; the zero key is reported as
	// "unknown", as for a request that matched no route.
	Service ServiceKey
	// Code is the HTTP status; 0 means no response was sent.
	Code int
	// Flags are Envoy's response flags; empty means FlagNone.
	Flags    string
	Duration time.Duration
}

func (r Record) labelValues() []string {
	or := func(s string) string { return cmp.Or(s, unknown) }
	svc, svcName, svcNamespace := unknown, unknown, unknown
	if r.Service != (ServiceKey{}) {
		svc, svcName, svcNamespace = r.Service.FQDN(), r.Service.Name, r.Service.Namespace
	}
	// The sidecar that terminates mTLS knows the connection was mutual
	// TLS; the client side reports the policy as unknown, as Istio does.
	security := unknown
	if r.Reporter == ReporterDestination {
		security = "mutual_tls"
	}
	src, dst := r.Source, r.Destination
	return []string{
		r.Reporter,
		or(src.Workload),
		or(src.Namespace),
		or(src.Principal),
		or(src.App),
		or(src.Version),
		or(src.Cluster),
		or(dst.Workload),
		or(dst.Namespace),
		or(dst.Principal),
		or(dst.App),
		or(dst.Version),
		svc,
		svcName,
		svcNamespace,
		or(dst.Cluster),
		"http",
		strconv.Itoa(r.Code),
		cmp.Or(r.Flags, FlagNone),
		"",
		security,
		or(src.CanonicalService),
		or(dst.CanonicalService),
		cmp.Or(src.CanonicalRevision, "latest"),
		cmp.Or(dst.CanonicalRevision, "latest"),
	}
}

// Metrics holds Istio's request metrics for one cluster in a registry of
// its own, so that two simulated clusters in one process, as in tests,
// never share series.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics creates the metrics and their registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total",
			Help: "Requests handled by an Istio proxy (simulated by meshsim).",
		}, metricLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_duration_milliseconds",
			Help:    "Duration of requests handled by an Istio proxy in milliseconds (simulated by meshsim).",
			Buckets: DurationBuckets,
		}, metricLabels),
	}
	m.registry.MustRegister(m.requests, m.duration)
	return m
}

// Record counts one request and observes its duration.
func (m *Metrics) Record(r Record) {
	values := r.labelValues()
	m.requests.WithLabelValues(values...).Inc()
	m.duration.WithLabelValues(values...).Observe(float64(r.Duration) / float64(time.Millisecond))
}

// Gatherer exposes the registry, for tests and for embedding callers.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	return m.registry
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
