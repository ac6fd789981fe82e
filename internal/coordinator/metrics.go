package coordinator

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the coordinator's Prometheus series, on a registry of their
// own so that they can be served on the coordinator's metrics address
// without controller-runtime's or the process' globals.
type Metrics struct {
	Registry *prometheus.Registry

	currentStep   *prometheus.GaugeVec
	stepSkew      *prometheus.GaugeVec
	memberStep    *prometheus.GaugeVec
	verdict       *prometheus.GaugeVec
	verdictValue  *prometheus.GaugeVec
	aborted       *prometheus.GaugeVec
	promotions    *prometheus.CounterVec
	aborts        *prometheus.CounterVec
	stepDuration  *prometheus.HistogramVec
	patchDuration *prometheus.HistogramVec
	reconcileErrs *prometheus.CounterVec
	requests      *prometheus.CounterVec
	phaseDuration *prometheus.HistogramVec
}

// NewMetrics creates and registers the series.
func NewMetrics() *Metrics {
	fr := []string{"namespace", "fleetrollout"}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		currentStep: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockstep_fleet_current_step", Help: "Lowest canary step index any member is at.",
		}, fr),
		stepSkew: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockstep_fleet_step_skew", Help: "Highest minus lowest step index across reachable members.",
		}, fr),
		memberStep: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockstep_member_step", Help: "Canary step index of each member.",
		}, append(fr, "cluster")),
		verdict: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockstep_analysis_verdict", Help: "1 for the current verdict of each scope (global or a cluster), 0 for the others.",
		}, append(fr, "scope", "verdict")),
		verdictValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockstep_analysis_value", Help: "Latest metric value per scope and side (global, reporting, serving).",
		}, append(fr, "metric", "scope", "side")),
		aborted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockstep_fleet_aborted", Help: "1 while the fleet is aborted, labelled with the abort reason.",
		}, append(fr, "reason")),
		promotions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_promotions_total", Help: "Promote patches applied, per cluster.",
		}, append(fr, "cluster")),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_aborts_total", Help: "Abort patches applied, per cluster and reason.",
		}, append(fr, "cluster", "reason")),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lockstep_step_seconds", Help: "Time from the fleet reaching a barrier to its promotion.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}, fr),
		patchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lockstep_patch_seconds", Help: "Latency of a patch to a member, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"cluster", "kind"}),
		reconcileErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_reconcile_errors_total", Help: "Reconciles that ended in an error.",
		}, fr),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_kube_requests_total", Help: "API requests the coordinator sent, per cluster (hub or a member), method and code; health probes excluded.",
		}, []string{"cluster", "method", "code"}),
		phaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lockstep_reconcile_phase_seconds", Help: "Time spent in each phase of a reconcile (readSpec, readMembers, observeMembers, pickRevision, decide, persist, apply): where a barrier's promotion spends its time.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"phase"}),
	}
	m.Registry.MustRegister(m.currentStep, m.stepSkew, m.memberStep, m.verdict, m.verdictValue, m.aborted,
		m.promotions, m.aborts, m.stepDuration, m.patchDuration, m.reconcileErrs, m.requests, m.phaseDuration,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

var verdicts = []string{"Pass", "Inconclusive", "Fail"}

func (m *Metrics) setVerdict(ns, name, scope, verdict string) {
	for _, v := range verdicts {
		val := 0.0
		if v == verdict {
			val = 1
		}
		m.verdict.WithLabelValues(ns, name, scope, v).Set(val)
	}
}

// Transport counts the API requests rt sends to cluster.
func (m *Metrics) Transport(cluster string, rt http.RoundTripper) http.RoundTripper {
	return promhttp.InstrumentRoundTripperCounter(m.requests.MustCurryWith(prometheus.Labels{"cluster": cluster}), rt)
}
