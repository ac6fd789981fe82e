// Command lockstep-coordinator is the hub coordinator alone: `lockstep
// coordinator` without the rest of the CLI (no Helm, kustomize, installers,
// provisioners or dashboard assets), for images and Deployments where
// memory counts: the image (hack/image, the Dockerfile) ships it. main only
// wires the process to internal/cli/coordinator.
package main

import (
	"fmt"
	"os"
	"strings"

	"lockstep.dev/lockstep/internal/cli/coordinator"
	"lockstep.dev/lockstep/internal/cli/streams"
)

func main() {
	cmd := coordinator.NewCommand(streams.IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	cmd.Use = "lockstep-coordinator"
	cmd.Example = strings.ReplaceAll(cmd.Example, "lockstep coordinator", "lockstep-coordinator")
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	args := os.Args[1:]
	// The Deployments (chart, kustomize base, installers) run the image
	// with `coordinator` first, as they would the lockstep binary.
	if len(args) > 0 && args[0] == "coordinator" {
		args = args[1:]
	}
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		first, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
		fmt.Fprintf(os.Stderr, "error: %s\n", first)
		os.Exit(1)
	}
}
