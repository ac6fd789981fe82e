package decide

import (
	"encoding/json"

	"k8s.io/apimachinery/pkg/types"
)

// PatchKind says what a patch does to a member's Rollout.
type PatchKind string

// Patch kinds.
const (
	PatchPromote PatchKind = "Promote"
	PatchAbort   PatchKind = "Abort"
	PatchRetry   PatchKind = "Retry"
)

// StatusSubresource is the subresource every Lockstep patch targets: the
// Argo Rollouts CLI promotes, aborts and retries through status too.
const StatusSubresource = "status"

// Patch is one change to one member's Rollout. Bodies are RFC 6902 JSON
// patches that start with "test" operations, so the API server applies them
// only if the Rollout is still in the state Decide saw. A patch re-issued
// after a crash or on a stale cache is therefore rejected instead of moving
// a member a second time.
type Patch struct {
	Member      string
	Kind        PatchKind
	Type        types.PatchType
	Subresource string
	Body        []byte
}

type jsonPatchOp struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	// Value is omitted only when nil (for "remove"); omitempty does not drop
	// a false or 0 held in an interface.
	Value any `json:"value,omitempty"`
}

func newPatch(member string, kind PatchKind, ops []jsonPatchOp) Patch {
	body, err := json.Marshal(ops)
	if err != nil {
		// The operations hold only strings, integers and booleans.
		panic("decide: marshal JSON patch: " + err.Error())
	}
	return Patch{
		Member:      member,
		Kind:        kind,
		Type:        types.JSONPatchType,
		Subresource: StatusSubresource,
		Body:        body,
	}
}

// PromotePatch promotes a member paused at step of revision, the way
// `kubectl argo rollouts promote` does for a canary pause: it removes the
// pause conditions and leaves controllerPause set, which Argo reads as "pause
// step completed". The tests make it a no-op error if the member has since
// moved to another step or revision, or was already promoted (the pause
// conditions are gone).
func PromotePatch(member, revision string, step int32) Patch {
	return newPatch(member, PatchPromote, []jsonPatchOp{
		{Op: "test", Path: "/status/currentPodHash", Value: revision},
		{Op: "test", Path: "/status/currentStepIndex", Value: step},
		{Op: "remove", Path: "/status/pauseConditions"},
	})
}

// AbortPatch sets status.abort on a member running revision, as
// `kubectl argo rollouts abort` does. The test keeps a late abort from
// hitting a member that has meanwhile moved to another revision.
func AbortPatch(member, revision string) Patch {
	return newPatch(member, PatchAbort, []jsonPatchOp{
		{Op: "test", Path: "/status/currentPodHash", Value: revision},
		{Op: "add", Path: "/status/abort", Value: true},
	})
}

// RetryPatch clears status.abort on a member running revision, as
// `kubectl argo rollouts retry` does.
func RetryPatch(member, revision string) Patch {
	return newPatch(member, PatchRetry, []jsonPatchOp{
		{Op: "test", Path: "/status/currentPodHash", Value: revision},
		{Op: "add", Path: "/status/abort", Value: false},
	})
}
