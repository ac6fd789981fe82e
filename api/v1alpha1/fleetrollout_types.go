package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// FleetRollout moves one Argo Rollout through every member cluster together:
// the coordinator waits until every member is paused at the same step of the
// same revision, holds there while the analysis runs, then promotes them all;
// any failure aborts them all.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fro;fr,categories=lockstep
// +kubebuilder:printcolumn:name="Rollout",type=string,JSONPath=`.spec.rollout.name`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.fleet.revision`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.currentStep`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
type FleetRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FleetRolloutSpec   `json:"spec"`
	Status FleetRolloutStatus `json:"status,omitempty"`
}

// FleetRolloutList is a list of FleetRollouts.
//
// +kubebuilder:object:root=true
type FleetRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FleetRollout `json:"items"`
}

// FleetRolloutSpec is what the operator wants.
type FleetRolloutSpec struct {
	// Rollout names the Argo Rollout that every member runs.
	Rollout RolloutReference `json:"rollout"`

	// Members selects the member clusters.
	Members Members `json:"members"`

	// Hold says how long the fleet stays at each pause step before it may
	// be promoted.
	// +optional
	Hold Hold `json:"hold,omitempty"`

	// Analysis judges the canary per member and for the whole fleet. Without
	// it every barrier passes once its hold time is over.
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`

	// Policy holds the limits that turn trouble into an abort.
	// +optional
	Policy Policy `json:"policy,omitempty"`

	// Waves release the members group after group, in this order. Inside a
	// wave, clusters go through the canary in lockstep (maxParallel at a
	// time); the next wave starts only after the previous one completed and
	// soaked with nothing regressing. A stopped release aborts the clusters
	// in canary and leaves later waves untouched: their Rollouts wait at a
	// leading pause: {} step, which waves therefore require. Without waves
	// every member is one wave.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Waves []Wave `json:"waves,omitempty"`

	// RetryToken asks the coordinator to retry an aborted fleet. Set it to a
	// new value (a timestamp, a UUID) for each retry: a token is acted on
	// once, so an old one left in place cannot undo a later abort.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	RetryToken string `json:"retryToken,omitempty"`
	// ReleaseHistory is how many past releases status.releases keeps
	// (lockstep history reads them). Default 20.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	ReleaseHistory *int32 `json:"releaseHistory,omitempty"`
}

// Wave is one group of member clusters. Give exactly one of names,
// selector and rest.
//
// +kubebuilder:validation:XValidation:rule="(has(self.names) ? 1 : 0) + (has(self.selector) ? 1 : 0) + (has(self.rest) && self.rest ? 1 : 0) == 1",message="give exactly one of names, selector and rest"
type Wave struct {
	// Name identifies the wave in status and events.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Names lists the wave's clusters.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	Names []string `json:"names,omitempty"`
	// Selector matches the labels of the member Secrets.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Rest takes every member that no other wave names or selects.
	// +optional
	Rest bool `json:"rest,omitempty"`
	// MaxParallel is how many of the wave's clusters run the canary
	// together: a count ("2") or a percentage of the wave ("30%"); the
	// default is all of them. Batches run one after the other, in name
	// order.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:Pattern=`^([1-9][0-9]*|[1-9][0-9]?%|100%)$`
	MaxParallel *intstr.IntOrString `json:"maxParallel,omitempty"`
	// Soak is how long the wave stays completed, watched, before the next
	// one starts.
	// +optional
	Soak *metav1.Duration `json:"soak,omitempty"`
	// MaxFailures is how many of the wave's clusters may fail (their batch
	// aborted) before the release stops. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxFailures int32 `json:"maxFailures,omitempty"`
	// Approval Required holds the wave before it starts until a person
	// approves it for the revision (a FleetApproval, made by `lockstep
	// approve`); the approver is recorded in status.fleet.approvals.
	// +optional
	// +kubebuilder:validation:Enum=None;Required
	Approval string `json:"approval,omitempty"`
}

// RolloutReference names an Argo Rollout in every member cluster.
type RolloutReference struct {
	// Namespace of the Rollout in the member clusters.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace"`
	// Name of the Rollout.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// Members selects member clusters among the clusters registered for the
// coordinator: Secrets labelled lockstep.dev/secret-type=cluster in its
// namespace (lockstep-system), which carry its own least-privilege token
// for each member and the registration's labels. Give exactly one of
// selector and names.
//
// +kubebuilder:validation:XValidation:rule="has(self.selector) != has(self.names)",message="give exactly one of members.selector and members.names"
type Members struct {
	// Selector matches the labels of the member Secrets, e.g.
	// lockstep.dev/role=workload.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Names lists clusters by name (the Secret's data.name, as in Argo CD).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Names []string `json:"names,omitempty"`
}

// Hold is the time the fleet stays at a pause step before promotion.
type Hold struct {
	// Default applies to every pause step without an entry in Steps.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must be a non-negative duration such as 30s or 2m"
	Default *metav1.Duration `json:"default,omitempty"`
	// Steps overrides Default for single steps.
	// +optional
	// +listType=map
	// +listMapKey=step
	// +kubebuilder:validation:MaxItems=128
	Steps []StepHold `json:"steps,omitempty"`
}

// StepHold is the hold of one pause step: how long, and whether a person
// must approve the barrier there.
//
// +kubebuilder:validation:XValidation:rule="!has(self.approval) || self.approval != 'Required' || has(self.name)",message="a barrier with approval Required needs a name (lockstep approve --barrier NAME)"
type StepHold struct {
	// Step is the index of the pause step in spec.strategy.canary.steps.
	// +kubebuilder:validation:Minimum=0
	Step int32 `json:"step"`
	// Duration is how long to hold there.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must be a non-negative duration such as 30s or 2m"
	Duration metav1.Duration `json:"duration"`
	// Name names the barrier at this step, for approvals.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name,omitempty"`
	// Approval Required holds the fleet at this barrier, once its hold and
	// analysis passed, until a person approves it for the revision (a
	// FleetApproval naming the barrier, made by `lockstep approve
	// --barrier NAME` or the dashboard); the approver is recorded in
	// status.fleet.approvals. A failing analysis still aborts.
	// +optional
	// +kubebuilder:validation:Enum=None;Required
	Approval string `json:"approval,omitempty"`
}

// Analysis is how the coordinator judges the canary, on Thanos Query.
type Analysis struct {
	// Args are substituted for {{args.NAME}} in the metrics, as in an Argo
	// Rollouts AnalysisTemplate.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Args []Arg `json:"args,omitempty"`
	// Mode is Active (the default: verdicts promote and abort) or Shadow:
	// the analysis runs and status.shadow records what Lockstep would have
	// decided and when, but the coordinator sends no member anything and
	// refuses no strategy; the members' own Rollouts and AnalysisRuns, or
	// a person, keep deciding. How a team tries the judge beside its
	// current analysis before letting it act.
	// +optional
	// +kubebuilder:validation:Enum=Active;Shadow
	Mode string `json:"mode,omitempty"`
	// Judge is the sequential judge: it counts the requests the canary of
	// the revision being judged served since it first got traffic, and the
	// stable version's beside them, per member (serving and reporting side)
	// and for the fleet, and decides as soon as the counts are enough. It
	// runs with its defaults when no metrics are given.
	// +optional
	Judge *Judge `json:"judge,omitempty"`
	// Metrics are threshold checks evaluated globally, per reporting
	// cluster and per serving cluster; every one must pass everywhere.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Metrics []Metric `json:"metrics,omitempty"`
	// Interval is how often the metrics are evaluated.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be a duration of at least 1s"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// InitialDelay is how long the canary of a revision must have had
	// traffic before a verdict counts, so that no metric window mixes in
	// traffic from before it (a previous release's canary). Default: the
	// longest ratio window of the metrics.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="must be a non-negative duration such as 40s"
	InitialDelay *metav1.Duration `json:"initialDelay,omitempty"`
	// MinRequests is the number of requests each member and the fleet must
	// have served in a metric's window before a pass counts. Zero disables
	// the check.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinRequests int64 `json:"minRequests,omitempty"`
	// Clusters maps member names to the label values that name them in the
	// metrics. A member without an entry is looked up by the annotation
	// lockstep.dev/reporting-cluster on its Argo CD cluster Secret; failing
	// that, both values default to the member's name.
	// +optional
	// +listType=map
	// +listMapKey=member
	// +kubebuilder:validation:MaxItems=64
	Clusters []ClusterLabels `json:"clusters,omitempty"`
}

// Rate is a decimal number between 0 and 1, as a string: CRDs should not
// carry floats, which do not round-trip exactly.
// +kubebuilder:validation:Pattern=`^(0|1)(\.[0-9]+)?$`
// +kubebuilder:validation:MaxLength=32
type Rate string

// Judge configures the sequential judge. Its tests stay valid however often
// they are looked at: the chance of aborting a good release over the whole
// canary is at most falseAbortRate, the chance of passing a member whose
// canary fails at maxFailureRate or more at most falsePromoteRate.
type Judge struct {
	// Zone says what a good and a bad canary are. Relative, the default,
	// measures the canary against the stable version's own failure rate
	// in the same stretch of time: it fails when shown failing more often
	// than the stable, and passes when shown within the stable's rate
	// plus minEffect, so a service's baseline error rate and an incident
	// that hits both versions are nobody's fault. Absolute judges the
	// canary's rate against maxFailureRate, as the guide's
	// AnalysisTemplate does (and still fails a canary shown worse than
	// the stable).
	// +optional
	// +kubebuilder:validation:Enum=Relative;Absolute
	Zone string `json:"zone,omitempty"`
	// Requests selects the request counter with the label matchers both
	// versions share. Default: istio_requests_total{reporter="source"}.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Requests string `json:"requests,omitempty"`
	// Canary and Stable are label matchers that select each version's
	// requests ({{args.NAME}} allowed). Default: destination_service of the
	// Rollout's canaryService and stableService,
	// e.g. destination_service="helloworld-canary.helloworld.svc.cluster.local".
	// Requests count from the moment the revision's canary first got
	// traffic (status.fleet.canaryStartedAt), so a previous release's canary
	// can neither fail nor pass this one.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Canary string `json:"canary,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Stable string `json:"stable,omitempty"`
	// ScrapeInterval is how often Prometheus scrapes the request metrics.
	// The evidence window opens one scrape interval (plus a second) after
	// the canary's first traffic, so that its first reading is a scrape
	// taken after an earlier canary's last request. Default 30s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('10m')",message="must be a duration between 0s and 10m such as 15s"
	ScrapeInterval *metav1.Duration `json:"scrapeInterval,omitempty"`
	// FailureLabel's value, fully matched by the regular expression
	// FailureCodes, marks a failed request. Default: response_code, 5..
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	FailureLabel string `json:"failureLabel,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=256
	FailureCodes string `json:"failureCodes,omitempty"`
	// MaxFailureRate is the failure rate the canary must stay below in the
	// absolute zone: "0.10" is the guide's success rate above 90 %.
	// Default 0.10.
	// +optional
	MaxFailureRate Rate `json:"maxFailureRate,omitempty"`
	// MinEffect is the indifference zone: in the relative zone a canary
	// passes once shown failing less than the stable's rate plus minEffect;
	// in the absolute zone a canary failing at most
	// maxFailureRate-minEffect is good. Default 0.05.
	// +optional
	MinEffect Rate `json:"minEffect,omitempty"`
	// FalseAbortRate bounds the chance of aborting a good release, over
	// every member, side and look. Default 0.01.
	// +optional
	FalseAbortRate Rate `json:"falseAbortRate,omitempty"`
	// FalsePromoteRate bounds the chance of passing a member whose canary
	// fails at maxFailureRate or more. Default 0.05.
	// +optional
	FalsePromoteRate Rate `json:"falsePromoteRate,omitempty"`
	// Latency compares the canary's request durations with the stable
	// version's per serving cluster.
	// +optional
	Latency *LatencyJudge `json:"latency,omitempty"`
	// ReportingLabel and ServingLabel name the clusters; default cluster
	// and destination_cluster.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	ReportingLabel string `json:"reportingLabel,omitempty"`
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	ServingLabel string `json:"servingLabel,omitempty"`
}

// LatencyJudge is the latency check: a request is slow when it took longer
// than the stable version's quantile bucket bound, and the canary fails when
// its share of slow requests is shown above the stable's by more than
// minEffect.
type LatencyJudge struct {
	// Disabled turns the latency check off.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// Histogram selects the duration histogram's _bucket series. Default:
	// istio_request_duration_milliseconds_bucket{reporter="source"}.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Histogram string `json:"histogram,omitempty"`
	// Quantile of the stable version's durations that marks a request as
	// slow. Default 0.9.
	// +optional
	Quantile Rate `json:"quantile,omitempty"`
	// MinEffect is how much larger the canary's slow share may be.
	// Default 0.10.
	// +optional
	MinEffect Rate `json:"minEffect,omitempty"`
}

// Arg is one template argument.
type Arg struct {
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_-]*$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// +kubebuilder:validation:MaxLength=1024
	Value string `json:"value"`
}

// ClusterLabels names a member in the metrics.
type ClusterLabels struct {
	// Member is the member's name.
	// +kubebuilder:validation:MinLength=1
	Member string `json:"member"`
	// Reporting is the value of the reporting label (the Prometheus external
	// label "cluster"), e.g. data-producer-1.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.:]*[A-Za-z0-9])?$`
	// +kubebuilder:validation:MaxLength=253
	Reporting string `json:"reporting,omitempty"`
	// Serving is the value of the serving label (Istio's
	// destination_cluster), e.g. argo-rollout1.
	// +optional
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.:]*[A-Za-z0-9])?$`
	// +kubebuilder:validation:MaxLength=253
	Serving string `json:"serving,omitempty"`
}

// Metric is a success-ratio check: either a query template with {{scope}}
// where the grouping goes (and optionally a count query), or a ratio of two
// counters.
//
// +kubebuilder:validation:XValidation:rule="has(self.query) != has(self.ratio)",message="give exactly one of query and ratio"
// +kubebuilder:validation:XValidation:rule="!has(self.countQuery) || has(self.query)",message="countQuery needs query"
type Metric struct {
	// Name identifies the metric in status and events.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Query is a PromQL template whose value is judged, e.g.
	// sum {{scope}} (rate(good[1m])) / sum {{scope}} (rate(total[1m])).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query,omitempty"`
	// CountQuery is a PromQL template yielding the request count behind
	// each value.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	CountQuery string `json:"countQuery,omitempty"`
	// Ratio builds both queries from two counter selectors.
	// +optional
	Ratio *Ratio `json:"ratio,omitempty"`
	// Threshold is what the value must satisfy to pass.
	Threshold Threshold `json:"threshold"`
	// ReportingLabel names the clusters that report requests; default
	// "cluster".
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	ReportingLabel string `json:"reportingLabel,omitempty"`
	// ServingLabel names the clusters that serve requests; default
	// "destination_cluster".
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-zA-Z_][a-zA-Z0-9_]*$`
	ServingLabel string `json:"servingLabel,omitempty"`
}

// Ratio is a success ratio of two counters over a window.
type Ratio struct {
	// Good selects the successful requests' counter.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Good string `json:"good"`
	// Total selects all requests' counter.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Total string `json:"total"`
	// Window is the range, e.g. 40s or 1m.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Window string `json:"window"`
	// Func is rate (the default) or irate.
	// +optional
	// +kubebuilder:validation:Enum=rate;irate
	Func string `json:"func,omitempty"`
}

// ThresholdOp is a comparison.
// +kubebuilder:validation:Enum=">";">=";"<";"<="
type ThresholdOp string

// Threshold operators.
const (
	OpGreater      ThresholdOp = ">"
	OpGreaterEqual ThresholdOp = ">="
	OpLess         ThresholdOp = "<"
	OpLessEqual    ThresholdOp = "<="
)

// Threshold is the condition a metric value must meet, e.g. "> 0.9".
type Threshold struct {
	Op ThresholdOp `json:"op"`
	// Value is a decimal number. It is a string because CRDs should not
	// carry floats, which do not round-trip exactly.
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=32
	Value string `json:"value"`
}

// Policy holds the fleet's limits.
type Policy struct {
	// UnreachableDeadline is how long a member may stay unreachable before
	// the fleet aborts.
	// +optional
	// +kubebuilder:default="2m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration such as 2m"
	UnreachableDeadline *metav1.Duration `json:"unreachableDeadline,omitempty"`
	// InconclusiveLimit is how long analysis may stay short of passing at a
	// barrier before onInconclusive applies.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration such as 5m"
	InconclusiveLimit *metav1.Duration `json:"inconclusiveLimit,omitempty"`
	// OnInconclusive is what happens when analysis stays short of passing
	// past inconclusiveLimit. Pause, the default, holds the fleet at the
	// barrier, at the weight it has, with condition Inconclusive and an
	// Event, until a person promotes (lockstep promote) or aborts, or the
	// evidence settles it (a failing verdict aborts, every verdict passing
	// ends the pause): as Argo Rollouts does with an Inconclusive
	// analysis, a person, not a timer, decides what "not proven" means.
	// Abort aborts the fleet.
	// +optional
	// +kubebuilder:validation:Enum=Pause;Abort
	OnInconclusive string `json:"onInconclusive,omitempty"`
	// OnNewRevision says what a new revision (a hotfix committed in the
	// middle of a canary) does to the canary under way. Supersede, the
	// default, replaces it in step, as Argo Rollouts does in one cluster:
	// every member leaves the old canary and the fleet starts the new
	// revision from its first step together. Refuse holds the fleet until a
	// retry token is sent.
	// +optional
	// +kubebuilder:validation:Enum=Supersede;Refuse
	OnNewRevision string `json:"onNewRevision,omitempty"`
	// NewRevisionDeadline is how long members may take to run a new
	// revision (Argo CD syncing it to each of them); after it the release
	// stops, naming the members still on another revision.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be a positive duration such as 5m"
	NewRevisionDeadline *metav1.Duration `json:"newRevisionDeadline,omitempty"`
	// AllowNewRevisionDuringProgress is the former switch: true is
	// onNewRevision: Supersede.
	// +optional
	AllowNewRevisionDuringProgress bool `json:"allowNewRevisionDuringProgress,omitempty"`
}

// OnNewRevision values.
const (
	OnNewRevisionSupersede = "Supersede"
	OnNewRevisionRefuse    = "Refuse"
)

// FleetRolloutStatus is what the coordinator observed and decided. It is
// the coordinator's only memory.
type FleetRolloutStatus struct {
	// ObservedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase summarises the fleet: Waiting, Holding, Promoting, Aborted,
	// Completed or Refused.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// Reason and Message explain the last decision.
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// CurrentStep is the lowest step index any member is at.
	// +optional
	CurrentStep *int32 `json:"currentStep,omitempty"`
	// Fleet is the coordinator's decision state; a restarted coordinator
	// resumes from it.
	// +optional
	Fleet FleetState `json:"fleet,omitempty"`
	// Analysis holds the latest verdicts.
	// +optional
	Analysis *AnalysisStatus `json:"analysis,omitempty"`
	// Shadow is what the analysis would have decided, with
	// spec.analysis.mode: Shadow.
	// +optional
	Shadow *ShadowStatus `json:"shadow,omitempty"`
	// Members is the last observation of each member.
	// +optional
	// +listType=map
	// +listMapKey=name
	Members []MemberStatus `json:"members,omitempty"`
	// Conditions are Ready, Valid, MembersReachable, Aborted, Completed
	// and, with the judge, AnalysisValid.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// History lists the latest decisions that changed something, oldest
	// first, at most MaxHistory entries.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	History []HistoryEntry `json:"history,omitempty"`
	// Releases are the latest releases, oldest first, at most
	// spec.releaseHistory of them.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	Releases []ReleaseRecord `json:"releases,omitempty"`
}

// ReleaseRecord is one release of a revision, for people reading back
// what happened (lockstep history).
type ReleaseRecord struct {
	Revision  string           `json:"revision"`
	StartedAt metav1.MicroTime `json:"startedAt"`
	// +optional
	EndedAt *metav1.MicroTime `json:"endedAt,omitempty"`
	// Outcome is InProgress, Completed, Aborted or Superseded (a newer
	// revision replaced it).
	// +kubebuilder:validation:Enum=InProgress;Completed;Aborted;Superseded
	Outcome string `json:"outcome"`
	// Reason and Message say why it ended (an abort's reason and cause).
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// Approvals are the waves and barriers people approved for it.
	// +optional
	Approvals []WaveApproval `json:"approvals,omitempty"`
	// AbortedBy is the person who aborted it (`lockstep abort` or the
	// dashboard; see AnnotationAbortedBy), when a person did.
	// +optional
	AbortedBy string `json:"abortedBy,omitempty"`
	// Evidence is the fleet's evidence when it ended (else the latest).
	// +optional
	Evidence *Evidence `json:"evidence,omitempty"`
}

// DefaultReleaseHistory is spec.releaseHistory's default.
const DefaultReleaseHistory = 20

// MaxHistory bounds status.history.
const MaxHistory = 32

// Phase summarises a FleetRollout.
type Phase string

// Phases.
const (
	PhaseWaiting   Phase = "Waiting"
	PhaseHolding   Phase = "Holding"
	PhasePromoting Phase = "Promoting"
	PhaseAborted   Phase = "Aborted"
	PhaseCompleted Phase = "Completed"
	PhaseRefused   Phase = "Refused"
	// PhaseShadow: the analysis runs in shadow mode; the members decide.
	PhaseShadow Phase = "Shadow"
)

// FleetState mirrors the decision state (decide.FleetStatus) field by field.
// Its times are MicroTimes: metav1.Time keeps whole seconds, which would
// shorten a hold by up to a second after every status round trip and make a
// restarted coordinator judge slightly different times than the one before.
type FleetState struct {
	// Revision is the pod-template hash being rolled out.
	// +optional
	Revision string `json:"revision,omitempty"`
	// BarrierStep is the pause step at which every member was last seen
	// paused together; StepEnteredAt is when.
	// +optional
	BarrierStep *int32 `json:"barrierStep,omitempty"`
	// +optional
	StepEnteredAt *metav1.MicroTime `json:"stepEnteredAt,omitempty"`
	// InconclusiveSince is when analysis at the barrier first fell short.
	// +optional
	InconclusiveSince *metav1.MicroTime `json:"inconclusiveSince,omitempty"`
	// InconclusivePaused is set when the barrier passed the inconclusive
	// limit and paused for a person (policy.onInconclusive: Pause).
	// +optional
	InconclusivePaused bool `json:"inconclusivePaused,omitempty"`
	// LastPromotedStep is the highest step promoted for Revision.
	// +optional
	LastPromotedStep *int32 `json:"lastPromotedStep,omitempty"`
	// CanaryStartedAt is when a member of Revision was first seen sending
	// the canary traffic; verdicts count from InitialDelay after it.
	// +optional
	CanaryStartedAt *metav1.MicroTime `json:"canaryStartedAt,omitempty"`
	// QuietSince is when every member was first seen on the revision at
	// canary weight 0, before its canary got traffic: no earlier canary
	// was served after it.
	// +optional
	QuietSince *metav1.MicroTime `json:"quietSince,omitempty"`
	// Approvals are the waves of this revision that a person approved:
	// who, and when the coordinator saw it.
	// Written whole by the coordinator.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Approvals []WaveApproval `json:"approvals,omitempty"`
	// Aborted is sticky until the revision changes or a retry is handled.
	// +optional
	Aborted bool `json:"aborted,omitempty"`
	// +optional
	AbortReason string `json:"abortReason,omitempty"`
	// +optional
	AbortMessage string `json:"abortMessage,omitempty"`
	// +optional
	AbortedAt *metav1.MicroTime `json:"abortedAt,omitempty"`
	// Completed is set once every member runs Revision as stable.
	// +optional
	Completed bool `json:"completed,omitempty"`
	// HandledRetryToken is the last spec.retryToken acted on.
	// +optional
	HandledRetryToken string `json:"handledRetryToken,omitempty"`
	// +optional
	RetriedAt *metav1.MicroTime `json:"retriedAt,omitempty"`
	// RetryPending lists members sent a retry that have not left the abort.
	// +optional
	// +listType=set
	RetryPending []string `json:"retryPending,omitempty"`
	// RevisionSeenAt is when Revision became the wanted revision.
	// +optional
	RevisionSeenAt *metav1.MicroTime `json:"revisionSeenAt,omitempty"`
	// Wave is the batch in canary, counted across spec.waves in release
	// order; WaveStartedAt is when it started and WaveCompletedAt when the
	// wave's last batch completed (its soak started).
	// +optional
	Wave int32 `json:"wave,omitempty"`
	// +optional
	WaveStartedAt *metav1.MicroTime `json:"waveStartedAt,omitempty"`
	// +optional
	WaveCompletedAt *metav1.MicroTime `json:"waveCompletedAt,omitempty"`
	// Failed lists clusters whose batch aborted within their wave's
	// maxFailures: the release went on without them.
	// +optional
	// +listType=set
	Failed []string `json:"failed,omitempty"`
}

// MemberStatus is the last observation of one member.
type MemberStatus struct {
	// Name is the member's cluster name.
	Name string `json:"name"`
	// Reachable is false when the coordinator could not read the member.
	Reachable bool `json:"reachable"`
	// UnreachableSince is when the current outage was first seen.
	// +optional
	UnreachableSince *metav1.MicroTime `json:"unreachableSince,omitempty"`
	// LastContact is when the member's Rollout was last read.
	// +optional
	LastContact *metav1.Time `json:"lastContact,omitempty"`
	// Error is the last error reaching the member, as one line.
	// +optional
	Error string `json:"error,omitempty"`
	// Reason says why an unreachable member could not be read:
	// Unreachable, Forbidden (403: the coordinator's role does not allow
	// it) or Unauthorized (401: its token was refused).
	// +optional
	Reason string `json:"reason,omitempty"`
	// Revision is the Rollout's status.currentPodHash; StableRevision its
	// status.stableRS.
	// +optional
	Revision string `json:"revision,omitempty"`
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`
	// Step is status.currentStepIndex.
	// +optional
	Step *int32 `json:"step,omitempty"`
	// Phase is the Rollout's status.phase.
	// +optional
	Phase string `json:"phase,omitempty"`
	// Paused is true when the Rollout is paused at a canary pause step.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// Aborted is the Rollout's status.abort.
	// +optional
	Aborted bool `json:"aborted,omitempty"`
	// Weights are the VirtualService weights last seen.
	// +optional
	Weights *Weights `json:"weights,omitempty"`
	// Wave is the member's wave and WaveState where it stands in the
	// release: NotStarted, InCanary, Completed or Aborted.
	// +optional
	Wave string `json:"wave,omitempty"`
	// +optional
	WaveState string `json:"waveState,omitempty"`
	// Verdict is the member's latest analysis verdict.
	// +optional
	Verdict *Verdict `json:"verdict,omitempty"`
}

// Weights are the traffic weights of a canary route.
type Weights struct {
	Stable int32 `json:"stable"`
	Canary int32 `json:"canary"`
}

// WaveApproval records the approval of a wave, or of a named barrier.
type WaveApproval struct {
	// Wave or Barrier is what was approved.
	// +optional
	Wave string `json:"wave,omitempty"`
	// +optional
	Barrier  string           `json:"barrier,omitempty"`
	Approver string           `json:"approver"`
	At       metav1.MicroTime `json:"at"`
	// Approval names the FleetApproval.
	Approval string `json:"approval"`
}

// ShadowStatus is the record of shadow mode for one revision: the latest
// verdict, and the first moments the analysis would have aborted the
// fleet, or would have let it pass a barrier, with the evidence then.
type ShadowStatus struct {
	// Revision is the revision judged.
	Revision string `json:"revision"`
	// Verdict is the latest fleet verdict: Pass, Inconclusive or Fail.
	// +optional
	Verdict string `json:"verdict,omitempty"`
	// WouldAbortAt is when the analysis first failed this revision: an
	// active coordinator would have aborted every member then.
	// +optional
	WouldAbortAt *metav1.MicroTime `json:"wouldAbortAt,omitempty"`
	// WouldAbort is why, with the evidence.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	WouldAbort string `json:"wouldAbort,omitempty"`
	// WouldPassAt is when every verdict first passed: an active
	// coordinator could have promoted a barrier then.
	// +optional
	WouldPassAt *metav1.MicroTime `json:"wouldPassAt,omitempty"`
	// Evidence is the fleet's evidence at WouldAbortAt (else the latest).
	// +optional
	Evidence *Evidence `json:"evidence,omitempty"`
}

// AnalysisStatus holds the latest evaluation.
type AnalysisStatus struct {
	// EvaluatedAt is when the metrics were last evaluated.
	EvaluatedAt metav1.MicroTime `json:"evaluatedAt"`
	// Revision is the revision the evaluation was taken for.
	Revision string `json:"revision"`
	// Global is the fleet-wide verdict.
	Global Verdict `json:"global"`
}

// Verdict is one analysis verdict.
type Verdict struct {
	// Verdict is Pass, Inconclusive or Fail.
	// +kubebuilder:validation:Enum=Pass;Inconclusive;Fail
	Verdict string `json:"verdict"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message,omitempty"`
	// Revision and EvaluatedAt say what the verdict is about.
	// +optional
	Revision string `json:"revision,omitempty"`
	// +optional
	EvaluatedAt *metav1.MicroTime `json:"evaluatedAt,omitempty"`
	// Requests is the request count behind the verdict, when known, as a
	// decimal string.
	// +optional
	Requests string `json:"requests,omitempty"`
	// Evidence is what the sequential judge counted and computed.
	// +optional
	Evidence *Evidence `json:"evidence,omitempty"`
}

// RequestCounts are one version's requests in one scope since the evidence
// window's start, and how many failed.
type RequestCounts struct {
	Requests int64 `json:"requests"`
	Failures int64 `json:"failures"`
}

// Evidence is the sequential judge's evidence for one scope. Numbers that
// are not counts are decimal strings.
type Evidence struct {
	// Since is when the window opened: the revision's canary's first
	// traffic.
	// +optional
	Since *metav1.MicroTime `json:"since,omitempty"`
	// Canary and Stable are the counts.
	Canary RequestCounts `json:"canary"`
	Stable RequestCounts `json:"stable"`
	// Zone is the indifference zone judged in: Relative or Absolute.
	// +optional
	Zone string `json:"zone,omitempty"`
	// LogLikelihoodRatio is the pass test's statistic (in the absolute
	// zone also the threshold test that fails at AbortAt); the canary
	// passes at PassAt.
	// +optional
	LogLikelihoodRatio string `json:"logLikelihoodRatio,omitempty"`
	// LogEValue is the stratified comparison with the stable version: the
	// log of its e-value, which fails the canary at AbortAt. Strata counts
	// the slices of the window that carried information.
	// +optional
	LogEValue string `json:"logEValue,omitempty"`
	// +optional
	Strata int32 `json:"strata,omitempty"`
	// +optional
	AbortAt string `json:"abortAt,omitempty"`
	// +optional
	PassAt string `json:"passAt,omitempty"`
	// CanaryFailureRate and StableFailureRate are always-valid confidence
	// intervals, "[lo, hi]".
	// +optional
	CanaryFailureRate string `json:"canaryFailureRate,omitempty"`
	// +optional
	StableFailureRate string `json:"stableFailureRate,omitempty"`
	// Latency is the latency comparison, where it ran.
	// +optional
	Latency *LatencyEvidence `json:"latency,omitempty"`
	// Decision is what the judge made of it (its reason).
	// +optional
	Decision string `json:"decision,omitempty"`
}

// LatencyEvidence is the latency comparison of one serving cluster.
type LatencyEvidence struct {
	// Bound is the stable version's quantile bucket bound, in the
	// histogram's unit; requests above it are slow.
	Bound string `json:"bound"`
	// CanarySlow and StableSlow count requests (all) and slow ones
	// (as failures).
	CanarySlow RequestCounts `json:"canarySlow"`
	StableSlow RequestCounts `json:"stableSlow"`
	// LogEValue is the stratified comparison of slow shares; the canary
	// is slower at AbortAt.
	// +optional
	LogEValue string `json:"logEValue,omitempty"`
	// +optional
	AbortAt string `json:"abortAt,omitempty"`
}

// HistoryEntry is one decision a person may want to read later.
type HistoryEntry struct {
	Time metav1.Time `json:"time"`
	// Action is Wait, Hold, Promote, Abort, Refuse or Complete.
	Action string `json:"action"`
	Reason string `json:"reason"`
	// Step is the step promoted or held at, if any.
	// +optional
	Step *int32 `json:"step,omitempty"`
	// Revision is the fleet revision at the time.
	// +optional
	Revision string `json:"revision,omitempty"`
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message"`
}

// Condition types.
const (
	// ConditionReady is True while the fleet is progressing or complete
	// and nothing is wrong.
	ConditionReady = "Ready"
	// ConditionValid is False when the spec or the members' Rollouts cannot
	// be coordinated; the coordinator then touches nothing.
	ConditionValid = "Valid"
	// ConditionMembersReachable is False while some member cannot be read.
	ConditionMembersReachable = "MembersReachable"
	// ConditionAborted is True once the fleet was aborted.
	ConditionAborted = "Aborted"
	// ConditionCompleted is True when every member runs the revision as
	// stable.
	ConditionCompleted = "Completed"
	// ConditionAnalysisValid is False when the judge's data shows its
	// configuration cannot work (a counter or histogram with no series, a
	// histogram without buckets); the message names the field.
	ConditionAnalysisValid = "AnalysisValid"
	// ConditionInconclusive is True while the fleet is paused at a barrier
	// whose analysis stayed short of passing past the inconclusive limit
	// (policy.onInconclusive: Pause): a person promotes or aborts.
	ConditionInconclusive = "Inconclusive"
	// ConditionFalseAbortRateCovered is False when analysis that can abort
	// the fleet lies outside the judge's falseAbortRate (threshold metrics
	// abort on one failing look); the message names them.
	ConditionFalseAbortRateCovered = "FalseAbortRateCovered"
	// ConditionClusterSecretsValid is False while a member's cluster
	// Secret is broken or duplicated; the fleet holds until it is fixed.
	ConditionClusterSecretsValid = "ClusterSecretsValid"
	// ConditionNotificationsConfigured is False when the FleetRollout's
	// notifications.argoproj.io/subscribe.* annotations cannot be
	// delivered (an unknown trigger or service, or a problem in the
	// notifications ConfigMap they use); the message names the annotation
	// or the ConfigMap key. It never changes a decision. It is absent when
	// nothing is subscribed.
	ConditionNotificationsConfigured = "NotificationsConfigured"
	// ConditionMembersSecure is False when a member is reached without
	// checking its certificate (tlsClientConfig.insecure) or over plain
	// http: the coordinator still works, and the message says which.
	ConditionMembersSecure = "MembersSecure"
)

// Condition reasons of the coordinator's own making. Decision reasons
// (decide.Reason values such as BarrierPassed or AnalysisFailed) are used
// verbatim as well.
const (
	ReasonValid               = "Valid"
	ReasonInvalidSpec         = "InvalidSpec"
	ReasonUnknownMember       = "UnknownMember"
	ReasonNoMembers           = "NoMembers"
	ReasonRevisionUnknown     = "RevisionUnknown"
	ReasonRevisionsDiverge    = "RevisionsDiverge"
	ReasonAllReachable        = "AllReachable"
	ReasonUnreachable         = "Unreachable"
	ReasonNotAborted          = "NotAborted"
	ReasonNotCompleted        = "NotCompleted"
	ReasonStatusWriteFailure  = "StatusWriteFailed"
	ReasonAnalysisData        = "AnalysisDataFound"
	ReasonAnalysisDataMissing = "AnalysisDataMissing"
	ReasonNotPaused           = "NotPaused"
	ReasonNoAnalysis          = "NoAnalysis"
	ReasonJudgeOnly           = "JudgeOnly"
	ReasonThresholdMetrics    = "ThresholdMetricsOutsideBudget"
	// ReasonClusterSecretsValid, ReasonInvalidClusterSecret and
	// ReasonDuplicateClusterSecret are the reasons of ClusterSecretsValid.
	ReasonClusterSecretsValid    = "ClusterSecretsValid"
	ReasonInvalidClusterSecret   = "InvalidClusterSecret"
	ReasonDuplicateClusterSecret = "DuplicateClusterSecret"
	// ReasonForbidden and ReasonUnauthorized on MembersReachable (and on a
	// member's status) say that a member answered but refused the
	// coordinator's credentials (401) or an operation (403).
	ReasonForbidden    = "Forbidden"
	ReasonUnauthorized = "Unauthorized"
	// ReasonSubscriptionsValid and ReasonInvalidSubscriptions are the
	// reasons of NotificationsConfigured.
	ReasonSubscriptionsValid   = "SubscriptionsValid"
	ReasonInvalidSubscriptions = "InvalidSubscriptions"
	// ReasonVerifiedTLS and ReasonInsecureMember are the reasons of
	// MembersSecure.
	ReasonVerifiedTLS    = "VerifiedTLS"
	ReasonInsecureMember = "InsecureMember"
)

// Annotations on a FleetRollout that say who aborted its fleet (set by
// `lockstep abort` and the dashboard, for the revision then released): the
// hub's admission policy lockstep-fleetrollout-aborted-by holds
// AnnotationAbortedBy to the user who sets it, and the coordinator copies
// it into status.releases[].abortedBy.
const (
	AnnotationAbortedBy       = "lockstep.dev/aborted-by"
	AnnotationAbortedRevision = "lockstep.dev/aborted-revision"
)

// Annotation on an Argo CD cluster Secret giving the member's reporting
// label value (its Prometheus' external "cluster" label).
const AnnotationReportingCluster = "lockstep.dev/reporting-cluster"
