// Package history is the `lockstep history` command: the past releases of
// a FleetRollout, as the coordinator keeps them in status.releases —
// revision, start, end, outcome, who approved which wave, why it ended and
// the judge's evidence. It imports cobra, sigs.k8s.io/yaml, the API types
// and the CLI's status package (which finds the FleetRollout).
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/cli/status"
	"lockstep.dev/lockstep/internal/cli/streams"
)

// NewCommand returns `lockstep history`.
func NewCommand(s streams.IO) *cobra.Command {
	target := status.NewTargetFlags()
	var output string
	cmd := &cobra.Command{
		Use:   "history [FLEETROLLOUT]",
		Short: "List a FleetRollout's past releases",
		Long: `History lists the releases the coordinator recorded in the FleetRollout's
status (the last spec.releaseHistory of them, 20 by default): revision,
start, end, outcome (Completed, Aborted, Superseded or InProgress), who
approved which wave, why it ended, and the fleet's evidence (canary requests
that failed) when the judge ran.`,
		Example: `  # The hub's only FleetRollout
  lockstep history --context argo-hub

  # One of several, with reasons and messages, or as data
  lockstep history helloworld -n lockstep -o wide
  lockstep history helloworld -n lockstep -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if err := validFormat(output); err != nil {
				return err
			}
			if err := target.Validate(name); err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			t, err := target.Resolve(ctx, name, status.ResolveOptions{})
			if err != nil {
				return err
			}
			if t.Cache != nil {
				defer t.Cache.Stop()
			}
			if t.FleetRollout == nil {
				return errors.New("no FleetRollout: the history is a coordinated release's (name one, or -n its namespace)")
			}
			return Print(s.Out, output, t.FleetRollout.Status.Releases)
		},
	}
	target.AddFlags(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, wide, json or yaml")
	return cmd
}

func validFormat(f string) error {
	switch f {
	case "table", "wide", "json", "yaml":
		return nil
	}
	return fmt.Errorf("--output %q: want table, wide, json or yaml", f)
}

// Print writes the records in format.
func Print(w io.Writer, format string, rs []v1alpha1.ReleaseRecord) error {
	if err := validFormat(format); err != nil {
		return err
	}
	if rs == nil {
		rs = []v1alpha1.ReleaseRecord{}
	}
	switch format {
	case "json":
		b, err := json.MarshalIndent(rs, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(rs)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "REVISION\tSTARTED\tENDED\tOUTCOME\tAPPROVED\tABORTED BY\tFAILED (CANARY)"
	if format == "wide" {
		head += "\tREASON\tMESSAGE"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rs {
		ended := "-"
		if r.EndedAt != nil {
			ended = r.EndedAt.UTC().Format("2006-01-02 15:04:05")
		}
		var approved []string
		for _, a := range r.Approvals {
			what := a.Wave
			if a.Barrier != "" {
				what = "barrier " + a.Barrier
			}
			approved = append(approved, what+" by "+a.Approver)
		}
		failed := "-"
		if e := r.Evidence; e != nil {
			failed = fmt.Sprintf("%d/%d", e.Canary.Failures, e.Canary.Requests)
		}
		line := strings.Join([]string{r.Revision, r.StartedAt.UTC().Format("2006-01-02 15:04:05"), ended, r.Outcome, dash(strings.Join(approved, ", ")), dash(r.AbortedBy), failed}, "\t")
		if format == "wide" {
			line += "\t" + dash(r.Reason) + "\t" + dash(r.Message)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
