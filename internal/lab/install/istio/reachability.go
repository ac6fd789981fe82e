package istio

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"lockstep.dev/lockstep/internal/lab/install"
)

// ReachabilityStatus is the verdict of a reachability check from one
// cluster.
type ReachabilityStatus string

const (
	// Reachable: every wanted helloworld version answered.
	Reachable ReachabilityStatus = "Reachable"
	// Unreachable: some version never answered (or curl could not run).
	Unreachable ReachabilityStatus = "Unreachable"
	// Unverifiable: the data plane is simulated; no Envoy carries
	// traffic there, so reachability cannot be checked at all. It is not a
	// pass.
	Unverifiable ReachabilityStatus = "Unverifiable"
)

// Reachability is what the verification sample's curl in one cluster
// heard.
type Reachability struct {
	// Cluster is the source cluster.
	Cluster string
	Status  ReachabilityStatus
	// Versions counts the answers per helloworld version.
	Versions map[string]int
	// Attempts is how many requests were sent.
	Attempts int
	// Failures counts the requests that failed or gave no version.
	Failures int
	// Missing lists the wanted versions that never answered.
	Missing []string
	// Err is the last request error, or why nothing could be sent.
	Err error
}

// Seen returns the versions that answered, sorted.
func (r Reachability) Seen() []string {
	var out []string
	for v, n := range r.Versions {
		if n > 0 {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// String is one line for a person.
func (r Reachability) String() string {
	switch r.Status {
	case Unverifiable:
		return fmt.Sprintf("%s: cannot be checked: %v", r.Cluster, r.Err)
	case Reachable:
		return fmt.Sprintf("%s: reached %s (%d/%d requests answered)", r.Cluster, strings.Join(r.Seen(), ", "), r.Attempts-r.Failures, r.Attempts)
	}
	s := fmt.Sprintf("%s: reached [%s], never %s (%d/%d requests answered)", r.Cluster, strings.Join(r.Seen(), ", "),
		strings.Join(r.Missing, ", "), r.Attempts-r.Failures, r.Attempts)
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	return s
}

// ReachOptions tune a CheckReachability.
type ReachOptions struct {
	// Attempts is the number of requests (default 10: the load balancer
	// picks each endpoint at random, and ten misses of one of two
	// versions happen once in a thousand runs).
	Attempts int
	// Want are the versions that must answer (default v1 and v2).
	Want []string
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
}

// CheckReachability runs the guide's check from one cluster: `curl -sS
// helloworld.sample:5000/hello` several times in the sample's curl pod
// (an exec through the apiserver, as kubectl exec does) and reports which
// helloworld versions answered. Both v1 and v2 answering means the request
// crossed to the other network and back. On a simulated data plane it
// returns Unverifiable without sending anything.
func CheckReachability(ctx context.Context, from *install.Cluster, o ReachOptions) Reachability {
	if o.Attempts <= 0 {
		o.Attempts = 10
	}
	if len(o.Want) == 0 {
		o.Want = []string{"v1", "v2"}
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	r := Reachability{Cluster: from.Name, Versions: map[string]int{}}
	if from.DataPlane == install.DataPlaneSimulated {
		r.Status = Unverifiable
		r.Err = fmt.Errorf("simulated data plane (kwok nodes): no Envoy or helloworld process runs, so no request can cross the mesh")
		return r
	}
	pod, err := curlPod(ctx, from)
	if err != nil {
		r.Status, r.Err, r.Missing = Unreachable, err, slices.Clone(o.Want)
		return r
	}
	var outs []string
	var errs []error
	for range o.Attempts {
		rctx, cancel := context.WithTimeout(ctx, o.Timeout)
		out, err := execIn(rctx, from, pod, "curl", []string{"curl", "-sS", "helloworld.sample:5000/hello"})
		cancel()
		outs, errs = append(outs, out), append(errs, err)
	}
	return judge(r, outs, errs, o.Want)
}

var versionRE = regexp.MustCompile(`Hello version: (v[0-9]+)`)

// judge turns the answers of the requests into a verdict. An answer without
// a version counts as a failure, never as a pass.
func judge(r Reachability, outs []string, errs []error, want []string) Reachability {
	if r.Versions == nil {
		r.Versions = map[string]int{}
	}
	for i, out := range outs {
		r.Attempts++
		if errs[i] != nil {
			r.Failures++
			r.Err = errs[i]
			continue
		}
		m := versionRE.FindStringSubmatch(out)
		if m == nil {
			r.Failures++
			r.Err = fmt.Errorf("answer without a helloworld version: %q", strings.TrimSpace(out))
			continue
		}
		r.Versions[m[1]]++
	}
	r.Missing = nil
	for _, v := range want {
		if r.Versions[v] == 0 {
			r.Missing = append(r.Missing, v)
		}
	}
	r.Status = Reachable
	if len(r.Missing) > 0 {
		r.Status = Unreachable
	}
	return r
}

// curlPod finds a running, ready pod of the sample's curl Deployment.
func curlPod(ctx context.Context, cl *install.Cluster) (string, error) {
	pods, err := cl.Kube.CoreV1().Pods(SampleNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=curl"})
	if err != nil {
		return "", fmt.Errorf("%s: list curl pods in %s: %w", cl.Name, SampleNamespace, err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return p.Name, nil
			}
		}
	}
	return "", fmt.Errorf("%s: no ready curl pod in namespace %s (is the istio-verify-sample action done?)", cl.Name, SampleNamespace)
}

// execIn runs command in a container and returns its stdout; a non-zero
// exit or any stderr output is an error carrying that output. It speaks
// WebSocket and falls back to SPDY for older apiservers, as kubectl does.
func execIn(ctx context.Context, cl *install.Cluster, pod, container string, command []string) (string, error) {
	cfg := cl.Config
	req := cl.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(SampleNamespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return "", fmt.Errorf("exec in %s/%s: %w", SampleNamespace, pod, err)
	}
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		return "", fmt.Errorf("exec in %s/%s: %w", SampleNamespace, pod, err)
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return "", fmt.Errorf("exec in %s/%s: %w", SampleNamespace, pod, err)
	}
	var stdout, stderr bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	if msg := strings.TrimSpace(stderr.String()); err != nil || msg != "" {
		if msg == "" && err != nil {
			msg = err.Error()
		}
		return stdout.String(), fmt.Errorf("%s in %s/%s: %s", strings.Join(command, " "), SampleNamespace, pod, msg)
	}
	return stdout.String(), nil
}
