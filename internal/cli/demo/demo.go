// Package demo implements `lockstep demo`, `lockstep load` and `lockstep
// render`: the lab guide's upgrade run end to end on the local fleet, the
// traffic it needs, and the GitOps tree rendered for any fleet. It imports
// internal/demo, internal/load, internal/render, internal/lab/local and
// internal/cli/streams.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"lockstep.dev/lockstep/gitops"
	clidashboard "lockstep.dev/lockstep/internal/cli/dashboard"
	"lockstep.dev/lockstep/internal/cli/status"
	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/dashboard"
	"lockstep.dev/lockstep/internal/demo"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/load"
	"lockstep.dev/lockstep/internal/readout"
	"lockstep.dev/lockstep/internal/render"
)

// timings are the canary's timing flags shared by demo and render.
type timings struct {
	pause, delay, interval, scaleDown time.Duration
}

func (t *timings) register(cmd *cobra.Command, def render.Params) {
	cmd.Flags().DurationVar(&t.pause, "pause", def.Pause, "length of each canary pause (the guide: 20s)")
	cmd.Flags().DurationVar(&t.delay, "analysis-delay", def.AnalysisInitialDelay, "analysis initialDelay (the guide: 60s)")
	cmd.Flags().DurationVar(&t.interval, "analysis-interval", def.AnalysisInterval, "analysis interval (the guide: 20s)")
	cmd.Flags().DurationVar(&t.scaleDown, "scale-down-delay", def.ScaleDownDelay, "how long old and aborted ReplicaSets stay up (Rollouts: 30s)")
}

func (t *timings) apply(p render.Params) render.Params {
	p.Pause, p.AnalysisInitialDelay, p.AnalysisInterval, p.ScaleDownDelay = t.pause, t.delay, t.interval, t.scaleDown
	return p
}

// DemoParams are the demo's default timings: the guide's shape, shorter.
func DemoParams() render.Params {
	p := render.Guide()
	p.Pause, p.AnalysisInitialDelay, p.AnalysisInterval, p.ScaleDownDelay = 10*time.Second, 20*time.Second, 10*time.Second, 10*time.Second
	return p
}

// NewDemoCommand returns `lockstep demo`.
// checkFaults checks the fault flags together, before anything starts.
func checkFaults(errorRate float64, latency time.Duration, faultIn string, baseline, incidentRate float64, incidentFor time.Duration) error {
	switch {
	case errorRate < 0 || errorRate > 1 || (errorRate == 0 && latency == 0):
		return fmt.Errorf("--error-rate %.2f must be in (0, 1] (0 only with --latency)", errorRate)
	case latency < 0:
		return fmt.Errorf("--latency %s must not be negative", latency)
	case latency > 0 && faultIn == "":
		return fmt.Errorf("--latency needs --bad-release --fault-cluster")
	case baseline < 0 || baseline >= 1:
		return fmt.Errorf("--baseline-error-rate %.2f must be in [0, 1)", baseline)
	case incidentRate < 0 || baseline+incidentRate > 1:
		return fmt.Errorf("--incident-error-rate %.2f must be in [0, 1 - --baseline-error-rate]", incidentRate)
	case incidentFor < 0 || (incidentFor > 0) != (incidentRate > 0):
		return fmt.Errorf("--incident-for %s and --incident-error-rate %.2f go together, both positive", incidentFor, incidentRate)
	}
	return nil
}

func NewDemoCommand(s streams.IO) *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the lab guide's v1 -> v2 canary in every workload cluster from one commit",
		Long: `Demo starts the local fleet if it is not running, applies the guide's
ApplicationSets, waits until every workload cluster serves the current
version, puts load on every ingress gateway, commits the guide's change
(sed -vN -> -vN+1 in argo-resources/rollout/strategy/rollout.yaml) to the
fleet's git server, tells Argo CD at once, and shows every cluster's canary
(step, weights, analysis) until the new version serves everywhere. Then it
prints requests per version per cluster and success rates from Thanos.

--bad-release ships a version whose pods fail a share of requests: the
analysis (through Thanos on the hub) aborts the canary and traffic returns to
the stable version.

--lockstep deploys the Rollout with indefinite pauses and the FleetRollout
(lockstep/ in the GitOps tree, applied to the hub by an Application): the
hub's coordinator moves both clusters step by step together and aborts both
when either fails. Without it, the guide's independent Rollouts run.`,
		Example: `  lockstep demo
  lockstep demo --bad-release --error-rate 0.3
  lockstep demo --lockstep                  # through the hub's coordinator
  lockstep demo --lockstep --workloads 3    # a fleet of three workload clusters
  lockstep demo --lockstep --bad-release --error-rate 0.15 --fault-cluster argo-rollout2
  lockstep demo --lockstep --bad-release --latency 200ms --fault-cluster argo-rollout1
  lockstep demo --lockstep --baseline-error-rate 0.03   # a good release; stable and canary fail 3 %
  lockstep demo --lockstep --incident-error-rate 0.2 --incident-for 30s   # a good release through a shared incident
  lockstep demo --lockstep --approval-barrier prod-gate   # waits at 50 % for: lockstep approve --barrier prod-gate
  lockstep demo --pause 20s --analysis-delay 60s --analysis-interval 20s   # the guide's timings`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.run(cmd, s) },
	}
	cmd.Flags().StringVar(&f.dir, "dir", local.DefaultDir(), "directory of the local fleet (env LOCKSTEP_DIR)")
	cmd.Flags().BoolVar(&f.bad, "bad-release", false, "ship a version that fails --error-rate of its requests")
	cmd.Flags().BoolVar(&f.lock, "lockstep", false, "run the canary through the hub's coordinator (FleetRollout, indefinite pauses) instead of the guide's independent Rollouts")
	cmd.Flags().Float64Var(&f.errorRate, "error-rate", 0.3, "share of requests the bad release fails")
	cmd.Flags().StringVar(&f.faultIn, "fault-cluster", "", "with --bad-release: the release fails only in this cluster (its pods get the fault, git does not)")
	cmd.Flags().DurationVar(&f.latency, "latency", 0, "with --bad-release --fault-cluster: the new version's pods there answer this much slower (alone: a release that only got slow)")
	cmd.Flags().Float64Var(&f.baseline, "baseline-error-rate", 0, "every helloworld pod, stable and canary, fails this share of requests (a good release on an imperfect fleet)")
	cmd.Flags().Float64Var(&f.incidentRate, "incident-error-rate", 0, "with --incident-for: a shared incident; every helloworld pod, stable and canary, fails this share more, from when the canary first reaches 50 %")
	cmd.Flags().DurationVar(&f.incidentFor, "incident-for", 0, "how long the shared incident lasts")
	cmd.Flags().StringVar(&f.barrier, "approval-barrier", "", "with --lockstep: hold the fleet at 50 % canary until a person approves this barrier (lockstep approve --barrier NAME, or the dashboard)")
	cmd.Flags().Float64Var(&f.rate, "rate", 20, "requests per second on each ingress gateway")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up after this long")
	cmd.Flags().IntVar(&f.workloads, "workloads", 2, "workload clusters of the fleet the demo starts (argo-rollout1..N); a running fleet must have as many when given")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "summary format: text or json (progress then goes to stderr)")
	f.t.register(cmd, DemoParams())
	f.dash.register(cmd)
	return cmd
}

// demoFlags are `lockstep demo`'s flags.
type demoFlags struct {
	dir, output  string
	bad, lock    bool
	errorRate    float64
	faultIn      string
	barrier      string
	latency      time.Duration
	baseline     float64
	incidentRate float64
	incidentFor  time.Duration
	rate         float64
	timeout      time.Duration
	workloads    int
	t            timings
	dash         dashFlags
}

// run checks the flags, starts the fleet if needed and runs the demo.
func (f *demoFlags) run(cmd *cobra.Command, s streams.IO) error {
	if f.output != "text" && f.output != "json" {
		return fmt.Errorf("unknown output format %q (use text or json)", f.output)
	}
	if f.latency > 0 && !cmd.Flags().Changed("error-rate") {
		f.errorRate = 0 // a release that only got slow
	}
	if err := checkFaults(f.errorRate, f.latency, f.faultIn, f.baseline, f.incidentRate, f.incidentFor); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := s.Out
	if f.output == "json" {
		progress = s.ErrOut
	}
	if f.workloads < 1 {
		return fmt.Errorf("--workloads %d: want at least 1", f.workloads)
	}
	st, err := ensureFleet(ctx, f.dir, f.workloads, cmd.Flags().Changed("workloads"), progress)
	if err != nil {
		return err
	}
	params := f.t.apply(render.Guide())
	params.ScrapeInterval = local.ScrapeInterval
	if f.lock {
		params.Mode = render.ModeLockstep
	}
	params.ApprovalBarrier = f.barrier
	// Check the timings before anything starts; the addresses
	// come from the fleet.
	check := params
	check.RepoURL, check.ThanosURL = "fleet", "fleet"
	if err := check.Validate(); err != nil {
		return err
	}
	if f.faultIn != "" && !f.bad {
		return fmt.Errorf("--fault-cluster needs --bad-release")
	}
	if f.barrier != "" && !f.lock {
		return fmt.Errorf("--approval-barrier needs --lockstep")
	}
	if err := f.dash.start(ctx, st, f.lock, progress); err != nil {
		return err
	}
	sum, err := demo.Run(ctx, demo.Options{State: st, Params: params, BadRelease: f.bad, ErrorRate: f.errorRate, FaultCluster: f.faultIn,
		Latency: f.latency, BaselineErrorRate: f.baseline, IncidentErrorRate: f.incidentRate, IncidentFor: f.incidentFor,
		Rate: f.rate, Timeout: f.timeout, Progress: progress})
	if err != nil {
		return err
	}
	if f.output == "json" {
		err = sum.JSON(s.Out)
	} else {
		sum.Print(s.Out)
	}
	f.dash.linger(ctx, progress)
	return err
}

// dashFlags are the demo's dashboard: served while the demo runs.
type dashFlags struct {
	port        int
	off, keep   bool
	running     *clidashboard.Running
	pagePath    string
	stopServing context.CancelFunc
}

func (d *dashFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&d.port, "dashboard-port", 0, "port of the dashboard on 127.0.0.1 (0: a free port)")
	cmd.Flags().BoolVar(&d.off, "no-dashboard", false, "do not serve the dashboard")
	cmd.Flags().BoolVar(&d.keep, "keep-dashboard", false, "keep serving the dashboard after the summary, until Ctrl-C")
}

// start serves the fleet's page and starts plotting at once, so the page
// shows the whole canary whenever it is opened.
func (d *dashFlags) start(ctx context.Context, st *local.State, lockstep bool, progress io.Writer) error {
	if d.off {
		return nil
	}
	target := status.NewTargetFlags()
	kubeconfig, hub := st.Kubeconfig, local.HubName
	target.Hub.KubeConfig, target.Hub.Context = &kubeconfig, &hub
	// On loopback a member that does not answer in 2 s is down: the page
	// says so on its next refresh rather than after status's 5 s.
	target.Timeout = 2 * time.Second
	ref := dashboard.RolloutRef(demo.Namespace, demo.RolloutName)
	if lockstep {
		ref = dashboard.FleetRolloutRef(status.DefaultNamespace, demo.RolloutName)
	}
	ctx, d.stopServing = context.WithCancel(ctx)
	r, err := clidashboard.Start(ctx, clidashboard.Config{Target: target, Port: d.port, ThanosURL: st.URLs["thanos-query"],
		RateQuery: readout.DefaultRateQuery, LatencyQuery: readout.DefaultLatencyQuery, Interval: time.Second})
	if err != nil {
		d.stopServing()
		return fmt.Errorf("--dashboard-port: %w", err)
	}
	if err := r.Server.Watch(ref); err != nil {
		d.stopServing()
		return err
	}
	d.running, d.pagePath = r, ref.Path()
	fmt.Fprintf(progress, "dashboard: %s\n", r.URL(d.pagePath))
	return nil
}

// linger keeps the dashboard up after the summary when asked to, and
// stops it otherwise.
func (d *dashFlags) linger(ctx context.Context, progress io.Writer) {
	if d.running == nil {
		return
	}
	if d.keep {
		fmt.Fprintf(progress, "dashboard still serving at %s (Ctrl-C stops it)\n", d.running.URL(d.pagePath))
		<-ctx.Done()
	}
	d.stopServing()
	_ = d.running.Wait()
}

// ensureFleet returns a Ready local fleet, starting it with workloads
// workload clusters when needed. A running fleet is used as it is, unless
// strict asks for exactly workloads of them.
func ensureFleet(ctx context.Context, dir string, workloads int, strict bool, progress interface{ Write([]byte) (int, error) }) (*local.State, error) {
	if st, err := local.ReadState(dir); err == nil && st.Phase == local.PhaseReady && local.Alive(st.SupervisorPID, st.SupervisorAt) {
		n := 0
		for _, c := range st.Clusters {
			if c.Role == local.RoleWorkload {
				n++
			}
		}
		if strict && n != workloads {
			return nil, fmt.Errorf("the fleet in %s runs %d workload clusters, not %d: `lockstep lab down --dir %s` first, or drop --workloads", dir, n, workloads, dir)
		}
		return st, nil
	} else if err != nil && !errors.Is(err, local.ErrNoFleet) {
		return nil, err
	}
	cache, err := local.DefaultCache()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "starting the local fleet in %s\n", dir)
	st, err := local.Up(ctx, local.UpOptions{Dir: dir, Cache: cache, Workloads: workloads, Nodes: 2, Supervisor: []string{exe}, Out: progress})
	if errors.Is(err, local.ErrAlreadyRunning) {
		return st, nil
	}
	if err == nil {
		local.AddContexts(progress, local.UserKubeconfig(), st)
	}
	return st, err
}

// NewLoadCommand returns `lockstep load`.
func NewLoadCommand(s streams.IO) *cobra.Command {
	var (
		dir      string
		rate     float64
		duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Send a steady, bounded stream of requests to every ingress gateway",
		Long: `Load sends --rate requests per second to /hello on every workload cluster's
ingress gateway (loopback only) for --duration, then stops by itself. Every
second it prints the version split each gateway saw.`,
		Example: "  lockstep load --rate 20 --duration 1m",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := local.ReadState(dir)
			if err != nil {
				return err
			}
			var targets []load.Target
			for _, c := range st.Clusters {
				if u := st.URLs[local.IngressURLKey(c.Name)]; u != "" {
					targets = append(targets, load.Target{Cluster: c.Name, URL: u})
				}
			}
			o := load.Options{Rate: rate, Duration: duration}
			if err := load.Validate(targets, o); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			window := load.NewStats()
			o.OnResult = window.Add
			done := make(chan *load.Stats, 1)
			go func() {
				total, _ := load.Run(ctx, targets, o)
				done <- total
			}()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case total := <-done:
					fmt.Fprintln(s.Out, "total:")
					printStats(s, total.Snapshot())
					return nil
				case <-tick.C:
					snap := window.Snapshot()
					window = load.NewStats()
					o.OnResult = window.Add
					printStats(s, snap)
				}
			}
		},
	}
	cmd.Flags().StringVar(&dir, "dir", local.DefaultDir(), "directory of the local fleet (env LOCKSTEP_DIR)")
	cmd.Flags().Float64Var(&rate, "rate", 20, fmt.Sprintf("requests per second on each gateway (at most %d)", load.MaxRate))
	cmd.Flags().DurationVar(&duration, "duration", time.Minute, "how long to send (the run always stops by itself)")
	return cmd
}

func printStats(s streams.IO, m map[string]load.ClusterStats) {
	var cs []string
	for c := range m {
		cs = append(cs, c)
	}
	sort.Strings(cs)
	line := time.Now().Format("15:04:05")
	for _, c := range cs {
		line += fmt.Sprintf("  %s: %s", c, m[c].Split())
	}
	fmt.Fprintln(s.Out, line)
}

// NewRenderCommand returns `lockstep render`.
func NewRenderCommand(s streams.IO) *cobra.Command {
	var (
		out, repoURL, revision, thanosURL, dir string
		t                                      timings
	)
	cmd := &cobra.Command{
		Use:   "render --out DIR",
		Short: "Write the lab's GitOps tree with its parameters filled in",
		Long: `Render writes the GitOps tree (ApplicationSets, Istio resources, the Rollout
and its AnalysisTemplate, monitoring) with the repository URL, revision,
Thanos Query address and canary timings substituted. Without --repo-url and
--thanos-url it uses the local fleet's.`,
		Example: `  lockstep render --out ./lab
  lockstep render --out ./lab --repo-url https://git.example.com/lab.git --thanos-url http://thanos-query.monitoring:9090`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			p := t.apply(render.Guide())
			p.RepoURL, p.Revision, p.ThanosURL = repoURL, revision, thanosURL
			if p.RepoURL == "" || p.ThanosURL == "" {
				if st, err := local.ReadState(dir); err == nil {
					if p.RepoURL == "" {
						p.RepoURL = st.URLs["git"]
					}
					if p.ThanosURL == "" {
						p.ThanosURL = st.URLs["thanos-query"]
					}
				}
			}
			files, err := render.Tree(gitops.Tree, p)
			if err != nil {
				return err
			}
			if err := local.WriteFiles(out, files); err != nil {
				return err
			}
			for _, f := range render.Paths(files) {
				fmt.Fprintln(s.Out, filepath.Join(out, f))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the tree into")
	cmd.Flags().StringVar(&repoURL, "repo-url", "", "git URL Argo CD reads the tree from (default: the local fleet's)")
	cmd.Flags().StringVar(&revision, "revision", "main", "git revision the ApplicationSets track")
	cmd.Flags().StringVar(&thanosURL, "thanos-url", "", "Thanos Query URL of the AnalysisTemplate (default: the local fleet's)")
	cmd.Flags().StringVar(&dir, "dir", local.DefaultDir(), "directory of the local fleet (env LOCKSTEP_DIR)")
	t.register(cmd, render.Guide())
	return cmd
}
