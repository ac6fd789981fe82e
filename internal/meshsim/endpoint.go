package meshsim

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Annotations that inject faults into a fake pod. They let a lab scenario
// make one version of the helloworld app misbehave, which is what a canary
// analysis has to catch.
const (
	// AnnotationErrorRate is the fraction of requests, from 0 to 1, that
	// the pod answers with 503. "0.3" fails 30 % of requests.
	AnnotationErrorRate = "meshsim.lockstep.dev/error-rate"
	// AnnotationLatency is a Go duration, such as "150ms", that the pod
	// waits before answering each request.
	AnnotationLatency = "meshsim.lockstep.dev/latency"
)

// unknown is what Istio reports for a label whose value it cannot tell.
const unknown = "unknown"

// Endpoint is one Ready backend of a service, in some cluster of the mesh,
// with everything the data plane needs to answer and label a request for
// it.
type Endpoint struct {
	// Cluster is the Istio cluster ID the pod runs in.
	Cluster string
	// Pod and Namespace name the pod.
	Pod       string
	Namespace string
	// Service is the name of the service, in Namespace, the endpoint was
	// found under.
	Service string
	// IP is the endpoint address from the EndpointSlice.
	IP string
	// Version is the helloworld version the pod answers with: its
	// "version" label, or else the version in its image name or tag.
	Version string
	// Workload is the pod's owning workload as Istio names it: the
	// Deployment or Rollout rather than the ReplicaSet.
	Workload string
	// App is the pod's "app" label, which Istio reports as the app.
	App string
	// ServiceAccount forms the pod's SPIFFE principal.
	ServiceAccount string
	// CanonicalService and CanonicalRevision follow Istio's canonical
	// service labels.
	CanonicalService  string
	CanonicalRevision string
	// ErrorRate is the fraction of requests answered with 503.
	ErrorRate float64
	// Latency is added before every answer.
	Latency time.Duration
}

// Key identifies the service the endpoint belongs to.
func (e Endpoint) Key() ServiceKey {
	return ServiceKey{Namespace: e.Namespace, Name: e.Service}
}

// Peer describes the endpoint as the workload identity Istio's metadata
// exchange would attach to it.
func (e Endpoint) Peer() Peer {
	return Peer{
		Workload:          e.Workload,
		Namespace:         e.Namespace,
		App:               e.App,
		Version:           e.Version,
		Cluster:           e.Cluster,
		Principal:         principal(e.Namespace, cmp.Or(e.ServiceAccount, "default")),
		CanonicalService:  e.CanonicalService,
		CanonicalRevision: e.CanonicalRevision,
	}
}

// Peer is one side of a request as Istio's telemetry labels describe it.
// An empty field is reported as "unknown" (the canonical revision as
// "latest"), which is what Istio does when metadata is missing.
type Peer struct {
	Workload          string `json:"workload,omitempty"`
	Namespace         string `json:"namespace,omitempty"`
	App               string `json:"app,omitempty"`
	Version           string `json:"version,omitempty"`
	Cluster           string `json:"cluster,omitempty"`
	Principal         string `json:"principal,omitempty"`
	CanonicalService  string `json:"canonicalService,omitempty"`
	CanonicalRevision string `json:"canonicalRevision,omitempty"`
}

// GatewayPeer is the identity of the Istio ingress gateway of a cluster,
// the source of every request meshsim routes.
func GatewayPeer(cluster string) Peer {
	return Peer{
		Workload:          "istio-ingressgateway",
		Namespace:         "istio-system",
		App:               "istio-ingressgateway",
		Cluster:           cluster,
		Principal:         principal("istio-system", "istio-ingressgateway-service-account"),
		CanonicalService:  "istio-ingressgateway",
		CanonicalRevision: "latest",
	}
}

func principal(namespace, serviceAccount string) string {
	return "spiffe://" + ClusterDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// Fault is the misbehaviour a pod's annotations ask for.
type Fault struct {
	ErrorRate float64
	Latency   time.Duration
}

// ParseFault reads the fault-injection annotations. An invalid value is
// ignored, so that a typo never takes a pod out of the mesh, and explained
// in the returned errors for the caller to log.
func ParseFault(annotations map[string]string) (Fault, []error) {
	var f Fault
	var problems []error
	if raw, ok := annotations[AnnotationErrorRate]; ok {
		rate, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("annotation %s=%q ignored: not a number", AnnotationErrorRate, raw))
		case math.IsNaN(rate) || rate < 0 || rate > 1:
			problems = append(problems, fmt.Errorf("annotation %s=%q ignored: must be between 0 and 1", AnnotationErrorRate, raw))
		default:
			f.ErrorRate = rate
		}
	}
	if raw, ok := annotations[AnnotationLatency]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("annotation %s=%q ignored: not a duration such as 150ms", AnnotationLatency, raw))
		case d < 0:
			problems = append(problems, fmt.Errorf("annotation %s=%q ignored: must not be negative", AnnotationLatency, raw))
		default:
			f.Latency = d
		}
	}
	return f, problems
}

// versionPattern matches the version markers of Istio's helloworld images:
// the tag "v3" or the name suffix "-v2" in examples-helloworld-v2.
var versionPattern = regexp.MustCompile(`^v[0-9]+$`)

// VersionFromImage extracts the helloworld version from an image
// reference, or returns "" when it carries none. A "vN" tag wins over the
// name because it is the more specific of the two; the name suffix is how
// Istio publishes its examples (docker.io/istio/examples-helloworld-v2).
func VersionFromImage(image string) string {
	ref := image
	if at := strings.Index(ref, "@"); at >= 0 {
		ref = ref[:at]
	}
	// The tag follows the last colon only if that colon comes after the
	// last slash; otherwise it separates a registry host from its port.
	name := ref
	if colon := strings.LastIndex(ref, ":"); colon > strings.LastIndex(ref, "/") {
		name = ref[:colon]
		if tag := ref[colon+1:]; versionPattern.MatchString(tag) {
			return tag
		}
	}
	last := name[strings.LastIndex(name, "/")+1:]
	if dash := strings.LastIndex(last, "-"); dash >= 0 && versionPattern.MatchString(last[dash+1:]) {
		return last[dash+1:]
	}
	return ""
}

// PodVersion returns the version a helloworld pod answers with: the
// "version" label when set, else the version in its first container's
// image, else "unknown".
func PodVersion(pod *corev1.Pod) string {
	if v := pod.Labels["version"]; v != "" {
		return v
	}
	if len(pod.Spec.Containers) > 0 {
		if v := VersionFromImage(pod.Spec.Containers[0].Image); v != "" {
			return v
		}
	}
	return unknown
}

// WorkloadName returns the workload Istio attributes a pod to. Pods of a
// Deployment or an Argo Rollout are owned by a ReplicaSet named after the
// owner plus the pod-template hash; Istio reports the owner, so the hash
// is stripped. Argo Rollouts labels its pods rollouts-pod-template-hash,
// Deployments pod-template-hash. A pod with no controller is its own
// workload.
func WorkloadName(pod *corev1.Pod) string {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		if ref.Kind == "ReplicaSet" {
			for _, label := range []string{"rollouts-pod-template-hash", "pod-template-hash"} {
				if hash := pod.Labels[label]; hash != "" && strings.HasSuffix(ref.Name, "-"+hash) {
					return strings.TrimSuffix(ref.Name, "-"+hash)
				}
			}
		}
		return ref.Name
	}
	return pod.Name
}

// EndpointFromPod builds the endpoint of pod at address ip behind service
// svc in cluster. The returned errors explain ignored fault annotations.
func EndpointFromPod(cluster string, svc ServiceKey, ip string, pod *corev1.Pod) (Endpoint, []error) {
	if pod == nil {
		return Endpoint{}, []error{errors.New("no pod given")}
	}
	fault, problems := ParseFault(pod.Annotations)
	labels := pod.Labels
	workload := WorkloadName(pod)
	return Endpoint{
		Cluster:           cluster,
		Pod:               pod.Name,
		Namespace:         cmp.Or(pod.Namespace, svc.Namespace),
		Service:           svc.Name,
		IP:                ip,
		Version:           PodVersion(pod),
		Workload:          workload,
		App:               labels["app"],
		ServiceAccount:    cmp.Or(pod.Spec.ServiceAccountName, "default"),
		CanonicalService:  cmp.Or(labels["service.istio.io/canonical-name"], labels["app.kubernetes.io/name"], labels["app"], workload),
		CanonicalRevision: cmp.Or(labels["service.istio.io/canonical-revision"], labels["app.kubernetes.io/version"], labels["version"], "latest"),
		ErrorRate:         fault.ErrorRate,
		Latency:           fault.Latency,
	}, problems
}

// EndpointsFromSlices returns the Ready endpoints of service svc in one
// cluster, from that cluster's EndpointSlices, each joined to its pod
// through the slice's targetRef. Slices of other services are skipped, so
// the caller may pass a whole namespace. An address backed by no known pod
// is skipped too: meshsim cannot answer for a pod it cannot see, and the
// informers close that gap within moments. Addresses are deduplicated
// because a pod can appear in two slices while the controller moves it;
// the result is sorted by pod name so that picks are reproducible.
func EndpointsFromSlices(cluster string, svc ServiceKey, endpointSlices []*discoveryv1.EndpointSlice, pod func(name string) (*corev1.Pod, bool)) []Endpoint {
	seen := map[string]bool{}
	var out []Endpoint
	for _, slice := range endpointSlices {
		if slice == nil || slice.Namespace != svc.Namespace || slice.Labels[discoveryv1.LabelServiceName] != svc.Name {
			continue
		}
		if slice.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		for _, ep := range slice.Endpoints {
			// The API defines a missing ready condition as ready.
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) == 0 || ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			ip := ep.Addresses[0]
			if seen[ip] {
				continue
			}
			p, ok := pod(ep.TargetRef.Name)
			if !ok {
				continue
			}
			seen[ip] = true
			e, _ := EndpointFromPod(cluster, svc, ip, p)
			out = append(out, e)
		}
	}
	SortEndpoints(out)
	return out
}

// SortEndpoints orders endpoints by cluster, then pod, then address, the
// order Topology implementations return them in.
func SortEndpoints(eps []Endpoint) {
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.IP, b.IP))
	})
}
