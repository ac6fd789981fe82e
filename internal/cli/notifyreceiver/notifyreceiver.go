// Package notifyreceiver implements `lockstep notify-receiver`, a webhook
// endpoint that prints the notifications it receives (notify.Receiver).
// The local fleet runs one and points its notifications ConfigMap at it;
// people run it to try a configuration. It imports internal/notify and
// internal/cli/streams.
package notifyreceiver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/notify"
)

// NewCommand returns `lockstep notify-receiver`.
func NewCommand(s streams.IO) *cobra.Command {
	addr := "127.0.0.1:9095"
	cmd := &cobra.Command{
		Use:   "notify-receiver [--address HOST:PORT]",
		Short: "Receive webhook notifications and print them",
		Long: `notify-receiver is a webhook endpoint for trying notifications: it prints
every POST it receives as one line (time, path, JSON body) and lists the
last 100 as JSON on GET. The local fleet runs one and points the webhook
service lab-receiver of its notifications ConfigMap
(lockstep-system/lockstep-notifications-cm) at it.`,
		Example: `  lockstep notify-receiver --address 127.0.0.1:9095
  # in lockstep-notifications-cm:
  #   service.webhook.mine: |
  #     url: http://127.0.0.1:9095/
  # and on the FleetRollout:
  #   notifications.argoproj.io/subscribe.on-release-aborted.mine: ""`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, addr, s)
		},
	}
	cmd.Flags().StringVar(&addr, "address", addr, "address to listen on (keep it on loopback unless something else must reach it)")
	return cmd
}

func run(ctx context.Context, addr string, s streams.IO) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--address: %w", err)
	}
	rc := &notify.Receiver{OnReceive: func(r notify.Received) {
		fmt.Fprintf(s.Out, "%s %s %s\n", r.Time.Format(time.RFC3339Nano), r.Path, r.Body)
	}}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	fmt.Fprintf(s.ErrOut, "receiving notifications on http://%s/\n", ln.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
