package coordinator

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"lockstep.dev/lockstep/api/v1alpha1"
)

// TestBudgetCondition: the README's promise (a good release is aborted
// with at most falseAbortRate) is stated true only when it is literally
// true of what is configured.
func TestBudgetCondition(t *testing.T) {
	t.Parallel()
	metric := v1alpha1.Metric{Name: "success-rate", Query: "x", Threshold: v1alpha1.Threshold{Op: ">", Value: "0.9"}}
	tests := []struct {
		name     string
		analysis *v1alpha1.Analysis
		status   metav1.ConditionStatus
		message  string
	}{
		{"no analysis", nil, metav1.ConditionTrue, "no analysis"},
		{"the judge alone, with defaults", &v1alpha1.Analysis{}, metav1.ConditionTrue, "at most falseAbortRate (0.01)"},
		{"the judge alone", &v1alpha1.Analysis{Judge: &v1alpha1.Judge{FalseAbortRate: "0.002"}}, metav1.ConditionTrue, "(0.002)"},
		{"the judge and a metric", &v1alpha1.Analysis{Judge: &v1alpha1.Judge{}, Metrics: []v1alpha1.Metric{metric}}, metav1.ConditionFalse, "covers the judge only: the threshold metrics success-rate"},
		{"a metric alone", &v1alpha1.Analysis{Metrics: []v1alpha1.Metric{metric}}, metav1.ConditionFalse, "no judge runs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := budgetCondition(&v1alpha1.FleetRolloutSpec{Analysis: tc.analysis}, 3)
			if c.Status != tc.status || !strings.Contains(c.Message, tc.message) || c.Type != v1alpha1.ConditionFalseAbortRateCovered || c.ObservedGeneration != 3 {
				t.Errorf("%+v, want %s containing %q", c, tc.status, tc.message)
			}
		})
	}
}
