// Package verify runs the checks the seed guide does by eye, each one a
// line with ✓ or ✗ and, when it fails, the fix: Argo CD reaches every
// workload with its cluster Secret, the coordinator's own credentials
// allow exactly its workload role, Argo Rollouts controllers are healthy,
// Thanos Query sees a store for every workload's cluster label, Grafana's
// Thanos datasource works, and the Istio sample answers from both clusters
// on either side.
//
// Checks reach in-cluster services through the API server's service proxy
// unless the caller gives direct URLs (the local fleet runs them as
// processes). It may import client-go, config, internal/access, internal/fleet,
// internal/lab/install and its sub-packages' names.
package verify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"lockstep.dev/lockstep/internal/lab/install"
)

// Result of one check.
type Result struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	// Warning marks a check that passed with a risk worth fixing.
	Warning bool   `json:"warning,omitempty"`
	Detail  string `json:"detail"`
	Fix     string `json:"fix,omitempty"`
}

// Line renders a result as the CLI prints it.
func (r Result) Line() string {
	mark := "✓"
	switch {
	case r.Skipped:
		mark = "-"
	case !r.OK:
		mark = "✗"
	case r.Warning:
		mark = "!"
	}
	s := fmt.Sprintf("%s %s: %s", mark, r.Name, r.Detail)
	if (!r.OK || r.Warning) && !r.Skipped && r.Fix != "" {
		s += "\n    fix: " + r.Fix
	}
	return s
}

// Failed counts the failed (not skipped) results.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if !r.OK && !r.Skipped {
			n++
		}
	}
	return n
}

// Getter fetches a path of an HTTP service (a direct URL or the API
// server's service proxy).
type Getter func(ctx context.Context, path string) ([]byte, error)

// ServiceProxy reaches namespace/service:port through a cluster's API
// server, as `kubectl get --raw /api/v1/namespaces/NS/services/http:SVC:PORT/proxy/PATH`.
func ServiceProxy(kc kubernetes.Interface, namespace, service string, port int, headers http.Header) Getter {
	return func(ctx context.Context, path string) ([]byte, error) {
		p, q, _ := strings.Cut(path, "?")
		params := map[string]string{}
		for _, kv := range strings.Split(q, "&") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				params[k] = v
			}
		}
		req := kc.CoreV1().Services(namespace).ProxyGet("http", service, fmt.Sprint(port), p, params)
		if rr, ok := req.(*rest.Request); ok {
			for k, vs := range headers {
				for _, v := range vs {
					rr.SetHeader(k, v)
				}
			}
		}
		return req.DoRaw(ctx)
	}
}

// URL reaches a base URL directly.
func URL(base string, headers http.Header) Getter {
	return func(ctx context.Context, path string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header = headers.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 2 {
			return b, fmt.Errorf("%s: %s", path, resp.Status)
		}
		return b, nil
	}
}

// BasicAuth is the header of a user and password.
func BasicAuth(user, password string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	return h
}

// ThanosStores checks that Thanos Query has a healthy store for every
// expected cluster label value (data-producer-1, ...).
func ThanosStores(ctx context.Context, get Getter, want []string) Result {
	r := Result{Name: "Thanos stores", Fix: "check the Thanos sidecars' LoadBalancer Services and `lockstep lab up --from thanos`"}
	if get == nil {
		r.Detail = "no Thanos Query to ask"
		return r
	}
	if len(want) == 0 {
		// A check with nothing to look for would pass on any answer.
		r.Detail = "no cluster label to look for"
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	b, err := get(ctx, "/api/v1/stores")
	if err != nil {
		r.Detail = "Thanos Query does not answer: " + firstLine(err.Error())
		return r
	}
	got, err := StoreClusters(b)
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	var missing []string
	for _, w := range want {
		if !got[w] {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		r.Detail = fmt.Sprintf("no healthy store with cluster=%s (seen: %s)", strings.Join(missing, ", "), keys(got))
		return r
	}
	r.OK, r.Detail = true, "cluster="+strings.Join(want, ", cluster=")+" up"
	return r
}

// StoreClusters parses Thanos Query's /api/v1/stores answer into the set
// of cluster label values of stores without a last error.
func StoreClusters(b []byte) (map[string]bool, error) {
	var resp struct {
		Status string `json:"status"`
		Data   map[string][]struct {
			LastError *string             `json:"lastError"`
			LabelSets []map[string]string `json:"labelSets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, fmt.Errorf("unreadable /api/v1/stores answer: %v", err)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("/api/v1/stores: status %q", resp.Status)
	}
	got := map[string]bool{}
	for _, stores := range resp.Data {
		for _, s := range stores {
			if s.LastError != nil && *s.LastError != "" {
				continue
			}
			for _, ls := range s.LabelSets {
				if c := ls["cluster"]; c != "" {
					got[c] = true
				}
			}
		}
	}
	return got, nil
}

// GrafanaDatasource checks the health of Grafana's datasource uid.
func GrafanaDatasource(ctx context.Context, get Getter, uid string) Result {
	r := Result{Name: "Grafana datasource", Fix: "check the grafana Deployment in namespace monitoring and `lockstep lab up --from grafana`"}
	if get == nil {
		r.Skipped, r.Detail = true, "no Grafana in this lab"
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	b, err := get(ctx, "/api/datasources/uid/"+uid+"/health")
	var h struct{ Status, Message string }
	if jerr := json.Unmarshal(b, &h); jerr != nil || h.Status == "" {
		if err != nil {
			r.Detail = "Grafana does not answer: " + firstLine(err.Error())
		} else {
			r.Detail = fmt.Sprintf("datasource %s: no health status in Grafana's answer", uid)
		}
		return r
	}
	// Grafana answers an unhealthy datasource with an error status code
	// and the reason in the body: that is the datasource's failure, not
	// Grafana's, and the reason is what to print.
	if err != nil || h.Status != "OK" {
		r.Detail = fmt.Sprintf("datasource %s not healthy: %s %s", uid, h.Status, firstLine(h.Message))
		return r
	}
	r.OK, r.Detail = true, "datasource "+uid+": "+h.Message
	return r
}

// Deployments checks Deployments are available in a namespace of a cluster.
func Deployments(ctx context.Context, name, cluster string, kc kubernetes.Interface, namespace string, names ...string) Result {
	r := Result{Name: name + " (" + cluster + ")", Fix: fmt.Sprintf("kubectl --context %s -n %s describe deployments", cluster, namespace)}
	var bad []string
	for _, n := range names {
		d, err := kc.AppsV1().Deployments(namespace).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			bad = append(bad, n+": "+firstLine(err.Error()))
			continue
		}
		// The installer's test: old replicas that are still available
		// while the new ones fail are not a healthy Deployment.
		if !install.DeploymentAvailable(d) {
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			bad = append(bad, fmt.Sprintf("%s: %d/%d available, %d updated", n, d.Status.AvailableReplicas, want, d.Status.UpdatedReplicas))
		}
	}
	if len(bad) > 0 {
		r.Detail = strings.Join(bad, "; ")
		return r
	}
	r.OK, r.Detail = true, strings.Join(names, ", ")+" available"
	return r
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
