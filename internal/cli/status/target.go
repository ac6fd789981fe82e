package status

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/readout"
	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/internal/view"
)

// DefaultNamespace is where FleetRollouts live when -n is not given.
const DefaultNamespace = "lockstep"

// TargetFlags are the flags that say which fleet a command acts on. They
// are shared by status and the rollout verbs (package rolloutcmd) so that
// every command finds clusters the same way.
type TargetFlags struct {
	// Hub carries kubectl's --kubeconfig, --context and -n, for the hub.
	Hub             *genericclioptions.ConfigFlags
	Rollout         string
	Clusters        []string
	ArgoCDNamespace string
	Selector        string
	Timeout         time.Duration
	// flags tell which flags were given (set by AddFlags).
	flags *pflag.FlagSet
}

// NewTargetFlags returns the flags with their defaults. Only the three
// kubectl flags a person expects are taken from cli-runtime: its full set
// would add --cluster, which the rollout verbs use for a member's name.
func NewTargetFlags() *TargetFlags {
	s := func(v string) *string { return &v }
	return &TargetFlags{
		Hub:             &genericclioptions.ConfigFlags{KubeConfig: s(""), Context: s(""), Namespace: s("")},
		Rollout:         "helloworld/helloworld",
		ArgoCDNamespace: fleet.DefaultArgoCDNamespace,
		Timeout:         5 * time.Second,
	}
}

// AddFlags registers the flags.
func (f *TargetFlags) AddFlags(fs *pflag.FlagSet) {
	f.flags = fs
	f.Hub.AddFlags(fs)
	fs.StringVar(&f.Rollout, "rollout", f.Rollout, "NAMESPACE/NAME of the Argo Rollout in every cluster, when no FleetRollout names it")
	fs.StringSliceVar(&f.Clusters, "clusters", nil, "kubeconfig contexts to read instead of the clusters registered in Argo CD on the hub")
	fs.StringVar(&f.ArgoCDNamespace, "argocd-namespace", f.ArgoCDNamespace, "namespace of Argo CD's cluster Secrets on the hub")
	fs.StringVarP(&f.Selector, "selector", "l", "", "label selector of the Argo CD cluster Secrets to use without a FleetRollout (default: every registered cluster)")
	fs.DurationVar(&f.Timeout, "request-timeout", f.Timeout, "how long to wait for one cluster before showing it as unreachable")
}

// Validate checks the flags without any I/O, so a typo fails at once.
func (f *TargetFlags) Validate(fleetRollout string) error {
	if _, _, err := splitRef(f.Rollout); err != nil {
		return err
	}
	if len(f.Clusters) > 0 && fleetRollout != "" {
		return errors.New("give either a FleetRollout or --clusters: a FleetRollout names its own members")
	}
	if len(f.Clusters) > 0 && f.Selector != "" {
		return errors.New("--selector picks Argo CD clusters; it cannot be combined with --clusters")
	}
	if f.Timeout <= 0 {
		return errors.New("--request-timeout must be positive")
	}
	return nil
}

// Namespace is -n, or DefaultNamespace.
func (f *TargetFlags) Namespace() string {
	if f.Hub.Namespace != nil && *f.Hub.Namespace != "" {
		return *f.Hub.Namespace
	}
	return DefaultNamespace
}

func splitRef(s string) (string, string, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("--rollout %q: want NAMESPACE/NAME", s)
	}
	return ns, name, nil
}

// Target is a resolved fleet: the members, how to reach them, the Rollout
// they run and, when a coordinator owns them, the FleetRollout.
type Target struct {
	// Hub is nil with --clusters (no hub is needed then).
	Hub client.Client
	// FleetRollout is nil when the clusters are read directly.
	FleetRollout       *v1alpha1.FleetRollout
	RolloutNamespace   string
	RolloutName        string
	Members            []fleet.Member
	Cache              *fleet.Cache
	fleetRolloutName   string
	fleetRolloutNSName string
}

// Scheme knows the types the hub client reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = corev1.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// ResolveOptions change how Resolve finds a FleetRollout.
type ResolveOptions struct {
	// Discover looks for a FleetRollout in the namespace that names
	// --rollout when none is given, so the rollout verbs go through the
	// coordinator whenever there is one.
	Discover bool
	// OnEvent is passed to the cluster cache (status -w).
	OnEvent func(cluster string)
	// Namespace, when set, replaces -n as the FleetRollout's namespace.
	Namespace string
	// Rollout, when set (NAMESPACE/NAME), replaces --rollout and reads
	// that Rollout directly, never a FleetRollout.
	Rollout string
}

// NotFoundError is a FleetRollout that the hub does not have.
type NotFoundError struct{ Namespace, Name string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("fleetrollout %s/%s not found on the hub", e.Namespace, e.Name)
}

// Resolve finds the members. It builds clients but contacts members only
// through the cache, which turns an unreachable member into a
// *fleet.NotConnectedError instead of an error here.
func (f *TargetFlags) Resolve(ctx context.Context, fleetRollout string, o ResolveOptions) (*Target, error) {
	ns, name, err := splitRef(cmp.Or(o.Rollout, f.Rollout))
	if err != nil {
		return nil, err
	}
	t := &Target{RolloutNamespace: ns, RolloutName: name}
	if len(f.Clusters) > 0 {
		path := ""
		if f.Hub.KubeConfig != nil {
			path = *f.Hub.KubeConfig
		}
		if t.Members, err = fleet.MembersFromKubeconfig(path, f.Clusters); err != nil {
			return nil, err
		}
		t.Cache = f.newCache(t.Members, o.OnEvent)
		return t, nil
	}
	cfg, err := f.Hub.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	cfg.Timeout = f.Timeout
	// A watching view (status -w, the dashboard) reads the FleetRollout on
	// every Rollout change of every member: client-go's default 5 QPS
	// would turn an abort's burst of changes into seconds of latency, as
	// it would for the members (see fleet.Cache).
	cfg.QPS, cfg.Burst = 50, 100
	if t.Hub, err = client.New(cfg, client.Options{Scheme: Scheme()}); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	// No name and nothing that says which Rollout: the hub's only
	// FleetRollout is meant, as kubectl users expect; several are listed.
	explicit := o.Rollout != "" || f.flags != nil && (f.flags.Changed("rollout") || f.flags.Changed("selector"))
	frNamespace := cmp.Or(o.Namespace, f.Namespace())
	if fleetRollout == "" && !explicit {
		nsSet := f.Hub.Namespace != nil && *f.Hub.Namespace != ""
		if t.FleetRollout, err = pickOne(ctx, t.Hub, frNamespace, !nsSet && o.Namespace == ""); err != nil {
			return nil, err
		}
	}
	switch {
	case t.FleetRollout != nil:
	case fleetRollout != "":
		fr := &v1alpha1.FleetRollout{}
		key := client.ObjectKey{Namespace: frNamespace, Name: fleetRollout}
		if err := t.Hub.Get(ctx, key, fr); err != nil {
			if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
				return nil, &NotFoundError{Namespace: key.Namespace, Name: key.Name}
			}
			return nil, fmt.Errorf("get fleetrollout %s/%s on the hub: %w", key.Namespace, key.Name, err)
		}
		t.FleetRollout = fr
	case o.Discover:
		if t.FleetRollout, err = discover(ctx, t.Hub, frNamespace, ns, name); err != nil {
			return nil, err
		}
	}
	if fr := t.FleetRollout; fr != nil {
		t.RolloutNamespace, t.RolloutName = fr.Spec.Rollout.Namespace, fr.Spec.Rollout.Name
		t.Members, err = fleet.MembersFromSecrets(ctx, t.Hub, fleet.ArgoCDSecrets(f.ArgoCDNamespace), fr.Spec.Members.Selector, fr.Spec.Members.Names)
	} else {
		sel := &metav1.LabelSelector{}
		if f.Selector != "" {
			if sel, err = metav1.ParseToLabelSelector(f.Selector); err != nil {
				return nil, fmt.Errorf("--selector: %w", err)
			}
		}
		t.Members, err = fleet.MembersFromSecrets(ctx, t.Hub, fleet.ArgoCDSecrets(f.ArgoCDNamespace), sel, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	if len(t.Members) == 0 {
		return nil, fmt.Errorf("no clusters registered in Argo CD (namespace %s) match", f.ArgoCDNamespace)
	}
	t.Cache = f.newCache(t.Members, o.OnEvent)
	return t, nil
}

// pickOne returns the hub's only FleetRollout (in every namespace when all
// is set and the hub lets us list them, else in namespace), nil when there
// is none, and an error naming them when there are several.
func pickOne(ctx context.Context, hub client.Reader, namespace string, all bool) (*v1alpha1.FleetRollout, error) {
	items, err := readout.ListFleetRollouts(ctx, hub, namespace, all)
	if err != nil {
		return nil, err
	}
	switch len(items) {
	case 0:
		return nil, nil
	case 1:
		return &items[0], nil
	}
	names := make([]string, len(items))
	for i, fr := range items {
		names[i] = fr.Namespace + "/" + fr.Name
	}
	sort.Strings(names)
	return nil, fmt.Errorf("%d FleetRollouts on the hub (%s): name one, with -n for its namespace", len(names), strings.Join(names, ", "))
}

// discover returns the one FleetRollout in namespace that coordinates
// rolloutNS/rolloutName, nil when there is none (or the hub has no
// FleetRollout CRD), and an error when several claim it.
func discover(ctx context.Context, hub client.Client, namespace, rolloutNS, rolloutName string) (*v1alpha1.FleetRollout, error) {
	var list v1alpha1.FleetRolloutList
	if err := hub.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list fleetrollouts in %s on the hub: %w", namespace, err)
	}
	var found []*v1alpha1.FleetRollout
	for i := range list.Items {
		r := list.Items[i].Spec.Rollout
		if r.Namespace == rolloutNS && r.Name == rolloutName {
			found = append(found, &list.Items[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%d FleetRollouts in %s coordinate %s/%s: name one", len(found), namespace, rolloutNS, rolloutName)
}

func (f *TargetFlags) newCache(members []fleet.Member, onEvent func(string)) *fleet.Cache {
	c := fleet.NewCache(fleet.CacheOptions{
		HealthInterval: time.Second, HealthTimeout: f.Timeout, RequestTimeout: f.Timeout,
		// One failed probe is enough here: a person asked for a picture
		// now, and the unreachable mark is redrawn on the next refresh.
		FailureThreshold: 1,
		OnEvent:          onEvent, Logger: logr.Discard(),
	})
	// Update only registers members; nothing is contacted until Client.
	_ = c.Update(members)
	return c
}

var replicaSetGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}

// Observe reads every member concurrently, so one hung cluster costs one
// timeout, not one per member.
func (t *Target) Observe(ctx context.Context) []view.Observation {
	obs := make([]view.Observation, len(t.Members))
	var wg sync.WaitGroup
	for i, m := range t.Members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obs[i] = t.observe(ctx, m.Name)
		}()
	}
	wg.Wait()
	return obs
}

func (t *Target) observe(ctx context.Context, cluster string) view.Observation {
	o := view.Observation{Cluster: cluster}
	dyn, err := t.Cache.Client(ctx, cluster)
	if err != nil {
		o.Err = err
		return o
	}
	ro, err := rollouts.Get(ctx, dyn, t.RolloutNamespace, t.RolloutName)
	if err != nil {
		o.Err = fmt.Errorf("cluster %s: %w", cluster, err)
		return o
	}
	if ro == nil {
		return o
	}
	o.Rollout = ro
	if w, err := rollouts.TrafficWeights(ctx, dyn, ro); err != nil {
		o.WeightsErr = err
	} else if w != nil {
		o.Weights = &view.Weights{Stable: w.Stable, Canary: w.Canary}
	}
	o.ReplicaSets, o.OtherErrs = replicaSets(ctx, dyn, t.RolloutNamespace)
	if name := view.CurrentAnalysisRun(ro); name != "" {
		ar, err := dyn.Resource(rollouts.AnalysisRunGVR).Namespace(t.RolloutNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			o.OtherErrs = append(o.OtherErrs, fmt.Errorf("get analysisrun %s: %w", name, err))
		} else {
			o.AnalysisRun = ar
		}
	}
	return o
}

func replicaSets(ctx context.Context, dyn dynamic.Interface, namespace string) ([]appsv1.ReplicaSet, []error) {
	list, err := dyn.Resource(replicaSetGVR).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, []error{fmt.Errorf("list replicasets: %w", err)}
	}
	out := make([]appsv1.ReplicaSet, 0, len(list.Items))
	for i := range list.Items {
		var rs appsv1.ReplicaSet
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, &rs); err != nil {
			return out, []error{fmt.Errorf("replicaset %s: %w", list.Items[i].GetName(), err)}
		}
		out = append(out, rs)
	}
	return out, nil
}

// Refresh re-reads the FleetRollout (when there is one) and every member,
// and builds the view. A FleetRollout that cannot be read now keeps its
// last copy, so a hub hiccup does not hide the members.
func (t *Target) Refresh(ctx context.Context) (view.Fleet, error) {
	var hubErr error
	if t.FleetRollout != nil && t.Hub != nil {
		fr := &v1alpha1.FleetRollout{}
		if err := t.Hub.Get(ctx, client.ObjectKeyFromObject(t.FleetRollout), fr); err != nil {
			hubErr = fmt.Errorf("get fleetrollout %s/%s on the hub: %w", t.FleetRollout.Namespace, t.FleetRollout.Name, err)
		} else {
			t.FleetRollout = fr
		}
	}
	f := view.Build(t.RolloutNamespace+"/"+t.RolloutName, t.FleetRollout, t.Observe(ctx))
	return f, hubErr
}
