package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/readout"
	"lockstep.dev/lockstep/internal/view"
)

// Kinds of page.
const (
	// KindFleetRollout is a FleetRollout on the hub.
	KindFleetRollout = "fleets"
	// KindRollout is an Argo Rollout read directly in every cluster.
	KindRollout = "rollouts"
)

// Ref names what one page shows.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// FleetRolloutRef is the page of FleetRollout namespace/name.
func FleetRolloutRef(namespace, name string) Ref {
	return Ref{Kind: KindFleetRollout, Namespace: namespace, Name: name}
}

// RolloutRef is the page of Rollout namespace/name read in every cluster.
func RolloutRef(namespace, name string) Ref {
	return Ref{Kind: KindRollout, Namespace: namespace, Name: name}
}

// Path is the page's URL path.
func (r Ref) Path() string { return "/" + r.Kind + "/" + r.Namespace + "/" + r.Name }

func (r Ref) String() string {
	if r.Kind == KindRollout {
		return "Rollout " + r.Namespace + "/" + r.Name
	}
	return "FleetRollout " + r.Namespace + "/" + r.Name
}

// Validate refuses a ref that cannot name an object, before anything is
// read: a typo in a URL is a clear message, not an API call.
func (r Ref) Validate() error {
	if r.Kind != KindFleetRollout && r.Kind != KindRollout {
		return fmt.Errorf("unknown page kind %q (want %s or %s)", r.Kind, KindFleetRollout, KindRollout)
	}
	for _, part := range []struct{ what, v string }{{"namespace", r.Namespace}, {"name", r.Name}} {
		if errs := validation.IsDNS1123Subdomain(part.v); len(errs) > 0 {
			return fmt.Errorf("%s %q is not a Kubernetes name: %s", part.what, part.v, errs[0])
		}
	}
	return nil
}

// Source is where pages get their data.
type Source interface {
	// Index lists what the index page links to.
	Index(ctx context.Context) ([]IndexEntry, error)
	// Open returns a Fleet that reads ref. It does no I/O: a ref that
	// names nothing shows as its first Picture's error, and the page fills
	// in once the object appears. It fails only for a ref this source
	// cannot serve at all.
	Open(ref Ref) (Fleet, error)
}

// Fleet reads one page's fleet.
type Fleet interface {
	// Refresh reads everything the page shows, now.
	Refresh(ctx context.Context) Picture
	// Changed signals that something the page shows changed (a Rollout
	// watch event), so it is read again before the next interval. It may
	// return nil.
	Changed() <-chan struct{}
	// Act runs a verb (promote, abort, retry, pause, resume) on the
	// fleet, through the same code as the CLI verbs. A source that
	// cannot act returns an error.
	Act(ctx context.Context, verb string) (*ActionResult, error)
	// Close stops the Fleet's watches.
	Close()
}

// Picture is one reading of a fleet.
type Picture struct {
	Fleet view.Fleet
	// FleetRollout is nil when no coordinator moves the fleet.
	FleetRollout *v1alpha1.FleetRollout
	// Events are the hub's Events about the FleetRollout, oldest first.
	Events []Event
	// Err says why the fleet could not be read (not found, hub down);
	// NotFound marks the first.
	Err      error
	NotFound bool
}

// Event is one Kubernetes Event about the FleetRollout.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Count   int32     `json:"count,omitempty"`
}

// ActionResult is what a verb did.
type ActionResult struct {
	Verb    string          `json:"verb"`
	Message string          `json:"message"`
	Results []ClusterResult `json:"results"`
}

// ClusterResult is the verb's outcome in one cluster.
type ClusterResult struct {
	Cluster string `json:"cluster"`
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

// IndexEntry is one line of the index page.
type IndexEntry struct {
	Ref     Ref    `json:"ref"`
	Phase   string `json:"phase,omitempty"`
	Message string `json:"message,omitempty"`
	Members int    `json:"members,omitempty"`
	Rollout string `json:"rollout,omitempty"`
}

// ErrReadOnly is returned by sources that cannot act.
var ErrReadOnly = errors.New("this dashboard is read-only")

// FleetRolloutIndex lists the hub's FleetRollouts (in every namespace when
// the hub allows it, else in namespace) as index entries.
func FleetRolloutIndex(ctx context.Context, hub client.Reader, namespace string) ([]IndexEntry, error) {
	items, err := readout.ListFleetRollouts(ctx, hub, namespace, true)
	if err != nil {
		return nil, err
	}
	out := make([]IndexEntry, 0, len(items))
	for _, fr := range items {
		out = append(out, IndexEntry{
			Ref: FleetRolloutRef(fr.Namespace, fr.Name), Phase: string(fr.Status.Phase), Message: fr.Status.Message,
			Members: len(fr.Status.Members), Rollout: fr.Spec.Rollout.Namespace + "/" + fr.Spec.Rollout.Name,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref.Path() < out[j].Ref.Path() })
	return out, nil
}

// StatusSource reads FleetRollouts only: each member as the coordinator
// last saw it (status.members), which is what the coordinator itself can
// serve in-cluster without more rights. It cannot act.
type StatusSource struct {
	Hub client.Reader
}

// Index implements Source.
func (s StatusSource) Index(ctx context.Context) ([]IndexEntry, error) {
	return FleetRolloutIndex(ctx, s.Hub, "")
}

// Open implements Source.
func (s StatusSource) Open(ref Ref) (Fleet, error) {
	if ref.Kind != KindFleetRollout {
		return nil, fmt.Errorf("%s: the coordinator's dashboard shows FleetRollouts only", ref)
	}
	return &statusFleet{hub: s.Hub, ref: ref}, nil
}

type statusFleet struct {
	hub client.Reader
	ref Ref
}

func (f *statusFleet) Refresh(ctx context.Context) Picture {
	fr := &v1alpha1.FleetRollout{}
	if err := f.hub.Get(ctx, client.ObjectKey{Namespace: f.ref.Namespace, Name: f.ref.Name}, fr); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return Picture{Err: fmt.Errorf("fleetrollout %s/%s not found on the hub", f.ref.Namespace, f.ref.Name), NotFound: true}
		}
		return Picture{Err: fmt.Errorf("get fleetrollout %s/%s on the hub: %w", f.ref.Namespace, f.ref.Name, err)}
	}
	fl := view.Build(fr.Spec.Rollout.Namespace+"/"+fr.Spec.Rollout.Name, fr, nil)
	for i := range fl.Clusters {
		c := &fl.Clusters[i]
		// view.Build marks members it was not given as unread; here the
		// coordinator's observation is the whole picture, so its own
		// reachability is what counts.
		for _, m := range fr.Status.Members {
			if m.Name == c.Name {
				c.Reachable, c.Found, c.Error = m.Reachable, m.Reachable, m.Error
			}
		}
	}
	return Picture{Fleet: fl, FleetRollout: fr}
}

func (f *statusFleet) Changed() <-chan struct{} { return nil }

func (f *statusFleet) Act(context.Context, string) (*ActionResult, error) { return nil, ErrReadOnly }

func (f *statusFleet) Close() {}
