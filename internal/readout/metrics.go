package readout

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"lockstep.dev/lockstep/internal/analysis"
)

// The default queries read what a cluster's own pods served (Istio's
// destination side, as Istio and meshsim report it) over the last minute;
// {{cluster}} becomes the member's serving label value.
const (
	DefaultRateQuery    = `sum(rate(istio_requests_total{reporter="destination",destination_cluster="{{cluster}}",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{reporter="destination",destination_cluster="{{cluster}}"}[1m]))`
	DefaultLatencyQuery = `histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_cluster="{{cluster}}"}[1m])))`
)

// Metrics samples every cluster's success rate and latency from Thanos
// Query.
type Metrics struct {
	Querier analysis.Querier
	// URL is Thanos Query's address, for messages.
	URL          string
	RateQuery    string
	LatencyQuery string
}

// Sample is one reading of every cluster's metrics, by member name.
type Sample struct {
	Rates   map[string]float64
	Latency map[string]float64
	// Err is set when Thanos could not be asked at all (down, refused,
	// timed out); a cluster without a usable value is only left out.
	Err error
}

// Read queries every cluster at once. labels maps member names to their
// serving label values.
func (m *Metrics) Read(ctx context.Context, labels map[string]string, now time.Time) Sample {
	s := Sample{Rates: map[string]float64{}, Latency: map[string]float64{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	var asked int
	for member, label := range labels {
		for _, q := range []struct {
			template string
			into     map[string]float64
			max      float64
		}{{m.RateQuery, s.Rates, 1}, {m.LatencyQuery, s.Latency, math.Inf(1)}} {
			if q.template == "" {
				continue
			}
			asked++
			wg.Add(1)
			go func() {
				defer wg.Done()
				vec, warnings, err := m.Querier.Query(ctx, clusterQuery(q.template, label), now)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				if v, ok := OneValue(vec, warnings, q.max); ok {
					q.into[member] = v
				}
			}()
		}
	}
	wg.Wait()
	// One refused query is noise; all of them mean Thanos is not there.
	if asked > 0 && len(errs) == asked {
		s.Err = fmt.Errorf("thanos query %s: %v", m.URL, errs[0])
	}
	return s
}

// RangeQuerier is a Querier that can also read a range (Thanos Query and
// Prometheus can); with one, a page's plots start with the recent past.
type RangeQuerier interface {
	QueryRange(ctx context.Context, promql string, start, end time.Time, step time.Duration) (model.Matrix, []string, error)
}

// History reads every cluster's success rate and latency from start to end
// every step, as plot points (without weights: those were not recorded).
// Untrusted values are left out as in Read; when the querier cannot read
// ranges, or Thanos fails, there is no history.
func (m *Metrics) History(ctx context.Context, labels map[string]string, start, end time.Time, step time.Duration) []Point {
	rq, ok := m.Querier.(RangeQuerier)
	if !ok || !end.After(start) || step <= 0 {
		return nil
	}
	byTime := map[model.Time]*Point{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for member, label := range labels {
		for _, q := range []struct {
			template string
			latency  bool
			max      float64
		}{{m.RateQuery, false, 1}, {m.LatencyQuery, true, math.Inf(1)}} {
			if q.template == "" {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				mat, warnings, err := rq.QueryRange(ctx, clusterQuery(q.template, label), start, end, step)
				if err != nil || len(warnings) > 0 || len(mat) != 1 {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, sp := range mat[0].Values {
					v := float64(sp.Value)
					if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > q.max {
						continue
					}
					p := byTime[sp.Timestamp]
					if p == nil {
						p = &Point{T: float64(sp.Timestamp) / 1000, Weight: map[string]int32{}, Rate: map[string]float64{}, Latency: map[string]float64{}}
						byTime[sp.Timestamp] = p
					}
					if q.latency {
						p.Latency[member] = v
					} else {
						p.Rate[member] = v
					}
				}
			}()
		}
	}
	wg.Wait()
	out := make([]Point, 0, len(byTime))
	for _, p := range byTime {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].T < out[j].T })
	return out
}

// OneValue accepts an answer only when it is one finite sample in
// [0, max] with no warning: Thanos answers are untrusted, and a partial,
// empty or NaN answer must not be drawn as a value.
func OneValue(vec model.Vector, warnings []string, max float64) (float64, bool) {
	if len(warnings) > 0 || len(vec) != 1 {
		return 0, false
	}
	v := float64(vec[0].Value)
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > max {
		return 0, false
	}
	return v, true
}

// promString escapes a value for a double-quoted PromQL string.
var promString = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// clusterQuery puts a cluster's label value in place of {{cluster}},
// escaped: the value comes from a FleetRollout or a cluster Secret and
// must not add matchers or operators to the query.
func clusterQuery(template, label string) string {
	return strings.ReplaceAll(template, "{{cluster}}", promString.Replace(label))
}

// Point is one moment of a fleet's plots: each cluster's canary weight,
// and its success rate and latency when Thanos gave them.
type Point struct {
	T       float64            `json:"t"`
	Weight  map[string]int32   `json:"w"`
	Rate    map[string]float64 `json:"r,omitempty"`
	Latency map[string]float64 `json:"l,omitempty"`
}
