package status

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/view"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli/status -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// Mistakes in flags fail before the hub or any cluster is contacted, as
// one line.
func TestFlagValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown format", []string{"-o", "xml"}, `unknown output format "xml" (allowed: table, wide, json, yaml)`},
		{"bad rollout", []string{"--rollout", "helloworld"}, `--rollout "helloworld": want NAMESPACE/NAME`},
		{"name and clusters", []string{"helloworld", "--clusters", "a"}, "either a FleetRollout or --clusters"},
		{"bad interval", []string{"-w", "--interval", "0s"}, "--interval must be positive"},
		{"bad timeout", []string{"--request-timeout", "0s"}, "--request-timeout must be positive"},
		{"two names", []string{"a", "b"}, "accepts at most 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			cmd := NewCommand(streams.IO{Out: &out, ErrOut: &errOut})
			cmd.SetArgs(tc.args)
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("status %v: err = %v, want one line containing %q", tc.args, err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q before failing", out.String())
			}
		})
	}
}

func TestKubectlFlags(t *testing.T) {
	t.Parallel()
	cmd := NewCommand(streams.IO{})
	for _, name := range []string{"kubeconfig", "context", "namespace", "output", "watch", "clusters", "rollout"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("flag --%s missing", name)
		}
	}
	if f := cmd.Flags().ShorthandLookup("n"); f == nil || f.Name != "namespace" {
		t.Errorf("-n is not --namespace")
	}
	if cmd.Flags().Lookup("cluster") != nil {
		t.Errorf("--cluster would clash with the rollout verbs' member flag")
	}
}

var t0 = time.Date(2026, 11, 26, 0, 12, 28, 0, time.UTC)

func i32(v int32) *int32            { return &v }
func f64(v float64) *float64        { return &v }
func at(d time.Duration) *time.Time { x := t0.Add(d); return &x }

// frame builds the fleet at a point of a canary: both clusters at step,
// argo-rollout2 unreachable when down.
func frame(step int32, rate1, rate2 float64, evaluated time.Duration, down bool) Update {
	mk := func(name string, rate float64) view.Cluster {
		return view.Cluster{
			Name: name, Reachable: true, Found: true, Phase: "Paused", Revision: "d5ff6666",
			Step: i32(step), Steps: 6, SetWeight: i32(step * 10), Weights: &view.Weights{Stable: 100 - step*10, Canary: step * 10},
			Verdict: &view.Verdict{Verdict: "Pass", SuccessRate: f64(rate), EvaluatedAt: at(evaluated),
				Evidence: &v1alpha1.Evidence{Canary: v1alpha1.RequestCounts{Requests: int64(step) * 40, Failures: int64(float64(step) * 40 * (1 - rate))},
					Stable: v1alpha1.RequestCounts{Requests: 900}, LogLikelihoodRatio: "-1.5", AbortAt: "6.9", PassAt: "-3"}},
		}
	}
	f := view.Fleet{
		Rollout: "helloworld/helloworld",
		Coordinator: &view.Coordinator{FleetRollout: "lockstep/helloworld", Phase: "Holding", Reason: "Holding",
			Barrier: "step " + string(rune('0'+step)), Global: &view.Verdict{Verdict: "Pass", SuccessRate: f64(min(rate1, rate2))}},
		Clusters: []view.Cluster{mk("argo-rollout1", rate1), mk("argo-rollout2", rate2)},
	}
	if down {
		f.Clusters[1] = view.Cluster{Name: "argo-rollout2", Error: "cluster argo-rollout2 not connected: context deadline exceeded"}
	}
	return Update{Fleet: f, At: t0.Add(evaluated)}
}

// The live view is checked frame by frame: the same updates always draw
// the same screens, the sparkline grows only when a verdict is new, the
// timeline follows the steps and an outage shows in the next frame.
func TestLiveFrames(t *testing.T) {
	t.Parallel()
	var m tea.Model = NewModel()
	golden(t, "live-0-empty", m.View())
	steps := []struct {
		name string
		u    Update
	}{
		{"1-step1", frame(1, 1.0, 1.0, 0, false)},
		{"2-same-verdict-redrawn", frame(1, 1.0, 1.0, 0, false)},
		{"3-step3-argo-rollout2-failing", frame(3, 0.99, 0.62, 10*time.Second, false)},
		{"4-argo-rollout2-unreachable", frame(3, 0.98, 0.62, 15*time.Second, true)},
	}
	for _, s := range steps {
		m, _ = m.Update(updateMsg(s.u))
		golden(t, "live-"+s.name, m.View())
	}
	lm := m.(Model)
	if got := len(lm.rates["argo-rollout1"]); got != 3 {
		t.Errorf("argo-rollout1 has %d rate samples, want 3 (the repeated verdict counts once)", got)
	}
	if !strings.Contains(m.View(), "Unreachable") || !strings.Contains(m.View(), "argo-rollout1") {
		t.Errorf("last frame must show the outage and still the other cluster:\n%s", m.View())
	}
	m, cmd := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")})
	if cmd == nil || m.View() != "" {
		t.Errorf("q must quit and clear the view")
	}
}

// A release in waves shows them in the header and per cluster.
func TestLiveWaves(t *testing.T) {
	t.Parallel()
	u := frame(1, 1.0, 1.0, 0, false)
	u.Fleet.Coordinator.Waves, u.Fleet.Coordinator.Soaking = []string{"first", "rest"}, "since 12:00:05"
	u.Fleet.Clusters[0].Wave, u.Fleet.Clusters[1].Wave = "first Completed", "rest NotStarted"
	var m tea.Model = NewModel()
	m, _ = m.Update(updateMsg(u))
	for _, want := range []string{"waves first > rest  soaking since 12:00:05", "wave first Completed", "wave rest NotStarted"} {
		if !strings.Contains(m.View(), want) {
			t.Errorf("live view lacks %q:\n%s", want, m.View())
		}
	}
}

func TestSparkline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []float64
		want string
	}{
		{nil, "-"},
		{[]float64{0, 0.5, 1}, "▁▅█"},
		{[]float64{-1, 2}, "▁█"},
		{[]float64{0.99, 0.7}, "█▆"},
	} {
		if got := Sparkline(tc.in); got != tc.want {
			t.Errorf("Sparkline(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTimeline(t *testing.T) {
	t.Parallel()
	c := view.Cluster{Step: i32(2), Steps: 5}
	if got := Timeline(c); got != "■■▶·· 2/5" {
		t.Errorf("Timeline = %q", got)
	}
	c.Aborted = true
	if got := Timeline(c); got != "■■✗·· 2/5" {
		t.Errorf("aborted Timeline = %q", got)
	}
	if got := Timeline(view.Cluster{}); got != "-" {
		t.Errorf("empty Timeline = %q", got)
	}
}

// Without a terminal, -w prints only what changed.
func TestChangeLines(t *testing.T) {
	t.Parallel()
	a := frame(1, 1, 1, 0, false).Fleet
	first := ChangeLines(nil, a)
	if len(first) != 3 {
		t.Fatalf("first picture: %q, want the fleet and both clusters", first)
	}
	if got := ChangeLines(&a, a); len(got) != 0 {
		t.Errorf("no change printed %q", got)
	}
	b := frame(1, 1, 1, 0, true).Fleet
	got := ChangeLines(&a, b)
	if len(got) != 1 || !strings.HasPrefix(got[0], "argo-rollout2 Unreachable") {
		t.Errorf("outage printed %q, want one line for argo-rollout2", got)
	}
}

// With --thanos-url every update carries fresh readings; a cluster Thanos
// gave no trustworthy value for gets no sample and no current rate.
func TestLiveThanosRates(t *testing.T) {
	t.Parallel()
	var m tea.Model = NewModel()
	u := frame(1, 1, 1, 0, false)
	u.Rates = map[string]float64{"argo-rollout1": 0.99, "argo-rollout2": 0.5}
	m, _ = m.Update(updateMsg(u))
	u = frame(1, 1, 1, 0, false)
	u.Rates = map[string]float64{"argo-rollout1": 0.98}
	m, _ = m.Update(updateMsg(u))
	golden(t, "live-thanos", m.View())
	lm := m.(Model)
	if len(lm.rates["argo-rollout1"]) != 2 || len(lm.rates["argo-rollout2"]) != 1 {
		t.Errorf("samples = %v", lm.rates)
	}
	if _, ok := lm.lastRate["argo-rollout2"]; ok {
		t.Errorf("argo-rollout2 keeps a current rate Thanos no longer gave")
	}
}

func TestThanosFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--thanos-url", "http://x"},
		{"-w", "--thanos-url", "http://x", "--thanos-query", "sum(up)"},
	} {
		cmd := NewCommand(streams.IO{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
		cmd.SetArgs(args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.Execute(); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("status %v: err = %v, want one line", args, err)
		}
	}
}

func TestZeroWidthTerminalKeepsLines(t *testing.T) {
	t.Parallel()
	var m tea.Model = NewModel()
	m, _ = m.Update(tea.WindowSizeMsg{Width: 0, Height: 0})
	u := frame(1, 1, 1, 0, true)
	m, _ = m.Update(updateMsg(u))
	if !strings.Contains(m.View(), "cluster argo-rollout2 not connected: context deadline exceeded") {
		t.Errorf("error line cut on a terminal without a size:\n%s", m.View())
	}
}
