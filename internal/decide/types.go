package decide

import (
	"errors"
	"fmt"
	"time"
)

// Action is what the hub should do after a decision.
type Action string

// The actions Decide can return.
const (
	// ActionWait means the fleet is not at a barrier yet (or cannot be judged);
	// the hub applies any listed patches and looks again later.
	ActionWait Action = "Wait"
	// ActionHold means every member is paused at the same step and the hub is
	// letting the step's hold time and analysis run before promoting.
	ActionHold Action = "Hold"
	// ActionPromote means the listed members should be promoted past Step.
	ActionPromote Action = "Promote"
	// ActionAbort means every member should be aborted; it is re-issued until
	// each member reports the abort.
	ActionAbort Action = "Abort"
	// ActionRefuse means the configuration cannot be coordinated safely, so the
	// hub touches nothing until it changes.
	ActionRefuse Action = "Refuse"
	// ActionComplete means every member runs the wanted revision as stable.
	ActionComplete Action = "Complete"
)

// Reason is a machine-readable cause for a decision. The values are stable
// because they end up in status conditions and events.
type Reason string

// Reasons returned in Decision.Reason and recorded in FleetStatus.AbortReason.
const (
	// ReasonInvalidSnapshot: the snapshot itself is unusable (no wanted
	// revision, no members, empty or duplicate member names).
	ReasonInvalidSnapshot Reason = "InvalidSnapshot"
	// ReasonInvalidPolicy: a policy limit is zero or negative, which would turn
	// every blip into an abort.
	ReasonInvalidPolicy Reason = "InvalidPolicy"
	// ReasonStepsNotCoordinable: step lists differ across members or a pause
	// has a duration, so members would not stop at the same place.
	ReasonStepsNotCoordinable Reason = "StepsNotCoordinable"
	// ReasonRevisionChanged: the wanted revision changed while the fleet was
	// in the middle of a canary and the policy does not allow that.
	ReasonRevisionChanged Reason = "RevisionChangedDuringProgress"
	// ReasonMemberUnreachable: a member cannot be observed, within deadline.
	ReasonMemberUnreachable Reason = "MemberUnreachable"
	// ReasonUnreachableDeadline: a member stayed unreachable past the deadline.
	ReasonUnreachableDeadline Reason = "UnreachableDeadlineExceeded"
	// ReasonInvalidWaves: the waves do not split the members into groups
	// (a member in two waves or in none, an empty wave, more failures
	// allowed than clusters).
	ReasonInvalidWaves Reason = "InvalidWaves"
	// ReasonWaveStarted: a batch or wave completed and the next one starts.
	ReasonWaveStarted Reason = "WaveStarted"
	// ReasonSoaking: a wave completed and soaks before the next one.
	ReasonSoaking Reason = "Soaking"
	// ReasonWaveRegression: a member of a completed wave aborted, degraded,
	// left the revision or failed analysis; the release stops.
	ReasonWaveRegression Reason = "WaveRegression"
	// ReasonFailureTolerated: a batch aborted within its wave's
	// maxFailures; the release goes on without it.
	ReasonFailureTolerated Reason = "FailureTolerated"
	// ReasonForbidden and ReasonUnauthorized: a member answers but refuses
	// the coordinator (403: its role lacks a verb; 401: its token is
	// refused). The fleet waits for a fix; past the unreachable deadline it
	// aborts with this reason, not as an outage.
	ReasonForbidden    Reason = "Forbidden"
	ReasonUnauthorized Reason = "Unauthorized"
	// ReasonRevisionNotReceived: members did not run the wanted revision
	// within Policy.RevisionDeadline; the release stops.
	ReasonRevisionNotReceived Reason = "RevisionNotReceived"
	// ReasonRolloutMissing: a reachable member has no Rollout object.
	ReasonRolloutMissing Reason = "RolloutMissing"
	// ReasonStatusStale: a member's Rollout status has not caught up with its
	// spec (or lacks a step index), so its position is unknown.
	ReasonStatusStale Reason = "StatusStale"
	// ReasonRevisionPending: a member does not run the wanted revision yet.
	ReasonRevisionPending Reason = "RevisionPending"
	// ReasonStepSkew: members are at different steps.
	ReasonStepSkew Reason = "StepSkew"
	// ReasonProgressing: members are at the same step but not paused there.
	ReasonProgressing Reason = "Progressing"
	// ReasonPausedOtherwise: a member is paused for a reason Lockstep does not
	// own (spec.paused, an inconclusive Argo analysis, ...).
	ReasonPausedOtherwise Reason = "PausedForOtherReason"
	// ReasonHolding: the barrier is reached and the hold time is running.
	ReasonHolding Reason = "Holding"
	// ReasonAnalysisInconclusive: the hold is over but some analysis verdict is
	// missing, stale, inconclusive or below the request minimum.
	ReasonAnalysisInconclusive Reason = "AnalysisInconclusive"
	// ReasonAwaitingFreshAnalysis: verdicts pass, but none was taken after the
	// hold ended yet.
	ReasonAwaitingFreshAnalysis Reason = "AwaitingFreshAnalysis"
	// ReasonInconclusiveLimit: analysis stayed inconclusive past the limit
	// and the policy aborts then.
	ReasonInconclusiveLimit Reason = "InconclusiveLimitExceeded"
	// ReasonAwaitingApproval: a wave waits at its leading pause, or the
	// fleet at a named barrier, for a
	// person's approval.
	ReasonAwaitingApproval Reason = "AwaitingApproval"
	// ReasonInconclusivePaused: analysis stayed inconclusive past the limit
	// and the fleet holds at its barrier until a person promotes or
	// aborts.
	ReasonInconclusivePaused Reason = "Inconclusive"
	// ReasonAnalysisFailed: a member or the global analysis failed.
	ReasonAnalysisFailed Reason = "AnalysisFailed"
	// ReasonMemberAborted: a member's Rollout aborted on its own.
	ReasonMemberAborted Reason = "MemberAborted"
	// ReasonMemberDegraded: a member's Rollout is Degraded.
	ReasonMemberDegraded Reason = "MemberDegraded"
	// ReasonFleetAborted: the fleet was aborted earlier; the abort is sticky.
	ReasonFleetAborted Reason = "FleetAborted"
	// ReasonBarrierPassed: all members paused at the step, hold elapsed,
	// analysis passed.
	ReasonBarrierPassed Reason = "BarrierPassed"
	// ReasonPromotionResumed: the step was already promoted (recorded in
	// status) and some members are still paused there.
	ReasonPromotionResumed Reason = "PromotionResumed"
	// ReasonPromoted: the step was promoted and members have not moved yet.
	ReasonPromoted Reason = "Promoted"
	// ReasonRetried: an explicit retry cleared a fleet abort.
	ReasonRetried Reason = "Retried"
	// ReasonCompleted: every member runs the wanted revision as stable.
	ReasonCompleted Reason = "Completed"
)

// NoStep is Decision.Step when the decision concerns no particular step.
const NoStep int32 = -1

// Phase mirrors the Argo Rollouts status.phase values Lockstep reads.
type Phase string

// Rollout phases.
const (
	PhaseHealthy     Phase = "Healthy"
	PhaseProgressing Phase = "Progressing"
	PhasePaused      Phase = "Paused"
	PhaseDegraded    Phase = "Degraded"
)

// PauseReasonCanaryPauseStep is the Argo Rollouts pause-condition reason set
// when a Rollout stops at a `pause` step. Only this reason is Lockstep's to
// clear; any other pause belongs to someone else.
const PauseReasonCanaryPauseStep = "CanaryPauseStep"

// Snapshot is everything Decide needs, gathered by the caller at one moment.
type Snapshot struct {
	// Revision is the revision the fleet should run: the pod-template hash the
	// members report in status.currentPodHash.
	Revision string
	// Members lists every member cluster; order is kept in messages and
	// patches.
	Members []Member
	// Analysis holds the latest verdicts; see Analysis.
	Analysis Analysis
	// Fleet is the state Decide returned last time, as persisted by the caller.
	Fleet FleetStatus
	// Policy holds the operator's limits.
	Policy Policy
	// Waves, when set, release the members group after group (see Wave);
	// empty means one wave of every member.
	Waves []Wave
	// Approvals are the wave and barrier approvals people gave (of any
	// revision: only the wanted revision's count).
	Approvals []Approval
	// RetryToken asks for a retry of an aborted fleet. It is a token rather
	// than a boolean so that a request is acted on exactly once: Decide
	// records the token in FleetStatus.HandledRetryToken, and a stale token
	// left behind cannot silently undo a later abort.
	RetryToken string
}

// Member is one workload cluster as observed by the hub.
type Member struct {
	// Name identifies the member; analysis verdicts are keyed by it.
	Name string
	// Reachable is false when the hub could not read the member's Rollout.
	Reachable bool
	// UnreachableSince is when the member was first seen unreachable in the
	// current outage. The caller must set it whenever Reachable is false: a
	// zero value is read as "just now", which delays the deadline.
	UnreachableSince time.Time
	// Denied is ReasonForbidden or ReasonUnauthorized when the member
	// could not be read because it refused the coordinator, "" for an
	// outage; Problem says what was refused (cluster, verb, resource).
	Denied  Reason
	Problem string
	// Rollout is the observed Rollout, or nil when the member has none. It is
	// ignored while the member is unreachable because it may be stale.
	Rollout *RolloutState
}

// RolloutState is the subset of an Argo Rollout that the rules read.
type RolloutState struct {
	// Generation and ObservedGeneration tell whether status reflects the
	// current spec (Argo stores observedGeneration as a string; the caller
	// converts it).
	Generation         int64
	ObservedGeneration int64
	// Revision is status.currentPodHash.
	Revision string
	// StableRevision is status.stableRS.
	StableRevision string
	// CurrentStepIndex is status.currentStepIndex; nil when unset.
	CurrentStepIndex *int32
	// Steps is spec.strategy.canary.steps, parsed with ParseSteps.
	Steps []Step
	// SpecPaused is spec.paused: a human paused the Rollout.
	SpecPaused bool
	// ControllerPause is status.controllerPause.
	ControllerPause bool
	// PauseReasons lists status.pauseConditions[].reason.
	PauseReasons []string
	// Aborted is status.abort.
	Aborted bool
	// Phase is status.phase.
	Phase Phase
}

// Policy holds the operator's limits. Zero deadlines are rejected by
// Validate because they would abort the fleet on the first blip.
type Policy struct {
	// AnalysisWarmup is how long the canary must have had traffic before a
	// verdict counts: the longest metric window, so that no window mixes in
	// traffic from before this revision's canary.
	AnalysisWarmup time.Duration
	// DefaultHold is how long the fleet holds at a pause step before it may be
	// promoted, when StepHold has no entry for the step.
	DefaultHold time.Duration
	// StepHold overrides DefaultHold per step index.
	StepHold map[int32]time.Duration
	// AwaitApproval, when set, holds a barrier before any canary traffic
	// (the leading pause) until it is cleared, saying why: a wave that
	// waits for a person's approval.
	AwaitApproval string
	// ApprovalBarriers names the pause steps whose barrier a person must
	// approve (Snapshot.Approvals, by barrier name) once its hold and
	// analysis passed; a failing analysis still aborts.
	ApprovalBarriers map[int32]string
	// QuietHold is the least hold at a barrier before any canary traffic
	// (a leading pause): one scrape interval and a bit when the judge
	// runs, so that FleetStatus.QuietSince lies a whole scrape before the
	// canary's first traffic and its first scrape counts as evidence.
	QuietHold time.Duration
	// UnreachableDeadline is how long a member may stay unreachable before
	// the fleet aborts.
	UnreachableDeadline time.Duration
	// InconclusiveLimit is how long analysis may stay short of passing at a
	// barrier before AbortOnInconclusive applies.
	InconclusiveLimit time.Duration
	// AbortOnInconclusive aborts the fleet at the inconclusive limit. When
	// false (the default), the fleet pauses at its barrier until a person
	// promotes or aborts it.
	AbortOnInconclusive bool
	// MinRequests, when positive, demotes a Pass whose request count is
	// unknown or lower to inconclusive. Package analysis applies its own
	// minimum too; this is a second guard because verdicts are input.
	MinRequests float64
	// AllowNewRevisionDuringProgress lets a new wanted revision replace one
	// whose canary is under way. When false, such a change is refused until
	// an operator sends a retry token.
	AllowNewRevisionDuringProgress bool
	// RevisionDeadline is how long members may take to run a new wanted
	// revision (Argo CD syncing it) before the release stops, naming the
	// ones that did not; zero waits for ever.
	RevisionDeadline time.Duration
}

// HoldFor returns the hold time for the pause at step index step.
func (p Policy) HoldFor(step int32) time.Duration {
	if d, ok := p.StepHold[step]; ok {
		return d
	}
	return p.DefaultHold
}

// Validate reports limits that cannot be meant literally.
func (p Policy) Validate() error {
	var errs []error
	if p.UnreachableDeadline <= 0 {
		errs = append(errs, errors.New("unreachable deadline must be positive"))
	}
	if p.InconclusiveLimit <= 0 {
		errs = append(errs, errors.New("inconclusive limit must be positive"))
	}
	if p.DefaultHold < 0 {
		errs = append(errs, errors.New("default hold must not be negative"))
	}
	for step, d := range p.StepHold {
		if d < 0 {
			errs = append(errs, fmt.Errorf("hold for step %d must not be negative", step))
		}
	}
	if p.MinRequests < 0 {
		errs = append(errs, errors.New("minimum requests must not be negative"))
	}
	return errors.Join(errs...)
}

// FleetStatus is what Decide remembers between calls. The caller persists it
// (in the hub object's status) and passes it back; it is what makes a
// restarted hub safe. The zero value means "nothing happened yet", which is
// why the step fields are pointers: step 0 is a real step.
type FleetStatus struct {
	// Revision is the revision the rest of the fields describe. A different
	// wanted revision resets them.
	Revision string
	// BarrierStep is the pause step at which every member was last seen
	// paused together, and StepEnteredAt is when that was first seen.
	BarrierStep   *int32
	StepEnteredAt time.Time
	// InconclusiveSince is when analysis at the current barrier first fell
	// short of passing; zero while it passes.
	InconclusiveSince time.Time
	// InconclusivePaused is set when the current barrier passed the
	// inconclusive limit and paused for a person: it holds until a person
	// promotes (the members leave the barrier) or aborts, or until the
	// evidence settles it (every verdict passes, or one fails).
	InconclusivePaused bool
	// LastPromotedStep is the highest step promoted for Revision. A step at
	// or below it is never promoted from scratch again.
	LastPromotedStep *int32
	// Aborted is sticky until the revision changes or a retry is handled.
	Aborted      bool
	AbortReason  Reason
	AbortMessage string
	AbortedAt    time.Time
	// Completed is set once every member runs Revision as stable.
	Completed bool
	// HandledRetryToken is the last Snapshot.RetryToken Decide has seen.
	HandledRetryToken string
	// CanaryStartedAt is when a member of this revision was first seen
	// sending the canary traffic (a step past a non-zero setWeight). Verdicts
	// taken before Policy.AnalysisWarmup has passed since then judge a window
	// that still holds earlier traffic (a previous release's canary) and do
	// not count.
	CanaryStartedAt time.Time
	// Approvals records the waves and barriers of Revision a person
	// approved.
	Approvals []ApprovalRecord
	// QuietSince is when every member was first seen running this
	// revision at canary weight 0, before its canary got traffic: from
	// then on no earlier canary (an aborted or superseded revision's) was
	// served. The judge opens its window at the canary's first traffic
	// when that was long enough ago for a scrape to have passed.
	QuietSince time.Time
	// RetriedAt is when the last retry was handled. Verdicts taken before it
	// are ignored, or the failure that caused the abort would cause it again.
	RetriedAt time.Time
	// RetryPending lists members sent a retry patch that have not yet been
	// seen un-aborted and out of Degraded. Until then (bounded by the
	// unreachable deadline) their abort and Degraded phase are the old
	// abort's, not new failures.
	RetryPending []string
	// Wave is the batch of Snapshot.Waves (counted across waves, in
	// release order) that is in canary; earlier ones completed.
	// WaveStartedAt is when it started; WaveCompletedAt is when a wave's
	// last batch completed (its soak started). Failed lists the clusters
	// whose batch aborted within their wave's MaxFailures.
	// RevisionSeenAt is when Revision became the wanted revision; members
	// still on another one are waited for until Policy.RevisionDeadline.
	RevisionSeenAt  time.Time
	Wave            int32
	WaveStartedAt   time.Time
	WaveCompletedAt time.Time
	Failed          []string
}

// inProgress reports whether a canary of Revision is under way: some barrier
// was reached or promoted and the fleet neither finished nor aborted.
func (f FleetStatus) inProgress() bool {
	if f.Aborted || f.Completed {
		return false
	}
	return f.BarrierStep != nil || f.LastPromotedStep != nil
}

// ApprovalRecord is a wave's approval as the coordinator first saw it.
type ApprovalRecord struct {
	Wave, Barrier, Approver, Name string
	At                            time.Time
}

// Decision is Decide's answer.
type Decision struct {
	Action Action
	Reason Reason
	// Message explains the decision to a human.
	Message string
	// Step is the step being promoted (Promote) or held at (Hold); NoStep
	// otherwise.
	Step int32
	// Patches lists the member patches to apply, after persisting Next.
	Patches []Patch
	// Next is the fleet state to persist.
	Next FleetStatus
	// RequeueAfter, when positive, is when the decision may change by the
	// passage of time alone (hold end, deadline, limit).
	RequeueAfter time.Duration
}
