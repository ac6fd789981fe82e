package coordinator

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
)

func TestAnalysisWarmup(t *testing.T) {
	t.Parallel()
	ratio := func(w string) v1alpha1.Metric {
		return v1alpha1.Metric{Name: "m" + w, Ratio: &v1alpha1.Ratio{Good: "a", Total: "b", Window: w}}
	}
	cases := []struct {
		name string
		a    v1alpha1.Analysis
		want time.Duration
	}{
		{"longest ratio window", v1alpha1.Analysis{Metrics: []v1alpha1.Metric{ratio("40s"), ratio("2m"), ratio("1m")}}, 2 * time.Minute},
		{"explicit initial delay wins", v1alpha1.Analysis{InitialDelay: &metav1.Duration{Duration: 5 * time.Second}, Metrics: []v1alpha1.Metric{ratio("2m")}}, 5 * time.Second},
		{"templated window is not guessed", v1alpha1.Analysis{Metrics: []v1alpha1.Metric{ratio("{{args.window}}")}}, 0},
		{"query metrics have no window", v1alpha1.Analysis{Metrics: []v1alpha1.Metric{{Name: "q", Query: "up"}}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := analysisWarmup(&tc.a); got != tc.want {
				t.Fatalf("warm-up = %s, want %s", got, tc.want)
			}
		})
	}
}
