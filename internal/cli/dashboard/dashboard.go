// Package dashboard implements `lockstep dashboard`: the web page of the
// fleet (package internal/dashboard) fed from the hub and the members as
// `lockstep status` reads them, with buttons that run the rollout verbs'
// own code (package rolloutcmd). `lockstep demo` starts the same server
// through Start. It imports internal/dashboard, internal/cli/status,
// internal/cli/rolloutcmd, internal/analysis, internal/lab/local (the
// local fleet's Thanos address) and cobra.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/cli/status"
	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/dashboard"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/readout"
)

// Config is what Start needs.
type Config struct {
	Target *status.TargetFlags
	// Address and Port are where to listen; Port 0 picks a free port.
	Address string
	Port    int
	// AllowActions lets the buttons act on a non-loopback address;
	// ReadOnly turns them off everywhere.
	AllowActions bool
	ReadOnly     bool
	// Exposed serves the policy of a dashboard reachable beyond loopback
	// (every read needs the token, Hosts from AllowedHosts or IP
	// addresses, bounded page streams); a non-loopback Address implies it.
	Exposed      bool
	AllowedHosts []string
	// ThanosURL feeds the success-rate and latency plots; empty: none.
	ThanosURL    string
	RateQuery    string
	LatencyQuery string
	Threshold    float64
	Interval     time.Duration
	// Log receives one line per action (never the token).
	Log io.Writer
}

// Running is a started dashboard.
type Running struct {
	Server *dashboard.Server
	// Base is http://ADDRESS:PORT; Token the run's token ("" read-only).
	Base  string
	Token string
	// Warning is set when the address is not loopback.
	Warning string
	done    chan error
}

// URL is path on the dashboard with the run's token, to open in a browser.
func (r *Running) URL(path string) string {
	if r.Token == "" {
		return r.Base + path
	}
	return r.Base + path + "?token=" + r.Token
}

// Wait returns when the server has stopped.
func (r *Running) Wait() error { return <-r.done }

// Start listens and serves until ctx ends. It fails, having started
// nothing, on a bad address or a port in use.
func Start(ctx context.Context, c Config) (*Running, error) {
	if c.Port < 0 || c.Port > 65535 {
		return nil, fmt.Errorf("--port %d: want 0-65535", c.Port)
	}
	if c.Address == "" {
		c.Address = "127.0.0.1"
	}
	if net.ParseIP(c.Address) == nil && c.Address != "localhost" {
		return nil, fmt.Errorf("--address %q: want an IP address (127.0.0.1, 0.0.0.0, ...)", c.Address)
	}
	loopback := dashboard.IsLoopback(c.Address)
	exposed := c.Exposed || !loopback
	r := &Running{done: make(chan error, 1)}
	o := dashboard.Options{Loopback: loopback && !exposed, Exposed: exposed, AllowedHosts: c.AllowedHosts,
		Threshold: c.Threshold, Interval: c.Interval, MetricsInterval: c.Interval}
	switch {
	case c.ReadOnly:
		o.ActionsOff = "started with --read-only"
	case !loopback && !c.AllowActions:
		o.ActionsOff = "served on " + c.Address + ", not loopback, without --allow-actions"
	}
	if !loopback {
		r.Warning = fmt.Sprintf("the dashboard listens on %s, not loopback: anyone with the URL (token included) sees the fleet", c.Address)
		if o.ActionsOff == "" {
			r.Warning += ", and can abort or promote it"
		}
	}
	// Exposed, reads need the token too, read-only or not.
	if !c.ReadOnly || exposed {
		tok, err := dashboard.NewToken()
		if err != nil {
			return nil, err
		}
		o.Token, r.Token = tok, tok
	}
	if c.ThanosURL != "" {
		q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: c.ThanosURL, Timeout: c.Target.Timeout})
		if err != nil {
			return nil, fmt.Errorf("--thanos-url: %w", err)
		}
		o.Metrics = &readout.Metrics{Querier: q, URL: analysis.RedactURL(c.ThanosURL), RateQuery: c.RateQuery, LatencyQuery: c.LatencyQuery}
	} else {
		o.MetricsOff = "no Thanos Query (--thanos-url): the success-rate and latency plots are off"
	}
	if c.Log != nil {
		o.Log = slog.New(slog.NewTextHandler(c.Log, nil))
	}
	src, err := newSource(c.Target)
	if err != nil {
		return nil, err
	}
	o.Source = src
	srv, err := dashboard.New(o)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.Address, strconv.Itoa(c.Port)))
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	host := c.Address
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	r.Server = srv
	r.Base = "http://" + net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	go func() {
		err := srv.Serve(ctx, ln)
		srv.Close()
		r.done <- err
	}()
	return r, nil
}

type flags struct {
	target                  *status.TargetFlags
	address                 string
	port                    int
	allowActions, readOnly  bool
	exposed                 bool
	allowedHosts            []string
	thanosURL, dir          string
	rateQuery, latencyQuery string
	threshold               float64
	interval                time.Duration
}

// NewCommand returns `lockstep dashboard`.
func NewCommand(s streams.IO) *cobra.Command {
	f := &flags{target: status.NewTargetFlags(), address: "127.0.0.1", rateQuery: readout.DefaultRateQuery, latencyQuery: readout.DefaultLatencyQuery, threshold: 0.9, interval: 2 * time.Second}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a live web page of the whole fleet's canary",
		Long: `Dashboard serves a web page for every FleetRollout on the hub (and for a
Rollout read directly in every registered cluster, without a coordinator):
a row per member cluster (phase, step, weights, images, pods, reachability,
the judge's evidence), plots over time of every cluster's canary weight, its
success rate against the threshold and its latency (from Thanos Query), the
barrier's hold countdown, the coordinator's decisions and the hub's Events.
The page updates live (server-sent events).

Its buttons (promote, pause, resume, abort, retry) run the same code as the
CLI verbs, after a confirmation. They need this run's token: open the URL
the command prints. The dashboard listens on 127.0.0.1 by default and
answers only to loopback names; --address widens it (with a warning), and
actions are then off unless --allow-actions.

Without --thanos-url, the Thanos Query of the local fleet in --dir is used
when that fleet runs.`,
		Example: `  # The local fleet's hub, any free port; open the printed URL
  lockstep dashboard --context argo-hub

  # A fixed port, another hub, Thanos Query of that hub
  lockstep dashboard --port 8099 --kubeconfig ~/.kube/prod --context hub --thanos-url http://127.0.0.1:10902

  # Reachable from other machines: reads need the printed URL's token, and
  # only the IP address or dashboard.example may be the Host
  lockstep dashboard --address 0.0.0.0 --port 8099 --allowed-host dashboard.example --context argo-hub

  # No hub: two kubeconfig contexts, read only
  lockstep dashboard --clusters argo-rollout1,argo-rollout2 --read-only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.target.Validate(""); err != nil {
				return err
			}
			if f.threshold <= 0 || f.threshold > 1 {
				return fmt.Errorf("--threshold %g: want a success rate in (0, 1]", f.threshold)
			}
			if f.interval < 200*time.Millisecond {
				return fmt.Errorf("--interval %s: want at least 200ms", f.interval)
			}
			for _, q := range []struct{ flag, v string }{{"--rate-query", f.rateQuery}, {"--latency-query", f.latencyQuery}} {
				if !strings.Contains(q.v, "{{cluster}}") {
					return fmt.Errorf("%s must contain {{cluster}}, or every cluster would show the same line", q.flag)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			thanos, from := f.thanosURL, ""
			if thanos == "" {
				if st, err := local.ReadState(f.dir); err == nil && st.Phase == local.PhaseReady && local.Alive(st.SupervisorPID, st.SupervisorAt) {
					thanos, from = st.URLs["thanos-query"], " (the local fleet's)"
				}
			}
			r, err := Start(ctx, Config{Target: f.target, Address: f.address, Port: f.port, AllowActions: f.allowActions, ReadOnly: f.readOnly,
				Exposed: f.exposed, AllowedHosts: f.allowedHosts,
				ThanosURL: strings.TrimRight(thanos, "/"), RateQuery: f.rateQuery, LatencyQuery: f.latencyQuery, Threshold: f.threshold, Interval: f.interval, Log: s.ErrOut})
			if err != nil {
				return err
			}
			if r.Warning != "" {
				fmt.Fprintf(s.ErrOut, "warning: %s\n", r.Warning)
			}
			if thanos != "" {
				fmt.Fprintf(s.Out, "Thanos Query: %s%s\n", thanos, from)
			}
			fmt.Fprintf(s.Out, "Dashboard: %s\n", r.URL("/"))
			if p := onlyPage(ctx, r); p != "" {
				fmt.Fprintf(s.Out, "Fleet:     %s\n", r.URL(p))
			}
			fmt.Fprintln(s.Out, "Ctrl-C stops it.")
			if err := r.Wait(); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	fl := cmd.Flags()
	f.target.AddFlags(fl)
	fl.StringVar(&f.address, "address", f.address, "address to listen on; anything but loopback shows the fleet to whoever can reach it")
	fl.IntVar(&f.port, "port", 0, "port to listen on (0: a free port)")
	fl.BoolVar(&f.allowActions, "allow-actions", false, "let the buttons act on a non-loopback --address")
	fl.BoolVar(&f.readOnly, "read-only", false, "no buttons (and no token, on loopback)")
	fl.BoolVar(&f.exposed, "exposed", false, "serve as if reachable beyond loopback (implied by such an --address): every read needs the token, Hosts must be IP addresses or --allowed-host names, page streams are bounded")
	fl.StringSliceVar(&f.allowedHosts, "allowed-host", nil, "a host name this dashboard answers to when exposed (repeatable); IP addresses always are")
	fl.StringVar(&f.thanosURL, "thanos-url", "", "Thanos Query base URL for the success-rate and latency plots (default: the local fleet's, when it runs)")
	fl.StringVar(&f.dir, "dir", local.DefaultDir(), "directory of the local fleet, for its Thanos Query address (env LOCKSTEP_DIR)")
	fl.StringVar(&f.rateQuery, "rate-query", f.rateQuery, "PromQL of one cluster's success rate; {{cluster}} is its destination_cluster value")
	fl.StringVar(&f.latencyQuery, "latency-query", f.latencyQuery, "PromQL of one cluster's latency in ms; {{cluster}} as above")
	fl.Float64Var(&f.threshold, "threshold", f.threshold, "success-rate line without a FleetRollout that gives one")
	fl.DurationVar(&f.interval, "interval", f.interval, "how often each page's fleet and metrics are read, besides on Rollout changes")
	return cmd
}

// onlyPage is the page of the hub's only FleetRollout, if it has one.
func onlyPage(ctx context.Context, r *Running) string {
	src, ok := r.Server.Source().(*source)
	if !ok || src.hub == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	entries, err := dashboard.FleetRolloutIndex(ctx, src.hub, src.target.Namespace())
	if err != nil || len(entries) != 1 {
		return ""
	}
	return entries[0].Ref.Path()
}
