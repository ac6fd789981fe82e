// Package approve is the `lockstep approve` command: a person's approval of
// one wave of the revision a FleetRollout releases, as a FleetApproval on
// the hub whose approver is the person's own Kubernetes identity (the
// apiserver's admission policy refuses any other name). It imports cobra,
// client-go, controller-runtime's client, the API types and the CLI's
// status package (the hub and FleetRollout the other verbs find).
package approve

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/cli/status"
	"lockstep.dev/lockstep/internal/cli/streams"
)

type flags struct {
	target   *status.TargetFlags
	wave     string
	revision string
}

// NewCommand returns `lockstep approve`.
func NewCommand(s streams.IO) *cobra.Command {
	f := &flags{target: status.NewTargetFlags()}
	cmd := &cobra.Command{
		Use:   "approve [FLEETROLLOUT] --wave NAME",
		Short: "Approve a wave of the revision a FleetRollout releases",
		Long: `Approve lets a wave whose spec.waves[].approval is Required start for the
revision the FleetRollout releases now (status.fleet.revision, or --revision).
It creates a FleetApproval on the hub with you as the approver: your
Kubernetes identity as the hub sees it (a SelfSubjectReview), which the hub's
admission policy holds it to, so nobody approves in another's name. The
coordinator records who approved, and when, in status.fleet.approvals and
an Event. An approval of another revision does not count.`,
		Example: `  # Let the wave "rest" of the hub's only FleetRollout go
  lockstep approve --wave rest --context argo-hub

  # A named FleetRollout, in namespace lockstep
  lockstep approve helloworld -n lockstep --wave rest`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if f.wave == "" {
				return errors.New("--wave is required: name the wave to approve")
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
	cmd.Flags().StringVar(&f.wave, "wave", "", "the wave to approve (spec.waves[].name)")
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
	a, err := Approve(ctx, t.Hub, WhoAmI(cs), t.FleetRollout, f.wave, f.revision)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "approved wave %s of revision %s of %s/%s as %s (FleetApproval %s)\n",
		a.Spec.Wave, a.Spec.Revision, t.FleetRollout.Namespace, t.FleetRollout.Name, a.Spec.Approver, a.Name)
	return nil
}

// WhoAmI asks the hub who the caller is (a SelfSubjectReview).
func WhoAmI(cs kubernetes.Interface) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return "", fmt.Errorf("who am I on the hub: %w", err)
		}
		if r.Status.UserInfo.Username == "" {
			return "", errors.New("who am I on the hub: no user name in the SelfSubjectReview")
		}
		return r.Status.UserInfo.Username, nil
	}
}

var unsafeName = regexp.MustCompile(`[^a-z0-9-]+`)

// Approve creates the FleetApproval of wave for revision (the FleetRollout's
// current one when empty), approved by whoever who says the caller is.
// Bad input is a one-line error that names the field, and creates nothing.
func Approve(ctx context.Context, hub client.Client, who func(context.Context) (string, error), fr *v1alpha1.FleetRollout, wave, revision string) (*v1alpha1.FleetApproval, error) {
	var names []string
	required := false
	for _, w := range fr.Spec.Waves {
		names = append(names, w.Name)
		if w.Name == wave {
			required = w.Approval == "Required"
		}
	}
	switch {
	case !slices.Contains(names, wave):
		return nil, fmt.Errorf("--wave %q: %s/%s has no such wave (spec.waves: %s)", wave, fr.Namespace, fr.Name, strings.Join(names, ", "))
	case !required:
		return nil, fmt.Errorf("--wave %q: the wave needs no approval (spec.waves[].approval is not Required)", wave)
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
	prefix := unsafeName.ReplaceAllString(strings.ToLower(fr.Name+"-"+wave), "-")
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	a := &v1alpha1.FleetApproval{
		ObjectMeta: metav1.ObjectMeta{Namespace: fr.Namespace, GenerateName: strings.Trim(prefix, "-") + "-"},
		Spec:       v1alpha1.FleetApprovalSpec{FleetRollout: fr.Name, Revision: revision, Wave: wave, Approver: user},
	}
	if err := hub.Create(ctx, a); err != nil {
		return nil, fmt.Errorf("approve wave %s of %s/%s: %w", wave, fr.Namespace, fr.Name, err)
	}
	return a, nil
}
