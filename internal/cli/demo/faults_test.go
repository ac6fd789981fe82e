package demo

import (
	"strings"
	"testing"
	"time"
)

func TestCheckFaults(t *testing.T) {
	t.Parallel()
	if err := checkFaults(0.3, 0, "", 0.03, 0.2, 30*time.Second); err != nil {
		t.Errorf("a shared incident on a 3 %% baseline: %v", err)
	}
	for _, bad := range []struct {
		rate, baseline, incident float64
		latency, incidentFor     time.Duration
		fault, want              string
	}{
		{rate: 0.3, incident: 0.2, want: "--incident-for 0s and --incident-error-rate 0.20 go together"},
		{rate: 0.3, incidentFor: time.Second, want: "go together"},
		{rate: 0.3, baseline: 0.9, incident: 0.2, incidentFor: time.Second, want: "--incident-error-rate 0.20 must be in [0, 1 - --baseline-error-rate]"},
		{rate: 0.3, latency: time.Second, want: "--latency needs --bad-release --fault-cluster"},
		{rate: 1.5, want: "--error-rate 1.50"},
	} {
		err := checkFaults(bad.rate, bad.latency, bad.fault, bad.baseline, bad.incident, bad.incidentFor)
		if err == nil || !strings.Contains(err.Error(), bad.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want one line with %q", bad, err, bad.want)
		}
	}
}
