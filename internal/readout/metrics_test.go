package readout

import (
	"math"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// A cluster's label value cannot add matchers or operators to the query.
func TestClusterQueryEscapes(t *testing.T) {
	t.Parallel()
	for _, label := range []string{"argo-rollout1", `x"} or vector(1) or up{a="`, `back\slash`, "new\nline"} {
		q := clusterQuery(DefaultRateQuery, label)
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
		if err != nil {
			t.Fatalf("%q: %v", label, err)
		}
		var values []string
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				for _, m := range vs.LabelMatchers {
					if m.Name == "destination_cluster" {
						values = append(values, m.Value)
					}
				}
			}
			return nil
		})
		if len(values) != 2 || values[0] != label || values[1] != label {
			t.Errorf("%q: destination_cluster matchers %q", label, values)
		}
	}
}

func TestOneValueRefusesUntrustedAnswers(t *testing.T) {
	t.Parallel()
	sample := func(v float64) model.Vector { return model.Vector{{Value: model.SampleValue(v)}} }
	for _, tc := range []struct {
		name     string
		vec      model.Vector
		warnings []string
		max      float64
		ok       bool
	}{
		{"one sample", sample(0.97), nil, 1, true},
		{"partial answer", sample(0.97), []string{"store unavailable"}, 1, false},
		{"empty", model.Vector{}, nil, 1, false},
		{"two series", append(sample(0.9), sample(0.8)...), nil, 1, false},
		{"NaN (no requests)", sample(math.NaN()), nil, 1, false},
		{"not a ratio", sample(3), nil, 1, false},
		{"negative", sample(-0.1), nil, 1, false},
		{"a latency", sample(250), nil, math.Inf(1), true},
		{"infinite latency", sample(math.Inf(1)), nil, math.Inf(1), false},
	} {
		if v, ok := OneValue(tc.vec, tc.warnings, tc.max); ok != tc.ok || (ok && v != float64(tc.vec[0].Value)) {
			t.Errorf("%s: OneValue = %v, %v", tc.name, v, ok)
		}
	}
}
