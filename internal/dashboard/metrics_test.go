package dashboard

import (
	"testing"

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
