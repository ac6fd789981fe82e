package status

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"lockstep.dev/lockstep/internal/analysis"
)

// DefaultThanosQuery is the success rate of the requests a cluster's pods
// served (Istio's destination side, as meshsim and Istio export it) over
// the last minute; {{cluster}} becomes the cluster's destination_cluster
// value.
const DefaultThanosQuery = `sum(rate(istio_requests_total{reporter="destination",destination_cluster="{{cluster}}",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{reporter="destination",destination_cluster="{{cluster}}"}[1m]))`

// rateSource reads each cluster's success rate from Thanos for the live
// view's sparklines.
type rateSource struct {
	q        analysis.Querier
	template string
}

// Rates queries every cluster at once. A cluster without a trustworthy
// value is left out of the map, so it gets no sample rather than a false
// one.
func (r *rateSource) Rates(ctx context.Context, clusters []string, now time.Time) map[string]float64 {
	out := map[string]float64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := strings.ReplaceAll(r.template, "{{cluster}}", c)
			vec, warnings, err := r.q.Query(ctx, q, now)
			if v, err := RateFrom(vec, warnings, err); err == nil {
				mu.Lock()
				out[c] = v
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// RateFrom accepts a query answer as a success rate only when it is one
// finite sample in [0, 1] with no warning: Thanos answers are untrusted,
// and a partial, empty or NaN answer must not draw as a rate.
func RateFrom(vec model.Vector, warnings []string, err error) (float64, error) {
	switch {
	case err != nil:
		return 0, err
	case len(warnings) > 0:
		return 0, fmt.Errorf("warnings: %s", strings.Join(warnings, "; "))
	case len(vec) != 1:
		return 0, fmt.Errorf("%d series where one was expected", len(vec))
	}
	v := float64(vec[0].Value)
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1 {
		return 0, fmt.Errorf("value %v is not a success rate", v)
	}
	return v, nil
}
