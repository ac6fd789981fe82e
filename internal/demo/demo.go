// Package demo runs the lab guide's upgrade on a fleet: ApplicationSets
// applied, v1 served in every workload cluster, steady load, one git commit
// (-vN -> -vN+1, the guide's sed), Argo CD told at once, every cluster's
// canary watched until the new version serves everywhere (or, for a bad
// release, until the analysis aborted it everywhere), then a summary with
// requests per version and success rates from Thanos. It imports the lab,
// render, load and analysis packages, client-go and the gitops tree.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/load"
	"lockstep.dev/lockstep/internal/render"
)

// Paths in the GitOps tree.
const (
	LockstepApp     = "lockstep/application.yaml"
	lockstepAppName = "lockstep-fleetrollout"
	Namespace       = "helloworld"
	RolloutName     = "helloworld"
	ErrorRateAnnot  = "meshsim.lockstep.dev/error-rate"
	LatencyAnnot    = "meshsim.lockstep.dev/latency"
	refreshAnnot    = "argocd.argoproj.io/refresh"
	rolloutAppLabel = "-rollout"
)

// RolloutFile is the Rollout a mode deploys (the guide's is strategy/).
func RolloutFile(mode string) string { return "argo-resources/rollout/" + mode + "/rollout.yaml" }

// AppSetFiles are applied to the hub in the guide's order.
var AppSetFiles = []string{
	"argo-resources/application-set/appset-helloworld.yaml",
	"istio-resources/application-set/appset-istio-resources.yaml",
	"argo-resources/rollout/appset-rollouts.yaml",
}

// Options configure a demo run.
type Options struct {
	State *local.State
	// Params time the canary (pause, analysis delay and interval).
	Params render.Params
	// BadRelease ships a version that fails ErrorRate of its requests.
	BadRelease bool
	ErrorRate  float64
	// FaultCluster, when set, makes the bad release fail only in that
	// cluster: its new pods get the fault, nothing in git does.
	FaultCluster string
	// Latency, with FaultCluster, makes the new version's pods there that
	// much slower (a release that only got slow).
	Latency time.Duration
	// BaselineErrorRate makes every helloworld pod, stable and canary, in
	// every cluster fail that share of requests: a good release on a fleet
	// that is never perfect, on which false aborts can be counted.
	BaselineErrorRate float64
	// IncidentErrorRate, for IncidentFor, is added to every helloworld
	// pod's failures, stable and canary, in every cluster, from the moment
	// a cluster's canary first reaches 50 %: a shared incident (a
	// dependency failing for everyone) that is no fault of the release.
	IncidentErrorRate float64
	IncidentFor       time.Duration
	Rate              float64 // requests per second per gateway
	Timeout           time.Duration
	Progress          io.Writer
}

// Summary is the demo's result, printed for people or as JSON.
type Summary struct {
	Mode         string                       `json:"mode"`
	From         string                       `json:"from"`
	To           string                       `json:"to"`
	BadRelease   bool                         `json:"badRelease"`
	FaultCluster string                       `json:"faultCluster,omitempty"`
	Revision     string                       `json:"gitRevision"`
	Outcome      string                       `json:"outcome"` // Promoted or Aborted
	Duration     time.Duration                `json:"durationNs"`
	Clusters     map[string]ClusterSummary    `json:"clusters"`
	Requests     map[string]load.ClusterStats `json:"requests"`
	AfterOutcome map[string]load.ClusterStats `json:"requestsAfterOutcome"`
	SuccessRate  map[string]float64           `json:"successRateByCluster"`
	Timeline     map[string][]ClusterView     `json:"timeline"`
	AnalysisRuns map[string]string            `json:"analysisRuns"`
	// MaxStepSkew is the largest difference of step index between two
	// clusters seen while the canary ran (polled every 200 ms; in lockstep
	// mode one promotion is a two-step hop, setWeight then pause, that the
	// clusters' controllers take milliseconds apart).
	MaxStepSkew int64 `json:"maxStepSkew"`
	// FleetRollout is the coordinator's last phase (lockstep mode).
	FleetRollout string `json:"fleetRollout,omitempty"`
	// Verdict timings, as offsets from the commit: the canary's first
	// request (seen by the load), the verdict (lockstep: the coordinator's
	// status.fleet.abortedAt; independent: the first Rollout seen aborted),
	// and every cluster at canary weight 0 after it.
	FirstCanaryRequest time.Duration `json:"firstCanaryRequestNs,omitempty"`
	Verdict            time.Duration `json:"verdictNs,omitempty"`
	AllWeightZero      time.Duration `json:"allWeightZeroNs,omitempty"`
	// CanaryRequestsToVerdict counts the load's requests answered by the
	// new version before the verdict.
	CanaryRequestsToVerdict int `json:"canaryRequestsToVerdict,omitempty"`
	// JudgeRequests is the canary request count in the evidence the
	// coordinator's judge decided on (the failing scope's), lockstep only.
	JudgeRequests int64 `json:"judgeRequests,omitempty"`
	// AbortReason is the coordinator's abort message (lockstep).
	AbortReason string `json:"abortReason,omitempty"`
	// Notification is the message of the release's last notification
	// (aborted or completed) as the fleet's receiver got it (lockstep).
	Notification  string                        `json:"notification,omitempty"`
	ThanosQueries map[string]map[string]float64 `json:"-"`
}

// ClusterSummary is one cluster's part of the outcome.
type ClusterSummary struct {
	Final    ClusterView   `json:"final"`
	Duration time.Duration `json:"durationNs"` // commit -> outcome in this cluster
	Weights  []int64       `json:"canaryWeightsSeen"`
}

type runner struct {
	o        Options
	mode     string
	dyn      map[string]dynamic.Interface
	hub      dynamic.Interface
	hubApply *kube.Applier // server-side apply to the hub; its Dynamic is hub
	clusters []string
	repo     string
	// incidentFrom is when the shared incident began (zero: not yet).
	incidentFrom time.Time
}

// Run runs the demo on a Ready fleet.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.Rate <= 0 {
		o.Rate = 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.ErrorRate <= 0 && o.Latency <= 0 {
		o.ErrorRate = 0.3
	}
	if o.ErrorRate < 0 || o.BaselineErrorRate < 0 || o.BaselineErrorRate > 1 || o.IncidentErrorRate < 0 || o.BaselineErrorRate+o.IncidentErrorRate > 1 {
		return nil, fmt.Errorf("error rates must be between 0 and 1")
	}
	if o.ErrorRate > 1 {
		return nil, fmt.Errorf("error rate %.2f is above 1", o.ErrorRate)
	}
	r := &runner{o: o, dyn: map[string]dynamic.Interface{}, repo: local.RepoDir(o.State.Dir)}
	for _, c := range o.State.Clusters {
		cfg, err := local.RESTConfig(o.State.Kubeconfig, c.Name)
		if err != nil {
			return nil, err
		}
		if c.Role == local.RoleHub {
			if r.hubApply, err = kube.NewApplier(cfg); err != nil {
				return nil, err
			}
			r.hub = r.hubApply.Dynamic
			continue
		}
		d, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		r.dyn[c.Name] = d
		r.clusters = append(r.clusters, c.Name)
	}
	sort.Strings(r.clusters)
	if r.hub == nil || len(r.clusters) == 0 {
		return nil, errors.New("the fleet has no hub or no workload cluster")
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	return r.run(ctx)
}

func (r *runner) say(format string, args ...any) {
	fmt.Fprintf(r.o.Progress, "%s  %s\n", time.Now().Format("15:04:05.0"), fmt.Sprintf(format, args...))
}

// run plays the demo as a list of named phases, like kind's create
// actions, one per file: each phase prints its own progress lines and
// hands on what it found in the release; the first that fails ends the
// run with its error.
func (r *runner) run(ctx context.Context) (*Summary, error) {
	rel := &release{}
	defer rel.stopLoad()
	for _, ph := range []struct {
		name string
		run  func(context.Context, *release) error
	}{
		{"lab parameters in git", r.commitParams},
		{"ApplicationSets on the hub", r.applyApps},
		{"one version everywhere", r.settle},
		{"load on every gateway", r.startLoad},
		{"the release commit", r.commitRelease},
		{"every cluster until the outcome", r.watchOutcome},
		{"the summary", r.summarize},
	} {
		if err := ph.run(ctx, rel); err != nil {
			return nil, err
		}
	}
	return rel.sum, nil
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func canaryWeights(views []ClusterView) []int64 {
	var out []int64
	for _, v := range views {
		if len(out) == 0 || out[len(out)-1] != v.CanaryWeight {
			out = append(out, v.CanaryWeight)
		}
	}
	return out
}

func (r *runner) applyAppSets(ctx context.Context, files map[string][]byte) error {
	for _, f := range AppSetFiles {
		objs, err := kube.DecodeYAML(files[f])
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := r.hubApply.Apply(ctx, objs...); err != nil {
			return err
		}
	}
	return nil
}

// refreshApps asks Argo CD to compare the Applications whose name ends
// with suffix against git now, instead of at its next poll.
func (r *runner) refreshApps(ctx context.Context, suffix string) error {
	deadline := time.Now().Add(60 * time.Second)
	want := len(r.clusters) * len(AppSetFiles)
	if suffix != "" {
		want = len(r.clusters)
	}
	for {
		apps, err := r.hub.Resource(appGVR).Namespace(local.ArgoCDNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		n := 0
		for _, app := range apps.Items {
			if suffix != "" && !strings.HasSuffix(app.GetName(), suffix) {
				continue
			}
			n++
			patch := []byte(`{"metadata":{"annotations":{"` + refreshAnnot + `":"normal"}}}`)
			if _, err := r.hub.Resource(appGVR).Namespace(local.ArgoCDNS).Patch(ctx, app.GetName(), types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return err
			}
		}
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d Applications exist after 60s", n, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// liveVersion is the version and fault the clusters' Rollout template
// has, else what git names for this mode.
func (r *runner) liveVersion(ctx context.Context) (version string, errorRate float64, newest string, err error) {
	for _, c := range r.clusters {
		v := observe(ctx, c, r.dyn[c], Namespace, RolloutName)
		if v.Err != "" || v.Image == "" {
			continue
		}
		image, rateText := v.Image, v.ErrorRate
		// After an aborted release the template is the bad one but the
		// stable ReplicaSet serves: keep that. Keeping the aborted template
		// would restart its canary as soon as a mode switch changes the
		// steps (Argo Rollouts clears the abort on a spec change), and the
		// demo would wait minutes for it to be judged again.
		if v.Aborted && v.Stable != "" && v.Stable != v.Current {
			if img, rate, err := stableTemplate(ctx, r.dyn[c], v.Stable); err == nil {
				image, rateText = img, rate
			}
		}
		rate, _ := strconv.ParseFloat(rateText, 64)
		ver, err := currentVersion([]byte(image))
		if err != nil {
			return "", 0, "", err
		}
		newest, err := currentVersion([]byte(v.Image))
		return ver, rate, newest, err
	}
	b, err := local.ReadRepoFile(r.repo, RolloutFile(r.mode))
	if err != nil {
		return "", 0, "", err
	}
	ver, err := currentVersion(b)
	return ver, errorRateOf(string(b)), ver, err
}

var replicaSetGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}

// stableTemplate is the image and fault annotation of the Rollout's stable
// ReplicaSet (named after the Rollout and its pod template hash).
func stableTemplate(ctx context.Context, dyn dynamic.Interface, hash string) (image, errorRate string, err error) {
	rs, err := dyn.Resource(replicaSetGVR).Namespace(Namespace).Get(ctx, RolloutName+"-"+hash, metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	containers, _, _ := unstructured.NestedSlice(rs.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		return "", "", fmt.Errorf("replicaset %s has no container", rs.GetName())
	}
	image, _ = containers[0].(map[string]any)["image"].(string)
	errorRate, _, _ = unstructured.NestedString(rs.Object, "spec", "template", "metadata", "annotations", ErrorRateAnnot)
	return image, errorRate, nil
}

// waitSynced waits until every Application has synced git revision rev,
// so what the clusters show afterwards is that revision's doing.
func (r *runner) waitSynced(ctx context.Context, rev string) error {
	start := time.Now()
	nudged := false
	for {
		apps, err := r.hub.Resource(appGVR).Namespace(local.ArgoCDNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var behind []string
		for _, app := range apps.Items {
			got, _, _ := unstructured.NestedString(app.Object, "status", "sync", "revision")
			status, _, _ := unstructured.NestedString(app.Object, "status", "sync", "status")
			if got != rev || status != "Synced" {
				behind = append(behind, app.GetName())
			}
		}
		if len(apps.Items) > 0 && len(behind) == 0 {
			return nil
		}
		// An Application created after the refresh, or one whose refresh
		// raced the push, would otherwise wait for Argo CD's next poll.
		if !nudged && time.Since(start) > 10*time.Second {
			nudged = true
			if err := r.refreshApps(ctx, ""); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Argo CD did not sync %s: %s", short(rev), strings.Join(behind, ", "))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// lockstepApp puts the FleetRollout's Application on the hub in lockstep
// mode and removes it (and, through its finalizer, the FleetRollout) in
// independent mode.
func (r *runner) lockstepApp(ctx context.Context, files map[string][]byte) error {
	apps := r.hub.Resource(appGVR).Namespace(local.ArgoCDNS)
	if r.mode != render.ModeLockstep {
		err := apps.Delete(ctx, lockstepAppName, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	}
	objs, err := kube.DecodeYAML(files[LockstepApp])
	if err != nil {
		return err
	}
	return r.hubApply.Apply(ctx, objs...)
}

var fleetRolloutGVR = schema.GroupVersionResource{Group: "lockstep.dev", Version: "v1alpha1", Resource: "fleetrollouts"}

// fleetPhase is the coordinator's view: phase, reason and step.
func (r *runner) fleetPhase(ctx context.Context) string {
	fr, err := r.hub.Resource(fleetRolloutGVR).Namespace("lockstep").Get(ctx, "helloworld", metav1.GetOptions{})
	if err != nil {
		return "unavailable: " + firstLine(err.Error())
	}
	phase, _, _ := unstructured.NestedString(fr.Object, "status", "phase")
	reason, _, _ := unstructured.NestedString(fr.Object, "status", "reason")
	step, found, _ := unstructured.NestedInt64(fr.Object, "status", "currentStep")
	s := fmt.Sprintf("%s (%s)", orDash(phase), orDash(reason))
	if found {
		s += fmt.Sprintf(" step %d", step)
	}
	return s
}

// waitSettled waits until every cluster's Rollout has seen its spec and is
// either Healthy or aborted with all traffic on stable, and every gateway
// answers with the same version, which it returns.
func (r *runner) waitSettled(ctx context.Context) (string, error) {
	for {
		var (
			last   []string
			served = map[string]bool{}
		)
		for _, c := range r.clusters {
			v := observe(ctx, c, r.dyn[c], Namespace, RolloutName)
			healthy := v.Phase == "Healthy" && v.Stable == v.Current
			aborted := v.Aborted && v.Phase == "Degraded" && v.CanaryWeight == 0
			if v.Err == "" && v.Observed && (healthy || aborted) {
				res := load.Get(ctx, httpClient, load.Target{Cluster: c, URL: r.o.State.URLs[local.IngressURLKey(c)]})
				if res.Version != "" {
					served[res.Version] = true
					continue
				}
			}
			last = append(last, v.Line())
		}
		if len(last) == 0 && len(served) == 1 {
			for v := range served {
				r.say("every cluster serves %s", v)
				return v, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("clusters did not settle: %s", strings.Join(last, "; "))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func maxVersion(a, b string) string {
	na, _ := strconv.Atoi(strings.TrimPrefix(a, "v"))
	nb, _ := strconv.Atoi(strings.TrimPrefix(b, "v"))
	if na >= nb {
		return a
	}
	return b
}

var versionRe = regexp.MustCompile(`examples-helloworld-(v(\d+))`)

func currentVersion(rollout []byte) (string, error) {
	m := versionRe.FindSubmatch(rollout)
	if m == nil {
		return "", errors.New("the Rollout names no docker.io/istio/examples-helloworld-vN image")
	}
	return string(m[1]), nil
}

func bump(v string) (string, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(v, "v"))
	if err != nil {
		return "", fmt.Errorf("version %q is not vN", v)
	}
	return "v" + strconv.Itoa(n+1), nil
}

// setVersion is the guide's `sed -i 's/-v1/-v2/g'`.
func setVersion(s, from, to string) string { return strings.ReplaceAll(s, "-"+from, "-"+to) }

var annotRe = regexp.MustCompile(`(?m)^      annotations:\n        ` + regexp.QuoteMeta(ErrorRateAnnot) + `: "[^"]*"\n`)

// setErrorRate adds (rate > 0) or removes the fault annotation of the pod
// template.
func setErrorRate(s string, rate float64) string {
	s = annotRe.ReplaceAllString(s, "")
	if rate <= 0 {
		return s
	}
	const anchor = "  template:\n    metadata:\n"
	return strings.Replace(s, anchor, anchor+fmt.Sprintf("      annotations:\n        %s: \"%g\"\n", ErrorRateAnnot, rate), 1)
}

var rateRe = regexp.MustCompile(regexp.QuoteMeta(ErrorRateAnnot) + `: "([^"]*)"`)

func errorRateOf(s string) float64 {
	m := rateRe.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f
}

// successRates asks Thanos for each reporting cluster's success rate over
// the demo (partial_response=false: a missing cluster is an error).
func (r *runner) successRates(ctx context.Context, window time.Duration) map[string]float64 {
	q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: r.o.State.URLs["thanos-query"], Timeout: 10 * time.Second})
	if err != nil {
		return nil
	}
	w := fmt.Sprintf("%ds", int(math.Ceil(window.Seconds()))+10)
	query := `sum by (cluster) (increase(istio_requests_total{reporter="source",response_code!~"5.*"}[` + w + `])) / sum by (cluster) (increase(istio_requests_total{reporter="source"}[` + w + `]))`
	vec, _, err := q.Query(ctx, query, time.Now())
	if err != nil {
		r.say("success rate from Thanos: %v", err)
		return nil
	}
	out := map[string]float64{}
	for _, s := range vec {
		out[string(s.Metric["cluster"])] = float64(s.Value)
	}
	return out
}

// JSON writes the summary as indented JSON.
func (s *Summary) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// Print writes the summary for people.
func (s *Summary) Print(w io.Writer) {
	kind := ""
	if s.BadRelease {
		kind = " (bad release)"
	}
	fmt.Fprintf(w, "\n%s -> %s%s, %s mode: %s in %s (git %s), largest step skew between clusters: %d\n", s.From, s.To, kind, s.Mode, s.Outcome, s.Duration.Round(100*time.Millisecond), short(s.Revision), s.MaxStepSkew)
	var cs []string
	for c := range s.Clusters {
		cs = append(cs, c)
	}
	sort.Strings(cs)
	for _, c := range cs {
		x := s.Clusters[c]
		fmt.Fprintf(w, "  %-14s %-8s after %-6s canary weights %v, analysis %s\n", c, x.Final.Phase, x.Duration.Round(100*time.Millisecond), x.Weights, orDash(x.Final.Analysis))
		if st, ok := s.Requests[c]; ok {
			fmt.Fprintf(w, "  %-14s requests: %s\n", "", st.Split())
		}
	}
	var reps []string
	for k := range s.SuccessRate {
		reps = append(reps, k)
	}
	sort.Strings(reps)
	for _, k := range reps {
		fmt.Fprintf(w, "  success rate reported by %s (Thanos): %.1f%%\n", k, s.SuccessRate[k]*100)
	}
	fmt.Fprintln(w, "\nThe fleet keeps running: `lockstep lab status` shows it, `lockstep lab down` stops it.")
}

func short(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var podGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// fleetAbort reads the coordinator's abort: when (status.fleet.abortedAt),
// why, and the canary requests in the evidence of the scope that failed.
func (r *runner) fleetAbort(ctx context.Context) (time.Time, string, int64, bool) {
	fr, err := r.hub.Resource(fleetRolloutGVR).Namespace("lockstep").Get(ctx, "helloworld", metav1.GetOptions{})
	if err != nil {
		return time.Time{}, "", 0, false
	}
	raw, _, _ := unstructured.NestedString(fr.Object, "status", "fleet", "abortedAt")
	at, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, "", 0, false
	}
	msg, _, _ := unstructured.NestedString(fr.Object, "status", "fleet", "abortMessage")
	var n int64
	members, _, _ := unstructured.NestedSlice(fr.Object, "status", "members")
	for _, m := range members {
		mm, _ := m.(map[string]any)
		if v, _, _ := unstructured.NestedString(mm, "verdict", "verdict"); v == "Fail" {
			n, _, _ = unstructured.NestedInt64(mm, "verdict", "evidence", "canary", "requests")
			break
		}
	}
	if n == 0 {
		n, _, _ = unstructured.NestedInt64(fr.Object, "status", "analysis", "global", "evidence", "canary", "requests")
	}
	return at, msg, n, true
}

// injectFaults keeps the pods' fault annotations as the options want them:
// the new version's pods in the fault cluster fail ErrorRate of their
// requests (bad release) and are Latency slower; every other helloworld pod
// fails BaselineErrorRate. meshsim reads the annotations live.
func (r *runner) injectFaults(ctx context.Context, image string) error {
	if r.o.BaselineErrorRate == 0 && r.o.IncidentFor == 0 && (r.o.FaultCluster == "" || !r.o.BadRelease) {
		return nil
	}
	base := r.o.BaselineErrorRate
	if !r.incidentFrom.IsZero() && time.Since(r.incidentFrom) < r.o.IncidentFor {
		base += r.o.IncidentErrorRate
	}
	for _, c := range r.clusters {
		pods, err := r.dyn[c].Resource(podGVR).Namespace(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=helloworld"})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			containers, _, _ := unstructured.NestedSlice(p.Object, "spec", "containers")
			if len(containers) == 0 {
				continue
			}
			img, _ := containers[0].(map[string]any)["image"].(string)
			want := map[string]string{}
			if base > 0 || !r.incidentFrom.IsZero() {
				// After an incident, back to the baseline (0 included).
				want[ErrorRateAnnot] = strconv.FormatFloat(base, 'g', -1, 64)
			}
			fault := r.o.BadRelease && c == r.o.FaultCluster && img == image
			if fault && r.o.ErrorRate > 0 {
				want[ErrorRateAnnot] = strconv.FormatFloat(r.o.ErrorRate, 'g', -1, 64)
			}
			if fault && r.o.Latency > 0 {
				want[LatencyAnnot] = r.o.Latency.String()
			}
			var patch []string
			for k, v := range want {
				if p.GetAnnotations()[k] != v {
					patch = append(patch, fmt.Sprintf("%q:%q", k, v))
				}
			}
			if len(patch) == 0 {
				continue
			}
			body := []byte(`{"metadata":{"annotations":{` + strings.Join(patch, ",") + `}}}`)
			if _, err := r.dyn[c].Resource(podGVR).Namespace(Namespace).Patch(ctx, p.GetName(), types.MergePatchType, body, metav1.PatchOptions{}); err != nil {
				return err
			}
			if fault {
				r.say("%-14s fault injected: pod %s %s", c, p.GetName(), strings.Join(patch, ", "))
			}
		}
	}
	return nil
}
