package status

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/readout"
	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/internal/view"
)

type flags struct {
	target   *TargetFlags
	output   string
	watch    bool
	interval time.Duration
	// thanosURL and thanosQuery feed the live view's sparklines from
	// Thanos instead of the coordinator's verdicts.
	thanosURL   string
	thanosQuery string
}

// NewCommand returns `lockstep status`.
func NewCommand(s streams.IO) *cobra.Command {
	f := &flags{target: NewTargetFlags(), output: view.FormatTable, interval: 2 * time.Second, thanosQuery: DefaultThanosQuery}
	cmd := &cobra.Command{
		Use:   "status [FLEETROLLOUT]",
		Short: "Show every cluster's canary side by side",
		Long: `Status shows, for every member cluster, the Rollout's revision, step, the
canary weight its steps ask for and the weights its VirtualService really
has, the stable and canary images, ReplicaSets and ready pods, the current
AnalysisRun and whether the cluster could be reached at all.

With a FleetRollout name it reads that FleetRollout on the hub (namespace -n,
default lockstep): its members, the coordinator's phase, the barrier it waits
at, the analysis verdicts per cluster and overall, and its last decisions.
Without a name it takes the hub's FleetRollout when there is exactly one (in -n
when given, else in any namespace) and lists them when there are several; with
none, or with --rollout or --selector, it reads the Rollout (--rollout)
directly in every cluster registered in Argo CD on the hub, or in the
kubeconfig contexts of --clusters.

A cluster that cannot be reached within --request-timeout is shown as
Unreachable and the others are still shown.

With -w the view stays open and is redrawn whenever something changes: on a
terminal a live view with each cluster's step timeline and a sparkline of
its success rate (from the coordinator's verdicts, or from Thanos Query with
--thanos-url), otherwise one line per change (or one document per change
with -o json|yaml).`,
		Example: `  # The fleet the coordinator moves, on the local fleet's hub
  lockstep status helloworld --kubeconfig ~/.local/state/lockstep/fleet/kubeconfig --context argo-hub

  # The hub's only FleetRollout, whatever its name
  lockstep status --context argo-hub

  # No coordinator: the Rollout in every cluster registered in Argo CD
  lockstep status --rollout helloworld/helloworld --context argo-hub -o wide

  # No hub at all: two kubeconfig contexts, as JSON
  lockstep status --clusters argo-rollout1,argo-rollout2 -o json

  # Watch it live
  lockstep status helloworld -w

  # Watch without a coordinator, success rates from Thanos Query
  lockstep status -w --context argo-hub --thanos-url http://127.0.0.1:10902`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if err := f.validate(name); err != nil {
				return err
			}
			return run(cmd.Context(), s, f, name)
		},
	}
	fl := cmd.Flags()
	f.target.AddFlags(fl)
	fl.StringVarP(&f.output, "output", "o", f.output, "output format: table, wide, json or yaml")
	fl.BoolVarP(&f.watch, "watch", "w", false, "keep watching and redraw on every change")
	fl.DurationVar(&f.interval, "interval", f.interval, "with -w, how often to re-read the FleetRollout and clusters besides reacting to Rollout changes")
	fl.StringVar(&f.thanosURL, "thanos-url", "", "with -w, Thanos Query base URL to read each cluster's success rate from")
	fl.StringVar(&f.thanosQuery, "thanos-query", f.thanosQuery, "with --thanos-url, the PromQL of one cluster's success rate; {{cluster}} is its destination_cluster label value")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return view.Formats, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func (f *flags) validate(name string) error {
	if err := view.ValidateFormat(f.output); err != nil {
		return err
	}
	if f.watch && f.interval <= 0 {
		return fmt.Errorf("--interval must be positive")
	}
	if f.thanosURL != "" && !f.watch {
		return fmt.Errorf("--thanos-url feeds the sparklines of -w; add -w")
	}
	if f.thanosURL != "" && !strings.Contains(f.thanosQuery, "{{cluster}}") {
		return fmt.Errorf("--thanos-query must contain {{cluster}}, or every cluster would show the same rate")
	}
	return f.target.Validate(name)
}

func run(ctx context.Context, s streams.IO, f *flags, name string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if !f.watch {
		t, err := f.target.Resolve(ctx, name, ResolveOptions{})
		if err != nil {
			return err
		}
		defer t.Cache.Stop()
		fl, err := t.Refresh(ctx)
		if err != nil {
			return err
		}
		return view.Print(s.Out, f.output, fl)
	}
	live := (f.output == view.FormatTable || f.output == view.FormatWide) && isTerminal(s.Out)
	// The feed ends with the watch: when the live view quits, or on
	// Ctrl-C in a stream. The live view handles Ctrl-C itself (a key in
	// raw mode, SIGINT otherwise); catching the signal here as well would
	// race bubbletea's own handler and hang its shutdown.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !live {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	changed := make(chan struct{}, 1)
	poke := func(string) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	t, err := f.target.Resolve(ctx, name, ResolveOptions{OnEvent: poke})
	if err != nil {
		return err
	}
	defer t.Cache.Stop()
	for _, m := range t.Members {
		// Rollout changes redraw at once; everything else on the interval.
		_ = t.Cache.Watch(m.Name, rollouts.RolloutGVR, t.RolloutNamespace)
	}
	var rates *readout.Metrics
	if f.thanosURL != "" {
		q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: f.thanosURL, Timeout: f.target.Timeout})
		if err != nil {
			return fmt.Errorf("--thanos-url: %w", err)
		}
		rates = &readout.Metrics{Querier: q, URL: analysis.RedactURL(f.thanosURL), RateQuery: f.thanosQuery}
	}
	updates := make(chan Update)
	go feed(ctx, t, rates, f.interval, changed, updates)
	if live {
		return runLive(s, updates)
	}
	return runStream(s.Out, f.output, updates)
}

// Update is one fresh picture of the fleet for the watchers.
type Update struct {
	Fleet view.Fleet
	Err   error
	At    time.Time
	// Rates are the success rates read from Thanos, by cluster; nil when
	// the sparklines come from the coordinator's verdicts.
	Rates map[string]float64
}

// feed refreshes on every cluster event and every interval, and passes on
// only pictures that differ from the last one.
func feed(ctx context.Context, t *Target, rates *readout.Metrics, interval time.Duration, changed <-chan struct{}, out chan<- Update) {
	defer close(out)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last string
	for {
		fl, err := t.Refresh(ctx)
		now := time.Now()
		var r map[string]float64
		if rates != nil {
			// A cluster without a trustworthy value is left out, so it
			// gets no sample rather than a false one.
			r = rates.Read(ctx, servingLabels(t, fl), now).Rates
		}
		key := fingerprint(fl, err) + fmt.Sprint(r)
		if key != last {
			last = key
			select {
			case out <- Update{Fleet: fl, Err: err, At: now, Rates: r}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changed:
		}
	}
}

// servingLabels are the destination_cluster values of the clusters, by
// member: the FleetRollout's analysis.clusters when it names them, else
// the member names, as the coordinator does.
func servingLabels(t *Target, fl view.Fleet) map[string]string {
	out := make(map[string]string, len(fl.Clusters))
	for _, c := range fl.Clusters {
		out[c.Name] = view.ServingLabel(t.FleetRollout, c.Name)
	}
	return out
}

func fingerprint(f view.Fleet, err error) string {
	var b strings.Builder
	_ = view.Print(&b, view.FormatJSON, f)
	if err != nil {
		b.WriteString(err.Error())
	}
	return b.String()
}

// runStream prints a line per changed cluster (table, wide) or a document
// per change (json, yaml) until the feed ends.
func runStream(w io.Writer, format string, updates <-chan Update) error {
	var prev *view.Fleet
	for u := range updates {
		switch format {
		case view.FormatJSON, view.FormatYAML:
			if format == view.FormatYAML && prev != nil {
				fmt.Fprintln(w, "---")
			}
			if err := view.Print(w, format, u.Fleet); err != nil {
				return err
			}
		default:
			for _, l := range ChangeLines(prev, u.Fleet) {
				fmt.Fprintf(w, "%s  %s\n", u.At.UTC().Format("15:04:05.0"), l)
			}
			if u.Err != nil {
				fmt.Fprintf(w, "%s  hub: %s\n", u.At.UTC().Format("15:04:05.0"), u.Err)
			}
		}
		f := u.Fleet
		prev = &f
	}
	// The feed ends only when the watch was interrupted, which is how a
	// person stops it, not a failure.
	return nil
}

// ChangeLines are the lines that changed between two pictures: the
// coordinator's phase and each cluster whose line differs.
func ChangeLines(prev *view.Fleet, cur view.Fleet) []string {
	var out []string
	if c := cur.Coordinator; c != nil {
		l := fmt.Sprintf("fleet %s %s", c.FleetRollout, c.Phase)
		if c.Reason != "" {
			l += " (" + c.Reason + ")"
		}
		if c.Message != "" {
			l += ": " + c.Message
		}
		var pl string
		if prev != nil && prev.Coordinator != nil {
			p := prev.Coordinator
			pl = fmt.Sprintf("fleet %s %s", p.FleetRollout, p.Phase)
			if p.Reason != "" {
				pl += " (" + p.Reason + ")"
			}
			if p.Message != "" {
				pl += ": " + p.Message
			}
		}
		if l != pl {
			out = append(out, l)
		}
	}
	before := map[string]string{}
	if prev != nil {
		for _, c := range prev.Clusters {
			before[c.Name] = view.Line(c)
		}
	}
	for _, c := range cur.Clusters {
		if l := view.Line(c); l != before[c.Name] {
			out = append(out, l)
		}
	}
	return out
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
