package rollouts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"lockstep.dev/lockstep/internal/decide"
)

// Resources the package reads and writes.
var (
	RolloutGVR        = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	AnalysisRunGVR    = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysisruns"}
	VirtualServiceGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
)

// ErrPreconditionFailed is returned by Apply when a guarded patch was
// rejected because the Rollout is no longer in the state the decision saw
// (it moved on, was already promoted, or runs another revision). For the
// coordinator that is the expected outcome of a repeated patch, not a
// failure.
var ErrPreconditionFailed = errors.New("rollout no longer in the expected state")

// Get returns the Rollout, or nil and no error when it does not exist.
func Get(ctx context.Context, dyn dynamic.Interface, namespace, name string) (*unstructured.Unstructured, error) {
	u, err := dyn.Resource(RolloutGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get rollout %s/%s: %w", namespace, name, err)
	}
	return u, nil
}

// State extracts what decide needs from a Rollout. The revision is the
// pod-template hash (status.currentPodHash), which is equal in every
// cluster for an identical template, so it identifies the release across
// the fleet.
func State(u *unstructured.Unstructured) (decide.RolloutState, error) {
	var s decide.RolloutState
	obj := u.Object
	s.Generation = u.GetGeneration()
	// Argo Rollouts writes status.observedGeneration as a string (older
	// versions wrote a hash there; that parses as nothing and reads as 0,
	// which decide treats as stale rather than current).
	switch og := nested(obj, "status", "observedGeneration").(type) {
	case string:
		if n, err := strconv.ParseInt(og, 10, 64); err == nil {
			s.ObservedGeneration = n
		}
	case int64:
		s.ObservedGeneration = og
	case float64:
		s.ObservedGeneration = int64(og)
	}
	s.Revision, _ = nested(obj, "status", "currentPodHash").(string)
	s.StableRevision, _ = nested(obj, "status", "stableRS").(string)
	index, hasIndex := nested(obj, "status", "currentStepIndex").(int64)
	s.SpecPaused, _ = nested(obj, "spec", "paused").(bool)
	s.ControllerPause, _ = nested(obj, "status", "controllerPause").(bool)
	s.Aborted, _ = nested(obj, "status", "abort").(bool)
	phase, _ := nested(obj, "status", "phase").(string)
	s.Phase = decide.Phase(phase)
	if pcs, ok := nested(obj, "status", "pauseConditions").([]any); ok {
		for _, pc := range pcs {
			if m, ok := pc.(map[string]any); ok {
				r, _ := m["reason"].(string)
				s.PauseReasons = append(s.PauseReasons, r)
			}
		}
	}
	rawSteps, _ := nested(obj, "spec", "strategy", "canary", "steps").([]any)
	steps := make([]map[string]any, 0, len(rawSteps))
	for i, st := range rawSteps {
		m, ok := st.(map[string]any)
		if !ok {
			return s, fmt.Errorf("rollout %s/%s: step %d is not an object", u.GetNamespace(), u.GetName(), i)
		}
		steps = append(steps, m)
	}
	parsed, err := decide.ParseSteps(steps)
	if err != nil {
		return s, fmt.Errorf("rollout %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	s.Steps = parsed
	// Argo Rollouts keeps the index in 0..len(steps), len(steps) meaning
	// every step is done. Anything else is not a step this Rollout can be
	// at: read as one (truncated to 32 bits, or negative) it could line
	// members up at a step none of them is at.
	if hasIndex {
		if index < 0 || index > int64(len(parsed)) {
			return s, fmt.Errorf("rollout %s/%s: status.currentStepIndex %d is not a step (the Rollout has %d)", u.GetNamespace(), u.GetName(), index, len(parsed))
		}
		i := int32(index)
		s.CurrentStepIndex = &i
	}
	return s, nil
}

// Services are the Rollout's canary and stable Services
// (spec.strategy.canary.canaryService and stableService).
type Services struct {
	Canary, Stable string
}

// ServicesOf returns the Rollout's canary and stable Services.
func ServicesOf(u *unstructured.Unstructured) Services {
	var s Services
	s.Canary, _ = nested(u.Object, "spec", "strategy", "canary", "canaryService").(string)
	s.Stable, _ = nested(u.Object, "spec", "strategy", "canary", "stableService").(string)
	return s
}

// nested is apimachinery's field lookup without the found/error results:
// a missing or mistyped path is nil.
func nested(obj map[string]any, path ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(obj, path...)
	return v
}

// Weights are the traffic weights of a Rollout's canary route.
type Weights struct {
	Stable int32
	Canary int32
}

// TrafficWeights reads, from the Istio VirtualService named in the
// Rollout's trafficRouting, the weights of the stable and canary services
// in the first managed route. It returns nil and no error when the Rollout
// routes no traffic through Istio.
func TrafficWeights(ctx context.Context, dyn dynamic.Interface, ro *unstructured.Unstructured) (*Weights, error) {
	canary, _ := nested(ro.Object, "spec", "strategy", "canary").(map[string]any)
	if canary == nil {
		return nil, nil
	}
	stableSvc, _ := canary["stableService"].(string)
	canarySvc, _ := canary["canaryService"].(string)
	vs, _ := nested(canary, "trafficRouting", "istio", "virtualService").(map[string]any)
	if vs == nil {
		if list, ok := nested(canary, "trafficRouting", "istio", "virtualServices").([]any); ok && len(list) > 0 {
			vs, _ = list[0].(map[string]any)
		}
	}
	if vs == nil {
		return nil, nil
	}
	vsName, _ := vs["name"].(string)
	vsNS := ro.GetNamespace()
	if ns, name, ok := cutNamespace(vsName); ok {
		vsNS, vsName = ns, name
	}
	var routes []string
	if rs, ok := vs["routes"].([]any); ok {
		for _, r := range rs {
			if s, ok := r.(string); ok {
				routes = append(routes, s)
			}
		}
	}
	obj, err := dyn.Resource(VirtualServiceGVR).Namespace(vsNS).Get(ctx, vsName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get virtualservice %s/%s: %w", vsNS, vsName, err)
	}
	return RouteWeights(obj, routes, stableSvc, canarySvc)
}

func cutNamespace(s string) (ns, name string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", s, false
}

// RouteWeights finds the weights of the stable and canary hosts in the
// first HTTP route of vs whose name is in routes (any route if routes is
// empty) that sends to either host.
func RouteWeights(vs *unstructured.Unstructured, routes []string, stableHost, canaryHost string) (*Weights, error) {
	http, _ := nested(vs.Object, "spec", "http").([]any)
	for _, r := range http {
		route, _ := r.(map[string]any)
		name, _ := route["name"].(string)
		if len(routes) > 0 && !contains(routes, name) {
			continue
		}
		dests, _ := route["route"].([]any)
		var w Weights
		found := false
		for _, d := range dests {
			dm, _ := d.(map[string]any)
			host, _ := nested(dm, "destination", "host").(string)
			if host != stableHost && host != canaryHost {
				continue
			}
			weight, _ := dm["weight"].(int64)
			// Istio's weights are non-negative 32-bit integers; a value
			// outside would otherwise be shown truncated.
			if weight < 0 || weight > math.MaxInt32 {
				return nil, fmt.Errorf("virtualservice %s/%s: route %q: weight %d of %q is not a weight", vs.GetNamespace(), vs.GetName(), name, weight, host)
			}
			switch host {
			case stableHost:
				w.Stable, found = int32(weight), true
			case canaryHost:
				w.Canary, found = int32(weight), true
			}
		}
		if found {
			return &w, nil
		}
	}
	return nil, fmt.Errorf("virtualservice %s/%s: no route %q to %q or %q", vs.GetNamespace(), vs.GetName(), routes, stableHost, canaryHost)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Apply sends one of package decide's guarded patches to the Rollout's
// status subresource. A patch whose test operations fail comes back as
// ErrPreconditionFailed.
func Apply(ctx context.Context, dyn dynamic.Interface, namespace, name string, p decide.Patch) error {
	_, err := dyn.Resource(RolloutGVR).Namespace(namespace).Patch(ctx, name, p.Type, p.Body, metav1.PatchOptions{}, p.Subresource)
	var status apierrors.APIStatus
	if err != nil && errors.As(err, &status) && status.Status().Code == http.StatusUnprocessableEntity {
		return fmt.Errorf("%s %s/%s: %w: %v", kindVerb(p.Kind), namespace, name, ErrPreconditionFailed, err)
	}
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", kindVerb(p.Kind), namespace, name, err)
	}
	return nil
}

func kindVerb(k decide.PatchKind) string {
	switch k {
	case decide.PatchPromote:
		return "promote"
	case decide.PatchAbort:
		return "abort"
	case decide.PatchRetry:
		return "retry"
	}
	return "patch"
}

// The merge patches of the Argo Rollouts kubectl plugin (v1.10.1,
// pkg/kubectl-argo-rollouts/cmd/{promote,abort,retry}).
const (
	abortPatch                  = `{"status":{"abort":true}}`
	retryPatch                  = `{"status":{"abort":false}}`
	promoteFullPatch            = `{"status":{"promoteFull":true}}`
	unpausePatch                = `{"spec":{"paused":false}}`
	clearPauseConditionsPatch   = `{"status":{"pauseConditions":null}}`
	clearPauseConditionsStepFmt = `{"status":{"pauseConditions":null, "currentStepIndex":%d}}`
)

// Abort aborts a Rollout as `kubectl argo rollouts abort` does.
func Abort(ctx context.Context, dyn dynamic.Interface, namespace, name string) error {
	return mergeStatus(ctx, dyn, "abort", namespace, name, abortPatch)
}

// Retry retries an aborted Rollout as `kubectl argo rollouts retry` does.
func Retry(ctx context.Context, dyn dynamic.Interface, namespace, name string) error {
	return mergeStatus(ctx, dyn, "retry", namespace, name, retryPatch)
}

// Promote promotes a Rollout as `kubectl argo rollouts promote [--full]`
// does: it unpauses spec.paused, then clears the pause conditions, or, when
// there are none, moves to the next step; with full it skips all steps.
func Promote(ctx context.Context, dyn dynamic.Interface, namespace, name string, full bool) error {
	ro, err := Get(ctx, dyn, namespace, name)
	if err != nil {
		return err
	}
	if ro == nil {
		return fmt.Errorf("promote %s/%s: rollout not found", namespace, name)
	}
	specPatch, statusPatch := PromotePatches(ro, full)
	if statusPatch != "" {
		if err := mergeStatus(ctx, dyn, "promote", namespace, name, statusPatch); err != nil {
			return err
		}
	}
	if specPatch != "" {
		if _, err := dyn.Resource(RolloutGVR).Namespace(namespace).Patch(ctx, name, types.MergePatchType, []byte(specPatch), metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("promote %s/%s: unpause: %w", namespace, name, err)
		}
	}
	return nil
}

// PromotePatches returns the spec and status merge patches (either may be
// empty) that the kubectl plugin would send to promote ro. The plugin's
// special case for an inconclusive analysis is left out: Lockstep's
// Rollouts run no Argo analysis at pause steps.
func PromotePatches(ro *unstructured.Unstructured, full bool) (specPatch, statusPatch string) {
	paused, _ := nested(ro.Object, "spec", "paused").(bool)
	if paused {
		specPatch = unpausePatch
	}
	if full {
		cur, _ := nested(ro.Object, "status", "currentPodHash").(string)
		stable, _ := nested(ro.Object, "status", "stableRS").(string)
		if cur != stable {
			statusPatch = promoteFullPatch
		}
		return specPatch, statusPatch
	}
	if pcs, _ := nested(ro.Object, "status", "pauseConditions").([]any); len(pcs) > 0 {
		return specPatch, clearPauseConditionsPatch
	}
	steps, _ := nested(ro.Object, "spec", "strategy", "canary", "steps").([]any)
	if steps == nil {
		return specPatch, ""
	}
	idx, _ := nested(ro.Object, "status", "currentStepIndex").(int64)
	if idx < int64(len(steps)) {
		idx++
	}
	return specPatch, fmt.Sprintf(clearPauseConditionsStepFmt, idx)
}

func mergeStatus(ctx context.Context, dyn dynamic.Interface, verb, namespace, name, body string) error {
	_, err := dyn.Resource(RolloutGVR).Namespace(namespace).Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", verb, namespace, name, err)
	}
	return nil
}

// pausePatch is what `kubectl argo rollouts pause` sends (v1.10.1,
// cmd/pause/pause.go). The plugin has no resume command: its promote sends
// unpausePatch first and then moves the step, so resuming a human pause
// without skipping a step is unpausePatch alone.
const pausePatch = `{"spec":{"paused":true}}`

// Pause pauses a Rollout as `kubectl argo rollouts pause` does.
func Pause(ctx context.Context, dyn dynamic.Interface, namespace, name string) error {
	return mergeSpec(ctx, dyn, "pause", namespace, name, pausePatch)
}

// Resume clears a pause set by Pause (spec.paused) and nothing else: a
// Rollout waiting at a pause step stays there until promoted.
func Resume(ctx context.Context, dyn dynamic.Interface, namespace, name string) error {
	return mergeSpec(ctx, dyn, "resume", namespace, name, unpausePatch)
}

func mergeSpec(ctx context.Context, dyn dynamic.Interface, verb, namespace, name, body string) error {
	_, err := dyn.Resource(RolloutGVR).Namespace(namespace).Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", verb, namespace, name, err)
	}
	return nil
}
