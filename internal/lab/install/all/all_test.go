package all

import (
	"regexp"
	"testing"
)

// The order is a dependency order: what an action needs has run before it.
func TestActionsOrder(t *testing.T) {
	t.Parallel()
	pos := map[string]int{}
	name := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	for i, a := range Actions() {
		if !name.MatchString(a.Name()) {
			t.Errorf("action name %q is not lower-case words joined by dashes", a.Name())
		}
		if _, dup := pos[a.Name()]; dup {
			t.Errorf("action %q twice", a.Name())
		}
		if a.Description() == "" {
			t.Errorf("action %q has no description", a.Name())
		}
		pos[a.Name()] = i
	}
	for _, dep := range [][2]string{
		{"istio-certs", "istio-control-planes"},     // istiod reads cacerts at start
		{"istio-control-planes", "istio-gateways"},  // the gateways are injected by istiod's webhook
		{"istio-gateways", "istio-remote-secrets"},  // the reader account comes with base
		{"argocd", "argocd-clusters"},               // cluster Secrets go into argocd's namespace
		{"argo-rollouts", "lockstep-coordinator"},   // the coordinator watches Rollouts
		{"prometheus-operator", "prometheus"},       // the Prometheus CRD
		{"prometheus", "thanos"},                    // Query discovers the sidecars' addresses
		{"thanos", "grafana"},                       // the datasource is Thanos Query
		{"argocd-clusters", "lockstep-coordinator"}, // the coordinator's workload role binds Argo CD's account
		{"thanos", "lockstep-coordinator"},          // its analysis reads Thanos Query
	} {
		a, okA := pos[dep[0]]
		b, okB := pos[dep[1]]
		if !okA || !okB {
			t.Errorf("missing action %q or %q", dep[0], dep[1])
			continue
		}
		if a >= b {
			t.Errorf("%s runs after %s, but %s needs it", dep[0], dep[1], dep[1])
		}
	}
}
