package meshsim

import (
	"errors"
	"math/rand/v2"
	"sync"
)

// ErrNoHealthyUpstream means the destination chosen by weight has no Ready
// endpoint in any cluster. Envoy answers such a request with 503 and the
// body "no healthy upstream", flagging it UH; it does not fall back to
// another destination of the route, and neither does Pick.
var ErrNoHealthyUpstream = errors.New("no healthy upstream")

// ErrNoRoute means there is no usable route at all, for instance because
// every weight is zero. Envoy answers 404 and flags it NR.
var ErrNoRoute = errors.New("no route")

// Choice is the outcome of one routing decision.
type Choice struct {
	// Destination is the route destination chosen by weight. It is set
	// even when Pick returns ErrNoHealthyUpstream, because Istio still
	// labels that failure with the service it was meant for.
	Destination WeightedService
	// Endpoint is the backend chosen among the destination's endpoints.
	Endpoint Endpoint
}

// Pick chooses a destination of w with probability proportional to its
// weight, then one of that service's endpoints uniformly. endpoints holds
// the Ready endpoints of each service across all clusters, because Istio
// multi-primary load-balances over every cluster's endpoints alike when no
// locality load balancing is configured; uniform choice is what Envoy's
// default least-request balancer amounts to when all backends are equally
// idle, as fake pods are. rng is not safe for concurrent use, so callers
// that share one must serialise calls (see [LockedRand]).
func Pick(rng *rand.Rand, w Weights, endpoints map[ServiceKey][]Endpoint) (Choice, error) {
	total := w.Total()
	if total <= 0 {
		return Choice{}, ErrNoRoute
	}
	n := rng.Int64N(total)
	var chosen WeightedService
	for _, d := range w.Destinations {
		if n < int64(d.Weight) {
			chosen = d
			break
		}
		n -= int64(d.Weight)
	}
	eps := endpoints[chosen.Service]
	if len(eps) == 0 {
		return Choice{Destination: chosen}, ErrNoHealthyUpstream
	}
	return Choice{Destination: chosen, Endpoint: eps[rng.IntN(len(eps))]}, nil
}

// LockedRand shares one *rand.Rand between concurrent requests. Keeping a
// single seeded source, rather than one per goroutine, is what makes a
// sequence of requests reproducible from a seed.
type LockedRand struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// NewLockedRand wraps rng; a nil rng is replaced by a randomly seeded one.
func NewLockedRand(rng *rand.Rand) *LockedRand {
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &LockedRand{rng: rng}
}

// Pick calls [Pick] under the lock.
func (l *LockedRand) Pick(w Weights, endpoints map[ServiceKey][]Endpoint) (Choice, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Pick(l.rng, w, endpoints)
}

// Fails reports whether a request to an endpoint with the given error rate
// is to fail. It draws from the source only for a positive rate, so that
// adding a healthy pod does not shift the sequence of routing decisions.
func (l *LockedRand) Fails(errorRate float64) bool {
	if errorRate <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.Float64() < errorRate
}
