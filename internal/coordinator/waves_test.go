package coordinator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/fleet"
)

func TestWavesFromSpec(t *testing.T) {
	t.Parallel()
	var members []fleet.Member
	for i := 1; i <= 10; i++ {
		region := "eu"
		if i > 5 {
			region = "us"
		}
		members = append(members, fleet.Member{Name: fmt.Sprintf("c%02d", i), Labels: map[string]string{"region": region}})
	}
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	count := func(n int32) *intstr.IntOrString { v := intstr.FromInt32(n); return &v }
	sel := func(region string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"region": region}}
	}
	batches := func(ws []v1alpha1.Wave) string {
		got, err := wavesFromSpec(ws, members)
		if err != nil {
			return "error: " + err.Error()
		}
		var parts []string
		for _, w := range got {
			var bs []string
			for _, b := range w.Batches {
				bs = append(bs, strings.Join(b, ","))
			}
			parts = append(parts, w.Name+"="+strings.Join(bs, "|"))
		}
		return strings.Join(parts, " ")
	}
	tests := []struct {
		name  string
		waves []v1alpha1.Wave
		want  string
	}{
		{"one canary cluster, then the rest", []v1alpha1.Wave{{Name: "first", Names: []string{"c03"}}, {Name: "rest", Rest: true}},
			"first=c03 rest=c01,c02,c04,c05,c06,c07,c08,c09,c10"},
		{"selectors, batches of 30%", []v1alpha1.Wave{{Name: "eu", Selector: sel("eu"), MaxParallel: pct("30%")}, {Name: "us", Selector: sel("us"), MaxParallel: count(2)}},
			"eu=c01,c02|c03,c04|c05 us=c06,c07|c08,c09|c10"},
		{"a count given as a string", []v1alpha1.Wave{{Name: "all", Rest: true, MaxParallel: pct("4")}}, "all=c01,c02,c03,c04|c05,c06,c07,c08|c09,c10"},
		{"overlapping waves", []v1alpha1.Wave{{Name: "eu", Selector: sel("eu")}, {Name: "some", Names: []string{"c01"}}, {Name: "rest", Rest: true}},
			"error: spec.waves[1] (some) overlaps spec.waves[0] (eu): c01 is in both"},
		{"a wave matching no cluster", []v1alpha1.Wave{{Name: "ap", Selector: sel("ap")}, {Name: "rest", Rest: true}},
			"error: spec.waves[0] (ap) matches no member cluster"},
		{"a name that is no member", []v1alpha1.Wave{{Name: "x", Names: []string{"c99"}}, {Name: "rest", Rest: true}},
			"error: spec.waves[0].names: c99 is not a member cluster"},
		{"maxFailures larger than the wave", []v1alpha1.Wave{{Name: "first", Names: []string{"c01"}, MaxFailures: 2}, {Name: "rest", Rest: true}},
			"error: spec.waves[0].maxFailures: 2 is more than the wave's 1 clusters"},
		{"a percentage over 100", []v1alpha1.Wave{{Name: "all", Rest: true, MaxParallel: pct("150%")}},
			"error: spec.waves[0].maxParallel: 150%: want 1% to 100%"},
		{"members left in no wave", []v1alpha1.Wave{{Name: "eu", Selector: sel("eu")}},
			"error: spec.waves: c06, c07, c08, c09, c10 in no wave (add a wave with rest: true)"},
		{"two rest waves", []v1alpha1.Wave{{Name: "a", Rest: true}, {Name: "b", Rest: true}},
			"error: spec.waves[1] (b): only one wave may take the rest; spec.waves[0] (a) does already"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := batches(tc.waves); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	ws, err := wavesFromSpec([]v1alpha1.Wave{{Name: "all", Rest: true, Soak: &metav1.Duration{Duration: time.Minute}, MaxFailures: 3}}, members)
	if err != nil || ws[0].Soak != time.Minute || ws[0].MaxFailures != 3 {
		t.Errorf("soak and maxFailures not carried: %+v, %v", ws, err)
	}
}
