package view

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/api/v1alpha1"
)

// Fleet is everything `lockstep status` shows, for every format.
type Fleet struct {
	// Rollout is namespace/name of the Argo Rollout in every cluster.
	Rollout string `json:"rollout"`
	// Coordinator is nil when no FleetRollout coordinates the clusters.
	Coordinator *Coordinator `json:"coordinator,omitempty"`
	Clusters    []Cluster    `json:"clusters"`
}

// Coordinator is what the hub's coordinator decided, from the FleetRollout.
type Coordinator struct {
	// FleetRollout is namespace/name on the hub.
	FleetRollout string `json:"fleetRollout"`
	Phase        string `json:"phase,omitempty"`
	Reason       string `json:"reason,omitempty"`
	Message      string `json:"message,omitempty"`
	Revision     string `json:"revision,omitempty"`
	CurrentStep  *int32 `json:"currentStep,omitempty"`
	// Barrier says which step every member was last seen paused at
	// together, and since when; empty when there is none.
	Barrier     string `json:"barrier,omitempty"`
	Aborted     bool   `json:"aborted,omitempty"`
	AbortReason string `json:"abortReason,omitempty"`
	// Waves names the release's waves in order; Soaking says since when
	// the last completed wave soaks, when one does.
	Waves   []string `json:"waves,omitempty"`
	Soaking string   `json:"soaking,omitempty"`
	Global  *Verdict `json:"global,omitempty"`
	// Shadow is what the analysis would have decided, in shadow mode
	// ("would have aborted at 14:02:11"), beside what the clusters did
	// (their rows); ShadowEvidence is the evidence then.
	Shadow         string             `json:"shadow,omitempty"`
	ShadowEvidence *v1alpha1.Evidence `json:"shadowEvidence,omitempty"`
	// Events are the coordinator's latest decisions, newest last.
	Events []Event `json:"events,omitempty"`
}

// Verdict is an analysis verdict with the success rate read out of it.
type Verdict struct {
	Verdict  string `json:"verdict"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
	Requests string `json:"requests,omitempty"`
	// SuccessRate is the metric value the verdict was taken on, when its
	// message carries one (a pass or a fail; never an inconclusive).
	SuccessRate *float64   `json:"successRate,omitempty"`
	EvaluatedAt *time.Time `json:"evaluatedAt,omitempty"`
	// Evidence is the sequential judge's counts and statistic.
	Evidence *v1alpha1.Evidence `json:"evidence,omitempty"`
}

// Event is one coordinator decision from the FleetRollout's history.
type Event struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Reason  string    `json:"reason,omitempty"`
	Step    *int32    `json:"step,omitempty"`
	Message string    `json:"message,omitempty"`
}

// Cluster is one member cluster.
type Cluster struct {
	Name string `json:"name"`
	// Reachable is false when the cluster could not be read; Error says why.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Found is false when the cluster answered but has no such Rollout.
	Found          bool   `json:"found"`
	Phase          string `json:"phase,omitempty"`
	Message        string `json:"message,omitempty"`
	Revision       string `json:"revision,omitempty"`
	StableRevision string `json:"stableRevision,omitempty"`
	Step           *int32 `json:"step,omitempty"`
	Steps          int    `json:"steps"`
	Paused         bool   `json:"paused,omitempty"`
	Aborted        bool   `json:"aborted,omitempty"`
	// SetWeight is the canary weight the Rollout's steps ask for now;
	// Weights are what its VirtualService really says.
	SetWeight    *int32   `json:"setWeight,omitempty"`
	Weights      *Weights `json:"weights,omitempty"`
	WeightsError string   `json:"weightsError,omitempty"`
	// Warnings are other reads that failed in a reachable cluster.
	Warnings    []string     `json:"warnings,omitempty"`
	StableImage string       `json:"stableImage,omitempty"`
	CanaryImage string       `json:"canaryImage,omitempty"`
	ReplicaSets []ReplicaSet `json:"replicaSets,omitempty"`
	Analysis    *AnalysisRun `json:"analysisRun,omitempty"`
	// Wave is the member's wave and where it stands in the release
	// ("first Completed"), from the coordinator when it releases in waves.
	Wave string `json:"wave,omitempty"`
	// Verdict and LastContact come from the coordinator, when there is one.
	Verdict     *Verdict   `json:"verdict,omitempty"`
	LastContact *time.Time `json:"lastContact,omitempty"`
}

// Weights are a route's stable and canary weights.
type Weights struct {
	Stable int32 `json:"stable"`
	Canary int32 `json:"canary"`
}

// ReplicaSet is one of the Rollout's ReplicaSets.
type ReplicaSet struct {
	Name string `json:"name"`
	// Role is stable, canary or old.
	Role     string `json:"role"`
	Hash     string `json:"hash"`
	Image    string `json:"image,omitempty"`
	Replicas int32  `json:"replicas"`
	Ready    int32  `json:"ready"`
}

// AnalysisRun is the Rollout's current Argo AnalysisRun.
type AnalysisRun struct {
	Name    string        `json:"name"`
	Phase   string        `json:"phase,omitempty"`
	Metrics []Measurement `json:"metrics,omitempty"`
}

// Measurement is the latest measurement of one metric of an AnalysisRun.
type Measurement struct {
	Metric     string     `json:"metric"`
	Phase      string     `json:"phase,omitempty"`
	Value      string     `json:"value,omitempty"`
	Successful int64      `json:"successful"`
	Failed     int64      `json:"failed"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// Observation is what the caller read from one cluster.
type Observation struct {
	Cluster string
	// Err is set when the cluster could not be read at all; the other
	// fields are then ignored.
	Err error
	// Rollout is nil when the cluster has no such Rollout.
	Rollout *unstructured.Unstructured
	// Weights are the VirtualService's weights (nil: no Istio routing or
	// not read); WeightsErr is why they could not be read.
	Weights    *Weights
	WeightsErr error
	// ReplicaSets are the ReplicaSets of the Rollout's namespace; those
	// not owned by the Rollout are ignored.
	ReplicaSets []appsv1.ReplicaSet
	// AnalysisRun is the run named by CurrentAnalysisRun, if any.
	AnalysisRun *unstructured.Unstructured
	// OtherErrs are reads that failed while the Rollout itself was read
	// (ReplicaSets, AnalysisRun); they are shown, never dropped.
	OtherErrs []error
}

// Build assembles the view. fr may be nil (no coordinator). Clusters come
// out in the order of obs; members the FleetRollout knows but obs lacks
// are appended from the FleetRollout's last observation.
func Build(rollout string, fr *v1alpha1.FleetRollout, obs []Observation) Fleet {
	f := Fleet{Rollout: rollout, Clusters: make([]Cluster, 0, len(obs))}
	var members map[string]*v1alpha1.MemberStatus
	if fr != nil {
		f.Coordinator = coordinator(fr)
		members = make(map[string]*v1alpha1.MemberStatus, len(fr.Status.Members))
		for i := range fr.Status.Members {
			members[fr.Status.Members[i].Name] = &fr.Status.Members[i]
		}
	}
	seen := map[string]bool{}
	for _, o := range obs {
		c := cluster(o)
		if m := members[o.Cluster]; m != nil {
			c.Verdict = verdict(m.Verdict)
			c.Wave = waveCell(m)
			if m.LastContact != nil {
				t := m.LastContact.UTC()
				c.LastContact = &t
			}
		}
		seen[o.Cluster] = true
		f.Clusters = append(f.Clusters, c)
	}
	if fr != nil {
		for _, m := range fr.Status.Members {
			if seen[m.Name] {
				continue
			}
			// The coordinator knows a member that the CLI could not even
			// list (e.g. its Secret is unreadable here): show what the
			// coordinator last saw rather than hiding the member.
			c := Cluster{Name: m.Name, Reachable: false, Error: "not read by this command; coordinator's last observation shown",
				Revision: m.Revision, StableRevision: m.StableRevision, Step: m.Step, Phase: m.Phase,
				Paused: m.Paused, Aborted: m.Aborted, Verdict: verdict(m.Verdict), Wave: waveCell(&m)}
			if m.Weights != nil {
				c.Weights = &Weights{Stable: m.Weights.Stable, Canary: m.Weights.Canary}
			}
			f.Clusters = append(f.Clusters, c)
		}
	}
	return f
}

func waveCell(m *v1alpha1.MemberStatus) string {
	if m.Wave == "" {
		return ""
	}
	return strings.TrimSpace(m.Wave + " " + m.WaveState)
}

func coordinator(fr *v1alpha1.FleetRollout) *Coordinator {
	st := fr.Status
	c := &Coordinator{
		FleetRollout: fr.Namespace + "/" + fr.Name,
		Phase:        string(st.Phase), Reason: st.Reason, Message: st.Message,
		Revision: st.Fleet.Revision, CurrentStep: st.CurrentStep,
		Aborted: st.Fleet.Aborted, AbortReason: st.Fleet.AbortReason,
	}
	for _, w := range fr.Spec.Waves {
		c.Waves = append(c.Waves, w.Name)
	}
	if t := st.Fleet.WaveCompletedAt; t != nil && !st.Fleet.Aborted {
		c.Soaking = "since " + t.UTC().Format("15:04:05")
	}
	if b := st.Fleet.BarrierStep; b != nil && !st.Fleet.Aborted && !st.Fleet.Completed {
		c.Barrier = fmt.Sprintf("step %d", *b)
		if st.Fleet.StepEnteredAt != nil {
			c.Barrier += " since " + st.Fleet.StepEnteredAt.UTC().Format("15:04:05.000")
		}
	}
	if st.Analysis != nil {
		c.Global = verdict(&st.Analysis.Global)
		if c.Global != nil && c.Global.EvaluatedAt == nil && !st.Analysis.EvaluatedAt.IsZero() {
			t := st.Analysis.EvaluatedAt.UTC()
			c.Global.EvaluatedAt = &t
		}
	}
	if sh := st.Shadow; sh != nil {
		c.Shadow, c.ShadowEvidence = shadowCell(sh), sh.Evidence
	}
	// The last few decisions are enough to say what just happened; the
	// full history stays on the object.
	const maxEvents = 5
	h := st.History
	if len(h) > maxEvents {
		h = h[len(h)-maxEvents:]
	}
	for _, e := range h {
		c.Events = append(c.Events, Event{Time: e.Time.UTC(), Action: e.Action, Reason: e.Reason, Step: e.Step, Message: e.Message})
	}
	return c
}

// shadowCell says what shadow mode would have done with a revision.
func shadowCell(sh *v1alpha1.ShadowStatus) string {
	switch {
	case sh.WouldAbortAt != nil:
		return "would have aborted at " + sh.WouldAbortAt.UTC().Format("15:04:05") + ": " + sh.WouldAbort
	case sh.WouldPassAt != nil:
		return "would have passed a barrier at " + sh.WouldPassAt.UTC().Format("15:04:05") + "; now " + dash(sh.Verdict)
	}
	return "no verdict yet: " + dash(sh.Verdict)
}

func verdict(v *v1alpha1.Verdict) *Verdict {
	if v == nil || v.Verdict == "" {
		return nil
	}
	out := &Verdict{Verdict: v.Verdict, Reason: v.Reason, Message: v.Message, Requests: v.Requests, Evidence: v.Evidence}
	if r, ok := SuccessRate(v.Message); ok {
		out.SuccessRate = &r
	} else if e := v.Evidence; e != nil && e.Canary.Requests > 0 {
		r := 1 - float64(e.Canary.Failures)/float64(e.Canary.Requests)
		out.SuccessRate = &r
	}
	if v.EvaluatedAt != nil {
		t := v.EvaluatedAt.UTC()
		out.EvaluatedAt = &t
	}
	return out
}

// The coordinator's verdict messages carry the metric value in two shapes
// (package analysis): a fleet verdict "metric: 0.98 > 0.9 (1200 requests)"
// or "metric: not 0.5 > 0.9", and a member verdict that names the serving
// side first, "metric: serving Pass (ThresholdMet: 0.98 > 0.9 ...); ...".
// The serving side is the member's own pods, which is what a per-cluster
// success rate means.
var (
	servingValue = regexp.MustCompile(`serving \w+ \(\w+: (?:not )?(-?[0-9][0-9.eE+-]*) [<>]`)
	globalValue  = regexp.MustCompile(`^[a-z0-9-]+: (?:not )?(-?[0-9][0-9.eE+-]*) [<>]`)
)

// SuccessRate reads the metric value out of a coordinator verdict message.
// Inconclusive messages (no value, NaN, too few requests) give false, so a
// missing value is never drawn as a rate.
func SuccessRate(msg string) (float64, bool) {
	m := servingValue.FindStringSubmatch(msg)
	if m == nil {
		m = globalValue.FindStringSubmatch(msg)
	}
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

func cluster(o Observation) Cluster {
	c := Cluster{Name: o.Cluster, Reachable: o.Err == nil}
	if o.Err != nil {
		c.Error = oneLine(o.Err.Error())
		return c
	}
	ro := o.Rollout
	if ro == nil {
		c.Error = "rollout not found"
		return c
	}
	c.Found = true
	obj := ro.Object
	c.Phase, _ = nested(obj, "status", "phase").(string)
	c.Message, _ = nested(obj, "status", "message").(string)
	c.Revision, _ = nested(obj, "status", "currentPodHash").(string)
	c.StableRevision, _ = nested(obj, "status", "stableRS").(string)
	steps, _ := nested(obj, "spec", "strategy", "canary", "steps").([]any)
	c.Steps = len(steps)
	if v, ok := nested(obj, "status", "currentStepIndex").(int64); ok {
		i := int32(v)
		c.Step = &i
	}
	specPaused, _ := nested(obj, "spec", "paused").(bool)
	pcs, _ := nested(obj, "status", "pauseConditions").([]any)
	c.Paused = specPaused || len(pcs) > 0
	c.Aborted, _ = nested(obj, "status", "abort").(bool)
	c.SetWeight = setWeight(steps, c.Step, c.Revision, c.StableRevision, c.Aborted)
	if o.Weights != nil {
		w := *o.Weights
		c.Weights = &w
	}
	if o.WeightsErr != nil {
		c.WeightsError = oneLine(o.WeightsErr.Error())
	}
	for _, err := range o.OtherErrs {
		c.Warnings = append(c.Warnings, oneLine(err.Error()))
	}
	c.ReplicaSets = replicaSets(ro, o.ReplicaSets, c.StableRevision, c.Revision)
	for _, rs := range c.ReplicaSets {
		switch rs.Role {
		case "stable":
			c.StableImage = rs.Image
		case "canary":
			c.CanaryImage = rs.Image
		}
	}
	if o.AnalysisRun != nil {
		c.Analysis = analysisRun(o.AnalysisRun)
	}
	return c
}

// setWeight is the canary weight of the last setWeight step before the
// current one. A finished or aborted canary asks for no canary traffic,
// which is what Argo Rollouts writes into the route then.
func setWeight(steps []any, idx *int32, rev, stable string, aborted bool) *int32 {
	var w int32
	if aborted || rev == "" || rev == stable || idx == nil {
		return &w
	}
	for i := 0; i < int(*idx) && i < len(steps); i++ {
		m, _ := steps[i].(map[string]any)
		if v, ok := m["setWeight"].(int64); ok {
			w = int32(v)
		}
	}
	if int(*idx) >= len(steps) {
		w = 100
	}
	return &w
}

const hashLabel = "rollouts-pod-template-hash"

func replicaSets(ro *unstructured.Unstructured, list []appsv1.ReplicaSet, stable, canary string) []ReplicaSet {
	var out []ReplicaSet
	for i := range list {
		rs := &list[i]
		if !ownedBy(rs, ro) {
			continue
		}
		hash := rs.Labels[hashLabel]
		role := "old"
		switch hash {
		case stable:
			role = "stable"
		case canary:
			role = "canary"
		}
		var replicas int32
		if rs.Spec.Replicas != nil {
			replicas = *rs.Spec.Replicas
		}
		// Scaled-down old ReplicaSets are history, not state.
		if role == "old" && replicas == 0 && rs.Status.ReadyReplicas == 0 {
			continue
		}
		r := ReplicaSet{Name: rs.Name, Role: role, Hash: hash, Replicas: replicas, Ready: rs.Status.ReadyReplicas}
		if cs := rs.Spec.Template.Spec.Containers; len(cs) > 0 {
			r.Image = cs[0].Image
		}
		out = append(out, r)
	}
	order := map[string]int{"stable": 0, "canary": 1, "old": 2}
	sort.SliceStable(out, func(i, j int) bool {
		if order[out[i].Role] != order[out[j].Role] {
			return order[out[i].Role] < order[out[j].Role]
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func ownedBy(rs *appsv1.ReplicaSet, ro *unstructured.Unstructured) bool {
	for _, ref := range rs.OwnerReferences {
		if ref.Kind == "Rollout" && ref.Name == ro.GetName() && (ro.GetUID() == "" || ref.UID == ro.GetUID()) {
			return true
		}
	}
	return false
}

// CurrentAnalysisRun names the AnalysisRun the Rollout runs now: the
// step's, else the background one. The caller reads it and passes it back
// in Observation.AnalysisRun.
func CurrentAnalysisRun(ro *unstructured.Unstructured) string {
	if ro == nil {
		return ""
	}
	for _, k := range []string{"currentStepAnalysisRunStatus", "currentBackgroundAnalysisRunStatus"} {
		if n, _ := nested(ro.Object, "status", "canary", k, "name").(string); n != "" {
			return n
		}
	}
	return ""
}

func analysisRun(u *unstructured.Unstructured) *AnalysisRun {
	a := &AnalysisRun{Name: u.GetName()}
	a.Phase, _ = nested(u.Object, "status", "phase").(string)
	results, _ := nested(u.Object, "status", "metricResults").([]any)
	for _, r := range results {
		m, _ := r.(map[string]any)
		if m == nil {
			continue
		}
		ms := Measurement{}
		ms.Metric, _ = m["name"].(string)
		ms.Phase, _ = m["phase"].(string)
		ms.Successful, _ = m["successful"].(int64)
		ms.Failed, _ = m["failed"].(int64)
		if list, _ := m["measurements"].([]any); len(list) > 0 {
			last, _ := list[len(list)-1].(map[string]any)
			ms.Value, _ = last["value"].(string)
			if s, _ := last["finishedAt"].(string); s != "" {
				if t, err := time.Parse(time.RFC3339, s); err == nil {
					t = t.UTC()
					ms.FinishedAt = &t
				}
			}
		}
		a.Metrics = append(a.Metrics, ms)
	}
	return a
}

// nested is apimachinery's field lookup without the found/error results:
// a missing or mistyped path is nil.
func nested(obj map[string]any, path ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	return v
}

func oneLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// ServingLabel is the value that names member in the metrics' serving
// label (Istio's destination_cluster): the FleetRollout's
// analysis.clusters entry when it has one, else the member's name, as the
// coordinator reads it. fr may be nil.
func ServingLabel(fr *v1alpha1.FleetRollout, member string) string {
	if fr != nil && fr.Spec.Analysis != nil {
		for _, cl := range fr.Spec.Analysis.Clusters {
			if cl.Member == member && cl.Serving != "" {
				return cl.Serving
			}
		}
	}
	return member
}
