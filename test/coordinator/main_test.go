// Package coordinator_test runs the hub coordinator in-process against the
// local fleet (real kube-apiservers and real Argo Rollouts controllers in
// argo-rollout1 and argo-rollout2) and checks that both clusters' canaries
// move in step and abort together. Under -short the tests skip.
package coordinator_test

import (
	"os"
	"testing"

	"lockstep.dev/lockstep/test/fleettest"
)

func TestMain(m *testing.M) {
	// These tests run their own coordinator in-process: the fleet's must
	// not act on the same FleetRollouts.
	os.Exit(fleettest.Main(m, "../..", fleettest.Options{UpArgs: []string{"--no-coordinator"}}))
}
