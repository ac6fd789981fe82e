// Package decide holds Lockstep's coordination rules: given a snapshot of
// every member cluster's Rollout, the latest analysis verdicts and the fleet
// state recorded in the hub's status, Decide says what the hub should do next
// (wait, hold, promote, abort, refuse or report completion) and which patches
// to send to which member.
//
// The package is pure on purpose. It imports only the standard library and
// k8s.io/apimachinery (for the patch type), performs no I/O, reads no clock and
// keeps no state between calls: the caller passes the time in and persists the
// returned FleetStatus. That makes every rule a table test, and it makes a
// restarted hub reach the same decision as the one that crashed, because
// everything Decide remembers lives in FleetStatus.
//
// The analysis vocabulary (Verdict, AnalysisVerdict, Analysis) is defined here
// rather than in package analysis so that the decision rules do not depend on
// how verdicts are produced: package analysis imports decide and produces these
// types, never the other way round.
//
// Callers must persist Decision.Next before applying Decision.Patches. If the
// hub crashes between the two, the recorded LastPromotedStep lets the next
// Decide finish the promotion for members still paused at that step instead of
// waiting forever on a skew it created itself; the patches carry JSON-patch
// "test" operations so that re-issuing one can never move a member twice.
package decide
