package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/cli/approve"
	"lockstep.dev/lockstep/internal/cli/rolloutcmd"
	"lockstep.dev/lockstep/internal/cli/status"
	"lockstep.dev/lockstep/internal/dashboard"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/rollouts"
)

// source reads fleets as `lockstep status` does (the hub's FleetRollout
// and every member's Rollout directly) and acts through the rollout verbs'
// code.
type source struct {
	target *status.TargetFlags
	// hub lists FleetRollouts for the index; nil with --clusters.
	hub client.Client
}

func newSource(t *status.TargetFlags) (*source, error) {
	s := &source{target: t}
	if len(t.Clusters) > 0 {
		return s, nil
	}
	cfg, err := t.Hub.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	cfg.Timeout = t.Timeout
	if s.hub, err = client.New(cfg, client.Options{Scheme: status.Scheme()}); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	return s, nil
}

// directRef is the page of --rollout read in every cluster.
func (s *source) directRef() dashboard.Ref {
	ns, name, _ := strings.Cut(s.target.Rollout, "/")
	return dashboard.RolloutRef(ns, name)
}

func (s *source) Index(ctx context.Context) ([]dashboard.IndexEntry, error) {
	direct := dashboard.IndexEntry{Ref: s.directRef(), Rollout: s.target.Rollout, Message: "read directly in every cluster, no coordinator"}
	if s.hub == nil {
		return []dashboard.IndexEntry{direct}, nil
	}
	entries, err := dashboard.FleetRolloutIndex(ctx, s.hub, s.target.Namespace())
	return append(entries, direct), err
}

func (s *source) Open(ref dashboard.Ref) (dashboard.Fleet, error) {
	if ref.Kind == dashboard.KindFleetRollout && s.hub == nil {
		return nil, errors.New("no hub (--clusters): only Rollouts read directly have pages here, at /rollouts/NAMESPACE/NAME")
	}
	return &fleet{src: s, ref: ref, changed: make(chan struct{}, 1)}, nil
}

// fleet resolves its target on the first Refresh that can, so that a
// FleetRollout created after the page was opened fills the page in.
type fleet struct {
	src     *source
	ref     dashboard.Ref
	changed chan struct{}

	// refreshing serialises Refresh: the tracker's reads and a promote's
	// fresh read (dashboard.promoteAt) both replace the target's
	// FleetRollout.
	refreshing sync.Mutex

	mu       sync.Mutex
	t        *status.Target
	events   []dashboard.Event
	eventsAt time.Time
}

const eventsEvery = 5 * time.Second

func (f *fleet) poke(string) {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fleet) resolve(ctx context.Context) (*status.Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.t != nil {
		return f.t, nil
	}
	o := status.ResolveOptions{OnEvent: f.poke}
	name := ""
	if f.ref.Kind == dashboard.KindFleetRollout {
		name, o.Namespace = f.ref.Name, f.ref.Namespace
	} else {
		o.Rollout = f.ref.Namespace + "/" + f.ref.Name
	}
	t, err := f.src.target.Resolve(ctx, name, o)
	if err != nil {
		return nil, err
	}
	for _, m := range t.Members {
		// Rollout changes redraw at once; everything else on the interval.
		_ = t.Cache.Watch(m.Name, rollouts.RolloutGVR, t.RolloutNamespace)
	}
	f.t = t
	return t, nil
}

func (f *fleet) Refresh(ctx context.Context) dashboard.Picture {
	f.refreshing.Lock()
	defer f.refreshing.Unlock()
	t, err := f.resolve(ctx)
	if err != nil {
		var nf *status.NotFoundError
		return dashboard.Picture{Err: err, NotFound: errors.As(err, &nf)}
	}
	fl, hubErr := t.Refresh(ctx)
	p := dashboard.Picture{Fleet: fl, FleetRollout: t.FleetRollout, Events: f.hubEvents(ctx, t)}
	if hubErr != nil {
		// The members are still shown; the hub's trouble is said above
		// them.
		p.Err = hubErr
		p.NotFound = apierrors.IsNotFound(hubErr)
	}
	return p
}

// hubEvents lists the Events about the FleetRollout, at most every few
// seconds: they explain decisions, they do not drive the plots.
func (f *fleet) hubEvents(ctx context.Context, t *status.Target) []dashboard.Event {
	fr := t.FleetRollout
	if fr == nil || t.Hub == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.eventsAt) < eventsEvery {
		return f.events
	}
	f.eventsAt = time.Now()
	var list corev1.EventList
	sel := fields.SelectorFromSet(fields.Set{"involvedObject.kind": "FleetRollout", "involvedObject.name": fr.Name})
	if err := t.Hub.List(ctx, &list, client.InNamespace(fr.Namespace), client.MatchingFieldsSelector{Selector: sel}); err != nil {
		f.events = []dashboard.Event{{Time: time.Now().UTC(), Type: "Warning", Reason: "EventsUnreadable", Message: err.Error()}}
		return f.events
	}
	out := make([]dashboard.Event, 0, len(list.Items))
	for _, e := range list.Items {
		ts := e.LastTimestamp.Time
		if ts.IsZero() {
			ts = e.EventTime.Time
		}
		if ts.IsZero() {
			ts = e.CreationTimestamp.Time
		}
		out = append(out, dashboard.Event{Time: ts.UTC(), Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	if len(out) > 30 {
		out = out[len(out)-30:]
	}
	f.events = out
	return out
}

func (f *fleet) Changed() <-chan struct{} { return f.changed }

func (f *fleet) Act(ctx context.Context, verb string) (*dashboard.ActionResult, error) {
	t, err := f.resolve(ctx)
	if err != nil {
		return nil, err
	}
	if verb == "approve" {
		return f.approve(ctx, t)
	}
	opts := rolloutcmd.Options{}
	if cs, err := f.src.clientset(); err == nil {
		opts.WhoAmI = kube.WhoAmI(cs)
	}
	o, err := rolloutcmd.Do(ctx, t, rolloutcmd.Verb(verb), opts)
	if err != nil {
		return nil, err
	}
	res := &dashboard.ActionResult{Verb: verb}
	for _, r := range o.Results {
		res.Results = append(res.Results, dashboard.ClusterResult{Cluster: r.Cluster, OK: r.Err == nil, Message: o.Message(r)})
	}
	if err := o.Err(); err != nil {
		res.Message = err.Error()
	} else {
		res.Message = fmt.Sprintf("%s: done in %d clusters", verb, len(res.Results))
	}
	return res, nil
}

func (f *fleet) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.t != nil {
		f.t.Cache.Stop()
	}
}

// approve approves what the FleetRollout waits for, as whoever this
// dashboard's hub credentials are: the hub's admission policy holds the
// approver to that identity, so the page cannot approve in another's name.
func (f *fleet) approve(ctx context.Context, t *status.Target) (*dashboard.ActionResult, error) {
	if t.Hub == nil || t.FleetRollout == nil {
		return nil, errors.New("approve: no FleetRollout on a hub moves this fleet")
	}
	var fr v1alpha1.FleetRollout
	if err := t.Hub.Get(ctx, client.ObjectKeyFromObject(t.FleetRollout), &fr); err != nil {
		return nil, fmt.Errorf("approve: %w", err)
	}
	gate, err := approve.Awaiting(&fr)
	if err != nil {
		return nil, err
	}
	cs, err := f.src.clientset()
	if err != nil {
		return nil, err
	}
	a, err := approve.Approve(ctx, t.Hub, kube.WhoAmI(cs), &fr, gate, "")
	if err != nil {
		return nil, err
	}
	return &dashboard.ActionResult{Verb: "approve", Message: fmt.Sprintf("approved %s of revision %s as %s (FleetApproval %s)", gate, a.Spec.Revision, a.Spec.Approver, a.Name)}, nil
}

// clientset reaches the hub as the dashboard's user: the identity its
// approvals and aborts are recorded under.
func (s *source) clientset() (kubernetes.Interface, error) {
	cfg, err := s.target.Hub.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	return cs, nil
}
