// Package page serves the coordinator's read-only dashboard
// (--dashboard-address) from the manager's cache. It is apart from
// internal/cli/coordinator so that the coordinator-only binary
// (cmd/lockstep-coordinator) links no web assets; the lockstep binary
// composes it in. It imports internal/dashboard, controller-runtime and
// logr.
package page

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"lockstep.dev/lockstep/internal/dashboard"
)

// New returns the runnable that serves the page at addr, reading hub (the
// manager's cache). Off loopback every read needs token and the Host must
// be an IP address or one of allowedHosts.
func New(addr, token string, allowedHosts []string, hub client.Reader, log logr.Logger) manager.Runnable {
	return &dashboardRunnable{addr: addr, hub: hub, log: log, token: token, allowedHosts: allowedHosts}
}

// dashboardRunnable serves the read-only dashboard: every FleetRollout as
// the coordinator last recorded it, read from the manager's cache, so it
// costs the hub no requests and needs no right the coordinator lacks.
type dashboardRunnable struct {
	addr string
	hub  client.Reader
	log  logr.Logger
	// token gates every read when the address is not loopback;
	// allowedHosts are the names the page answers to then.
	token        string
	allowedHosts []string
}

// NeedLeaderElection is false: a standby replica serves the page too.
func (d *dashboardRunnable) NeedLeaderElection() bool { return false }

func (d *dashboardRunnable) Start(ctx context.Context) error {
	host, _, err := net.SplitHostPort(d.addr)
	if err != nil {
		return fmt.Errorf("--dashboard-address %q: %w", d.addr, err)
	}
	loopback := dashboard.IsLoopback(host)
	srv, err := dashboard.New(dashboard.Options{
		Source:       dashboard.StatusSource{Hub: d.hub},
		ActionsOff:   "the coordinator serves a read-only page; use lockstep dashboard or the CLI verbs to act",
		MetricsOff:   "the coordinator's page shows what the coordinator recorded; success-rate plots come with lockstep dashboard --thanos-url",
		Loopback:     loopback,
		Exposed:      !loopback,
		Token:        d.token,
		AllowedHosts: d.allowedHosts,
		Log:          slog.New(logr.ToSlogHandler(d.log.WithName("dashboard"))),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	d.log.Info("Serving the read-only dashboard", "address", ln.Addr().String())
	defer srv.Close()
	return srv.Serve(ctx, ln)
}
