package meshsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ClusterDomain is the DNS suffix of Kubernetes services in the lab. Istio
// uses it to expand short hosts and to name destination_service.
const ClusterDomain = "cluster.local"

// ServiceKey names one Kubernetes service. The same key names the service
// in every cluster of the mesh, because Istio treats services of the same
// name and namespace in different clusters as one service.
type ServiceKey struct {
	Namespace string
	Name      string
}

// FQDN returns the service's cluster-local DNS name, which is what Istio
// reports as destination_service.
func (k ServiceKey) FQDN() string {
	return k.Name + "." + k.Namespace + ".svc." + ClusterDomain
}

// String returns namespace/name, the usual Kubernetes notation.
func (k ServiceKey) String() string {
	return k.Namespace + "/" + k.Name
}

// ResolveHost turns a VirtualService destination host into the service it
// names. Istio accepts a short name, which it interprets relative to the
// namespace of the VirtualService, or a fully qualified name. Any other
// form (for instance "name.namespace") would be taken by Istio as a literal
// external host that matches no service, so it is rejected here rather
// than silently routed somewhere.
func ResolveHost(host, namespace string) (ServiceKey, error) {
	h := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(host), "."))
	if h == "" {
		return ServiceKey{}, errors.New("empty destination host")
	}
	var key ServiceKey
	switch {
	case !strings.Contains(h, "."):
		if namespace == "" {
			return ServiceKey{}, fmt.Errorf("short host %q needs the namespace of its VirtualService", host)
		}
		key = ServiceKey{Namespace: namespace, Name: h}
	case strings.HasSuffix(h, ".svc."+ClusterDomain):
		parts := strings.Split(strings.TrimSuffix(h, ".svc."+ClusterDomain), ".")
		if len(parts) != 2 {
			return ServiceKey{}, fmt.Errorf("host %q is not of the form NAME.NAMESPACE.svc.%s", host, ClusterDomain)
		}
		key = ServiceKey{Namespace: parts[1], Name: parts[0]}
	default:
		return ServiceKey{}, fmt.Errorf("host %q is neither a short service name nor NAME.NAMESPACE.svc.%s", host, ClusterDomain)
	}
	if errs := validation.IsDNS1035Label(key.Name); len(errs) > 0 {
		return ServiceKey{}, fmt.Errorf("host %q: invalid service name: %s", host, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(key.Namespace); len(errs) > 0 {
		return ServiceKey{}, fmt.Errorf("host %q: invalid namespace: %s", host, strings.Join(errs, "; "))
	}
	return key, nil
}

// WeightedService is one destination of a VirtualService HTTP route.
type WeightedService struct {
	// Host is the destination host exactly as the VirtualService spells it.
	Host string
	// Service is the service the host resolves to.
	Service ServiceKey
	// Weight is the destination's share of the route; zero receives no
	// traffic.
	Weight int
}

// Weights is the traffic split of one named HTTP route of a VirtualService.
type Weights struct {
	// Route is the name of the HTTP route the split was read from.
	Route string
	// Destinations lists the route's destinations in the order of the
	// VirtualService, which keeps picks reproducible for a given seed.
	Destinations []WeightedService
}

// Total returns the sum of the destination weights.
func (w Weights) Total() int64 {
	var total int64
	for _, d := range w.Destinations {
		total += int64(d.Weight)
	}
	return total
}

// String renders the split compactly for logs, e.g.
// "helloworld=90 helloworld-canary=10".
func (w Weights) String() string {
	parts := make([]string, 0, len(w.Destinations))
	for _, d := range w.Destinations {
		parts = append(parts, fmt.Sprintf("%s=%d", d.Service.Name, d.Weight))
	}
	return strings.Join(parts, " ")
}

// ParseWeights reads the HTTP route named route from a VirtualService given
// as an unstructured object (the form the dynamic client returns). It
// follows Istio's rules: a lone destination without a weight takes all
// traffic, a missing weight among several counts as zero, and weights need
// not add up to 100 because Envoy normalises them. Malformed input yields
// an error, never a panic, because the object comes from an API server
// that any lab user can write to.
func ParseWeights(vs map[string]any, route string) (Weights, error) {
	if vs == nil {
		return Weights{}, errors.New("virtual service: no object")
	}
	if route == "" {
		return Weights{}, errors.New("virtual service: no route name given")
	}
	meta, err := field[map[string]any](vs, "metadata")
	if err != nil {
		return Weights{}, fmt.Errorf("virtual service: %w", err)
	}
	namespace, _ := meta["namespace"].(string)
	name, _ := meta["name"].(string)
	if namespace == "" {
		return Weights{}, fmt.Errorf("virtual service %q: metadata.namespace is missing", name)
	}
	spec, err := field[map[string]any](vs, "spec")
	if err != nil {
		return Weights{}, fmt.Errorf("virtual service %s/%s: %w", namespace, name, err)
	}
	httpRoutes, err := objects(spec["http"], "spec.http")
	if err != nil {
		return Weights{}, fmt.Errorf("virtual service %s/%s: %w", namespace, name, err)
	}
	for i, hr := range httpRoutes {
		if n, _ := hr["name"].(string); n != route {
			continue
		}
		w, err := parseRoute(hr, namespace, fmt.Sprintf("spec.http[%d]", i))
		if err != nil {
			return Weights{}, fmt.Errorf("virtual service %s/%s route %q: %w", namespace, name, route, err)
		}
		w.Route = route
		return w, nil
	}
	return Weights{}, fmt.Errorf("virtual service %s/%s: no http route named %q", namespace, name, route)
}

func parseRoute(hr map[string]any, namespace, path string) (Weights, error) {
	dests, err := objects(hr["route"], path+".route")
	if err != nil {
		return Weights{}, err
	}
	if len(dests) == 0 {
		return Weights{}, fmt.Errorf("%s.route has no destinations", path)
	}
	var w Weights
	for j, rd := range dests {
		at := fmt.Sprintf("%s.route[%d]", path, j)
		dest, err := field[map[string]any](rd, "destination")
		if err != nil {
			return Weights{}, fmt.Errorf("%s: %w", at, err)
		}
		host, _ := dest["host"].(string)
		svc, err := ResolveHost(host, namespace)
		if err != nil {
			return Weights{}, fmt.Errorf("%s.destination: %w", at, err)
		}
		weight := 0
		if len(dests) == 1 {
			weight = 100
		}
		if raw, ok := rd["weight"]; ok && raw != nil {
			weight, err = toWeight(raw)
			if err != nil {
				return Weights{}, fmt.Errorf("%s.weight: %w", at, err)
			}
		}
		w.Destinations = append(w.Destinations, WeightedService{Host: host, Service: svc, Weight: weight})
	}
	if w.Total() <= 0 {
		return Weights{}, fmt.Errorf("%s: all destination weights are zero", path)
	}
	return w, nil
}

// field returns obj[key] as a T, or an error naming the key.
func field[T any](obj map[string]any, key string) (T, error) {
	var zero T
	raw, ok := obj[key]
	if !ok || raw == nil {
		return zero, fmt.Errorf("%s is missing", key)
	}
	v, ok := raw.(T)
	if !ok {
		return zero, fmt.Errorf("%s is a %T, not a %T", key, raw, zero)
	}
	return v, nil
}

// objects accepts both []any (what JSON decoding yields) and
// []map[string]any (what a hand-built object may hold).
func objects(raw any, path string) ([]map[string]any, error) {
	switch list := raw.(type) {
	case nil:
		return nil, fmt.Errorf("%s is missing", path)
	case []map[string]any:
		return list, nil
	case []any:
		out := make([]map[string]any, 0, len(list))
		for i, item := range list {
			m, ok := item.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s[%d] is a %T, not an object", path, i, item)
			}
			out = append(out, m)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s is a %T, not a list", path, raw)
	}
}

// toWeight converts the numeric types that unstructured decoding and
// hand-built maps produce. Istio declares the weight as int32.
func toWeight(raw any) (int, error) {
	var v int64
	switch n := raw.(type) {
	case int:
		v = int64(n)
	case int32:
		v = int64(n)
	case int64:
		v = n
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) || math.IsNaN(n) || math.Abs(n) > math.MaxInt32 {
			return 0, fmt.Errorf("%v is not a whole number in int32 range", n)
		}
		v = int64(n)
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number: %w", n.String(), err)
		}
		v = i
	default:
		return 0, fmt.Errorf("a %T is not a number", raw)
	}
	if v < 0 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%d is outside 0..%d", v, math.MaxInt32)
	}
	return int(v), nil
}
