package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// PrometheusTargetsDir is the file_sd directory of a workload's Prometheus:
// components that export metrics in that cluster (meshsim, the coordinator)
// drop a JSON target file there.
// ScrapeInterval is how often the local fleet's Prometheus scrapes.
const ScrapeInterval = 5 * time.Second

func PrometheusTargetsDir(fleetDir, cluster string) string {
	return filepath.Join(fleetDir, "data", cluster, "prometheus-targets")
}

func (f *fleet) prometheusConfig(i int, w string) (string, error) {
	targets := PrometheusTargetsDir(f.opt.Dir, w)
	if err := os.MkdirAll(targets, 0o755); err != nil {
		return "", err
	}
	// Scrape and evaluate every 5 s so a canary step of tens of seconds
	// has enough samples for irate/rate over the guide's 40 s window.
	cfg := fmt.Sprintf(`global:
  scrape_interval: %s
  evaluation_interval: 5s
  external_labels:
    cluster: %s
    %s: prometheus-0
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets: ['%s']
- job_name: argo-rollouts
  static_configs:
  - targets: ['%s']
- job_name: lockstep
  file_sd_configs:
  - files: ['%s/*.json']
    refresh_interval: 5s
`, ScrapeInterval, PrometheusClusterLabel(i), replicaLabel, addr(f.p.prom[w]),
		addr(f.hostPort(f.p.rolloutsMetrics[w], f.p.rolloutsMetricsHost[w])), targets)
	path := filepath.Join(f.data(w, "prometheus"), "prometheus.yml")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

func (f *fleet) bucketConfig() (string, error) {
	path := filepath.Join(f.opt.Dir, "bucket.yml")
	cfg := fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", f.data("bucket"))
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

func (f *fleet) startMonitoring(ctx context.Context) error {
	bucket, err := f.bucketConfig()
	if err != nil {
		return err
	}
	thanos := f.bin("thanos", "thanos")
	var specs []ProcSpec
	for i, w := range f.workloads {
		cfg, err := f.prometheusConfig(i+1, w)
		if err != nil {
			return err
		}
		tsdb := f.data(w, "prometheus", "tsdb")
		promURL := "http://" + addr(f.p.prom[w])
		specs = append(specs, ProcSpec{
			Name: w + "/prometheus", Cluster: w, Path: "prometheus", Addr: promURL,
			Ports: map[string]int{"http": f.p.prom[w]},
			Args: []string{"--config.file=" + cfg, "--storage.tsdb.path=" + tsdb,
				"--web.listen-address=" + addr(f.p.prom[w]), "--web.enable-lifecycle",
				// Equal block durations let the sidecar upload blocks.
				"--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h",
				"--storage.tsdb.retention.time=12h", "--log.level=warn"},
			Health: httpOK(promURL + "/-/ready"),
		})
		specs = append(specs, ProcSpec{
			Name: w + "/thanos-sidecar", Cluster: w, Path: thanos, Addr: addr(f.p.sidecarGRPC[w]),
			Ports: map[string]int{"grpc": f.p.sidecarGRPC[w], "http": f.p.sidecarHTTP[w]},
			Args: []string{"sidecar", "--prometheus.url=" + promURL, "--tsdb.path=" + tsdb,
				"--grpc-address=" + addr(f.p.sidecarGRPC[w]), "--http-address=" + addr(f.p.sidecarHTTP[w]),
				"--objstore.config-file=" + bucket, "--log.level=warn"},
			Health: httpOK("http://" + addr(f.p.sidecarHTTP[w]) + "/-/ready"),
		})
	}
	endpoints := filepath.Join(f.opt.Dir, "thanos-endpoints.yml")
	var eps strings.Builder
	eps.WriteString("endpoints:\n")
	// strict: an endpoint that is down stays in Query's set, so a query
	// without partial responses fails instead of quietly answering
	// without that cluster (a fleet verdict on part of the fleet).
	for _, w := range f.workloads {
		fmt.Fprintf(&eps, "- address: %s\n  strict: true\n", addr(f.p.sidecarGRPC[w]))
	}
	fmt.Fprintf(&eps, "- address: %s\n  strict: true\n", addr(f.p.storeGRPC))
	if err := os.WriteFile(endpoints, []byte(eps.String()), 0o644); err != nil {
		return err
	}
	queryURL := "http://" + addr(f.p.queryHTTP)
	specs = append(specs,
		ProcSpec{
			Name: HubName + "/thanos-store", Cluster: HubName, Path: thanos, Addr: addr(f.p.storeGRPC),
			Ports: map[string]int{"grpc": f.p.storeGRPC, "http": f.p.storeHTTP},
			Args: []string{"store", "--data-dir=" + f.data(HubName, "thanos-store"), "--objstore.config-file=" + bucket,
				"--grpc-address=" + addr(f.p.storeGRPC), "--http-address=" + addr(f.p.storeHTTP), "--log.level=warn"},
			Health: httpOK("http://" + addr(f.p.storeHTTP) + "/-/ready"),
		},
		ProcSpec{
			Name: HubName + "/thanos-compactor", Cluster: HubName, Path: thanos, Addr: "http://" + addr(f.p.compactHTTP),
			Ports: map[string]int{"http": f.p.compactHTTP},
			Args: []string{"compact", "--wait", "--data-dir=" + f.data(HubName, "thanos-compact"), "--objstore.config-file=" + bucket,
				"--http-address=" + addr(f.p.compactHTTP), "--log.level=warn"},
			Health: httpOK("http://" + addr(f.p.compactHTTP) + "/-/ready"),
		},
		ProcSpec{
			Name: HubName + "/thanos-query", Cluster: HubName, Path: thanos, Addr: queryURL,
			Ports: map[string]int{"http": f.p.queryHTTP, "grpc": f.p.queryGRPC},
			Args: []string{"query", "--http-address=" + addr(f.p.queryHTTP), "--grpc-address=" + addr(f.p.queryGRPC),
				"--endpoint.sd-config-file=" + endpoints, "--endpoint.sd-config-reload-interval=5s",
				"--query.replica-label=" + replicaLabel,
				// A missing cluster must fail a query, not become a warning.
				"--no-query.partial-response", "--log.level=warn"},
			Health: httpOK(queryURL + "/-/ready"),
		})
	if err := f.startAll(ctx, specs...); err != nil {
		return err
	}
	return f.s.Update(func(st *State) {
		st.URLs["thanos-query"] = queryURL
		for _, w := range f.workloads {
			st.URLs["prometheus-"+w] = "http://" + addr(f.p.prom[w])
		}
	})
}

// ThanosStore is one entry of Thanos Query's /api/v1/stores.
type ThanosStore struct {
	Name      string              `json:"name"`
	LastError *string             `json:"lastError"`
	LabelSets []map[string]string `json:"labelSets"`
}

// ThanosStores lists the stores Thanos Query sees, by type.
func ThanosStores(ctx context.Context, queryURL string) (map[string][]ThanosStore, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, queryURL+"/api/v1/stores", nil)
	if err != nil {
		return nil, err
	}
	resp, err := plainHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string                   `json:"status"`
		Data   map[string][]ThanosStore `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("thanos stores: %w", err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("thanos stores: status %q", r.Status)
	}
	return r.Data, nil
}

// SidecarClusters returns the sorted `cluster` labels of healthy sidecars.
func SidecarClusters(stores map[string][]ThanosStore) []string {
	var out []string
	for _, s := range stores["sidecar"] {
		if s.LastError != nil && *s.LastError != "" {
			continue
		}
		for _, ls := range s.LabelSets {
			if c := ls["cluster"]; c != "" {
				out = append(out, c)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (f *fleet) waitThanos(ctx context.Context) error {
	want := make([]string, len(f.workloads))
	for i := range f.workloads {
		want[i] = PrometheusClusterLabel(i + 1)
	}
	sort.Strings(want)
	deadline := time.Now().Add(startupTimeout)
	var last string
	for time.Now().Before(deadline) {
		stores, err := ThanosStores(ctx, "http://"+addr(f.p.queryHTTP))
		if err == nil {
			got := SidecarClusters(stores)
			if strings.Join(got, ",") == strings.Join(want, ",") {
				return nil
			}
			last = fmt.Sprintf("sidecars with cluster labels %v, want %v", got, want)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("thanos query: %s", last)
}
