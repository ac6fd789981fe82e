// Package approve is the `lockstep approve` command: a person's approval of
// one wave, or one named barrier, of the revision a FleetRollout releases,
// as a FleetApproval on
// the hub whose approver is the person's own Kubernetes identity (the
// apiserver's admission policy refuses any other name). It imports cobra,
// client-go, controller-runtime's client, the API types and the CLI's
// status package (the hub and FleetRollout the other verbs find).
package approve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/cli/status"
	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/kube"
)

type flags struct {
	target   *status.TargetFlags
	gate     Gate
	revision string
}

// Gate is what an approval lets go: a wave (spec.waves[].name) or a named
// barrier (spec.hold.steps[].name); exactly one is set.
type Gate struct {
	Wave, Barrier string
}

func (g Gate) String() string {
	if g.Barrier != "" {
		return "barrier " + g.Barrier
	}
	return "wave " + g.Wave
}

// NewCommand returns `lockstep approve`.
func NewCommand(s streams.IO) *cobra.Command {
	f := &flags{target: status.NewTargetFlags()}
	cmd := &cobra.Command{
		Use:   "approve [FLEETROLLOUT] [--wave NAME | --barrier NAME]",
		Short: "Approve a wave or a barrier of the revision a FleetRollout releases",
		Long: `Approve lets a wave whose spec.waves[].approval is Required start, or the
fleet pass a barrier whose spec.hold.steps[].approval is Required, for the
revision the FleetRollout releases now (status.fleet.revision, or --revision).
Without --wave or --barrier it approves what the FleetRollout waits for now.
It creates a FleetApproval on the hub with you as the approver: your
Kubernetes identity as the hub sees it (a SelfSubjectReview), which the hub's
admission policy holds it to, so nobody approves in another's name. The
coordinator records who approved, and when, in status.fleet.approvals and
an Event. An approval of another revision does not count.`,
		Example: `  # Approve what the hub's only FleetRollout waits for now
  lockstep approve --context argo-hub

  # Let the wave "rest" of the hub's only FleetRollout go
  lockstep approve --wave rest --context argo-hub

  # A named FleetRollout, in namespace lockstep
  lockstep approve helloworld -n lockstep --wave rest

  # Let the fleet past the barrier named prod-gate (spec.hold.steps[].name)
  lockstep approve helloworld -n lockstep --barrier prod-gate`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if f.gate.Wave != "" && f.gate.Barrier != "" {
				return errors.New("give one of --wave and --barrier, not both")
			}
			if err := f.target.Validate(name); err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return run(ctx, s, f, name)
		},
	}
	f.target.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&f.gate.Wave, "wave", "", "the wave to approve (spec.waves[].name)")
	cmd.Flags().StringVar(&f.gate.Barrier, "barrier", "", "the barrier to approve (spec.hold.steps[].name)")
	cmd.Flags().StringVar(&f.revision, "revision", "", "the revision approved (default: the one the FleetRollout releases now)")
	return cmd
}

func run(ctx context.Context, s streams.IO, f *flags, name string) error {
	t, err := f.target.Resolve(ctx, name, status.ResolveOptions{})
	if err != nil {
		return err
	}
	if t.Cache != nil {
		defer t.Cache.Stop()
	}
	if t.FleetRollout == nil {
		return errors.New("no FleetRollout: approvals are for a coordinated release (name one, or -n its namespace)")
	}
	cfg, err := f.target.Hub.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	gate := f.gate
	if gate == (Gate{}) {
		if gate, err = Awaiting(t.FleetRollout); err != nil {
			return fmt.Errorf("%w; name a --wave or --barrier to approve ahead", err)
		}
	}
	a, err := Approve(ctx, t.Hub, kube.WhoAmI(cs), t.FleetRollout, gate, f.revision)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "approved %s of revision %s of %s/%s as %s (FleetApproval %s)\n",
		gate, a.Spec.Revision, t.FleetRollout.Namespace, t.FleetRollout.Name, a.Spec.Approver, a.Name)
	return nil
}

var unsafeName = regexp.MustCompile(`[^a-z0-9-]+`)

// Approve creates the FleetApproval of gate for revision (the
// FleetRollout's current one when empty), approved by whoever who says the
// caller is. Bad input is a one-line error that names the flag, and
// creates nothing.
func Approve(ctx context.Context, hub client.Client, who func(context.Context) (string, error), fr *v1alpha1.FleetRollout, gate Gate, revision string) (*v1alpha1.FleetApproval, error) {
	if err := checkGate(fr, gate); err != nil {
		return nil, err
	}
	if revision == "" {
		revision = fr.Status.Fleet.Revision
	}
	if revision == "" {
		return nil, errors.New("--revision: the FleetRollout has no revision yet; give one")
	}
	user, err := who(ctx)
	if err != nil {
		return nil, err
	}
	prefix := unsafeName.ReplaceAllString(strings.ToLower(fr.Name+"-"+gate.Wave+gate.Barrier), "-")
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	a := &v1alpha1.FleetApproval{
		ObjectMeta: metav1.ObjectMeta{Namespace: fr.Namespace, GenerateName: strings.Trim(prefix, "-") + "-"},
		Spec:       v1alpha1.FleetApprovalSpec{FleetRollout: fr.Name, Revision: revision, Wave: gate.Wave, Barrier: gate.Barrier, Approver: user},
	}
	if err := hub.Create(ctx, a); err != nil {
		return nil, fmt.Errorf("approve %s of %s/%s: %w", gate, fr.Namespace, fr.Name, err)
	}
	return a, nil
}

// checkGate refuses a wave or barrier that fr does not have, or that needs
// no approval.
func checkGate(fr *v1alpha1.FleetRollout, gate Gate) error {
	flag, name, kind, field := "--wave", gate.Wave, "wave", "spec.waves"
	var names []string
	required := false
	for _, w := range fr.Spec.Waves {
		names = append(names, w.Name)
		required = required || (w.Name == gate.Wave && w.Approval == "Required")
	}
	if gate.Barrier != "" {
		flag, name, kind, field, names = "--barrier", gate.Barrier, "barrier", "spec.hold.steps[].name", nil
		for _, st := range fr.Spec.Hold.Steps {
			if st.Name != "" {
				names = append(names, st.Name)
			}
			required = required || (st.Name == gate.Barrier && st.Approval == "Required")
		}
	}
	switch {
	case !slices.Contains(names, name):
		return fmt.Errorf("%s %q: %s/%s has no such %s (%s: %s)", flag, name, fr.Namespace, fr.Name, kind, field, strings.Join(names, ", "))
	case !required:
		return fmt.Errorf("%s %q: the %s needs no approval (its approval is not Required)", flag, name, kind)
	}
	return nil
}

// Awaiting is what fr waits on a person's approval for now: the named
// barrier it holds at, or the first wave that needs an approval of the
// current revision it has not had. It fails, in one line, when nothing
// awaits one.
func Awaiting(fr *v1alpha1.FleetRollout) (Gate, error) {
	st := &fr.Status
	if st.Reason != awaitingApproval {
		return Gate{}, fmt.Errorf("%s/%s awaits no approval (%s: %s)", fr.Namespace, fr.Name, cmp.Or(st.Reason, "no reason yet"), st.Message)
	}
	approved := func(g Gate) bool {
		return slices.ContainsFunc(st.Fleet.Approvals, func(a v1alpha1.WaveApproval) bool { return a.Wave == g.Wave && a.Barrier == g.Barrier })
	}
	if at := st.Fleet.BarrierStep; at != nil {
		for _, h := range fr.Spec.Hold.Steps {
			if g := (Gate{Barrier: h.Name}); h.Step == *at && h.Approval == "Required" && !approved(g) {
				return g, nil
			}
		}
	}
	for _, w := range fr.Spec.Waves {
		if g := (Gate{Wave: w.Name}); w.Approval == "Required" && !approved(g) {
			return g, nil
		}
	}
	return Gate{}, fmt.Errorf("%s/%s says it awaits approval, but no wave or barrier of its spec needs one that is not given", fr.Namespace, fr.Name)
}

// awaitingApproval is the coordinator's reason while a wave or barrier
// waits for a person (decide.ReasonAwaitingApproval).
const awaitingApproval = "AwaitingApproval"
