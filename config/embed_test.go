package config

import (
	"strings"
	"testing"
)

func TestEmbeddedManifests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, path, want string
		fs               interface{ ReadFile(string) ([]byte, error) }
	}{
		{"fleetrollout crd", FleetRolloutCRD, "name: fleetrollouts.lockstep.dev", CRDs},
		{"hub role", HubRole, "name: lockstep-coordinator", RBAC},
		{"workload role", WorkloadRole, "name: lockstep-workload", RBAC},
		{"podmonitor crd", PodMonitorCRD, "name: podmonitors.monitoring.coreos.com", Thirdparty},
		{"servicemonitor crd", ServiceMonitorCRD, "name: servicemonitors.monitoring.coreos.com", Thirdparty},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b, err := c.fs.ReadFile(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), c.want) {
				t.Errorf("%s does not contain %q", c.path, c.want)
			}
		})
	}
}
