// Package dashboard tests `lockstep dashboard` and the page `lockstep demo`
// serves, in real headless Chromium against the local fleet: the page
// loads during a demo, its weight plot gains points as the canary moves,
// its abort button aborts every cluster, actions without this run's token
// are refused, an unreachable member shows on the next refresh, and bad
// input (an unknown FleetRollout, a stale token, Thanos down) is said on
// the page with nothing changed. It saves screenshots as artefacts and
// prints the page's load time and update latency.
package dashboard

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/test/fleettest"
)

func TestMain(m *testing.M) { os.Exit(fleettest.Main(m, "../..", fleettest.Options{})) }

var (
	rolloutGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	workloads  = []string{"argo-rollout1", "argo-rollout2"}
)

// process is a lockstep command left running, with the lines it printed.
type process struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

// start runs the lockstep binary and waits for a line starting with
// prefix; it returns the rest of that line.
func start(t *testing.T, prefix string, args ...string) (*process, string) {
	t.Helper()
	p := &process{cmd: exec.Command(fleettest.F.Bin, args...), done: make(chan struct{})}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, l)
			p.mu.Unlock()
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				select {
				case found <- strings.TrimSpace(rest):
				default:
				}
			}
		}
		_ = p.cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case v := <-found:
		return p, v
	case <-p.done:
		t.Fatalf("lockstep %s ended before printing %q:\n%s", strings.Join(args, " "), prefix, p.output())
	case <-time.After(5 * time.Minute):
		t.Fatalf("lockstep %s printed no %q:\n%s", strings.Join(args, " "), prefix, p.output())
	}
	return nil, ""
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *process) has(s string) bool { return strings.Contains(p.output(), s) }

func (p *process) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("lockstep %s did not stop on Ctrl-C", strings.Join(p.cmd.Args[1:], " "))
	}
}

func rollout(t *testing.T, cluster string) *unstructured.Unstructured {
	t.Helper()
	ro, err := fleettest.Dynamic(t, cluster).Resource(rolloutGVR).Namespace("helloworld").Get(context.Background(), "helloworld", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ro
}

func aborted(t *testing.T, cluster string) bool {
	t.Helper()
	v, _, _ := unstructured.NestedBool(rollout(t, cluster).Object, "status", "abort")
	return v
}

// abortWatch records when each cluster's Rollout was first seen aborted,
// from a watch on its API server.
func abortWatch(t *testing.T) func() map[string]time.Time {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]time.Time{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, c := range workloads {
		w, err := fleettest.Dynamic(t, c).Resource(rolloutGVR).Namespace("helloworld").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=helloworld"})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer w.Stop()
			for ev := range w.ResultChan() {
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok || ev.Type == watch.Error {
					continue
				}
				if v, _, _ := unstructured.NestedBool(u.Object, "status", "abort"); v {
					mu.Lock()
					if _, ok := seen[c]; !ok {
						seen[c] = time.Now()
					}
					mu.Unlock()
				}
			}
		}()
	}
	return func() map[string]time.Time {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]time.Time{}
		for k, v := range seen {
			out[k] = v
		}
		return out
	}
}

type seenRow struct {
	At   float64 `json:"at"`
	Text string  `json:"text"`
}

// firstSeen is when the page first drew cluster's row with text in it.
func firstSeen(t *testing.T, b *browser, cluster, text string) (time.Time, bool) {
	t.Helper()
	rows := eval[map[string][]seenRow](t, b, `window.lockstepSeen`)
	for _, r := range rows[cluster] {
		if strings.Contains(r.Text, text) {
			return time.UnixMilli(int64(r.At)), true
		}
	}
	return time.Time{}, false
}

type plot struct {
	Points    int                `json:"points"`
	MaxWeight map[string]float64 `json:"maxWeight"`
	Rates     map[string]int     `json:"rates"`
}

// TestDashboardDuringDemo follows a lockstep demo in the browser and
// aborts it with the page's button.
func TestDashboardDuringDemo(t *testing.T) {
	fleettest.Need(t)
	b := newBrowser(t)
	demo, pageURL := start(t, "dashboard: ", "demo", "--dir", fleettest.F.Dir, "--lockstep", "--keep-dashboard",
		"--pause", "8s", "--analysis-delay", "12s", "--analysis-interval", "5s", "--scale-down-delay", "3s")
	if !strings.HasPrefix(pageURL, "http://127.0.0.1:") || !strings.Contains(pageURL, "/fleets/lockstep/helloworld?token=") {
		t.Fatalf("demo printed dashboard URL %q", pageURL)
	}
	base, _, _ := strings.Cut(pageURL, "/fleets/")

	t.Run("the page loads and draws within 300 ms", func(t *testing.T) {
		best := 1e9
		for i := 0; i < 3; i++ {
			b.do(t, chromedp.Navigate(pageURL))
			b.until(t, 10*time.Second, "the fleet's first picture", `window.lockstepRendered && window.lockstepRendered.seq > 0`)
			load := eval[float64](t, b, `performance.getEntriesByType("navigation")[0].loadEventEnd`)
			drawn := eval[float64](t, b, `window.lockstepRendered.at - performance.timeOrigin`)
			t.Logf("page load %d: loaded in %s, first picture drawn at %s", i+1, ms(load), ms(drawn))
			best = min(best, max(load, drawn))
		}
		report(t, "dashboard page load (best of 3, load and first picture drawn): %s", ms(best))
		if best > 300 {
			t.Errorf("page load %s, want at most 300 ms", ms(best))
		}
		// The token went from the URL into a cookie.
		if u := eval[string](t, b, `location.href`); strings.Contains(u, "token=") {
			t.Errorf("the URL still carries the token: %s", u)
		}
		b.screenshot(t, "1-start")
	})

	t.Run("the weight plot gains points as the canary moves", func(t *testing.T) {
		before := eval[plot](t, b, `window.lockstepPlot()`)
		b.until(t, 4*time.Minute, "every cluster's canary at 30 % or more", `(() => { const p = window.lockstepPlot(); return Object.keys(p.maxWeight).length == 2 && Object.values(p.maxWeight).every(w => w >= 30); })()`)
		after := eval[plot](t, b, `window.lockstepPlot()`)
		t.Logf("plot: %d points before, %d after; max weights %v; rate samples %v", before.Points, after.Points, after.MaxWeight, after.Rates)
		if after.Points <= before.Points {
			t.Errorf("the plot did not gain points: %d then %d", before.Points, after.Points)
		}
		b.until(t, 30*time.Second, "success rates from Thanos", `Object.values(window.lockstepPlot().rates).every(n => n > 0)`)
		b.screenshot(t, "2-mid-canary")
	})

	t.Run("actions without this run's token are refused", func(t *testing.T) {
		stale := b // the same tab, opened with a token of another run
		stale.do(t, chromedp.Navigate(base+"/fleets/lockstep/helloworld?token=from-an-earlier-run"))
		stale.until(t, 10*time.Second, "the stale-token banner and disabled buttons",
			`document.getElementById("token-banner") && document.querySelector("button.verb-abort").disabled && /stale/.test(document.getElementById("actions-off").textContent)`)
		for _, tc := range []struct{ header, want string }{
			{`{}`, "no token"},
			{`{"X-Lockstep-Token": "from-an-earlier-run"}`, "stale token"},
		} {
			got := eval[string](t, stale, `fetch("/api/fleets/lockstep/helloworld/actions/abort", {method: "POST", headers: `+tc.header+`}).then(r => r.status + " " + r.statusText).then(s => s)`)
			body := eval[string](t, stale, `fetch("/api/fleets/lockstep/helloworld/actions/abort", {method: "POST", headers: `+tc.header+`}).then(r => r.text())`)
			if !strings.HasPrefix(got, "403") || !strings.Contains(body, tc.want) {
				t.Errorf("POST abort with headers %s: %s %s, want 403 %q", tc.header, got, body, tc.want)
			}
		}
		// And from outside the browser, with no page at all.
		resp, err := http.Post(base+"/api/fleets/lockstep/helloworld/actions/abort", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST without token: %s", resp.Status)
		}
		for _, c := range workloads {
			if aborted(t, c) {
				t.Fatalf("%s aborted by a refused request", c)
			}
		}
		// Back to the URL with this run's token; the page starts from the
		// whole plot history again.
		b.do(t, chromedp.Navigate(pageURL))
		b.until(t, 10*time.Second, "the plot history", `window.lockstepPlot().points > 10`)
	})

	t.Run("the abort button aborts every cluster", func(t *testing.T) {
		when := abortWatch(t)
		b.until(t, 10*time.Second, "the abort button enabled", `!document.querySelector("button.verb-abort").disabled`)
		b.do(t, chromedp.Click(chromedp.CSS("button.verb-abort")))
		b.until(t, 5*time.Second, "the confirmation", `document.getElementById("confirm").open && /abort/.test(document.getElementById("confirm-text").textContent)`)
		b.do(t, chromedp.Click(chromedp.CSS("#confirm-ok")))
		b.until(t, 30*time.Second, "every row aborted", `Array.from(document.querySelectorAll("#members tbody tr")).every(r => /aborted/.test(r.querySelector(".c-phase").textContent))`)
		b.until(t, 5*time.Second, "the action's result", `/abort: done in 2 clusters/.test(document.getElementById("action-result").textContent)`)
		seen := when()
		worst := 0.0
		for _, c := range workloads {
			if !aborted(t, c) {
				t.Errorf("%s: Rollout not aborted", c)
			}
			changed, ok := seen[c]
			drawn, drew := firstSeen(t, b, c, "aborted")
			if !ok || !drew {
				t.Errorf("%s: abort seen in the cluster %v, on the page %v", c, ok, drew)
				continue
			}
			lat := float64(drawn.Sub(changed).Microseconds()) / 1000
			t.Logf("%s: aborted in the cluster at %s, drawn %s later", c, changed.Format("15:04:05.000"), ms(lat))
			worst = max(worst, lat)
		}
		report(t, "dashboard update latency (cluster change -> drawn, worst of %d clusters): %s", len(workloads), ms(worst))
		if worst > 1000 {
			t.Errorf("update latency %s, want at most 1 s", ms(worst))
		}
		b.until(t, 60*time.Second, "the fleet Aborted", `document.getElementById("phase").textContent == "Aborted"`)
		b.screenshot(t, "3-aborted")
	})

	t.Run("an unreachable member shows on the next refresh", func(t *testing.T) {
		pid := fleettest.ComponentPID(t, "argo-rollout2/kube-apiserver")
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
		// One refresh: the 1 s interval plus the demo dashboard's 2 s
		// request timeout, plus the health probe that marks it down.
		b.until(t, 10*time.Second, "argo-rollout2 unreachable", `document.querySelector('#members tr[data-cluster="argo-rollout2"]').dataset.reachable == "false"`)
		drawn, _ := firstSeen(t, b, "argo-rollout2", "Unreachable")
		report(t, "dashboard: a stopped member drawn unreachable after %s", ms(float64(drawn.Sub(stopped).Milliseconds())))
		if !eval[bool](t, b, `document.querySelector('#members tr[data-cluster="argo-rollout1"]').dataset.reachable == "true"`) {
			t.Error("argo-rollout1 is no longer shown reachable")
		}
		b.screenshot(t, "4-unreachable")
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		b.until(t, 30*time.Second, "argo-rollout2 back", `document.querySelector('#members tr[data-cluster="argo-rollout2"]').dataset.reachable == "true"`)
	})

	demo.stop(t)
	if !demo.has(`"outcome": "Aborted"`) && !demo.has("Aborted") {
		t.Errorf("the demo did not report the abort:\n%s", demo.output())
	}
}

// TestBadInputIsSaid opens pages that cannot work and checks each says
// why on the page while nothing changes in the clusters.
func TestBadInputIsSaid(t *testing.T) {
	fleettest.Need(t)
	b := newBrowser(t)
	// The Rollouts first settle (an abort's scale-down, a controller
	// catching up after an outage), so that a change seen below is ours.
	var before map[string]string
	fleettest.Eventually(t, time.Minute, "the Rollouts unchanged for 3s", func() error {
		a := map[string]string{}
		for _, c := range workloads {
			a[c] = rollout(t, c).GetResourceVersion()
		}
		time.Sleep(3 * time.Second)
		for _, c := range workloads {
			if rv := rollout(t, c).GetResourceVersion(); rv != a[c] {
				return fmt.Errorf("%s: resourceVersion %s -> %s", c, a[c], rv)
			}
		}
		before = a
		return nil
	})
	st := fleettest.F.State
	// The Thanos URL carries credentials: the page must not show them.
	_, index0 := start(t, "Dashboard: ", "dashboard", "--kubeconfig", st.Kubeconfig, "--context", local.HubName, "--thanos-url", "http://lockstep:s3cret@127.0.0.1:1", "--interval", "500ms")
	page := strings.Replace(index0, "/?token=", "/fleets/lockstep/helloworld?token=", 1)
	_, index := start(t, "Dashboard: ", "dashboard", "--kubeconfig", st.Kubeconfig, "--context", local.HubName, "--thanos-url", "http://127.0.0.1:1", "--read-only")

	t.Run("Thanos down", func(t *testing.T) {
		b.do(t, chromedp.Navigate(page))
		b.until(t, 15*time.Second, "the Thanos banner", `!document.getElementById("metrics-error").hidden && /thanos query http:\/\/lockstep:xxxxx@127.0.0.1:1/.test(document.getElementById("metrics-error").textContent)`)
		if eval[bool](t, b, `document.body.innerHTML.includes("s3cret")`) {
			t.Error("the page shows the Thanos URL's password")
		}
		if !eval[bool](t, b, `document.querySelectorAll("#members tbody tr").length == 2`) {
			t.Error("the members are not shown while Thanos is down")
		}
		b.screenshot(t, "5-thanos-down")
	})

	t.Run("an unknown FleetRollout", func(t *testing.T) {
		base, _, _ := strings.Cut(page, "/fleets/")
		resp, err := http.Get(base + "/fleets/lockstep/no-such-fleet")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %s", resp.Status)
		}
		b.do(t, chromedp.Navigate(base+"/fleets/lockstep/no-such-fleet"))
		b.until(t, 10*time.Second, "the not-found message", `/fleetrollout lockstep\/no-such-fleet not found on the hub/.test(document.body.textContent)`)
		b.do(t, chromedp.Navigate(base+"/fleets/lockstep/Bad_Name"))
		b.until(t, 10*time.Second, "the bad-name message", `/is not a Kubernetes name/.test(document.body.textContent)`)
		if !strings.Contains(string(body), "not found on the hub") {
			t.Errorf("the 404 page does not say what is missing:\n%s", body)
		}
	})

	t.Run("a read-only dashboard has no buttons that act", func(t *testing.T) {
		b.do(t, chromedp.Navigate(index))
		b.until(t, 10*time.Second, "the index", `document.querySelector('#fleets a[href="/fleets/lockstep/helloworld"]')`)
		b.do(t, chromedp.Click(chromedp.CSS(`#fleets a[href="/fleets/lockstep/helloworld"]`)))
		b.until(t, 10*time.Second, "disabled buttons saying why", `document.querySelector("button.verb-abort").disabled && /read-only/.test(document.getElementById("actions-off").textContent)`)
	})

	for _, c := range workloads {
		if rv := rollout(t, c).GetResourceVersion(); rv != before[c] {
			t.Errorf("%s: Rollout changed (resourceVersion %s -> %s) while only bad input was given", c, before[c], rv)
		}
	}
}

// TestCoordinatorServesReadOnlyPage opens the page that the local fleet's
// coordinator serves (--dashboard-address): every member as the
// coordinator recorded it, and buttons that say why they are off.
func TestCoordinatorServesReadOnlyPage(t *testing.T) {
	fleettest.Need(t)
	base := strings.TrimSuffix(fleettest.F.State.URLs[local.CoordinatorDashboardURLKey], "/")
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("the fleet's state has no coordinator dashboard on loopback: %q", base)
	}
	b := newBrowser(t)
	b.do(t, chromedp.Navigate(base+"/"))
	b.until(t, 10*time.Second, "the FleetRollout in the index", `document.querySelector('#fleets a[href="/fleets/lockstep/helloworld"]')`)
	b.do(t, chromedp.Navigate(base+"/fleets/lockstep/helloworld"))
	b.until(t, 10*time.Second, "both members and disabled buttons",
		`document.querySelectorAll("#members tbody tr").length == 2 && document.querySelector("button.verb-abort").disabled && /read-only/.test(document.getElementById("actions-off").textContent)`)
	resp, err := http.Post(base+"/api/fleets/lockstep/helloworld/actions/retry", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "actions are off") {
		t.Errorf("POST retry to the coordinator's page: %s %s", resp.Status, body)
	}
}

// TestExposedDashboard serves the dashboard as it is beyond loopback
// (--exposed; a non-loopback --address implies it), in Chromium with two
// names resolved to 127.0.0.1: a read without the token is refused, a
// Host outside --allowed-host is refused (DNS rebinding), the allowed name
// with the printed URL's token shows the fleet, and with every tracker
// slot taken by 16 other fleets' readers an abort still goes through.
func TestExposedDashboard(t *testing.T) {
	fleettest.Need(t)
	b := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP lockstep.example 127.0.0.1, MAP evil.example 127.0.0.1"))
	st := fleettest.F.State
	_, index := start(t, "Dashboard: ", "dashboard", "--kubeconfig", st.Kubeconfig, "--context", local.HubName, "--exposed",
		"--allowed-host", "lockstep.example", "--interval", "1s", "--thanos-url", "http://127.0.0.1:1")
	base, q, _ := strings.Cut(index, "/?")
	token := strings.TrimPrefix(q, "token=")
	port := base[strings.LastIndex(base, ":")+1:]

	b.do(t, chromedp.Navigate(base+"/fleets/lockstep/helloworld"))
	b.until(t, 10*time.Second, "a read without the token refused", `/served beyond loopback: open the URL it printed/.test(document.body.textContent)`)
	b.do(t, chromedp.Navigate("http://evil.example:"+port+"/?token="+token))
	b.until(t, 10*time.Second, "a foreign Host refused", `/host "evil.example:`+port+`" refused/.test(document.body.textContent)`)
	b.do(t, chromedp.Navigate("http://lockstep.example:"+port+"/fleets/lockstep/helloworld?token="+token))
	b.until(t, 15*time.Second, "the fleet through the allowed name", `window.lockstepRendered && window.lockstepRendered.seq > 0 && document.querySelectorAll("#members tbody tr").length == 2`)
	b.screenshot(t, "8-exposed")

	// Other fleets' readers take every tracker slot left (16 in all).
	for i := range 16 {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/fleets/lockstep/reader-%d", base, i), nil)
		req.Header.Set("X-Lockstep-Token", token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	full := eval[string](t, b, `fetch("/api/rollouts/helloworld/helloworld").then(r => r.text())`)
	if !strings.Contains(full, "16 fleets are being read already") {
		t.Fatalf("the tracker slots are not full: %s", full)
	}
	// The Rollouts read directly have no tracker now, and cannot get one:
	// their abort goes through anyway.
	got := eval[string](t, b, `fetch("/api/rollouts/helloworld/helloworld/actions/abort", {method: "POST", headers: {"X-Lockstep-Token": `+fmt.Sprintf("%q", token)+`}}).then(r => r.status + " " + r.statusText).then(s => s)`)
	if !strings.HasPrefix(got, "200") {
		t.Fatalf("abort with every slot taken: %s", got)
	}
	for _, c := range workloads {
		if !aborted(t, c) {
			t.Errorf("%s: Rollout not aborted", c)
		}
	}
}
