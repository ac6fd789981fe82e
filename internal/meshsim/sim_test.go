package meshsim

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

// runSim starts s and returns a function that stops it and returns Run's
// result. It fails the test if the ports are not bound in time.
func runSim(t *testing.T, s *Sim) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run() returned before binding: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("Run() did not bind its ports")
	}
	var stopped bool
	var result error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestSimTwoClusters(t *testing.T) {
	t.Parallel()
	logs := newLogSink()
	logger := slog.New(slog.NewTextHandler(logs, nil))
	eps := []Endpoint{stableIn(cluster1, "helloworld-aaa-1"), canaryIn(cluster2, "helloworld-bbb-1")}
	newTopo := func(cluster string) *StaticTopology {
		topo := NewStaticTopology(cluster)
		topo.SetWeights(split(0, 100))
		topo.SetEndpoints(eps)
		return topo
	}

	// Cluster 2 starts first so that cluster 1 can be given its bound
	// east-west address; only cluster 1's gateway is used here.
	simB, err := New(Config{Cluster: cluster2, Topology: newTopo(cluster2), IngressAddr: "127.0.0.1:0", EastWestAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Logger: logger, Rand: seeded(2)})
	if err != nil {
		t.Fatal(err)
	}
	if simB.IngressAddr() != "" {
		t.Fatalf("address known before Run: %q", simB.IngressAddr())
	}
	stopB := runSim(t, simB)
	simA, err := New(Config{
		Cluster: cluster1, Topology: newTopo(cluster1), Logger: logger, Rand: seeded(1),
		PeerEastWest: map[string]string{cluster2: "http://" + simB.EastWestAddr()},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopA := runSim(t, simA)
	logs.waitFor(t, "meshsim listening", "cluster="+cluster1)

	for _, addr := range []string{simA.IngressAddr(), simA.EastWestAddr(), simA.MetricsAddr()} {
		if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
			t.Fatalf("bound %q, want 127.0.0.1", addr)
		}
	}
	const n = 5
	for range n {
		code, body := httpGet(t, "http://"+simA.IngressAddr()+"/hello")
		if code != http.StatusOK || body != "Hello version: v2, instance: helloworld-bbb-1\n" {
			t.Fatalf("GET /hello = %d %q", code, body)
		}
	}

	if got := requests(t, simA.Metrics().Gatherer(), map[string]string{"reporter": "source", "source_cluster": cluster1, "destination_cluster": cluster2}); got != n {
		t.Errorf("cluster 1 source reports = %d, want %d", got, n)
	}
	if got := requests(t, simB.Metrics().Gatherer(), map[string]string{"reporter": "destination", "source_cluster": cluster1, "destination_cluster": cluster2}); got != n {
		t.Errorf("cluster 2 destination reports = %d, want %d", got, n)
	}
	// What Prometheus would scrape.
	code, text := httpGet(t, "http://"+simA.MetricsAddr()+"/metrics")
	if code != http.StatusOK || !strings.Contains(text, `reporter="source"`) || !strings.Contains(text, `destination_cluster="argo-rollout2"`) || strings.Contains(text, `reporter="destination"`) {
		t.Errorf("cluster 1 /metrics = %d:\n%s", code, text)
	}
	code, text = httpGet(t, "http://"+simB.MetricsAddr()+"/metrics")
	if code != http.StatusOK || !strings.Contains(text, `reporter="destination"`) || strings.Contains(text, `reporter="source"`) {
		t.Errorf("cluster 2 /metrics = %d:\n%s", code, text)
	}
	for _, addr := range []string{simA.MetricsAddr(), simA.IngressAddr(), simA.EastWestAddr()} {
		if code, body := httpGet(t, "http://"+addr+"/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET %s/healthz = %d %q", addr, code, body)
		}
	}

	// A clean shutdown returns nil and frees the ports.
	addr := simA.IngressAddr()
	if err := stopA(); err != nil {
		t.Fatalf("Run() = %v after cancel, want nil", err)
	}
	if err := stopB(); err != nil {
		t.Fatalf("Run() = %v after cancel, want nil", err)
	}
	if conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", addr); err == nil {
		_ = conn.Close()
		t.Fatalf("%s still accepts connections after Run returned", addr)
	}
	if err := simA.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run() = %v, want an error", err)
	}
}

func TestSimPortInUse(t *testing.T) {
	t.Parallel()
	var lc net.ListenConfig
	busy, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Close() }()
	s, err := New(Config{Cluster: cluster1, Topology: NewStaticTopology(cluster1), MetricsAddr: busy.Addr().String(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Run must fail at once rather than serve without metrics.
	if err := s.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "metrics server") {
		t.Fatalf("Run() = %v, want a metrics server bind error", err)
	}
	select {
	case <-s.Ready():
		t.Fatal("Ready closed although a port could not be bound")
	default:
	}
}

func TestLoopbackAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "127.0.0.1:0", true},
		{":0", "127.0.0.1:0", true},
		{":8080", "127.0.0.1:8080", true},
		{"localhost:15443", "127.0.0.1:15443", true},
		{"127.0.0.1:0", "127.0.0.1:0", true},
		{"127.0.0.2:80", "127.0.0.2:80", true},
		{"[::1]:80", "[::1]:80", true},
		{"0.0.0.0:80", "", false},
		{"10.0.0.1:80", "", false},
		{"example.com:80", "", false},
		{"127.0.0.1", "", false},
	}
	for _, tt := range tests {
		got, err := LoopbackAddr(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("LoopbackAddr(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	unreachable := &rest.Config{Host: "https://127.0.0.1:1"}
	topo := NewStaticTopology(cluster1)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no cluster", Config{Topology: topo}, "cluster is required"},
		{"no local config", Config{Cluster: cluster1}, "rest config for the local cluster"},
		{"public ingress", Config{Cluster: cluster1, Topology: topo, IngressAddr: "0.0.0.0:80"}, "loopback"},
		{"east-west for a stranger", Config{Cluster: cluster1, Local: unreachable, PeerEastWest: map[string]string{cluster2: "http://127.0.0.1:1"}}, "not a peer"},
		{"peer without config", Config{Cluster: cluster1, Local: unreachable, Peers: map[string]*rest.Config{cluster2: nil}}, "no rest config"},
		{"peer named like the local cluster", Config{Cluster: cluster1, Local: unreachable, Peers: map[string]*rest.Config{cluster1: unreachable}}, "invalid peer"},
		{"bad virtual service", Config{Cluster: cluster1, Local: unreachable, VirtualService: "a/b/c"}, "NAME or NAMESPACE/NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() = %v, want error containing %q", err, tt.want)
			}
		})
	}
	// Against API servers that do not exist, New still succeeds: it only
	// builds clients and connects nowhere.
	if _, err := New(Config{Cluster: cluster1, Local: unreachable, Peers: map[string]*rest.Config{cluster2: unreachable},
		PeerEastWest: map[string]string{cluster2: "http://127.0.0.1:1"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatalf("New() = %v", err)
	}
}

// TestSimOverKubeTopology wires the Kubernetes adapter, fed by fake
// clients, into a running simulation: what the informers see is what the
// gateway answers with.
func TestSimOverKubeTopology(t *testing.T) {
	t.Parallel()
	stable := rolloutPod("helloworld-6d8f9c7b5-aaaaa", "6d8f9c7b5", "docker.io/istio/examples-helloworld-v1", "10.244.0.5", nil)
	local := fake.NewClientset(stable, endpointSlice("helloworld-x1", "helloworld", map[*corev1.Pod]bool{stable: true}))
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	topo, err := NewKubeTopology(KubeTopologyConfig{Cluster: cluster1, Local: local, LocalDynamic: newDynamic(virtualService(100, 0)), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Cluster: cluster1, Topology: topo, Logger: discard, Rand: seeded(1)})
	if err != nil {
		t.Fatal(err)
	}
	runSim(t, s)
	waitUntil(t, topo, "the local cluster is seen", func() bool {
		_, err := topo.Weights()
		return err == nil && len(topo.Endpoints(stableKey)) == 1
	})
	code, body := httpGet(t, "http://"+s.IngressAddr()+"/hello")
	if code != http.StatusOK || body != "Hello version: v1, instance: "+stable.Name+"\n" {
		t.Fatalf("GET /hello = %d %q", code, body)
	}
	if got := requests(t, s.Metrics().Gatherer(), map[string]string{
		"reporter": "source", "destination_workload": "helloworld", "destination_version": "v1", "destination_cluster": cluster1,
	}); got != 1 {
		t.Fatalf("source reports = %d, want 1", got)
	}
}

func TestServerRun(t *testing.T) {
	t.Parallel()
	srv, err := NewServer("test", ":0", http.HandlerFunc(healthz), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	if code, body := httpGet(t, "http://"+srv.Addr()+"/"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET = %d %q", code, body)
	}
	if err := srv.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Run() = %v, want already running", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v after cancel", err)
	}
	if _, err := NewServer("test", "127.0.0.1:0", nil, nil); err == nil {
		t.Fatal("NewServer() accepted a nil handler")
	}
}
