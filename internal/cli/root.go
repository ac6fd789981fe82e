package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"lockstep.dev/lockstep/internal/cli/approve"
	"lockstep.dev/lockstep/internal/cli/coordinator"
	"lockstep.dev/lockstep/internal/cli/coordinator/page"
	"lockstep.dev/lockstep/internal/cli/dashboard"
	"lockstep.dev/lockstep/internal/cli/demo"
	"lockstep.dev/lockstep/internal/cli/history"
	"lockstep.dev/lockstep/internal/cli/lab"
	"lockstep.dev/lockstep/internal/cli/meshsim"
	"lockstep.dev/lockstep/internal/cli/notifyreceiver"
	"lockstep.dev/lockstep/internal/cli/rolloutcmd"
	"lockstep.dev/lockstep/internal/cli/status"
	"lockstep.dev/lockstep/internal/cli/streams"
)

// Version is set at link time.
var Version = "dev"

// NewRootCommand builds the lockstep command tree.
func NewRootCommand(s streams.IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "lockstep",
		Short: "Multi-cluster canary upgrades, in step",
		Long: `Lockstep moves one Argo Rollouts canary through every cluster of a fleet
together: the same step everywhere, analysis per cluster and overall, and an
abort in one cluster aborts them all.`,
		Example: `  # Start the local fleet (hub + two workload clusters) and run the demo
  lockstep demo

  # Just the fleet
  lockstep lab up && lockstep lab status`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.AddCommand(lab.NewCommand(s), coordinator.NewCommandWithPage(s, page.New), demo.NewDemoCommand(s), demo.NewLoadCommand(s), demo.NewRenderCommand(s), meshsim.NewCommand(s), status.NewCommand(s), dashboard.NewCommand(s), rolloutcmd.NewCommand(s, rolloutcmd.Promote), rolloutcmd.NewCommand(s, rolloutcmd.Abort), rolloutcmd.NewCommand(s, rolloutcmd.Retry), rolloutcmd.NewCommand(s, rolloutcmd.Pause), rolloutcmd.NewCommand(s, rolloutcmd.Resume), approve.NewCommand(s), history.NewCommand(s), notifyreceiver.NewCommand(s))
	return root
}

// Run executes the CLI and returns the process exit code. Errors end here as
// one line on stderr.
func Run(args []string, in io.Reader, out, errOut io.Writer) int {
	return RunAs("lockstep", args, in, out, errOut)
}

// RunAs is Run for a binary called argv0: installed as kubectl-lockstep
// (a kubectl plugin), help and examples read "kubectl lockstep".
func RunAs(argv0 string, args []string, in io.Reader, out, errOut io.Writer) int {
	s := streams.IO{In: in, Out: out, ErrOut: errOut}
	root := NewRootCommand(s)
	if strings.HasPrefix(filepath.Base(argv0), "kubectl-") {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl lockstep"}
	}
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ec interface{ ExitCode() int }
		code := 1
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		fmt.Fprintf(errOut, "error: %s\n", oneLine(err.Error()))
		return code
	}
	return 0
}

func oneLine(s string) string {
	first, rest, found := strings.Cut(strings.TrimSpace(s), "\n")
	if found && strings.TrimSpace(rest) != "" {
		// Multi-line details (log tails) were already printed as progress.
		return first
	}
	return first
}
