package meshsim

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	cluster1 = "argo-rollout1"
	cluster2 = "argo-rollout2"
)

// stableIn and canaryIn build helloworld endpoints the way the Kubernetes
// adapter would for pods of the Rollout "helloworld".
func stableIn(cluster, pod string) Endpoint {
	return Endpoint{Cluster: cluster, Pod: pod, Namespace: "helloworld", Service: "helloworld", IP: "10.0.0.1",
		Version: "v1", Workload: "helloworld", App: "helloworld", ServiceAccount: "default",
		CanonicalService: "helloworld", CanonicalRevision: "latest"}
}

func canaryIn(cluster, pod string) Endpoint {
	e := stableIn(cluster, pod)
	e.Service, e.Version, e.IP = "helloworld-canary", "v2", "10.0.0.2"
	return e
}

// testMesh is two clusters' data planes over one in-memory topology, each
// east-west handler on a real loopback server so that cross-cluster
// requests travel over HTTP as in the lab.
type testMesh struct {
	topo   map[string]*StaticTopology
	dp     map[string]*DataPlane
	ew     map[string]*httptest.Server
	logger *slog.Logger
}

func newTestMesh(t *testing.T, w *Weights, eps []Endpoint) *testMesh {
	t.Helper()
	m := &testMesh{
		topo:   map[string]*StaticTopology{},
		dp:     map[string]*DataPlane{},
		ew:     map[string]*httptest.Server{},
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	clusters := []string{cluster1, cluster2}
	for _, c := range clusters {
		m.topo[c] = NewStaticTopology(c)
		if w != nil {
			m.topo[c].SetWeights(*w)
		}
		m.topo[c].SetEndpoints(eps)
		// The handler is looked up per request because the data planes
		// can only be built once both servers' URLs are known.
		m.ew[c] = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			m.dp[c].EastWest().ServeHTTP(rw, r)
		}))
		t.Cleanup(m.ew[c].Close)
	}
	for i, c := range clusters {
		peer := clusters[1-i]
		dp, err := NewDataPlane(DataPlaneConfig{
			Cluster:      c,
			Topology:     m.topo[c],
			PeerEastWest: map[string]string{peer: m.ew[peer].URL},
			Rand:         seeded(uint64(i + 1)),
			Logger:       m.logger,
		})
		if err != nil {
			t.Fatalf("NewDataPlane(%s) error: %v", c, err)
		}
		m.dp[c] = dp
	}
	return m
}

// get sends one request through cluster's ingress gateway.
func (m *testMesh) get(t *testing.T, cluster, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.dp[cluster].Gateway().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestGatewayRoutesLocallyAndAcrossClusters(t *testing.T) {
	t.Parallel()
	w := split(50, 50)
	m := newTestMesh(t, &w, []Endpoint{stableIn(cluster1, "helloworld-aaa-1"), canaryIn(cluster2, "helloworld-bbb-1")})

	bodies := map[string]int{}
	for range 200 {
		code, body := m.get(t, cluster1, "/hello")
		if code != http.StatusOK {
			t.Fatalf("GET /hello = %d %q", code, body)
		}
		bodies[body]++
	}
	stableBody := "Hello version: v1, instance: helloworld-aaa-1\n"
	canaryBody := "Hello version: v2, instance: helloworld-bbb-1\n"
	if len(bodies) != 2 || bodies[stableBody] == 0 || bodies[canaryBody] == 0 {
		t.Fatalf("bodies = %v, want both %q and %q", bodies, stableBody, canaryBody)
	}
	nStable, nCanary := bodies[stableBody], bodies[canaryBody]

	g1, g2 := m.dp[cluster1].Metrics().Gatherer(), m.dp[cluster2].Metrics().Gatherer()
	// The cross-cluster request, as cluster 1's gateway reports it: every
	// Istio label, exactly.
	crossSource := gather(t, g1, "istio_requests_total", map[string]string{"reporter": "source", "destination_cluster": cluster2})
	if len(crossSource) != 1 {
		t.Fatalf("cluster 1 has %d source series towards cluster 2, want 1", len(crossSource))
	}
	wantLabels := map[string]string{
		"reporter":                       "source",
		"source_workload":                "istio-ingressgateway",
		"source_workload_namespace":      "istio-system",
		"source_principal":               "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
		"source_app":                     "istio-ingressgateway",
		"source_version":                 "unknown",
		"source_cluster":                 cluster1,
		"destination_workload":           "helloworld",
		"destination_workload_namespace": "helloworld",
		"destination_principal":          "spiffe://cluster.local/ns/helloworld/sa/default",
		"destination_app":                "helloworld",
		"destination_version":            "v2",
		"destination_service":            "helloworld-canary.helloworld.svc.cluster.local",
		"destination_service_name":       "helloworld-canary",
		"destination_service_namespace":  "helloworld",
		"destination_cluster":            cluster2,
		"request_protocol":               "http",
		"response_code":                  "200",
		"response_flags":                 "-",
		"grpc_response_status":           "",
		"connection_security_policy":     "unknown",
		"source_canonical_service":       "istio-ingressgateway",
		"destination_canonical_service":  "helloworld",
		"source_canonical_revision":      "latest",
		"destination_canonical_revision": "latest",
	}
	if !maps.Equal(crossSource[0].labels, wantLabels) {
		t.Errorf("source series labels =\n%v\nwant\n%v", crossSource[0].labels, wantLabels)
	}
	if int(crossSource[0].value) != nCanary {
		t.Errorf("cross-cluster source count = %v, want %d", crossSource[0].value, nCanary)
	}

	// The same requests as cluster 2's sidecar reports them.
	if got := requests(t, g2, map[string]string{
		"reporter": "destination", "source_cluster": cluster1, "source_workload": "istio-ingressgateway",
		"destination_cluster": cluster2, "destination_version": "v2", "destination_service_name": "helloworld-canary",
		"connection_security_policy": "mutual_tls", "response_code": "200",
	}); got != nCanary {
		t.Errorf("cluster 2 destination reports = %d, want %d", got, nCanary)
	}
	// Cluster 2's gateway saw nothing, and cluster 1 holds no destination
	// report for a pod it does not run.
	if got := requests(t, g2, map[string]string{"reporter": "source"}); got != 0 {
		t.Errorf("cluster 2 source reports = %d, want 0", got)
	}
	if got := requests(t, g1, map[string]string{"reporter": "destination", "destination_cluster": cluster2}); got != 0 {
		t.Errorf("cluster 1 destination reports for cluster 2 = %d, want 0", got)
	}
	// Local requests are reported twice in cluster 1, by gateway and pod.
	for _, reporter := range []string{"source", "destination"} {
		if got := requests(t, g1, map[string]string{"reporter": reporter, "destination_cluster": cluster1, "destination_version": "v1", "destination_service_name": "helloworld"}); got != nStable {
			t.Errorf("cluster 1 %s reports for local pod = %d, want %d", reporter, got, nStable)
		}
	}
	// Both metrics carry the same series.
	if h := gather(t, g1, "istio_request_duration_milliseconds", map[string]string{"reporter": "source", "destination_cluster": cluster2}); len(h) != 1 || int(h[0].value) != nCanary {
		t.Errorf("duration histogram = %+v, want one series of %d samples", h, nCanary)
	}
}

func TestGatewayAppPaths(t *testing.T) {
	t.Parallel()
	w := split(100, 0)
	m := newTestMesh(t, &w, []Endpoint{stableIn(cluster1, "s1"), stableIn(cluster2, "s2")})
	if code, body := m.get(t, cluster1, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	// Other paths are routed too and answered by the app, with its 404,
	// which both proxies count like any other response.
	for range 20 {
		if code, _ := m.get(t, cluster1, "/nope"); code != http.StatusNotFound {
			t.Fatalf("GET /nope = %d, want 404", code)
		}
	}
	g1 := m.dp[cluster1].Metrics().Gatherer()
	if got := requests(t, g1, map[string]string{"reporter": "source", "response_code": "404", "response_flags": "-"}); got != 20 {
		t.Errorf("404 source reports = %d, want 20", got)
	}
}

func TestGatewayNoHealthyUpstream(t *testing.T) {
	t.Parallel()
	w := split(0, 100)
	m := newTestMesh(t, &w, []Endpoint{stableIn(cluster1, "s1")})
	code, body := m.get(t, cluster1, "/hello")
	if code != http.StatusServiceUnavailable || body != "no healthy upstream" {
		t.Fatalf("GET /hello = %d %q, want 503 %q", code, body, "no healthy upstream")
	}
	if got := requests(t, m.dp[cluster1].Metrics().Gatherer(), map[string]string{
		"reporter": "source", "response_code": "503", "response_flags": "UH",
		"destination_service": "helloworld-canary.helloworld.svc.cluster.local", "destination_service_name": "helloworld-canary",
		"destination_cluster": "unknown", "destination_workload": "unknown",
	}); got != 1 {
		t.Fatalf("UH reports = %d, want 1", got)
	}
}

func TestGatewayNoRoute(t *testing.T) {
	t.Parallel()
	m := newTestMesh(t, nil, []Endpoint{stableIn(cluster1, "s1")})
	if code, _ := m.get(t, cluster1, "/hello"); code != http.StatusNotFound {
		t.Fatalf("GET /hello without weights = %d, want 404", code)
	}
	if got := requests(t, m.dp[cluster1].Metrics().Gatherer(), map[string]string{
		"reporter": "source", "response_code": "404", "response_flags": "NR", "destination_service": "unknown",
	}); got != 1 {
		t.Fatalf("NR reports = %d, want 1", got)
	}
}

func TestGatewayFaultInjection(t *testing.T) {
	t.Parallel()
	// The canary is built from an annotated pod, as the Kubernetes
	// adapter would, so the annotation is tested end to end.
	annotated := rolloutPod("helloworld-7c9d8b6f4-bbbbb", "7c9d8b6f4", "docker.io/istio/examples-helloworld-v2", "10.244.0.6",
		map[string]string{AnnotationErrorRate: "0.3"})
	faulty, problems := EndpointFromPod(cluster2, canaryKey, annotated.Status.PodIP, annotated)
	if len(problems) > 0 || faulty.ErrorRate != 0.3 || faulty.Version != "v2" {
		t.Fatalf("EndpointFromPod() = %+v, %v", faulty, problems)
	}
	w := split(50, 50)
	m := newTestMesh(t, &w, []Endpoint{stableIn(cluster1, "helloworld-aaa-1"), faulty})

	const n = 4000
	for range n {
		code, body := m.get(t, cluster1, "/hello")
		switch code {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			if body != bodyInjectedFault {
				t.Fatalf("503 body = %q, want %q", body, bodyInjectedFault)
			}
		default:
			t.Fatalf("GET /hello = %d %q", code, body)
		}
	}
	g1, g2 := m.dp[cluster1].Metrics().Gatherer(), m.dp[cluster2].Metrics().Gatherer()
	v2 := requests(t, g1, map[string]string{"reporter": "source", "destination_version": "v2"})
	v2Failed := requests(t, g1, map[string]string{"reporter": "source", "destination_version": "v2", "response_code": "503"})
	if v2 == 0 || math.Abs(float64(v2Failed)/float64(v2)-0.3) > 0.03 {
		t.Errorf("v2 failures = %d of %d, want 30 %% ± 3", v2Failed, v2)
	}
	if got := requests(t, g1, map[string]string{"destination_version": "v1", "response_code": "503"}); got != 0 {
		t.Errorf("v1 failures = %d, want 0", got)
	}
	// The app failed, not the proxy, so the flags stay "-", and the
	// serving cluster counts exactly the failures the gateway relayed.
	if got := requests(t, g2, map[string]string{"reporter": "destination", "response_code": "503", "response_flags": "-"}); got != v2Failed {
		t.Errorf("cluster 2 destination 503s = %d, want %d", got, v2Failed)
	}
}

func TestGatewayLatency(t *testing.T) {
	t.Parallel()
	slow := stableIn(cluster1, "slow")
	slow.Latency = 30 * time.Millisecond
	w := split(100, 0)
	m := newTestMesh(t, &w, []Endpoint{slow})
	start := time.Now()
	if code, _ := m.get(t, cluster1, "/hello"); code != http.StatusOK {
		t.Fatalf("GET /hello = %d", code)
	}
	if elapsed := time.Since(start); elapsed < slow.Latency {
		t.Fatalf("answered after %v, before the injected %v", elapsed, slow.Latency)
	}
	h := gather(t, m.dp[cluster1].Metrics().Gatherer(), "istio_request_duration_milliseconds", map[string]string{"reporter": "destination"})
	if len(h) != 1 || h[0].sum < 30 {
		t.Fatalf("destination duration = %+v, want one sample of at least 30 ms", h)
	}
}

func TestGatewayLatencyEndsWithRequest(t *testing.T) {
	t.Parallel()
	stuck := stableIn(cluster1, "stuck")
	stuck.Latency = time.Hour
	w := split(100, 0)
	m := newTestMesh(t, &w, []Endpoint{stuck})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rec := httptest.NewRecorder()
	// With the client gone, the injected hour must not hold the handler;
	// if it did, this test would time out.
	m.dp[cluster1].Gateway().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/hello", nil))
	if got := requests(t, m.dp[cluster1].Metrics().Gatherer(), map[string]string{"response_code": "0", "response_flags": "DC"}); got != 2 {
		t.Fatalf("DC reports = %d, want 2 (source and destination)", got)
	}
}

func TestGatewayPeerUnreachable(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	topo := NewStaticTopology(cluster1)
	topo.SetWeights(split(0, 100))
	topo.SetEndpoints([]Endpoint{canaryIn(cluster2, "c2"), canaryIn("argo-rollout3", "c3")})
	dp, err := NewDataPlane(DataPlaneConfig{
		Cluster: cluster1, Topology: topo, Rand: seeded(5),
		PeerEastWest: map[string]string{cluster2: closed.URL},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Cluster 2's east-west port refuses connections and cluster 3 has no
	// known east-west address: both fail like an unreachable upstream.
	for range 20 {
		rec := httptest.NewRecorder()
		dp.Gateway().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/hello", nil))
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "upstream connect error") {
			t.Fatalf("GET /hello = %d %q, want 503 upstream connect error", rec.Code, rec.Body.String())
		}
	}
	g := dp.Metrics().Gatherer()
	for _, c := range []string{cluster2, "argo-rollout3"} {
		if got := requests(t, g, map[string]string{"destination_cluster": c, "response_code": "503", "response_flags": "UF"}); got == 0 {
			t.Errorf("no UF report for %s", c)
		}
	}
}

func TestEastWest(t *testing.T) {
	t.Parallel()
	w := split(100, 0)
	m := newTestMesh(t, &w, []Endpoint{stableIn(cluster1, "s1"), stableIn(cluster2, "s2")})
	fqdn := stableKey.FQDN()
	tests := []struct {
		name     string
		pod, svc string
		peer     string
		wantCode int
		wantBody string
	}{
		{name: "local pod", pod: "s2", svc: fqdn, peer: encodePeer(GatewayPeer(cluster1)), wantCode: 200, wantBody: "Hello version: v1, instance: s2\n"},
		{name: "unreadable peer metadata is served", pod: "s2", svc: fqdn, peer: "%%%", wantCode: 200, wantBody: "Hello version: v1, instance: s2\n"},
		{name: "pod of another cluster", pod: "s1", svc: fqdn, wantCode: 404, wantBody: "no pod"},
		{name: "unknown pod", pod: "zz", svc: fqdn, wantCode: 404, wantBody: "no pod"},
		{name: "wrong service", pod: "s2", svc: canaryKey.FQDN(), wantCode: 404, wantBody: "no pod"},
		{name: "missing pod", svc: fqdn, wantCode: 400, wantBody: "required"},
		{name: "missing service", pod: "s2", wantCode: 400, wantBody: "required"},
		{name: "short service name", pod: "s2", svc: "helloworld", wantCode: 400, wantBody: "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m.ew[cluster2].URL+"/hello", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.pod != "" {
				req.Header.Set(HeaderDestinationPod, tt.pod)
			}
			if tt.svc != "" {
				req.Header.Set(HeaderDestinationService, tt.svc)
			}
			if tt.peer != "" {
				req.Header.Set(HeaderPeerMetadata, tt.peer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("east-west = %d %q, want %d containing %q", resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	g2 := m.dp[cluster2].Metrics().Gatherer()
	if got := requests(t, g2, map[string]string{"reporter": "destination", "source_cluster": cluster1, "source_workload": "istio-ingressgateway"}); got != 1 {
		t.Errorf("destination reports with known source = %d, want 1", got)
	}
	if got := requests(t, g2, map[string]string{"reporter": "destination", "source_cluster": "unknown", "source_workload": "unknown"}); got != 1 {
		t.Errorf("destination reports with unknown source = %d, want 1", got)
	}
}

func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	// The label set is Istio's, in full; a rename would silently break
	// every analysis query, so it is spelled out here once more.
	want := []string{
		"reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app",
		"source_version", "source_cluster", "destination_workload", "destination_workload_namespace",
		"destination_principal", "destination_app", "destination_version", "destination_service",
		"destination_service_name", "destination_service_namespace", "destination_cluster", "request_protocol",
		"response_code", "response_flags", "grpc_response_status", "connection_security_policy",
		"source_canonical_service", "destination_canonical_service", "source_canonical_revision",
		"destination_canonical_revision",
	}
	if !slices.Equal(metricLabels, want) || len(Record{}.labelValues()) != len(want) {
		t.Fatalf("metric labels = %v, want %v", metricLabels, want)
	}
	m := NewMetrics()
	m.Record(Record{Reporter: ReporterSource, Source: GatewayPeer(cluster1), Service: canaryKey, Code: 200, Duration: 3 * time.Millisecond})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rec.Body.String()
	for _, part := range []string{
		"# TYPE istio_requests_total counter",
		"# TYPE istio_request_duration_milliseconds histogram",
		`destination_service="helloworld-canary.helloworld.svc.cluster.local"`,
		`le="0.5"`, `le="3.6e+06"`,
	} {
		if !strings.Contains(text, part) {
			t.Errorf("/metrics lacks %q", part)
		}
	}
	h := gather(t, m.Gatherer(), "istio_request_duration_milliseconds", nil)
	if len(h) != 1 || h[0].sum != 3 {
		t.Fatalf("histogram = %+v, want one sample of 3 ms", h)
	}
	// A second set of metrics shares nothing with the first.
	if got := requests(t, NewMetrics().Gatherer(), nil); got != 0 {
		t.Fatalf("fresh metrics hold %d requests", got)
	}
}

func TestNewDataPlaneValidates(t *testing.T) {
	t.Parallel()
	topo := NewStaticTopology(cluster1)
	tests := []struct {
		name string
		cfg  DataPlaneConfig
	}{
		{"no cluster", DataPlaneConfig{Topology: topo}},
		{"no topology", DataPlaneConfig{Cluster: cluster1}},
		{"local cluster as peer", DataPlaneConfig{Cluster: cluster1, Topology: topo, PeerEastWest: map[string]string{cluster1: "http://127.0.0.1:1"}}},
		{"not a URL", DataPlaneConfig{Cluster: cluster1, Topology: topo, PeerEastWest: map[string]string{cluster2: "://"}}},
		{"no scheme", DataPlaneConfig{Cluster: cluster1, Topology: topo, PeerEastWest: map[string]string{cluster2: "127.0.0.1:1"}}},
		{"query", DataPlaneConfig{Cluster: cluster1, Topology: topo, PeerEastWest: map[string]string{cluster2: "http://127.0.0.1:1/?a=b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewDataPlane(tt.cfg); err == nil {
				t.Fatal("NewDataPlane() accepted an invalid config")
			}
		})
	}
}
