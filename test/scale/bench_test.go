// Package scale_test measures the coordinator on light local fleets of
// growing size (`lockstep lab up --light --workloads N`), in one wave and
// in three waves (1 cluster, 30 %, the rest). It is a benchmark only, out
// of `make test`:
//
//	make bench-scale                       # 2, 5 and 10 members
//	LOCKSTEP_BENCH_SIZES=2,5 make bench-scale
//
// Each size starts its own fleet, deploys a Rollout whose first step is the
// leading pause waves need to every member (directly: a light fleet has no
// Argo CD), lets the fleet's own coordinator (its least-privilege
// credentials, leader election on) release a good revision, then a bad one
// that one member aborts, and prints one table row per size and layout.
package scale_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/coordinator"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/test/fleettest"
)

var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		// `go test ./...` (make test): nothing to build, nothing to run.
		os.Exit(m.Run())
	}
	tmp, err := os.MkdirTemp("", "lockstep-scale-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(tmp, "lockstep")
	// `lab up` adds its contexts to the person's kubeconfig: a scratch one.
	os.Setenv("KUBECONFIG", filepath.Join(tmp, "user-kubeconfig"))
	code := 0
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/lockstep").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build lockstep: %v\n%s", err, out)
		code = 1
	} else {
		code = m.Run()
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

const ns = "scale"

func lockstep(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func manifests(image string) string { return fleettest.LeadingPauseApp(ns, image, 1) }

// fleet is one light fleet under measurement.
type fleet struct {
	b        *testing.B
	dir      string
	st       *local.State
	clusters []string
	dyn      map[string]dynamic.Interface
	hub      client.Client
}

func startFleet(b *testing.B, n int) *fleet {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "fleet")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	if out, err := lockstep(ctx, "lab", "up", "--light", "--workloads", strconv.Itoa(n), "--nodes", "1", "--timeout", "14m", "--dir", dir); err != nil {
		b.Fatalf("lab up --light --workloads %d: %v\n%s", n, err, out)
	}
	b.Cleanup(func() {
		if out, err := lockstep(context.Background(), "lab", "down", "--dir", dir); err != nil {
			b.Errorf("lab down: %v\n%s", err, out)
		}
	})
	st, err := local.ReadState(dir)
	if err != nil {
		b.Fatal(err)
	}
	f := &fleet{b: b, dir: dir, st: st, dyn: map[string]dynamic.Interface{}}
	for _, c := range st.Clusters {
		cfg, err := local.RESTConfig(st.Kubeconfig, c.Name)
		if err != nil {
			b.Fatal(err)
		}
		if c.Role == local.RoleWorkload {
			f.clusters = append(f.clusters, c.Name)
			if f.dyn[c.Name], err = dynamic.NewForConfig(cfg); err != nil {
				b.Fatal(err)
			}
		} else if f.hub, err = client.New(cfg, client.Options{Scheme: coordinator.Scheme()}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d light members up in %s", n, time.Since(start).Round(time.Second))
	hubCfg, err := local.RESTConfig(st.Kubeconfig, local.HubName)
	if err != nil {
		b.Fatal(err)
	}
	crd, _ := config.CRDs.ReadFile(config.FleetRolloutCRD)
	fleettest.ApplyYAML(f.b, hubCfg, string(crd))
	for _, c := range f.clusters {
		cfg, _ := local.RESTConfig(st.Kubeconfig, c)
		fleettest.ApplyYAML(f.b, cfg, manifests("example/hw:v0"))
	}
	fleettest.Eventually(f.b, 5*time.Minute, "every member Healthy at v0", func() error {
		for _, c := range f.clusters {
			if s := f.state(c); s.Phase != "Healthy" || s.Revision != s.StableRevision {
				return fmt.Errorf("%s: %s", c, s.Phase)
			}
		}
		return nil
	})
	return f
}

type rolloutState struct {
	Phase, Revision, StableRevision string
	Step                            int32
	Aborted                         bool
}

func (f *fleet) state(c string) rolloutState {
	u, err := rollouts.Get(context.Background(), f.dyn[c], ns, "hw")
	if err != nil || u == nil {
		return rolloutState{Phase: fmt.Sprint("unreadable: ", err)}
	}
	s, err := rollouts.State(u)
	if err != nil {
		return rolloutState{Phase: err.Error()}
	}
	out := rolloutState{Phase: string(s.Phase), Revision: s.Revision, StableRevision: s.StableRevision, Aborted: s.Aborted, Step: -1}
	if s.CurrentStepIndex != nil {
		out.Step = *s.CurrentStepIndex
	}
	return out
}

func (f *fleet) setImage(image string) {
	body := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"helloworld","image":%q}]}}}}`, image)
	var wg sync.WaitGroup
	for _, c := range f.clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.dyn[c].Resource(rollouts.RolloutGVR).Namespace(ns).Patch(context.Background(), "hw", types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
				f.b.Errorf("%s: %v", c, err)
			}
		}()
	}
	wg.Wait()
}

func (f *fleet) coordinatorPID() int {
	st, err := local.ReadState(f.dir)
	if err != nil {
		f.b.Fatal(err)
	}
	for _, c := range st.Components {
		if c.Name == local.CoordinatorName {
			return c.PID
		}
	}
	f.b.Fatal("no coordinator process")
	return 0
}

// cpuTicks is a process's user+system time in clock ticks (100 Hz).
func cpuTicks(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// memberRequests sums lockstep_kube_requests_total to members.
func (f *fleet) memberRequests() float64 {
	resp, err := http.Get(f.st.URLs["lockstep-coordinator-metrics"])
	if err != nil {
		f.b.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "lockstep_kube_requests_total{") && !strings.Contains(line, `cluster="hub"`) {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

// recorder notes when each member first shows each step of a revision,
// and when its VirtualService's canary weight last changed.
type recorder struct {
	mu       sync.Mutex
	reached  map[string]time.Time // cluster/revision/step
	weight   map[string]int64     // cluster -> canary weight
	weightAt map[string]time.Time
	stop     chan struct{}
}

func (f *fleet) record() *recorder {
	r := &recorder{reached: map[string]time.Time{}, weight: map[string]int64{}, weightAt: map[string]time.Time{}, stop: make(chan struct{})}
	for _, c := range f.clusters {
		fac := dynamicinformer.NewFilteredDynamicSharedInformerFactory(f.dyn[c], 0, ns, nil)
		ro := fac.ForResource(rollouts.RolloutGVR).Informer()
		_, _ = ro.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { r.rollout(c, o) },
			UpdateFunc: func(_, o any) { r.rollout(c, o) },
		})
		vs := fac.ForResource(rollouts.VirtualServiceGVR).Informer()
		_, _ = vs.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { r.vs(c, o) },
			UpdateFunc: func(_, o any) { r.vs(c, o) },
		})
		fac.Start(r.stop)
		fac.WaitForCacheSync(r.stop)
	}
	return r
}

func (r *recorder) rollout(c string, o any) {
	now := time.Now()
	s, err := rollouts.State(o.(*unstructured.Unstructured))
	if err != nil || s.CurrentStepIndex == nil {
		return
	}
	key := fmt.Sprintf("%s/%s/%d", c, s.Revision, *s.CurrentStepIndex)
	r.mu.Lock()
	if _, ok := r.reached[key]; !ok {
		r.reached[key] = now
	}
	r.mu.Unlock()
}

func (r *recorder) vs(c string, o any) {
	now := time.Now()
	w, err := rollouts.RouteWeights(o.(*unstructured.Unstructured), []string{"primary"}, "hw", "hw-canary")
	if err != nil || w == nil {
		return
	}
	r.mu.Lock()
	if r.weight[c] != int64(w.Canary) {
		r.weight[c], r.weightAt[c] = int64(w.Canary), now
	}
	r.mu.Unlock()
}

// skews are, for each batch and each step after the leading pause, how
// far apart the batch's members first showed that step.
func (r *recorder) skews(rev string, batches [][]string, steps int) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for _, batch := range batches {
		for s := 1; s <= steps; s++ {
			var lo, hi time.Time
			complete := true
			for _, c := range batch {
				t, ok := r.reached[fmt.Sprintf("%s/%s/%d", c, rev, s)]
				if !ok {
					complete = false
					break
				}
				if lo.IsZero() || t.Before(lo) {
					lo = t
				}
				if t.After(hi) {
					hi = t
				}
			}
			if complete && len(batch) > 1 {
				out = append(out, hi.Sub(lo))
			}
		}
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(math.Ceil(p*float64(len(s))))-1]
}

// layout is one way to release the members.
type layout struct {
	name    string
	waves   []v1alpha1.Wave
	batches [][]string
}

func layouts(clusters []string) []layout {
	one := layout{name: "one wave", batches: [][]string{clusters}}
	second := int(math.Ceil(0.3 * float64(len(clusters))))
	if 1+second > len(clusters)-1 {
		second = max(1, len(clusters)-2)
	}
	w1, w2, w3 := clusters[:1], clusters[1:1+second], clusters[1+second:]
	three := layout{name: "three waves", batches: [][]string{w1, w2, w3},
		waves: []v1alpha1.Wave{{Name: "first", Names: w1}, {Name: "thirty", Names: w2}, {Name: "rest", Rest: true}}}
	if len(w3) == 0 {
		return []layout{one}
	}
	return []layout{one, three}
}

type row struct {
	members          int
	layout           string
	skewP50, skewP99 time.Duration
	abort            time.Duration
	rssIdle, rssBusy int64
	cpuIdle, cpuBusy float64
	requestsPerStep  float64
	release          time.Duration
}

func BenchmarkScale(b *testing.B) {
	if testing.Short() {
		b.Skip("starts local fleets")
	}
	sizes := []int{2, 5, 10}
	if s := os.Getenv("LOCKSTEP_BENCH_SIZES"); s != "" {
		sizes = nil
		for _, p := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n < 2 {
				b.Fatalf("LOCKSTEP_BENCH_SIZES=%q: want sizes of at least 2", s)
			}
			sizes = append(sizes, n)
		}
	}
	var rows []row
	for i := 0; i < b.N; i++ {
		for _, n := range sizes {
			rows = append(rows, measure(b, n)...)
		}
	}
	fmt.Println()
	fmt.Println("| members | layout | step skew p50 | step skew p99 | abort → all at weight 0 | coordinator RSS idle / busy | CPU idle / busy (% of a core) | member API requests per barrier step | good release |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %d | %s | %s | %s | %s | %.0f / %.0f MiB | %.1f / %.1f | %.1f | %s |\n", r.members, r.layout,
			r.skewP50.Round(time.Millisecond), r.skewP99.Round(time.Millisecond), r.abort.Round(time.Millisecond),
			float64(r.rssIdle)/(1<<20), float64(r.rssBusy)/(1<<20), r.cpuIdle, r.cpuBusy, r.requestsPerStep, r.release.Round(time.Second))
	}
}

func measure(b *testing.B, n int) []row {
	f := startFleet(b, n)
	pid := f.coordinatorPID()
	var rows []row
	version := 0
	for _, l := range layouts(f.clusters) {
		fr := &v1alpha1.FleetRollout{
			ObjectMeta: metav1.ObjectMeta{Name: "scale", Namespace: "default"},
			Spec: v1alpha1.FleetRolloutSpec{
				Rollout: v1alpha1.RolloutReference{Namespace: ns, Name: "hw"},
				Members: v1alpha1.Members{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{local.WorkloadLabel: local.RoleWorkload}}},
				Hold:    v1alpha1.Hold{Default: &metav1.Duration{Duration: time.Second}},
				Waves:   l.waves,
			},
		}
		ctx := context.Background()
		if err := f.hub.Create(ctx, fr); err != nil {
			b.Fatal(err)
		}
		get := func() *v1alpha1.FleetRollout {
			var got v1alpha1.FleetRollout
			if err := f.hub.Get(ctx, client.ObjectKeyFromObject(fr), &got); err != nil {
				b.Fatal(err)
			}
			return &got
		}
		completed := func(what string, prev string) string {
			var rev string
			fleettest.Eventually(f.b, 10*time.Minute, what, func() error {
				got := get()
				if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision == prev {
					return fmt.Errorf("%s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
				}
				rev = got.Status.Fleet.Revision
				return nil
			})
			return rev
		}
		before := completed("the current revision completed", "")

		// Idle: a completed fleet, 10 s.
		t0, c0 := time.Now(), cpuTicks(pid)
		time.Sleep(10 * time.Second)
		r := row{members: n, layout: l.name, rssIdle: local.RSS(pid)}
		r.cpuIdle = float64(cpuTicks(pid)-c0) / time.Since(t0).Seconds()

		// A good release.
		rec := f.record()
		req0 := f.memberRequests()
		version++
		t0, c0 = time.Now(), cpuTicks(pid)
		f.setImage(fmt.Sprintf("example/hw:v%d", version))
		done := make(chan struct{})
		var peak int64
		go func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(200 * time.Millisecond):
					peak = max(peak, local.RSS(pid))
				}
			}
		}()
		rev := completed("the good release completed", before)
		close(done)
		r.release = time.Since(t0)
		r.cpuBusy = float64(cpuTicks(pid)-c0) / r.release.Seconds()
		r.rssBusy = peak
		r.requestsPerStep = (f.memberRequests() - req0) / float64(3*len(l.batches))
		skews := rec.skews(rev, l.batches, 5)
		r.skewP50, r.skewP99 = percentile(skews, 0.5), percentile(skews, 0.99)

		// A bad release: once the last batch is in canary, one of its
		// members aborts; time until every member of the batch is back at
		// canary weight 0.
		version++
		f.setImage(fmt.Sprintf("example/hw:v%d", version))
		last := l.batches[len(l.batches)-1]
		fleettest.Eventually(f.b, 10*time.Minute, "the last batch in canary", func() error {
			for _, c := range last {
				if s := f.state(c); s.Step < 2 || s.Revision == s.StableRevision {
					return fmt.Errorf("%s at step %d", c, s.Step)
				}
			}
			return nil
		})
		abortAt := time.Now()
		if _, err := f.dyn[last[0]].Resource(rollouts.RolloutGVR).Namespace(ns).Patch(ctx, "hw", types.MergePatchType,
			[]byte(`{"status":{"abort":true}}`), metav1.PatchOptions{}, "status"); err != nil {
			b.Fatal(err)
		}
		fleettest.Eventually(f.b, time.Minute, "every member of the batch at weight 0", func() error {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			var latest time.Time
			for _, c := range last {
				if rec.weight[c] != 0 || rec.weightAt[c].Before(abortAt) {
					return fmt.Errorf("%s at canary weight %d", c, rec.weight[c])
				}
				if rec.weightAt[c].After(latest) {
					latest = rec.weightAt[c]
				}
			}
			r.abort = latest.Sub(abortAt)
			return nil
		})
		close(rec.stop)
		if err := f.hub.Delete(ctx, fr); err != nil {
			b.Fatal(err)
		}
		// The next layout starts from a good revision everywhere.
		version++
		f.setImage(fmt.Sprintf("example/hw:v%d", version))
		fleettest.Eventually(f.b, 5*time.Minute, "every member promoted by hand", func() error {
			for _, c := range f.clusters {
				s := f.state(c)
				if s.Revision != s.StableRevision {
					if s.Step >= 0 && s.Phase == "Paused" {
						_ = rollouts.Promote(ctx, f.dyn[c], ns, "hw", true)
					}
					return fmt.Errorf("%s: %s at step %d", c, s.Phase, s.Step)
				}
			}
			return nil
		})
		b.Logf("%d members, %s: skew p50 %s p99 %s, abort %s", n, l.name, r.skewP50, r.skewP99, r.abort)
		rows = append(rows, r)
	}
	return rows
}
