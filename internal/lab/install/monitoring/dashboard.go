package monitoring

import (
	"encoding/json"
	"fmt"
)

// The Lockstep dashboard's queries read the same series as the lab's
// analyses (gitops/argo-resources/rollout/strategy/rollout.yaml and
// gitops/lockstep/fleetrollout/fleetrollout.yaml): istio_requests_total as
// the calling proxies report it (reporter="source"), selected by the
// helloworld Services' FQDNs; `cluster` is the workload Prometheus'
// external label, destination_cluster and destination_version are Istio's.
const (
	appNamespace = "helloworld"
	// appServices matches the stable and the canary Service.
	appServices    = `helloworld(-canary)?.` + appNamespace + `.svc.cluster.local`
	canaryService  = `helloworld-canary.` + appNamespace + `.svc.cluster.local`
	rateWindow     = "1m"
	successMatcher = `,response_code!~"5.*"`
)

func requests(service, extra string) string {
	op := "="
	if service == appServices {
		op = "=~"
	}
	return `istio_requests_total{reporter="source",destination_service` + op + `"` + service + `"` + extra + `}`
}

// successRate is the share of non-5xx requests to service, summed by the
// given labels (none: over the whole fleet).
func successRate(service, by string) string {
	agg := "sum"
	if by != "" {
		agg = "sum by (" + by + ")"
	}
	return fmt.Sprintf("%s (rate(%s[%s])) / %s (rate(%s[%s]))",
		agg, requests(service, successMatcher), rateWindow, agg, requests(service, ""), rateWindow)
}

func requestRate(by string) string {
	return fmt.Sprintf("sum by (%s) (rate(%s[%s]))", by, requests(appServices, ""), rateWindow)
}

// A small model of Grafana's dashboard JSON (schemaVersion 39): only the
// fields the Lockstep dashboard sets.
type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	Description   string         `json:"description,omitempty"`
	Tags          []string       `json:"tags"`
	Editable      bool           `json:"editable"`
	SchemaVersion int            `json:"schemaVersion"`
	Refresh       string         `json:"refresh"`
	Time          timeRange      `json:"time"`
	Timezone      string         `json:"timezone"`
	Templating    map[string]any `json:"templating"`
	Panels        []panel        `json:"panels"`
}

type timeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description,omitempty"`
	GridPos     gridPos     `json:"gridPos"`
	Datasource  datasource  `json:"datasource"`
	Targets     []target    `json:"targets"`
	FieldConfig fieldConfig `json:"fieldConfig"`
	Options     any         `json:"options,omitempty"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID        string     `json:"refId"`
	Datasource   datasource `json:"datasource"`
	Expr         string     `json:"expr"`
	LegendFormat string     `json:"legendFormat,omitempty"`
	Instant      bool       `json:"instant,omitempty"`
	Range        bool       `json:"range,omitempty"`
}

type fieldConfig struct {
	Defaults  fieldDefaults `json:"defaults"`
	Overrides []any         `json:"overrides"`
}

type fieldDefaults struct {
	Unit     string   `json:"unit"`
	Min      *float64 `json:"min,omitempty"`
	Max      *float64 `json:"max,omitempty"`
	Decimals *int     `json:"decimals,omitempty"`
}

var thanosDS = datasource{Type: "prometheus", UID: DatasourceUID}

// lockstepPanel is one query panel; the success-rate panels show a ratio
// from 0 to 1 as a percentage.
func lockstepPanel(id int, typ, title, desc, expr, legend string, pos gridPos, ratio bool) panel {
	d := fieldDefaults{Unit: "reqps"}
	if ratio {
		zero, one, two := 0.0, 1.0, 2
		d = fieldDefaults{Unit: "percentunit", Min: &zero, Max: &one, Decimals: &two}
	}
	t := target{RefID: "A", Datasource: thanosDS, Expr: expr, LegendFormat: legend, Range: true}
	if typ == "stat" {
		t.Range, t.Instant = false, true
	}
	return panel{ID: id, Type: typ, Title: title, Description: desc, GridPos: pos, Datasource: thanosDS,
		Targets: []target{t}, FieldConfig: fieldConfig{Defaults: d, Overrides: []any{}}}
}

// lockstepDashboard is the Lockstep dashboard: helloworld's success rate
// for the whole fleet, per reporting cluster, per serving cluster and for
// the canary alone (the FleetRollout's metric), and its request rate per
// cluster and per version.
func lockstepDashboard() grafanaDashboard {
	return grafanaDashboard{
		UID:           LockstepDashboardUID,
		Title:         "Lockstep fleet canary",
		Description:   "helloworld across the workload clusters, from Thanos Query on the hub",
		Tags:          []string{"lockstep", "istio"},
		SchemaVersion: 39,
		Refresh:       "10s",
		Time:          timeRange{From: "now-30m", To: "now"},
		Timezone:      "browser",
		Templating:    map[string]any{"list": []any{}},
		Panels: []panel{
			lockstepPanel(1, "stat", "Global success rate",
				"Non-5xx share of helloworld's requests over every workload cluster.",
				successRate(appServices, ""), "fleet", gridPos{H: 8, W: 6, X: 0, Y: 0}, true),
			lockstepPanel(2, "timeseries", "Success rate per cluster",
				"Non-5xx share of helloworld's requests, by the reporting workload's Prometheus (external label cluster).",
				successRate(appServices, ClusterLabel), "{{cluster}}", gridPos{H: 8, W: 18, X: 6, Y: 0}, true),
			lockstepPanel(3, "timeseries", "Canary success rate per cluster",
				"The FleetRollout's analysis metric: non-5xx share of the canary Service's requests (threshold 0.90).",
				successRate(canaryService, ClusterLabel), "{{cluster}}", gridPos{H: 8, W: 12, X: 0, Y: 8}, true),
			lockstepPanel(4, "timeseries", "Success rate per serving cluster",
				"Non-5xx share of helloworld's requests by the cluster of the pod that served them (destination_cluster).",
				successRate(appServices, "destination_cluster"), "{{destination_cluster}}", gridPos{H: 8, W: 12, X: 12, Y: 8}, true),
			lockstepPanel(5, "timeseries", "Request rate per cluster",
				"helloworld's requests per second, by the reporting workload.",
				requestRate(ClusterLabel), "{{cluster}}", gridPos{H: 8, W: 12, X: 0, Y: 16}, false),
			lockstepPanel(6, "timeseries", "Request rate per version",
				"helloworld's requests per second, by the version that served them (destination_version).",
				requestRate("destination_version"), "{{destination_version}}", gridPos{H: 8, W: 12, X: 12, Y: 16}, false),
		},
	}
}

func lockstepDashboardJSON() ([]byte, error) {
	return json.MarshalIndent(lockstepDashboard(), "", "  ")
}
