package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/readout"
	"lockstep.dev/lockstep/internal/view"
)

// fakeSource serves fixed pictures and records the actions it was asked
// for: the narrow interface the server reads through.
type fakeSource struct {
	mu      sync.Mutex
	pic     map[Ref]Picture
	acts    []string
	changed chan struct{}
}

func newFake() *fakeSource {
	w := func(c int32) *view.Weights { return &view.Weights{Stable: 100 - c, Canary: c} }
	fl := view.Fleet{Rollout: "helloworld/helloworld", Clusters: []view.Cluster{
		{Name: "argo-rollout1", Reachable: true, Found: true, Phase: "Paused", Weights: w(10)},
		{Name: "argo-rollout2", Reachable: true, Found: true, Phase: "Paused", Weights: w(10)},
	}}
	return &fakeSource{changed: make(chan struct{}, 1), pic: map[Ref]Picture{FleetRolloutRef("lockstep", "helloworld"): {Fleet: fl}}}
}

func (f *fakeSource) set(ref Ref, p Picture) {
	f.mu.Lock()
	f.pic[ref] = p
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func (f *fakeSource) Index(context.Context) ([]IndexEntry, error) {
	return []IndexEntry{{Ref: FleetRolloutRef("lockstep", "helloworld"), Phase: "Holding"}}, nil
}

func (f *fakeSource) Open(ref Ref) (Fleet, error) { return &fakeFleet{f, ref}, nil }

type fakeFleet struct {
	src *fakeSource
	ref Ref
}

func (f *fakeFleet) Refresh(context.Context) Picture {
	f.src.mu.Lock()
	defer f.src.mu.Unlock()
	p, ok := f.src.pic[f.ref]
	if !ok {
		return Picture{Err: errors.New("fleetrollout " + f.ref.Namespace + "/" + f.ref.Name + " not found on the hub"), NotFound: true}
	}
	return p
}
func (f *fakeFleet) Changed() <-chan struct{} { return f.src.changed }
func (f *fakeFleet) Act(_ context.Context, verb string) (*ActionResult, error) {
	f.src.mu.Lock()
	defer f.src.mu.Unlock()
	f.src.acts = append(f.src.acts, verb)
	if p, ok := f.src.pic[f.ref]; ok && verb == "promote" {
		// A promote moves every cluster to the next pause (two steps on).
		cs := slices.Clone(p.Fleet.Clusters)
		for i := range cs {
			if s := cs[i].Step; s != nil {
				next := *s + 2
				cs[i].Step = &next
			}
		}
		p.Fleet.Clusters = cs
		f.src.pic[f.ref] = p
	}
	return &ActionResult{Verb: verb, Message: verb + " done", Results: []ClusterResult{{Cluster: "argo-rollout1", OK: true}}}, nil
}
func (f *fakeFleet) Close() {}

func (f *fakeSource) actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.acts...)
}

const token = "the-token"

func newServer(t *testing.T, o Options) (*httptest.Server, *fakeSource) {
	t.Helper()
	src := newFake()
	if o.Source == nil {
		o.Source = src
	}
	o.Interval = 50 * time.Millisecond
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts, src
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func post(t *testing.T, ts *httptest.Server, path string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestActionsNeedThisRunsToken(t *testing.T) {
	t.Parallel()
	ts, src := newServer(t, Options{Token: token, Loopback: true})
	abort := "/api/fleets/lockstep/helloworld/actions/abort"
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want string
	}{
		{"no token", nil, "no token"},
		{"stale token", map[string]string{TokenHeader: "from-another-run"}, "stale token"},
		{"cross-site fetch", map[string]string{TokenHeader: token, "Sec-Fetch-Site": "cross-site"}, "cross-site request refused"},
		{"foreign origin", map[string]string{TokenHeader: token, "Origin": "http://evil.example"}, "origin http://evil.example refused"},
	} {
		code, body := post(t, ts, abort, tc.hdr)
		if code != http.StatusForbidden || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 403 %q", tc.name, code, body, tc.want)
		}
	}
	if got := src.actions(); len(got) != 0 {
		t.Fatalf("refused requests acted: %v", got)
	}
	code, body := post(t, ts, "/api/fleets/lockstep/helloworld/actions/explode", map[string]string{TokenHeader: token})
	if code != http.StatusBadRequest || !strings.Contains(body, `unknown action \"explode\"`) {
		t.Errorf("unknown verb: %d %s", code, body)
	}
	u, _ := url.Parse(ts.URL)
	code, body = post(t, ts, abort, map[string]string{TokenHeader: token, "Origin": "http://" + u.Host, "Sec-Fetch-Site": "same-origin"})
	if code != http.StatusOK || !strings.Contains(body, "abort done") {
		t.Fatalf("same-origin with token: %d %s", code, body)
	}
	if got := src.actions(); len(got) != 1 || got[0] != "abort" {
		t.Fatalf("acted %v, want [abort]", got)
	}
	code, body = post(t, ts, "/api/fleets/lockstep/nope/actions/abort", map[string]string{TokenHeader: token})
	if code != http.StatusNotFound || !strings.Contains(body, "lockstep/nope not found") {
		t.Errorf("missing fleet: %d %s", code, body)
	}
}

func TestActionsOff(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{Token: token, ActionsOff: "served on 0.0.0.0, not loopback, without --allow-actions"},
		{}, // read-only: no token at all
	} {
		ts, src := newServer(t, o)
		code, body := post(t, ts, "/api/fleets/lockstep/helloworld/actions/promote", map[string]string{TokenHeader: token})
		if code != http.StatusForbidden || !strings.Contains(body, "actions are off") {
			t.Errorf("%+v: %d %s", o, code, body)
		}
		if len(src.actions()) != 0 {
			t.Errorf("%+v: acted", o)
		}
	}
}

func TestLoopbackAnswersLoopbackNamesOnly(t *testing.T) {
	t.Parallel()
	ts, _ := newServer(t, Options{Token: token, Loopback: true})
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/", nil)
	req.Host = "rebound.example:80"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "serves loopback only") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	resp, err = http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
}

func get(t *testing.T, c *http.Client, u string, cookie *http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestTokenInURLBecomesACookie(t *testing.T) {
	t.Parallel()
	ts, _ := newServer(t, Options{Token: token, Loopback: true})
	c := noRedirect()
	resp, _ := get(t, c, ts.URL+"/fleets/lockstep/helloworld?token="+token, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/fleets/lockstep/helloworld" {
		t.Fatalf("%d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == TokenCookie {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Value != token {
		t.Fatalf("cookie %+v", cookie)
	}
	resp, body := get(t, c, ts.URL+"/fleets/lockstep/helloworld", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<meta name="lockstep-token" content="`+token+`">`) {
		t.Fatalf("%d\n%s", resp.StatusCode, body)
	}
	// A token of another run: the page shows, says so, and carries no token.
	resp, body = get(t, c, ts.URL+"/fleets/lockstep/helloworld?token=old", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="token-banner"`) || strings.Contains(body, "content=\"old\"") || len(resp.Cookies()) != 0 {
		t.Fatalf("stale: %d cookies %v\n%s", resp.StatusCode, resp.Cookies(), body)
	}
	resp, body = get(t, c, ts.URL+"/fleets/lockstep/helloworld", &http.Cookie{Name: TokenCookie, Value: "old"})
	if !strings.Contains(body, `id="token-banner"`) || !strings.Contains(body, `content=""`) {
		t.Fatalf("stale cookie: %d\n%s", resp.StatusCode, body)
	}
}

func TestBadPages(t *testing.T) {
	t.Parallel()
	ts, _ := newServer(t, Options{Token: token})
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/fleets/lockstep/nope", http.StatusNotFound, "fleetrollout lockstep/nope not found on the hub"},
		{"/fleets/lockstep/Not_A_Name", http.StatusBadRequest, "name &#34;Not_A_Name&#34; is not a Kubernetes name"},
		{"/widgets/lockstep/helloworld", http.StatusBadRequest, "unknown page kind"},
		{"/api/fleets/lockstep/nope", http.StatusNotFound, "not found on the hub"},
	} {
		resp, body := get(t, http.DefaultClient, ts.URL+tc.path, nil)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d, want %d with %q\n%s", tc.path, resp.StatusCode, tc.code, tc.want, body)
		}
	}
}

// events reads server-sent events as snapshots.
func events(t *testing.T, ctx context.Context, u string) <-chan Snapshot {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	out := make(chan Snapshot, 64)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var s Snapshot
			if err := json.Unmarshal([]byte(data), &s); err == nil {
				out <- s
			}
		}
	}()
	return out
}

func next(t *testing.T, ch <-chan Snapshot, what string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s, open := <-ch:
			if !open {
				t.Fatalf("stream ended waiting for %s", what)
			}
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("no snapshot with %s", what)
		}
	}
}

func TestStreamSendsStateThenChanges(t *testing.T) {
	t.Parallel()
	ts, src := newServer(t, Options{Token: token})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := events(t, ctx, ts.URL+"/api/fleets/lockstep/helloworld/stream")
	first := next(t, ch, "the full state", func(s Snapshot) bool { return s.Reset })
	if first.Fleet == nil || len(first.Points) == 0 || first.Points[len(first.Points)-1].Weight["argo-rollout2"] != 10 || !first.Actions.Enabled {
		t.Fatalf("first snapshot %+v", first)
	}
	if first.MetricsError != "" || first.Threshold != 0.9 {
		t.Fatalf("metrics %q threshold %v", first.MetricsError, first.Threshold)
	}
	// One cluster moves on: the next snapshot carries only the new point.
	p := src.pic[FleetRolloutRef("lockstep", "helloworld")]
	p.Fleet.Clusters = append([]view.Cluster(nil), p.Fleet.Clusters...)
	p.Fleet.Clusters[0].Weights = &view.Weights{Stable: 70, Canary: 30}
	src.set(FleetRolloutRef("lockstep", "helloworld"), p)
	moved := next(t, ch, "argo-rollout1 at 30", func(s Snapshot) bool {
		return !s.Reset && len(s.Points) == 1 && s.Points[0].Weight["argo-rollout1"] == 30
	})
	if moved.Seq <= first.Seq {
		t.Fatalf("seq %d after %d", moved.Seq, first.Seq)
	}
	// The member goes unreachable: no weight (a gap), the row says so.
	p.Fleet.Clusters = append([]view.Cluster(nil), p.Fleet.Clusters...)
	p.Fleet.Clusters[1] = view.Cluster{Name: "argo-rollout2", Error: "cluster argo-rollout2 not connected: dial tcp 127.0.0.1:1: connection refused"}
	src.set(FleetRolloutRef("lockstep", "helloworld"), p)
	gone := next(t, ch, "argo-rollout2 unreachable", func(s Snapshot) bool {
		return s.Fleet != nil && !s.Fleet.Clusters[1].Reachable
	})
	if _, ok := gone.Points[0].Weight["argo-rollout2"]; ok {
		t.Fatalf("an unreachable cluster got a weight: %+v", gone.Points[0])
	}
}

// downQuerier is a Thanos that refuses every connection.
type downQuerier struct{}

func (downQuerier) Query(context.Context, string, time.Time) (model.Vector, []string, error) {
	return nil, nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
}

func TestThanosDownIsSaid(t *testing.T) {
	t.Parallel()
	ts, _ := newServer(t, Options{Metrics: &readout.Metrics{Querier: downQuerier{}, URL: "http://127.0.0.1:1", RateQuery: readout.DefaultRateQuery, LatencyQuery: readout.DefaultLatencyQuery}})
	resp, body := get(t, http.DefaultClient, ts.URL+"/api/fleets/lockstep/helloworld", nil)
	var s Snapshot
	if err := json.Unmarshal([]byte(body), &s); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v %s", resp.StatusCode, err, body)
	}
	if !strings.Contains(s.MetricsError, "thanos query http://127.0.0.1:1: dial tcp") || !strings.Contains(s.MetricsError, "not being updated") {
		t.Fatalf("metrics error %q", s.MetricsError)
	}
	// The members are still shown and plotted.
	if s.Fleet == nil || len(s.Points) == 0 || s.Points[0].Rate != nil {
		t.Fatalf("%+v", s)
	}
}

func TestThresholdAndHold(t *testing.T) {
	t.Parallel()
	fr := &v1alpha1.FleetRollout{}
	if got := threshold(fr, 0.95); got != 0.95 {
		t.Errorf("no analysis: %v", got)
	}
	fr.Spec.Analysis = &v1alpha1.Analysis{}
	if got := threshold(fr, 0.95); got != 0.9 {
		t.Errorf("judge default: %v", got)
	}
	fr.Spec.Analysis.Judge = &v1alpha1.Judge{MaxFailureRate: "0.02"}
	if got := threshold(fr, 0.95); got != 0.98 {
		t.Errorf("judge 0.02: %v", got)
	}
	fr.Spec.Analysis.Metrics = []v1alpha1.Metric{{Name: "sr", Threshold: v1alpha1.Threshold{Op: ">", Value: "0.97"}}}
	if got := threshold(fr, 0.95); got != 0.97 {
		t.Errorf("metric: %v", got)
	}

	if hold(fr) != nil {
		t.Error("a hold without a barrier")
	}
	step := int32(3)
	at := metav1.NewMicroTime(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	fr.Status.Fleet.BarrierStep, fr.Status.Fleet.StepEnteredAt = &step, &at
	fr.Spec.Hold.Steps = []v1alpha1.StepHold{{Step: 3, Duration: metav1.Duration{Duration: 45 * time.Second}}}
	h := hold(fr)
	if h == nil || h.Step != 3 || h.Until.Sub(h.Since) != 45*time.Second {
		t.Errorf("hold %+v", h)
	}
	now := time.Date(2026, 11, 29, 12, 30, 0, 0, time.UTC)
	if got := historyStart(nil, now); !got.Equal(now.Add(-DirectHistory)) {
		t.Errorf("history without a FleetRollout from %s", got)
	}
	if got := historyStart(fr, now); !got.Equal(now.Add(-History)) {
		t.Errorf("history without a revision from %s", got)
	}
	seen := metav1.NewMicroTime(now.Add(-4 * time.Minute))
	fr.Status.Fleet.RevisionSeenAt = &seen
	if got := historyStart(fr, now); !got.Equal(now.Add(-5 * time.Minute)) {
		t.Errorf("history of a 4-minute-old revision from %s, want a minute before it", got)
	}
	promoted := int32(3)
	fr.Status.Fleet.LastPromotedStep = &promoted
	if hold(fr) != nil {
		t.Error("a promoted barrier still holds")
	}
	fr.Status.Fleet.LastPromotedStep = nil
	fr.Status.Fleet.Aborted = true
	if hold(fr) != nil {
		t.Error("an aborted fleet holds")
	}
}

func TestAssetsAreServedWithTheirHash(t *testing.T) {
	t.Parallel()
	ts, _ := newServer(t, Options{})
	_, body := get(t, http.DefaultClient, ts.URL+"/fleets/lockstep/helloworld", nil)
	for _, name := range []string{"uPlot.iife.min.js", "uPlot.min.css", "app.js", "app.css"} {
		i := strings.Index(body, "/assets/"+name+"?v=")
		if i < 0 {
			t.Fatalf("page does not load %s", name)
		}
		end := strings.IndexByte(body[i:], '"')
		resp, b := get(t, http.DefaultClient, ts.URL+body[i:i+end], nil)
		if resp.StatusCode != http.StatusOK || len(b) < 100 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d, %d bytes, %q", name, resp.StatusCode, len(b), resp.Header.Get("Cache-Control"))
		}
	}
}

// rangeQuerier answers instant queries with 0.99 and ranges with a past
// that has a NaN and an impossible rate in it.
type rangeQuerier struct{ now time.Time }

func (q rangeQuerier) Query(context.Context, string, time.Time) (model.Vector, []string, error) {
	return model.Vector{{Value: 0.99}}, nil, nil
}

func (q rangeQuerier) QueryRange(_ context.Context, promql string, start, end time.Time, step time.Duration) (model.Matrix, []string, error) {
	if !strings.Contains(promql, "response_code") {
		return model.Matrix{}, nil, nil // no latency history
	}
	at := func(ago time.Duration) model.Time { return model.TimeFromUnixNano(q.now.Add(-ago).UnixNano()) }
	return model.Matrix{{Values: []model.SamplePair{
		{Timestamp: at(90 * time.Second), Value: 0.97},
		{Timestamp: at(60 * time.Second), Value: model.SampleValue(math.NaN())},
		{Timestamp: at(30 * time.Second), Value: 1.5},
		{Timestamp: at(10 * time.Second), Value: 0.95},
	}}}, nil, nil
}

func TestPlotsStartWithThanosHistory(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ts, _ := newServer(t, Options{Metrics: &readout.Metrics{Querier: rangeQuerier{now}, URL: "http://thanos", RateQuery: readout.DefaultRateQuery, LatencyQuery: readout.DefaultLatencyQuery}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := events(t, ctx, ts.URL+"/api/fleets/lockstep/helloworld/stream")
	s := next(t, ch, "the state with the past", func(s Snapshot) bool { return s.Reset && len(s.Points) > 0 && s.Points[0].T < float64(now.Unix()) })
	var past []float64
	for _, p := range s.Points {
		if p.T < float64(now.Unix()) {
			if len(p.Weight) != 0 {
				t.Errorf("a past point has weights: %+v", p)
			}
			past = append(past, p.Rate["argo-rollout1"])
		}
	}
	// The NaN and the rate above 1 are not drawn.
	if len(past) != 2 || past[0] != 0.97 || past[1] != 0.95 {
		t.Fatalf("past rates %v, want [0.97 0.95]", past)
	}
	if last := s.Points[len(s.Points)-1]; last.Rate["argo-rollout2"] != 0.99 {
		t.Errorf("live point %+v", last)
	}
}

func TestHubTroubleKeepsTheMembers(t *testing.T) {
	t.Parallel()
	ts, src := newServer(t, Options{})
	ref := FleetRolloutRef("lockstep", "helloworld")
	p := src.pic[ref]
	p.Err = errors.New("get fleetrollout lockstep/helloworld on the hub: connection refused")
	src.set(ref, p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := events(t, ctx, ts.URL+"/api/fleets/lockstep/helloworld/stream")
	s := next(t, ch, "the hub's error beside the members", func(s Snapshot) bool { return s.Error != "" })
	if s.Fleet == nil || len(s.Fleet.Clusters) != 2 || len(s.Points) == 0 || !strings.Contains(s.Error, "connection refused") {
		t.Fatalf("%+v", s)
	}
}

// Two pages promote at once from step 3: the first moves the fleet, the
// second is refused, naming both steps; a promote naming no step is
// refused too.
func TestPromoteCarriesItsStep(t *testing.T) {
	t.Parallel()
	ts, src := newServer(t, Options{Token: token, Loopback: true})
	three := int32(3)
	p := src.pic[FleetRolloutRef("lockstep", "helloworld")]
	for i := range p.Fleet.Clusters {
		p.Fleet.Clusters[i].Step = &three
	}
	src.set(FleetRolloutRef("lockstep", "helloworld"), p)
	promote := "/api/fleets/lockstep/helloworld/actions/promote"
	if code, body := post(t, ts, promote, map[string]string{TokenHeader: token}); code != http.StatusConflict || !strings.Contains(body, "names no step") {
		t.Errorf("no step: %d %s", code, body)
	}
	var wg sync.WaitGroup
	codes := make([]int, 2)
	bodies := make([]string, 2)
	for i := range 2 {
		wg.Go(func() { codes[i], bodies[i] = post(t, ts, promote+"?step=3", map[string]string{TokenHeader: token}) })
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[0] != http.StatusOK || codes[1] != http.StatusConflict {
		t.Fatalf("two promotes at step 3: %v %q", codes, bodies)
	}
	refused := bodies[0]
	if !strings.Contains(refused, "clicked at step 3") {
		refused = bodies[1]
	}
	if !strings.Contains(refused, "clicked at step 3, and the fleet is at step 5 now") {
		t.Errorf("refusal: %s", refused)
	}
	if got := src.actions(); len(got) != 1 {
		t.Errorf("acted %v, want one promote", got)
	}
}

// Exposed: one client's ninth stream is refused, a read-only client
// cannot fill the tracker slots to block an abort, and the abort works
// with every slot taken.
func TestExposedLimits(t *testing.T) {
	t.Parallel()
	ts, src := newServer(t, Options{Token: token, Exposed: true, MaxFleets: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(path string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+path, nil)
		req.Header.Set(TokenHeader, token)
		return http.DefaultClient.Do(req)
	}
	stream := "/api/fleets/lockstep/helloworld/stream"
	for i := range DefaultMaxStreamsPerClient {
		resp, err := open(stream)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %v %v", i, resp, err)
		}
		defer resp.Body.Close()
	}
	resp, err := open(stream)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), "this client holds 8 page streams already") {
		t.Errorf("ninth stream: %d %s", resp.StatusCode, b)
	}
	// Every tracker slot taken by other fleets' pages.
	for _, name := range []string{"a", "b", "c", "d"} {
		src.set(FleetRolloutRef("lockstep", name), Picture{Fleet: view.Fleet{Rollout: "x/" + name}})
		resp, err := open("/api/fleets/lockstep/" + name)
		if err == nil {
			resp.Body.Close()
		}
	}
	if resp, err := open("/api/fleets/lockstep/e"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "fleets are being read already") {
			t.Fatalf("a fifth fleet's page: %d %s (want the slots full)", resp.StatusCode, b)
		}
	}
	src.set(FleetRolloutRef("lockstep", "e"), Picture{Fleet: view.Fleet{Rollout: "x/e"}})
	code, body := post(t, ts, "/api/fleets/lockstep/e/actions/abort", map[string]string{TokenHeader: token})
	if code != http.StatusOK || !strings.Contains(body, "abort done") {
		t.Errorf("abort with every slot taken: %d %s", code, body)
	}
}
