// Package meshsim implements `lockstep meshsim`, the simulated Istio data
// plane of one workload cluster (see internal/meshsim). The local fleet runs
// one per workload cluster; it is a command so it can also run on its own.
// It imports internal/meshsim and internal/cli/streams.
package meshsim

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/meshsim"
)

// NewCommand returns `lockstep meshsim`.
func NewCommand(s streams.IO) *cobra.Command {
	return &cobra.Command{
		Use:   "meshsim --cluster NAME [flags]",
		Short: "Run the simulated Istio data plane of one workload cluster",
		Long: `meshsim stands in for Envoy and the helloworld pods: an ingress gateway on
127.0.0.1 that routes /hello by the weights of the cluster's VirtualService
to the Ready endpoints of helloworld / helloworld-canary in every cluster (as
Istio multi-primary does), answers like the helloworld image, and exports
istio_requests_total and istio_request_duration_milliseconds with Istio's
labels. Pod annotations meshsim.lockstep.dev/error-rate and
meshsim.lockstep.dev/latency make a version fail or slow down.

Flags: --cluster --kubeconfig --context --peer NAME=CONTEXT --ingress-addr
--eastwest-addr --metrics-addr --peer-eastwest NAME=URL --namespace
--virtual-service --route --seed (run with -h for details).`,
		Example: `  lockstep meshsim --cluster argo-rollout1 --kubeconfig fleet.kubeconfig --context argo-rollout1 \
    --peer argo-rollout2=argo-rollout2 --peer-eastwest argo-rollout2=http://127.0.0.1:15443 \
    --ingress-addr 127.0.0.1:8080`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "--help" || a == "-help" {
					return cmd.Help()
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return meshsim.Main(ctx, args, s.ErrOut)
		},
	}
}
