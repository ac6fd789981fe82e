package decide

import (
	"encoding/json"
	"reflect"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/types"
)

// rolloutDoc is a Rollout as the API server would hold it, reduced to the
// status fields the patches read and write.
func rolloutDoc(t *testing.T, hash string, step int, paused, abort bool) []byte {
	t.Helper()
	status := map[string]any{
		"currentPodHash":   hash,
		"currentStepIndex": step,
		"controllerPause":  paused,
	}
	if paused {
		status["pauseConditions"] = []any{map[string]any{"reason": "CanaryPauseStep", "startTime": "2026-01-02T03:04:05Z"}}
	}
	if abort {
		status["abort"] = true
	}
	doc, err := json.Marshal(map[string]any{"kind": "Rollout", "status": status})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// apply applies p to doc the way the API server does for a JSON patch (it
// uses this library), returning the resulting status or the error.
func apply(t *testing.T, p Patch, doc []byte) (map[string]any, error) {
	t.Helper()
	if p.Type != types.JSONPatchType || p.Subresource != StatusSubresource {
		t.Fatalf("patch type/subresource = %q/%q, want JSON patch on status", p.Type, p.Subresource)
	}
	decoded, err := jsonpatch.DecodePatch(p.Body)
	if err != nil {
		t.Fatalf("decode patch %s: %v", p.Body, err)
	}
	out, err := decoded.Apply(doc)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(out, &obj); err != nil {
		t.Fatal(err)
	}
	return obj["status"].(map[string]any), nil
}

func TestPromotePatch(t *testing.T) {
	t.Parallel()
	p := PromotePatch("east", "abc", 3)
	if p.Member != "east" || p.Kind != PatchPromote {
		t.Fatalf("patch = %+v", p)
	}

	status, err := apply(t, p, rolloutDoc(t, "abc", 3, true, false))
	if err != nil {
		t.Fatalf("promote of a member paused at the step failed: %v", err)
	}
	if _, ok := status["pauseConditions"]; ok {
		t.Errorf("pauseConditions still present: %v", status)
	}
	// Argo reads controllerPause without a CanaryPauseStep condition as
	// "pause step completed"; clearing it would not promote.
	if status["controllerPause"] != true {
		t.Errorf("controllerPause = %v, want it left true", status["controllerPause"])
	}

	rejected := map[string][]byte{
		"member moved to the next step":      rolloutDoc(t, "abc", 4, false, false),
		"member paused at a later step":      rolloutDoc(t, "abc", 5, true, false),
		"member on another revision":         rolloutDoc(t, "def", 3, true, false),
		"member already promoted (no pause)": rolloutDoc(t, "abc", 3, false, false),
	}
	for name, doc := range rejected {
		if _, err := apply(t, p, doc); err == nil {
			t.Errorf("%s: promote patch applied, want it rejected", name)
		}
	}
}

func TestAbortAndRetryPatches(t *testing.T) {
	t.Parallel()
	status, err := apply(t, AbortPatch("east", "abc"), rolloutDoc(t, "abc", 3, true, false))
	if err != nil {
		t.Fatal(err)
	}
	if status["abort"] != true {
		t.Errorf("abort = %v, want true", status["abort"])
	}
	// Aborting twice is harmless: the sticky abort re-issues it.
	if _, err := apply(t, AbortPatch("east", "abc"), rolloutDoc(t, "abc", 3, false, true)); err != nil {
		t.Errorf("second abort rejected: %v", err)
	}
	if _, err := apply(t, AbortPatch("east", "abc"), rolloutDoc(t, "def", 0, false, false)); err == nil {
		t.Error("abort applied to a member on another revision")
	}

	status, err = apply(t, RetryPatch("east", "abc"), rolloutDoc(t, "abc", 3, false, true))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := status["abort"]; !ok || v != false {
		t.Errorf("abort = %v (present %t), want false", v, ok)
	}
}

func TestPatchBodyIsExact(t *testing.T) {
	t.Parallel()
	var got []map[string]any
	if err := json.Unmarshal(PromotePatch("m", `we"ird`, 1).Body, &got); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"op": "test", "path": "/status/currentPodHash", "value": `we"ird`},
		{"op": "test", "path": "/status/currentStepIndex", "value": float64(1)},
		{"op": "remove", "path": "/status/pauseConditions"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v, want %v", got, want)
	}
}
