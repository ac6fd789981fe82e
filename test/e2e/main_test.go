package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"lockstep.dev/lockstep/test/fleettest"
)

func TestMain(m *testing.M) { os.Exit(fleettest.Main(m, "../..", fleettest.Options{})) }

// env mirrors the shared fleet under the names this package's tests use.
var env = struct{ *fleettest.Fleet }{fleettest.F}

func lockstep(ctx context.Context, args ...string) (string, string, error) {
	return fleettest.F.Run(ctx, args...)
}

func lockstepEnv(ctx context.Context, extra []string, args ...string) (string, string, error) {
	return fleettest.F.RunEnv(ctx, extra, args...)
}

func needFleet(t testing.TB) { t.Helper(); fleettest.Need(t) }

func restConfig(t testing.TB, cluster string) *rest.Config {
	t.Helper()
	return fleettest.RESTConfig(t, cluster)
}

func clientset(t testing.TB, cluster string) *kubernetes.Clientset {
	t.Helper()
	return fleettest.Clientset(t, cluster)
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	fleettest.Eventually(t, timeout, what, cond)
}
