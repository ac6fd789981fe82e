package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/install/argocd"
	"lockstep.dev/lockstep/internal/lab/install/coordinator"
	"lockstep.dev/lockstep/internal/lab/install/istio"
	"lockstep.dev/lockstep/internal/lab/install/monitoring"
	"lockstep.dev/lockstep/internal/lab/install/rollouts"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/lab/provider"
	"lockstep.dev/lockstep/internal/lab/provider/existing"
	"lockstep.dev/lockstep/internal/lab/verify"
)

func newVerify(s streams.IO, f *flags) *cobra.Command {
	var (
		prov, output string
		r            = &remoteFlags{}
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the lab the way the guide does by eye: one line per check, ✓ or ✗ and the fix",
		Long: `Verify checks that Argo CD reaches every workload with its cluster Secret and may
patch Rollouts there, that the coordinator's own credentials reach every workload
and may do exactly what its generated workload role allows (a SelfSubjectRulesReview
with its token: more fails, and so does less), that the Argo Rollouts controllers are healthy, that
Thanos Query has a healthy store for every workload's cluster label, that
Grafana's Thanos datasource works, and that Istio's verification sample answers
from both clusters on either side. It exits non-zero when a check fails.

--provider local checks the fleet-in-a-box (its Thanos Query and controllers
are processes, it has no Grafana, and the sample is the GitOps tree's helloworld
behind meshsim's gateways). --provider existing checks clusters installed by ` + "`lab up`" + ` through
their contexts (after kind or eks, ` + "`lab up`" + ` prints the command to run).`,
		Example: `  lockstep lab verify
  lockstep lab verify --provider existing --kubeconfig ~/.kube/config \
    --hub-context argo-hub --workload-contexts argo-rollout1,argo-rollout2
  lockstep lab verify -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("unknown output format %q (text or json)", output)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			var (
				results []verify.Result
				err     error
			)
			switch prov {
			case "local":
				results, err = verifyLocal(ctx, f.dir)
			case "existing":
				results, err = verifyRemote(ctx, s, r)
			default:
				return fmt.Errorf("verify supports --provider local or existing (got %q); after kind or eks use the command `lab up` printed", prov)
			}
			if err != nil {
				return err
			}
			if output == "json" {
				b, _ := json.MarshalIndent(results, "", "  ")
				fmt.Fprintln(s.Out, string(b))
			} else {
				for _, res := range results {
					fmt.Fprintln(s.Out, res.Line())
				}
			}
			if n := verify.Failed(results); n > 0 {
				return fmt.Errorf("%d of %d checks failed", n, len(results))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&prov, "provider", "local", "local or existing")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&r.kubeconfig, "kubeconfig", "", "existing: kubeconfig holding the contexts")
	cmd.Flags().StringVar(&r.hubContext, "hub-context", "", "existing: context of the hub (default: argo-hub)")
	cmd.Flags().StringSliceVar(&r.workloadContexts, "workload-contexts", nil, "existing: contexts of the workloads, in order")
	return cmd
}

// helloworldNamespace is where the GitOps tree deploys helloworld.
const helloworldNamespace = "helloworld"

// verifyLocal checks the fleet-in-a-box.
func verifyLocal(ctx context.Context, dir string) ([]verify.Result, error) {
	st, err := local.Status(dir)
	if err != nil {
		return nil, err
	}
	// Status has the processes' liveness; the clusters' labels are in the
	// state file itself.
	full, err := local.ReadState(dir)
	if err != nil {
		return nil, err
	}
	var want, labels []string
	for _, c := range full.Clusters {
		if c.Role == local.RoleWorkload {
			want = append(want, c.Name)
			labels = append(labels, c.PrometheusCluster)
		}
	}
	// The local fleet's contexts are the clusters' names.
	fleet := provider.NewFleet("local", st.Kubeconfig, append([]string{local.HubName}, want...), func(_ int, name string) string { return name })
	c, err := install.Connect(ctx, install.Options{Fleet: fleet})
	if err != nil {
		return nil, err
	}
	out := verify.ArgoCDClusters(ctx, c.Hub.Kube, argocd.Namespace, want)
	out = append(out, verify.CoordinatorAccess(ctx, c.Hub.Kube, helloworldNamespace, want)...)
	for _, w := range want {
		r := verify.Result{Name: "Argo Rollouts (" + w + ")", Fix: "lockstep lab logs " + w + "/rollouts-controller"}
		for _, comp := range st.Components {
			if comp.Name == w+"/rollouts-controller" {
				r.OK = comp.Up
				r.Detail = "controller process " + comp.Status
			}
		}
		if r.Detail == "" {
			r.Detail = "no rollouts controller in this fleet"
		}
		out = append(out, r)
	}
	var get verify.Getter
	if u := st.URLs["thanos-query"]; u != "" {
		get = verify.URL(u, nil)
	}
	out = append(out, verify.ThanosStores(ctx, get, labels),
		verify.GrafanaDatasource(ctx, nil, monitoring.DatasourceUID))
	// The guide's sample check, through meshsim: from each cluster's
	// ingress, helloworld pods of every workload must answer.
	kcs := map[string]kubernetes.Interface{}
	for _, w := range c.Workloads {
		kcs[w.Name] = w.Kube
	}
	pods, err := verify.PodClusters(ctx, kcs, helloworldNamespace)
	for _, w := range want {
		if err != nil {
			out = append(out, verify.Result{Name: "Istio reachability from " + w, Detail: err.Error()})
			continue
		}
		out = append(out, verify.IngressReachability(ctx, w, st.URLs[local.IngressURLKey(w)], pods, want))
	}
	return out, nil
}

// verifyRemote checks clusters the installers set up.
func verifyRemote(ctx context.Context, s streams.IO, r *remoteFlags) ([]verify.Result, error) {
	fleet, err := existing.New(existing.Config{Kubeconfig: r.kubeconfig, HubContext: r.hubContext, WorkloadContexts: r.workloadContexts}).
		Up(ctx, provider.Options{Out: s.ErrOut})
	if err != nil {
		return nil, err
	}
	c, err := install.Connect(ctx, install.Options{Fleet: fleet})
	if err != nil {
		return nil, err
	}
	var names, labels []string
	for i, w := range c.Workloads {
		names = append(names, w.Name)
		labels = append(labels, argocd.ReportingCluster(i+1))
	}
	out := verify.ArgoCDClusters(ctx, c.Hub.Kube, argocd.Namespace, names)
	out = append(out, verify.CoordinatorAccess(ctx, c.Hub.Kube, helloworldNamespace, names)...)
	out = append(out, verify.Deployments(ctx, "Argo CD", c.Hub.Name, c.Hub.Kube, argocd.Namespace, argocd.Deployments...))
	for _, w := range c.Workloads {
		out = append(out, verify.Deployments(ctx, "Argo Rollouts", w.Name, w.Kube, rollouts.Namespace, rollouts.Deployment))
	}
	out = append(out, verify.Deployments(ctx, "Lockstep coordinator", c.Hub.Name, c.Hub.Kube, coordinator.Namespace, coordinator.Name))
	out = append(out, verify.ThanosStores(ctx, verify.ServiceProxy(c.Hub.Kube, monitoring.Namespace, monitoring.QueryService, monitoring.QueryHTTPPort, nil), labels))
	g := verify.Result{Name: "Grafana datasource", Fix: "lockstep lab up --provider existing --from grafana"}
	if sec, err := c.Hub.Kube.CoreV1().Secrets(monitoring.Namespace).Get(ctx, monitoring.GrafanaAdminSecret, metav1.GetOptions{}); err != nil {
		g.Detail = "no admin Secret: " + strings.SplitN(err.Error(), "\n", 2)[0]
		out = append(out, g)
	} else {
		auth := verify.BasicAuth(string(sec.Data[monitoring.GrafanaUserKey]), string(sec.Data[monitoring.GrafanaPasswordKey]))
		out = append(out, verify.GrafanaDatasource(ctx, verify.ServiceProxy(c.Hub.Kube, monitoring.Namespace, monitoring.GrafanaService, monitoring.GrafanaPort, auth), monitoring.DatasourceUID))
	}
	for _, w := range c.Workloads {
		res := istio.CheckReachability(ctx, w, istio.ReachOptions{})
		vr := verify.Result{Name: "Istio sample from " + w.Name, Detail: res.String(),
			Fix: fmt.Sprintf("kubectl --context %s -n sample get pods; istioctl --context %s proxy-status", w.Context, w.Context)}
		switch res.Status {
		case istio.Reachable:
			vr.OK = true
		case istio.Unverifiable:
			vr.Skipped = true
		}
		out = append(out, vr)
	}
	return out, nil
}
