// Package install_test runs the installers of `lockstep lab up --provider
// existing` for real against a bare local fleet: three empty clusters with
// real kube-apiservers, controller-managers and schedulers, kwok nodes that
// make pods Ready, and a LoadBalancer address allocator. Objects are
// accepted (or refused) by the real CRDs and admission.
package install_test

import (
	"os"
	"testing"

	"lockstep.dev/lockstep/test/fleettest"
)

func TestMain(m *testing.M) {
	os.Exit(fleettest.Main(m, "../..", fleettest.Options{UpArgs: []string{"--bare"}}))
}
