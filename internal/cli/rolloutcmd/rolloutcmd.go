package rolloutcmd

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/cli/status"
	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/rollouts"
)

// Verb is one of the rollout verbs.
type Verb string

// The verbs.
const (
	Promote Verb = "promote"
	Abort   Verb = "abort"
	Retry   Verb = "retry"
	Pause   Verb = "pause"
	Resume  Verb = "resume"
)

type flags struct {
	target  *status.TargetFlags
	cluster []string
	full    bool
	wait    time.Duration
}

var help = map[Verb]struct{ short, long, example, done string }{
	Promote: {
		"Promote the canary to the next step in every cluster",
		`Promote sends what ` + "`kubectl argo rollouts promote`" + ` sends, to every member at
once: it unpauses a paused Rollout and moves it past its current pause step;
with --full it skips all remaining steps.

With a coordinator (a FleetRollout names the Rollout) the coordinator
promotes by itself once a step's hold time and analysis have passed; a manual
promote skips what is left of the hold and the analysis at the current step,
in every member together. That is how a person goes on from a barrier the
coordinator paused as Inconclusive (analysis short of passing past
policy.inconclusiveLimit). It refuses --cluster then, because promoting one
member would put it a step ahead of the others.`,
		`  # Next step everywhere
  lockstep promote --context argo-hub

  # Skip the remaining steps in one cluster (no coordinator)
  lockstep promote --full --cluster argo-rollout1 --context argo-hub`,
		"promoted",
	},
	Abort: {
		"Abort the canary in every cluster",
		`Abort sends what ` + "`kubectl argo rollouts abort`" + ` sends ({"status":{"abort":true}}):
traffic goes back to the stable version and the canary scales down.

With a coordinator the patch goes to the members just the same; the
coordinator reads a member abort as a failure and keeps every member aborted
until a new revision or ` + "`lockstep retry`" + `. With --cluster only that member is
patched, and the coordinator aborts the others.`,
		`  # Stop the canary everywhere
  lockstep abort --context argo-hub

  # Named kubeconfig contexts, no hub
  lockstep abort --clusters argo-rollout1,argo-rollout2`,
		"aborted",
	},
	Retry: {
		"Retry an aborted canary in every cluster",
		`Retry restarts an aborted canary from its first step.

Without a coordinator it sends what ` + "`kubectl argo rollouts retry`" + ` sends
({"status":{"abort":false}}) to every member. With a coordinator it sets a
new spec.retryToken on the FleetRollout and waits (--wait) until the
coordinator has acted on it, so that the members restart together; --cluster
is refused then.`,
		`  # Restart the canary everywhere
  lockstep retry --context argo-hub

  # A FleetRollout in another namespace
  lockstep retry helloworld -n team-a --context argo-hub`,
		"retried",
	},
	Pause: {
		"Pause the Rollout in every cluster",
		`Pause sends what ` + "`kubectl argo rollouts pause`" + ` sends ({"spec":{"paused":true}}).
A coordinator never clears spec.paused; a paused member is not at the
barrier, so the whole fleet holds at the next step until ` + "`lockstep resume`" + `.`,
		`  # Hold everything
  lockstep pause --context argo-hub

  # Hold one cluster
  lockstep pause --cluster argo-rollout2 --context argo-hub`,
		"paused",
	},
	Resume: {
		"Resume a paused Rollout in every cluster",
		`Resume clears spec.paused ({"spec":{"paused":false}}, the first patch of the
plugin's promote) and nothing else: a Rollout waiting at a pause step stays
there until it is promoted (by the coordinator, or ` + "`lockstep promote`" + `).`,
		`  # Undo lockstep pause
  lockstep resume --context argo-hub`,
		"resumed",
	},
}

// NewCommands returns the five verbs.
func NewCommands(s streams.IO) []*cobra.Command {
	return []*cobra.Command{
		NewCommand(s, Promote), NewCommand(s, Abort), NewCommand(s, Retry), NewCommand(s, Pause), NewCommand(s, Resume),
	}
}

// NewCommand returns one verb's command.
func NewCommand(s streams.IO, v Verb) *cobra.Command {
	f := &flags{target: status.NewTargetFlags(), wait: 30 * time.Second}
	h := help[v]
	cmd := &cobra.Command{
		Use:     string(v) + " [FLEETROLLOUT]",
		Short:   h.short,
		Long:    h.long,
		Example: h.example,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if err := f.target.Validate(name); err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return run(ctx, s, v, f, name)
		},
	}
	fl := cmd.Flags()
	f.target.AddFlags(fl)
	fl.StringSliceVar(&f.cluster, "cluster", nil, "act only on these member clusters (default: every member)")
	if v == Promote {
		fl.BoolVar(&f.full, "full", false, "skip every remaining step and analysis")
	}
	if v == Retry {
		fl.DurationVar(&f.wait, "wait", f.wait, "with a coordinator, how long to wait for it to act on the retry")
	}
	return cmd
}

func run(ctx context.Context, s streams.IO, v Verb, f *flags, name string) error {
	t, err := f.target.Resolve(ctx, name, status.ResolveOptions{Discover: true})
	if err != nil {
		return err
	}
	defer t.Cache.Stop()
	opts := Options{Clusters: f.cluster, Full: f.full, Wait: f.wait}
	if cfg, err := f.target.Hub.ToRESTConfig(); err == nil && t.Hub != nil {
		if cs, err := kubernetes.NewForConfig(cfg); err == nil {
			opts.WhoAmI = kube.WhoAmI(cs)
		}
	}
	o, err := Do(ctx, t, v, opts)
	if err != nil {
		return err
	}
	return o.Report(s.Out, s.ErrOut)
}

// Options are what a verb is asked to do beyond its name.
type Options struct {
	// Clusters restricts the verb to these members (default: every one).
	Clusters []string
	// Full is promote --full.
	Full bool
	// Wait is how long retry waits for a coordinator to act on it.
	Wait time.Duration
	// WhoAmI, when set, names the person behind an abort of a
	// FleetRollout's fleet: it is recorded on the FleetRollout (see
	// recordAbortedBy) for the coordinator's record of the release.
	WhoAmI func(context.Context) (string, error)
}

// Outcome is what a verb did, cluster by cluster. The CLI prints it with
// Report; the dashboard returns it as JSON.
type Outcome struct {
	Verb    Verb
	Rollout string
	Results []Result
	// Note is appended to every confirmation line.
	Note string
}

// Err names the clusters where the verb failed; nil when none did.
func (o *Outcome) Err() error { return failure(o.Verb, o.Results) }

// Report prints the outcome: one line per cluster, failures on errOut,
// and an error when any cluster failed.
func (o *Outcome) Report(out, errOut io.Writer) error {
	return Report(out, errOut, o.Verb, o.Rollout, o.Results, o.Note)
}

// Message is what the outcome says of one cluster: its error, or what
// was done there.
func (o *Outcome) Message(r Result) string {
	return message(o.Verb, o.Rollout, r, o.Note)
}

func message(v Verb, rollout string, r Result, note string) string {
	switch {
	case r.Err != nil:
		return oneLine(r.Err.Error())
	case r.Done != "":
		return r.Done
	}
	return fmt.Sprintf("rollout %s %s%s", rollout, help[v].done, note)
}

// Do runs verb v on a resolved fleet: the one code path of the CLI verbs
// and the dashboard's buttons. It returns an error, and changes nothing,
// when the request itself is refused (an unknown cluster, a per-cluster
// promote or retry under a coordinator); failures in single clusters are
// in the Outcome.
func Do(ctx context.Context, t *status.Target, v Verb, o Options) (*Outcome, error) {
	if _, ok := help[v]; !ok {
		return nil, fmt.Errorf("unknown verb %q (want promote, abort, retry, pause or resume)", v)
	}
	members := make([]string, 0, len(t.Members))
	for _, m := range t.Members {
		members = append(members, m.Name)
	}
	if len(o.Clusters) > 0 {
		for _, c := range o.Clusters {
			if !slices.Contains(members, c) {
				return nil, fmt.Errorf("cluster %s is not a member (members: %s)", c, strings.Join(members, ", "))
			}
		}
		members = o.Clusters
	}
	out := &Outcome{Verb: v, Rollout: t.RolloutNamespace + "/" + t.RolloutName}
	if fr := t.FleetRollout; fr != nil {
		ref := fr.Namespace + "/" + fr.Name
		switch {
		case v == Retry:
			if len(o.Clusters) > 0 {
				return nil, fmt.Errorf("fleetrollout %s: retry is fleet-wide with a coordinator; drop --cluster", ref)
			}
			res, err := retryThroughCoordinator(ctx, t.Hub, fr, cmp.Or(o.Wait, 30*time.Second))
			if err != nil {
				return nil, err
			}
			out.Results = res
			return out, nil
		case v == Promote && len(o.Clusters) > 0:
			return nil, fmt.Errorf("fleetrollout %s: promoting only %s would put it a step ahead of the other members; drop --cluster", ref, strings.Join(o.Clusters, ","))
		}
		if v == Abort {
			out.Note = fmt.Sprintf(" (coordinator %s keeps the fleet aborted until a new revision or lockstep retry)", ref)
		}
	}
	// Who aborted is said on the hub beside the abort, never before it:
	// an emergency abort waits for no one.
	recorded := make(chan string, 1)
	if fr := t.FleetRollout; v == Abort && fr != nil && t.Hub != nil && o.WhoAmI != nil {
		go func() { recorded <- recordAbortedBy(ctx, t.Hub, fr, o.WhoAmI) }()
	} else {
		recorded <- ""
	}
	out.Results = Apply(ctx, t.Cache.Client, members, t.RolloutNamespace, t.RolloutName, Action(v, o.Full))
	out.Note += <-recorded
	return out, nil
}

// recordAbortedBy marks fr with who aborts its fleet, for which revision
// (v1alpha1.AnnotationAbortedBy, AnnotationAbortedRevision). The hub's
// admission policy holds the name to the user who makes the request. It
// returns a note for the confirmation lines: empty, or why nobody was
// recorded (the abort goes on regardless).
func recordAbortedBy(ctx context.Context, hub client.Client, fr *v1alpha1.FleetRollout, who func(context.Context) (string, error)) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	user, err := who(ctx)
	if err == nil {
		patch := map[string]any{"metadata": map[string]any{"annotations": map[string]string{
			v1alpha1.AnnotationAbortedBy: user, v1alpha1.AnnotationAbortedRevision: fr.Status.Fleet.Revision}}}
		var b []byte
		if b, err = json.Marshal(patch); err == nil {
			err = hub.Patch(ctx, fr.DeepCopy(), client.RawPatch(types.MergePatchType, b))
		}
	}
	if err != nil {
		return " (who aborted is not recorded: " + oneLine(err.Error()) + ")"
	}
	return ""
}

// Action returns the plugin-equivalent patch of a verb, for one member.
func Action(v Verb, full bool) func(ctx context.Context, dyn dynamic.Interface, namespace, name string) error {
	switch v {
	case Promote:
		return func(ctx context.Context, dyn dynamic.Interface, ns, n string) error {
			return rollouts.Promote(ctx, dyn, ns, n, full)
		}
	case Abort:
		return rollouts.Abort
	case Retry:
		return rollouts.Retry
	case Pause:
		return rollouts.Pause
	case Resume:
		return rollouts.Resume
	}
	return func(context.Context, dynamic.Interface, string, string) error {
		return fmt.Errorf("unknown verb %q", v)
	}
}

// Result is what happened in one cluster.
type Result struct {
	Cluster string
	Err     error
	// Done, when set, says what was done instead of the verb's usual
	// confirmation (a retry the coordinator acted on).
	Done string
}

// Apply runs act in every cluster at once (so members move as close
// together as the network allows) and returns the results in the order of
// clusters. clientFor is the fleet cache's Client: an unreachable member
// fails here with its typed not-connected error instead of hanging.
func Apply(ctx context.Context, clientFor func(context.Context, string) (dynamic.Interface, error), clusters []string, namespace, name string,
	act func(context.Context, dynamic.Interface, string, string) error) []Result {
	out := make([]Result, len(clusters))
	var wg sync.WaitGroup
	for i, c := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].Cluster = c
			dyn, err := clientFor(ctx, c)
			if err == nil {
				err = act(ctx, dyn, namespace, name)
			}
			out[i].Err = err
		}()
	}
	wg.Wait()
	return out
}

// Report prints one line per cluster (confirmations on out, failures on
// errOut) and returns an error when any cluster failed.
func Report(out, errOut io.Writer, v Verb, rollout string, results []Result, note string) error {
	for _, r := range results {
		w := out
		if r.Err != nil {
			w = errOut
		}
		fmt.Fprintf(w, "%s: %s\n", r.Cluster, message(v, rollout, r, note))
	}
	return failure(v, results)
}

func failure(v Verb, results []Result) error {
	var failed []string
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r.Cluster)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s failed in %d of %d clusters: %s", v, len(failed), len(results), strings.Join(failed, ", "))
	}
	return nil
}

// retryThroughCoordinator sets a fresh retry token and waits until the
// coordinator has acted on it; the token is acted on once, so a stale one
// can never undo a later abort.
func retryThroughCoordinator(ctx context.Context, hub client.Client, fr *v1alpha1.FleetRollout, wait time.Duration) ([]Result, error) {
	ref := fr.Namespace + "/" + fr.Name
	token := time.Now().UTC().Format(time.RFC3339Nano)
	body := fmt.Sprintf(`{"spec":{"retryToken":%q}}`, token)
	if err := hub.Patch(ctx, fr, client.RawPatch(types.MergePatchType, []byte(body))); err != nil {
		return nil, fmt.Errorf("fleetrollout %s: set retry token: %w", ref, err)
	}
	deadline := time.Now().Add(wait)
	for {
		cur := &v1alpha1.FleetRollout{}
		err := hub.Get(ctx, client.ObjectKeyFromObject(fr), cur)
		if err == nil && cur.Status.Fleet.HandledRetryToken == token {
			// The coordinator lists the members it sent a retry to until
			// they leave the abort; a member it did not list was not
			// aborted, so the retry only cleared the fleet's abort there.
			var res []Result
			for _, m := range cur.Status.Members {
				state := "out of the abort"
				switch {
				case slices.Contains(cur.Status.Fleet.RetryPending, m.Name):
					state = "retry sent, leaving the abort"
				case m.Aborted:
					state = "still aborted"
				}
				res = append(res, Result{Cluster: m.Name, Done: fmt.Sprintf("rollout %s/%s retried through coordinator %s (%s)", cur.Spec.Rollout.Namespace, cur.Spec.Rollout.Name, ref, state)})
			}
			return res, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("fleetrollout %s: retry token %s set, but reading it back failed: %w", ref, token, err)
			}
			return nil, fmt.Errorf("fleetrollout %s: retry token %s set, but the coordinator has not acted on it within %s (is it running?)", ref, token, wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func oneLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
