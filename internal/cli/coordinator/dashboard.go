package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"lockstep.dev/lockstep/internal/dashboard"
)

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

// dashboardToken reads the token of a dashboard served beyond loopback:
// without one, anyone who reaches the port would read the fleet.
func dashboardToken(addr, file string) (string, error) {
	if addr == "" {
		return "", nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--dashboard-address %q: %w", addr, err)
	}
	if file == "" {
		if dashboard.IsLoopback(host) {
			return "", nil
		}
		return "", fmt.Errorf("--dashboard-address %s is not loopback: give --dashboard-token-file (every read needs a token there)", addr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--dashboard-token-file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < 16 {
		return "", fmt.Errorf("--dashboard-token-file %s: the token is shorter than 16 characters", file)
	}
	return token, nil
}
