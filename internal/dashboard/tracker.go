package dashboard

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/readout"
	"lockstep.dev/lockstep/internal/view"
)

// maxPoints bounds each page's plot history (an hour at the default
// interval of two seconds).
const maxPoints = 1800

// Snapshot is what a page receives: the whole state on connect (Reset,
// every point) and then one per change, with only the new points.
type Snapshot struct {
	Seq   int64     `json:"seq"`
	At    time.Time `json:"at"`
	Ref   Ref       `json:"ref"`
	Title string    `json:"title"`
	// Fleet is the latest picture; Error why it could not be read.
	Fleet    *view.Fleet `json:"fleet,omitempty"`
	Error    string      `json:"error,omitempty"`
	NotFound bool        `json:"notFound,omitempty"`
	// MetricsError says why the success-rate and latency plots are not
	// being fed (Thanos down, or no Thanos configured).
	MetricsError string `json:"metricsError,omitempty"`
	// Threshold is the success rate the canary must stay above.
	Threshold float64 `json:"threshold"`
	// Hold is the barrier's countdown, while the fleet holds at one.
	Hold *Hold `json:"hold,omitempty"`
	// History is the coordinator's recorded decisions, oldest first.
	History    []view.Event `json:"history,omitempty"`
	Conditions []Condition  `json:"conditions,omitempty"`
	Events     []Event      `json:"events,omitempty"`
	// Actions says whether the buttons work, and why not.
	Actions Actions `json:"actions"`
	Reset   bool    `json:"reset,omitempty"`
	Points  []Point `json:"points"`
}

// Hold is the barrier the fleet waits at.
type Hold struct {
	Step  int32     `json:"step"`
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// Condition is one of the FleetRollout's conditions.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Actions tells the page whether its buttons may act.
type Actions struct {
	Enabled bool   `json:"enabled"`
	Reason  string `json:"reason,omitempty"`
}

// Point is one reading for the plots, per member: the canary weight the
// route really has (or the steps' weight when the route is unknown), and
// the success rate and latency from Thanos when read at that moment.
type Point = readout.Point

// tracker reads one page's fleet on an interval and on every change, keeps
// the plot points and fans snapshots out to the page's streams.
type tracker struct {
	srv    *Server
	ref    Ref
	fleet  Fleet
	cancel context.CancelFunc
	// first is closed after the first reading.
	first     chan struct{}
	firstOnce sync.Once

	mu      sync.Mutex
	last    Snapshot
	points  []Point
	subs    map[chan []byte]struct{}
	pinned  bool
	idleAt  time.Time
	stopped bool
}

func (t *tracker) run(ctx context.Context) {
	defer t.fleet.Close()
	tick := time.NewTicker(t.srv.o.Interval)
	defer tick.Stop()
	var nextMetrics time.Time
	var sample *readout.Sample
	backfilled := false
	for {
		pic := t.fleet.Refresh(ctx)
		if ctx.Err() != nil {
			return
		}
		now := t.srv.now()
		fresh := false
		m := t.srv.o.Metrics
		if m != nil && !now.Before(nextMetrics) && pic.Err == nil {
			s := m.Read(ctx, servingLabels(pic), now)
			sample, fresh = &s, true
			nextMetrics = now.Add(t.srv.o.MetricsInterval)
		}
		t.publish(pic, sample, fresh, now)
		if m != nil && pic.Err == nil && !backfilled {
			// The plots start with the recent past from Thanos, read once
			// beside the live updates.
			backfilled = true
			t.mu.Lock()
			pinned := t.pinned
			t.mu.Unlock()
			if !pinned {
				go t.backfill(ctx, m, servingLabels(pic), historyStart(pic.FleetRollout, now), now)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.fleet.Changed():
		}
	}
}

// History bounds how far back a page's success-rate and latency plots
// start, read from Thanos when the page's fleet is first read; without a
// FleetRollout they start DirectHistory back.
const (
	History       = 15 * time.Minute
	DirectHistory = 5 * time.Minute
)

// historyStart is where a page's plots start: a minute before the current
// revision became the fleet's (its canary's whole story), at most History
// back. A fleet the server watches from the start (the demo's) gets none.
func historyStart(fr *v1alpha1.FleetRollout, now time.Time) time.Time {
	if fr == nil {
		return now.Add(-DirectHistory)
	}
	from := now.Add(-History)
	if seen := fr.Status.Fleet.RevisionSeenAt; seen != nil && seen.Add(-time.Minute).After(from) {
		from = seen.Add(-time.Minute)
	}
	return from
}

// backfill puts the recent past in front of the live points and sends every
// page the whole state again.
func (t *tracker) backfill(ctx context.Context, m *readout.Metrics, labels map[string]string, from, now time.Time) {
	step := max(t.srv.o.MetricsInterval, 5*time.Second)
	past := m.History(ctx, labels, from, now.Add(-step), step)
	if len(past) == 0 || ctx.Err() != nil {
		return
	}
	t.mu.Lock()
	first := float64(now.UnixMilli()) / 1000
	if len(t.points) > 0 {
		first = t.points[0].T
	}
	var keep []Point
	for _, p := range past {
		if p.T < first {
			keep = append(keep, p)
		}
	}
	t.points = append(keep, t.points...)
	if len(t.points) > maxPoints {
		t.points = t.points[len(t.points)-maxPoints:]
	}
	t.mu.Unlock()
	full := t.full()
	msg, err := json.Marshal(full)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.broadcast(msg)
}

// broadcast sends msg to every page's stream; t.mu is held.
func (t *tracker) broadcast(msg []byte) {
	for ch := range t.subs {
		select {
		case ch <- msg:
		default:
			// A page that cannot keep up is dropped; its EventSource
			// reconnects and gets the whole state again.
			close(ch)
			delete(t.subs, ch)
		}
	}
}

func servingLabels(p Picture) map[string]string {
	out := make(map[string]string, len(p.Fleet.Clusters))
	for _, c := range p.Fleet.Clusters {
		out[c.Name] = view.ServingLabel(p.FleetRollout, c.Name)
	}
	return out
}

// publish turns a reading into the page's state and sends it to every
// stream.
func (t *tracker) publish(pic Picture, sample *readout.Sample, fresh bool, now time.Time) {
	s := Snapshot{At: now, Ref: t.ref, Title: t.ref.String(), Actions: t.srv.actions(), Threshold: t.srv.o.Threshold}
	if pic.Err != nil {
		s.Error, s.NotFound = oneLine(pic.Err.Error()), pic.NotFound
	}
	var p *Point
	// A hub that fails to answer now leaves the members' own picture
	// standing (as status shows it); only a fleet never read is empty.
	if pic.Err == nil || len(pic.Fleet.Clusters) > 0 {
		f := pic.Fleet
		s.Fleet = &f
		p = &Point{T: float64(now.UnixMilli()) / 1000, Weight: map[string]int32{}}
		for _, c := range f.Clusters {
			if w, ok := canaryWeight(c); ok {
				p.Weight[c.Name] = w
			}
		}
	}
	switch {
	case t.srv.o.Metrics == nil:
		s.MetricsError = t.srv.o.MetricsOff
	case sample != nil && sample.Err != nil:
		s.MetricsError = oneLine(sample.Err.Error()) + ": success rate and latency are not being updated"
	}
	if p != nil && fresh && sample != nil && sample.Err == nil {
		p.Rate, p.Latency = sample.Rates, sample.Latency
	}
	if fr := pic.FleetRollout; fr != nil {
		s.Threshold = threshold(fr, t.srv.o.Threshold)
		s.Hold = hold(fr)
		for _, h := range fr.Status.History {
			s.History = append(s.History, view.Event{Time: h.Time.UTC(), Action: h.Action, Reason: h.Reason, Step: h.Step, Message: h.Message})
		}
		for _, c := range fr.Status.Conditions {
			s.Conditions = append(s.Conditions, Condition{Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message})
		}
	}
	s.Events = pic.Events

	t.mu.Lock()
	defer t.mu.Unlock()
	t.last.Seq++
	s.Seq = t.last.Seq
	if p != nil {
		t.points = append(t.points, *p)
		if len(t.points) > maxPoints {
			t.points = append(t.points[:0:0], t.points[len(t.points)-maxPoints:]...)
		}
		s.Points = []Point{*p}
	}
	t.last = s
	t.firstOnce.Do(func() { close(t.first) })
	if len(t.subs) == 0 {
		// Nobody watches (the demo's pinned fleet before a page opens):
		// the points are kept, nothing is encoded.
		return
	}
	msg, err := json.Marshal(s)
	if err != nil {
		return
	}
	t.broadcast(msg)
}

// canaryWeight is the weight a cluster's canary gets: the route's when it
// was read, else what its steps ask for. An unreachable cluster has none,
// which the plot shows as a gap.
func canaryWeight(c view.Cluster) (int32, bool) {
	switch {
	case !c.Reachable || !c.Found:
		return 0, false
	case c.Weights != nil:
		return c.Weights.Canary, true
	case c.SetWeight != nil:
		return *c.SetWeight, true
	}
	return 0, false
}

// full is the state a newly connected page starts from.
func (t *tracker) full() Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.last
	s.Reset = true
	s.Points = append([]Point(nil), t.points...)
	s.Actions = t.srv.actions()
	return s
}

// subscribe returns a stream of snapshots after the full one.
func (t *tracker) subscribe() (chan []byte, Snapshot) {
	t.mu.Lock()
	ch := make(chan []byte, 32)
	t.subs[ch] = struct{}{}
	t.mu.Unlock()
	return ch, t.full()
}

func (t *tracker) unsubscribe(ch chan []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.subs[ch]; ok {
		delete(t.subs, ch)
		close(ch)
	}
	if len(t.subs) == 0 {
		t.idleAt = t.srv.now()
	}
}

// threshold is the success rate the coordinator holds the canary to: the
// first threshold metric's lower bound, else the judge's 1-maxFailureRate.
func threshold(fr *v1alpha1.FleetRollout, def float64) float64 {
	a := fr.Spec.Analysis
	if a == nil {
		return def
	}
	for _, m := range a.Metrics {
		if m.Threshold.Op == v1alpha1.OpGreater || m.Threshold.Op == v1alpha1.OpGreaterEqual {
			if v, err := strconv.ParseFloat(m.Threshold.Value, 64); err == nil {
				return v
			}
		}
	}
	rate := "0.10"
	if a.Judge != nil && a.Judge.MaxFailureRate != "" {
		rate = string(a.Judge.MaxFailureRate)
	}
	if v, err := strconv.ParseFloat(rate, 64); err == nil {
		return 1 - v
	}
	return def
}

// hold is the barrier's countdown: the step every member waits at, since
// when, and until when the hold lasts.
func hold(fr *v1alpha1.FleetRollout) *Hold {
	st := fr.Status.Fleet
	if st.BarrierStep == nil || st.StepEnteredAt == nil || st.Aborted || st.Completed {
		return nil
	}
	// A barrier already promoted is history: the members are on their
	// way to the next one.
	if st.LastPromotedStep != nil && *st.LastPromotedStep >= *st.BarrierStep {
		return nil
	}
	since := st.StepEnteredAt.UTC()
	return &Hold{Step: *st.BarrierStep, Since: since, Until: since.Add(fr.Spec.Hold.For(*st.BarrierStep))}
}

func oneLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
