package meshsim

import (
	"errors"
	"slices"
	"sync"
)

// Topology is what the data plane of one cluster knows about the mesh: the
// routing weights of the local VirtualService and the Ready endpoints of
// every service in every cluster. Implementations must be safe for
// concurrent use; they are asked on every request.
type Topology interface {
	// Weights returns the current traffic split, or an error when there is
	// no usable route.
	Weights() (Weights, error)
	// Endpoints returns the Ready endpoints of svc across all clusters, in
	// the order of SortEndpoints.
	Endpoints(svc ServiceKey) []Endpoint
	// LocalEndpoint returns the local-cluster pod named pod as an endpoint
	// of svc, whether or not it is Ready: a request already routed to a
	// pod that is shutting down is still answered by it.
	LocalEndpoint(svc ServiceKey, pod string) (Endpoint, bool)
}

// StaticTopology is an in-memory Topology whose contents the caller sets.
// Tests use it to run the data plane without Kubernetes; several of them,
// one per cluster, can share the same endpoint list.
type StaticTopology struct {
	cluster string

	mu         sync.RWMutex
	weights    Weights
	weightsErr error
	endpoints  []Endpoint
}

// NewStaticTopology returns an empty topology as seen from cluster. Until
// SetWeights is called it has no route.
func NewStaticTopology(cluster string) *StaticTopology {
	return &StaticTopology{cluster: cluster, weightsErr: errors.New("no weights set")}
}

// SetWeights replaces the traffic split.
func (s *StaticTopology) SetWeights(w Weights) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.weights, s.weightsErr = w, nil
}

// SetEndpoints replaces the endpoints of all clusters.
func (s *StaticTopology) SetEndpoints(eps []Endpoint) {
	eps = slices.Clone(eps)
	SortEndpoints(eps)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = eps
}

// Weights implements Topology.
func (s *StaticTopology) Weights() (Weights, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.weights, s.weightsErr
}

// Endpoints implements Topology.
func (s *StaticTopology) Endpoints(svc ServiceKey) []Endpoint {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Endpoint
	for _, e := range s.endpoints {
		if e.Key() == svc {
			out = append(out, e)
		}
	}
	return out
}

// LocalEndpoint implements Topology.
func (s *StaticTopology) LocalEndpoint(svc ServiceKey, pod string) (Endpoint, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.endpoints {
		if e.Cluster == s.cluster && e.Key() == svc && e.Pod == pod {
			return e, true
		}
	}
	return Endpoint{}, false
}
