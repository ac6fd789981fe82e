package meshsim

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestResolveHost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, host, namespace string
		want                  ServiceKey
		wantErr               string
	}{
		{name: "short name takes the VirtualService namespace", host: "helloworld", namespace: "helloworld", want: ServiceKey{"helloworld", "helloworld"}},
		{name: "short canary", host: "helloworld-canary", namespace: "lab", want: ServiceKey{"lab", "helloworld-canary"}},
		{name: "fqdn names its own namespace", host: "helloworld-canary.helloworld.svc.cluster.local", namespace: "other", want: ServiceKey{"helloworld", "helloworld-canary"}},
		{name: "fqdn with trailing dot and capitals", host: "HelloWorld.HelloWorld.svc.cluster.local.", want: ServiceKey{"helloworld", "helloworld"}},
		{name: "fqdn needs no namespace", host: "a.b.svc.cluster.local", want: ServiceKey{"b", "a"}},
		{name: "empty", host: "", namespace: "x", wantErr: "empty"},
		{name: "short without namespace", host: "helloworld", wantErr: "needs the namespace"},
		{name: "name.namespace is not a service", host: "helloworld.helloworld", namespace: "x", wantErr: "neither"},
		{name: "external host", host: "example.com", namespace: "x", wantErr: "neither"},
		{name: "fqdn with too many labels", host: "a.b.c.svc.cluster.local", wantErr: "not of the form"},
		{name: "fqdn without name", host: ".b.svc.cluster.local", wantErr: "invalid service name"},
		{name: "invalid service name", host: "9lives", namespace: "x", wantErr: "invalid service name"},
		{name: "invalid namespace", host: "a.b_c.svc.cluster.local", wantErr: "invalid namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ResolveHost(tt.host, tt.namespace)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ResolveHost(%q, %q) = %v, %v; want error containing %q", tt.host, tt.namespace, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ResolveHost(%q, %q) = %v, %v; want %v", tt.host, tt.namespace, got, err, tt.want)
			}
		})
	}
}

func TestServiceKeyFQDN(t *testing.T) {
	t.Parallel()
	k := ServiceKey{Namespace: "helloworld", Name: "helloworld-canary"}
	if got, want := k.FQDN(), "helloworld-canary.helloworld.svc.cluster.local"; got != want {
		t.Fatalf("FQDN() = %q, want %q", got, want)
	}
	back, err := ResolveHost(k.FQDN(), "")
	if err != nil || back != k {
		t.Fatalf("ResolveHost(FQDN) = %v, %v; want %v", back, err, k)
	}
}

// vsJSON builds a VirtualService the way the dynamic client decodes one:
// from JSON, so numbers are float64 or int64 exactly as in production.
func vsJSON(t *testing.T, doc string) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatalf("bad test JSON: %v", err)
	}
	return obj
}

const labVirtualService = `{
  "apiVersion": "networking.istio.io/v1",
  "kind": "VirtualService",
  "metadata": {"name": "helloworld-crosscluster-gateways", "namespace": "helloworld"},
  "spec": {
    "gateways": ["istio-system/cross-network-gateway"],
    "hosts": ["*"],
    "http": [
      {"name": "other", "route": [{"destination": {"host": "nothere"}}]},
      {"name": "helloworld", "route": [
        {"destination": {"host": "helloworld", "port": {"number": 5000}}, "weight": 90},
        {"destination": {"host": "helloworld-canary.helloworld.svc.cluster.local", "port": {"number": 5000}}, "weight": 10}
      ]}
    ]
  }
}`

func TestParseWeights(t *testing.T) {
	t.Parallel()
	stable := ServiceKey{"helloworld", "helloworld"}
	canary := ServiceKey{"helloworld", "helloworld-canary"}
	meta := `"metadata": {"name": "vs", "namespace": "helloworld"}`
	tests := []struct {
		name    string
		doc     string
		obj     map[string]any // used instead of doc when set
		route   string
		want    []WeightedService
		wantErr string
	}{
		{
			name:  "lab virtual service",
			doc:   labVirtualService,
			route: "helloworld",
			want: []WeightedService{
				{Host: "helloworld", Service: stable, Weight: 90},
				{Host: "helloworld-canary.helloworld.svc.cluster.local", Service: canary, Weight: 10},
			},
		},
		{
			name:  "lone destination without weight takes everything",
			doc:   `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {"host": "helloworld"}}]}]}}`,
			route: "r",
			want:  []WeightedService{{Host: "helloworld", Service: stable, Weight: 100}},
		},
		{
			name:  "missing weight among several is zero",
			doc:   `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {"host": "helloworld"}}, {"destination": {"host": "helloworld-canary"}, "weight": 100}]}]}}`,
			route: "r",
			want:  []WeightedService{{Host: "helloworld", Service: stable, Weight: 0}, {Host: "helloworld-canary", Service: canary, Weight: 100}},
		},
		{
			name: "hand-built map with ints and typed slices",
			obj: map[string]any{
				"metadata": map[string]any{"namespace": "helloworld"},
				"spec": map[string]any{"http": []map[string]any{{
					"name": "r",
					"route": []any{
						map[string]any{"destination": map[string]any{"host": "helloworld"}, "weight": int64(70)},
						map[string]any{"destination": map[string]any{"host": "helloworld-canary"}, "weight": int32(30)},
					},
				}}},
			},
			route: "r",
			want:  []WeightedService{{Host: "helloworld", Service: stable, Weight: 70}, {Host: "helloworld-canary", Service: canary, Weight: 30}},
		},
		{name: "nil object", obj: nil, route: "r", wantErr: "no object"},
		{name: "no route name", doc: labVirtualService, route: "", wantErr: "no route name"},
		{name: "route not found", doc: labVirtualService, route: "missing", wantErr: `no http route named "missing"`},
		{name: "no metadata", doc: `{"spec": {}}`, route: "r", wantErr: "metadata is missing"},
		{name: "no namespace", doc: `{"metadata": {"name": "vs"}, "spec": {}}`, route: "r", wantErr: "namespace is missing"},
		{name: "no spec", doc: `{` + meta + `}`, route: "r", wantErr: "spec is missing"},
		{name: "spec not an object", doc: `{` + meta + `, "spec": []}`, route: "r", wantErr: "spec is a"},
		{name: "no http", doc: `{` + meta + `, "spec": {}}`, route: "r", wantErr: "spec.http is missing"},
		{name: "http not a list", doc: `{` + meta + `, "spec": {"http": {}}}`, route: "r", wantErr: "not a list"},
		{name: "http item not an object", doc: `{` + meta + `, "spec": {"http": [3]}}`, route: "r", wantErr: "not an object"},
		{name: "route missing", doc: `{` + meta + `, "spec": {"http": [{"name": "r"}]}}`, route: "r", wantErr: "route is missing"},
		{name: "route empty", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": []}]}}`, route: "r", wantErr: "no destinations"},
		{name: "destination missing", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"weight": 100}]}]}}`, route: "r", wantErr: "destination is missing"},
		{name: "host missing", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {}}]}]}}`, route: "r", wantErr: "empty destination host"},
		{name: "host not a string", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {"host": 5}}]}]}}`, route: "r", wantErr: "empty destination host"},
		{name: "external host", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {"host": "example.com"}}]}]}}`, route: "r", wantErr: "neither"},
		{name: "negative weight", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {"host": "a"}, "weight": -1}]}]}}`, route: "r", wantErr: "outside"},
		{name: "fractional weight", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {"host": "a"}, "weight": 2.5}]}]}}`, route: "r", wantErr: "whole number"},
		{name: "huge weight", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {"host": "a"}, "weight": 1e300}]}]}}`, route: "r", wantErr: "whole number"},
		{name: "string weight", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {"host": "a"}, "weight": "50"}]}]}}`, route: "r", wantErr: "not a number"},
		{name: "all zero", doc: `{` + meta + `, "spec": {"http": [{"name": "r", "route": [{"destination": {"host": "a"}, "weight": 0}, {"destination": {"host": "b"}, "weight": 0}]}]}}`, route: "r", wantErr: "all destination weights are zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			obj := tt.obj
			if tt.doc != "" {
				obj = vsJSON(t, tt.doc)
			}
			got, err := ParseWeights(obj, tt.route)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseWeights() = %+v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseWeights() error: %v", err)
			}
			if got.Route != tt.route || !reflect.DeepEqual(got.Destinations, tt.want) {
				t.Fatalf("ParseWeights() = %+v, want route %q destinations %+v", got, tt.route, tt.want)
			}
		})
	}
}

func TestToWeight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want int
		ok   bool
	}{
		{int(5), 5, true},
		{float64(100), 100, true},
		{json.Number("42"), 42, true},
		{json.Number("4.2"), 0, false},
		{int64(math.MaxInt32) + 1, 0, false},
		{math.NaN(), 0, false},
		{math.Inf(1), 0, false},
		{true, 0, false},
	}
	for _, tt := range tests {
		got, err := toWeight(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("toWeight(%#v) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzParseWeights checks that no VirtualService, however malformed,
// makes the parser panic, and that any split it accepts is routable.
func FuzzParseWeights(f *testing.F) {
	f.Add(labVirtualService, "helloworld")
	f.Add(`{"metadata":{"namespace":"n"},"spec":{"http":[{"name":"r","route":[{"destination":{"host":"a"},"weight":1}]}]}}`, "r")
	f.Add(`{"metadata":{"namespace":"n"},"spec":{"http":[{"name":"r","route":[null]}]}}`, "r")
	f.Add(`{"metadata":null,"spec":{"http":null}}`, "r")
	f.Fuzz(func(t *testing.T, doc, route string) {
		var obj map[string]any
		if json.Unmarshal([]byte(doc), &obj) != nil {
			return
		}
		w, err := ParseWeights(obj, route)
		if err != nil {
			return
		}
		if w.Total() <= 0 || len(w.Destinations) == 0 {
			t.Fatalf("accepted an unroutable split: %+v", w)
		}
	})
}
