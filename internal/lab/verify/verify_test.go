package verify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"lockstep.dev/lockstep/internal/lab/install/argocd"
)

// store is one entry of Thanos Query's /api/v1/stores.
func store(lastError string, labelSets ...map[string]string) map[string]any {
	s := map[string]any{"name": "10.0.0.1:10901", "lastCheck": "2025-01-01T00:00:00Z", "labelSets": labelSets}
	if lastError != "" {
		s["lastError"] = lastError
	} else {
		s["lastError"] = nil
	}
	return s
}

func storesJSON(t *testing.T, status string, data map[string][]map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"status": status, "data": data})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoreClusters(t *testing.T) {
	t.Parallel()
	dp := func(n int) map[string]string {
		return map[string]string{"cluster": fmt.Sprintf("data-producer-%d", n), "replica": "0"}
	}
	for _, tc := range []struct {
		name    string
		body    []byte
		want    []string
		wantErr string
	}{
		{name: "healthy sidecars", body: storesJSON(t, "success", map[string][]map[string]any{
			"sidecar": {store("", dp(1)), store("", dp(2))},
		}), want: []string{"data-producer-1", "data-producer-2"}},
		{name: "store types are merged", body: storesJSON(t, "success", map[string][]map[string]any{
			"sidecar": {store("", dp(1))}, "store": {store("", dp(2))},
		}), want: []string{"data-producer-1", "data-producer-2"}},
		{name: "a store with a last error is not counted", body: storesJSON(t, "success", map[string][]map[string]any{
			"sidecar": {store("", dp(1)), store("rpc error: connection refused", dp(2))},
		}), want: []string{"data-producer-1"}},
		{name: "missing or empty cluster label", body: storesJSON(t, "success", map[string][]map[string]any{
			"sidecar": {store("", map[string]string{"replica": "0"}), store("", map[string]string{"cluster": ""}), store("")},
		}), want: []string{}},
		{name: "no stores", body: []byte(`{"status":"success","data":{}}`), want: []string{}},
		{name: "null data", body: []byte(`{"status":"success","data":null}`), want: []string{}},
		{name: "status error", body: []byte(`{"status":"error","errorType":"internal","error":"boom"}`), wantErr: `status "error"`},
		{name: "no status", body: storesJSON(t, "", map[string][]map[string]any{"sidecar": {store("", dp(1))}}), wantErr: "status"},
		{name: "garbage", body: []byte("<html>502 Bad Gateway</html>"), wantErr: "unreadable"},
		{name: "empty body", body: nil, wantErr: "unreadable"},
		{name: "wrong shape", body: []byte(`{"status":"success","data":{"sidecar":{"cluster":"data-producer-1"}}}`), wantErr: "unreadable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := StoreClusters(tc.body)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q (got %v)", err, tc.wantErr, got)
				}
				if len(got) != 0 {
					t.Errorf("an error came with clusters %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, tc.want) {
				t.Errorf("clusters = %v, want %v", keys, tc.want)
			}
		})
	}
}

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestThanosStores(t *testing.T) {
	t.Parallel()
	healthy := storesJSON(t, "success", map[string][]map[string]any{"sidecar": {
		store("", map[string]string{"cluster": "data-producer-1"}),
		store("", map[string]string{"cluster": "data-producer-2"}),
		store("context deadline exceeded", map[string]string{"cluster": "data-producer-3"}),
	}})
	answer := func(code int, body []byte) Getter {
		srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/stores" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(code)
			_, _ = w.Write(body)
		})
		return URL(srv.URL+"/", nil)
	}
	for _, tc := range []struct {
		name   string
		get    Getter
		want   []string
		ok     bool
		detail []string
	}{
		{"every cluster up", answer(200, healthy), []string{"data-producer-1", "data-producer-2"}, true,
			[]string{"cluster=data-producer-1", "cluster=data-producer-2"}},
		{"one cluster missing", answer(200, healthy), []string{"data-producer-1", "data-producer-4"}, false,
			[]string{"data-producer-4", "seen: data-producer-1, data-producer-2"}},
		{"unhealthy store is missing", answer(200, healthy), []string{"data-producer-3"}, false, []string{"data-producer-3"}},
		{"server error", answer(500, []byte(`{"status":"success","data":{}}`)), []string{"data-producer-1"}, false,
			[]string{"does not answer", "500"}},
		{"garbage", answer(200, []byte("not json")), []string{"data-producer-1"}, false, []string{"unreadable"}},
		{"nothing to look for", answer(200, healthy), nil, false, []string{"no cluster label"}},
		{"no getter", nil, []string{"data-producer-1"}, false, []string{"no Thanos Query"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := ThanosStores(t.Context(), tc.get, tc.want)
			if r.OK != tc.ok || r.Skipped {
				t.Errorf("OK = %v (skipped %v), want %v: %s", r.OK, r.Skipped, tc.ok, r.Detail)
			}
			for _, d := range tc.detail {
				if !strings.Contains(r.Detail, d) {
					t.Errorf("detail %q lacks %q", r.Detail, d)
				}
			}
			if !r.OK && r.Fix == "" {
				t.Error("a failure without a fix")
			}
		})
	}
}

func TestGrafanaDatasource(t *testing.T) {
	t.Parallel()
	const uid = "thanos"
	grafana := func(code int, body string) *httptest.Server {
		return serve(t, func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "s3cret" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"message":"Unauthorized"}`)
				return
			}
			if r.URL.Path != "/api/datasources/uid/"+uid+"/health" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(code)
			_, _ = io.WriteString(w, body)
		})
	}
	ok := grafana(200, `{"status":"OK","message":"Successfully queried the Prometheus API."}`)
	for _, tc := range []struct {
		name    string
		get     Getter
		ok      bool
		skipped bool
		detail  string
	}{
		{"healthy", URL(ok.URL, BasicAuth("admin", "s3cret")), true, false, "Successfully queried"},
		{"wrong password", URL(ok.URL, BasicAuth("admin", "nope")), false, false, "401"},
		{"no credentials", URL(ok.URL, nil), false, false, "401"},
		{"datasource error", URL(grafana(400, `{"status":"ERROR","message":"Post \"http://thanos-query:9090\": dial tcp: connection refused"}`).URL,
			BasicAuth("admin", "s3cret")), false, false, "not healthy: ERROR Post"},
		{"status not OK", URL(grafana(200, `{"status":"UNKNOWN","message":"?"}`).URL, BasicAuth("admin", "s3cret")), false, false, "not healthy: UNKNOWN"},
		{"no status", URL(grafana(200, `{}`).URL, BasicAuth("admin", "s3cret")), false, false, "no health status"},
		{"garbage", URL(grafana(200, `<html>`).URL, BasicAuth("admin", "s3cret")), false, false, "no health status"},
		{"server error", URL(grafana(502, `bad gateway`).URL, BasicAuth("admin", "s3cret")), false, false, "does not answer"},
		{"no Grafana", nil, false, true, "no Grafana"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := GrafanaDatasource(t.Context(), tc.get, uid)
			if r.OK != tc.ok || r.Skipped != tc.skipped {
				t.Errorf("OK %v skipped %v, want %v %v: %s", r.OK, r.Skipped, tc.ok, tc.skipped, r.Detail)
			}
			if !strings.Contains(r.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", r.Detail, tc.detail)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	r, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	r.Header = BasicAuth("admin", "pa:ss")
	if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "pa:ss" {
		t.Errorf("BasicAuth decodes to %q %q %v", u, p, ok)
	}
}

func TestURLSendsHeadersAndTrimsSlash(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Path + " " + r.Header.Get("X-Test"))
		_, _ = io.WriteString(w, "ok")
	})
	h := http.Header{}
	h.Set("X-Test", "yes")
	b, err := URL(srv.URL+"/", h)(t.Context(), "/a?b=c")
	if err != nil || string(b) != "ok" {
		t.Fatalf("got %q, %v", b, err)
	}
	if got.Load() != "/a yes" {
		t.Errorf("server saw %q, want %q", got.Load(), "/a yes")
	}
}

func TestResultLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		r    Result
		want string
	}{
		{"pass", Result{Name: "Thanos stores", OK: true, Detail: "up", Fix: "do this"}, "✓ Thanos stores: up"},
		{"fail", Result{Name: "Thanos stores", Detail: "down", Fix: "do this"}, "✗ Thanos stores: down\n    fix: do this"},
		{"fail without fix", Result{Name: "x", Detail: "down"}, "✗ x: down"},
		{"skipped", Result{Name: "Grafana", Skipped: true, Detail: "none", Fix: "do this"}, "- Grafana: none"},
		{"warning", Result{Name: "Coordinator access to a", OK: true, Warning: true, Detail: "ok; but insecure", Fix: "use TLS"}, "! Coordinator access to a: ok; but insecure\n    fix: use TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.r.Line(); got != tc.want {
				t.Errorf("Line() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFailed(t *testing.T) {
	t.Parallel()
	rs := []Result{{OK: true}, {Skipped: true}, {}, {Detail: "x"}, {OK: true, Skipped: true}}
	if got := Failed(rs); got != 2 {
		t.Errorf("Failed = %d, want 2", got)
	}
	if got := Failed(nil); got != 0 {
		t.Errorf("Failed(nil) = %d", got)
	}
}

func dep(name string, replicas *int32, gen int64, st appsv1.DeploymentStatus) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "argocd", Generation: gen},
		Spec: appsv1.DeploymentSpec{Replicas: replicas}, Status: st}
}

func TestDeployments(t *testing.T) {
	t.Parallel()
	ready := func(n int32) appsv1.DeploymentStatus {
		return appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: n, UpdatedReplicas: n, AvailableReplicas: n}
	}
	for _, tc := range []struct {
		name   string
		objs   []runtime.Object
		ok     bool
		detail []string
	}{
		{"all available", []runtime.Object{dep("a", ptr.To[int32](2), 2, ready(2)), dep("b", nil, 2, ready(1))}, true, []string{"a, b available"}},
		{"one missing", []runtime.Object{dep("a", ptr.To[int32](2), 2, ready(2))}, false, []string{"b: ", "not found"}},
		{"one unavailable", []runtime.Object{dep("a", ptr.To[int32](2), 2, ready(2)),
			dep("b", nil, 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1})}, false, []string{"b: 0/1 available"}},
		{"spec not observed", []runtime.Object{dep("a", ptr.To[int32](2), 3, ready(2)), dep("b", nil, 2, ready(1))}, false, []string{"a: 2/2 available"}},
		// Old pods still serve while the new ones crash: not healthy.
		{"update stuck", []runtime.Object{dep("a", ptr.To[int32](2), 2,
			appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 1, AvailableReplicas: 2}), dep("b", nil, 2, ready(1))},
			false, []string{"a: 2/2 available, 1 updated"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Deployments(t.Context(), "Argo CD", "argo-hub", fake.NewClientset(tc.objs...), "argocd", "a", "b")
			if r.OK != tc.ok {
				t.Errorf("OK = %v, want %v: %s", r.OK, tc.ok, r.Detail)
			}
			if r.Name != "Argo CD (argo-hub)" || !strings.Contains(r.Fix, "--context argo-hub -n argocd") {
				t.Errorf("name %q fix %q", r.Name, r.Fix)
			}
			for _, d := range tc.detail {
				if !strings.Contains(r.Detail, d) {
					t.Errorf("detail %q lacks %q", r.Detail, d)
				}
			}
		})
	}
}

// apiserver is a workload cluster's API server as far as the Argo CD check
// sees it: /version and self subject access reviews for one bearer token.
func apiserver(t *testing.T, token string, allowed bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/version":
			_, _ = io.WriteString(w, `{"major":"1","minor":"34","gitVersion":"v1.34.1"}`)
		case r.Method == http.MethodPost && r.URL.Path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
			// client-go may send JSON or protobuf: decode either.
			body, _ := io.ReadAll(r.Body)
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
			in, ok := obj.(*authv1.SelfSubjectAccessReview)
			if err != nil || !ok {
				http.Error(w, fmt.Sprintf("decode %T: %v", obj, err), http.StatusBadRequest)
				return
			}
			ra := in.Spec.ResourceAttributes
			ok = allowed && ra != nil && ra.Group == "argoproj.io" && ra.Resource == "rollouts" && ra.Verb == "patch"
			in.APIVersion, in.Kind = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
			in.Status = authv1.SubjectAccessReviewStatus{Allowed: ok}
			if !ok {
				in.Status.Reason = "no RBAC policy matched"
			}
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(in)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// otherCA is a CA that signed nothing the test servers present (they all
// share httptest's one certificate).
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func caOf(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// clusterSecret is what the installer writes (argocd.ClusterSecret), as the
// API server stores it.
func clusterSecret(t *testing.T, name, server, token string, ca []byte) *corev1.Secret {
	t.Helper()
	u, err := argocd.ClusterSecret(name, server, "data-producer-1", []byte(token), ca)
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestArgoCDClusters(t *testing.T) {
	t.Parallel()
	may := apiserver(t, "good-token", true)
	mayNot := apiserver(t, "good-token", false)

	unreadable := clusterSecret(t, "unreadable", may.URL, "good-token", caOf(may))
	unreadable.Data["config"] = []byte("{not json")
	noToken := clusterSecret(t, "no-token", may.URL, "", caOf(may))
	dupA := clusterSecret(t, "twice", may.URL, "good-token", caOf(may))
	dupB := clusterSecret(t, "twice", may.URL, "good-token", caOf(may))
	dupB.Name = "cluster-twice-by-hand"
	notCluster := clusterSecret(t, "not-a-cluster", may.URL, "good-token", caOf(may))
	delete(notCluster.Labels, "argocd.argoproj.io/secret-type")

	hub := fake.NewClientset(
		clusterSecret(t, "ok", may.URL, "good-token", caOf(may)),
		clusterSecret(t, "forbidden", mayNot.URL, "good-token", caOf(mayNot)),
		clusterSecret(t, "bad-token", may.URL, "stale-token", caOf(may)),
		clusterSecret(t, "bad-ca", may.URL, "good-token", otherCA(t)),
		unreadable, noToken, dupA, dupB, notCluster,
	)
	want := map[string]struct {
		ok     bool
		detail string
	}{
		"ok":            {true, "connected (v1.34.1), may patch Rollouts"},
		"forbidden":     {false, "may not patch Rollouts: no RBAC policy matched"},
		"bad-token":     {false, "not reachable with the Secret's credentials"},
		"bad-ca":        {false, "not reachable with the Secret's credentials"},
		"unreadable":    {false, "unreadable config"},
		"no-token":      {false, "no bearerToken"},
		"twice":         {false, "more than one Secret: cluster-twice, cluster-twice-by-hand"},
		"not-a-cluster": {false, "no cluster Secret in argocd"},
		"missing":       {false, "no cluster Secret in argocd"},
	}
	rs := ArgoCDClusters(t.Context(), hub, argocd.Namespace, slices.Collect(maps.Keys(want)))
	if len(rs) != len(want) {
		t.Fatalf("got %d results, want %d: %v", len(rs), len(want), rs)
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
		w := want[strings.TrimPrefix(r.Name, "Argo CD cluster ")]
		if r.OK != w.ok || !strings.Contains(r.Detail, w.detail) {
			t.Errorf("%s: OK %v %q, want %v %q", r.Name, r.OK, r.Detail, w.ok, w.detail)
		}
		if !r.OK && r.Fix == "" {
			t.Errorf("%s: a failure without a fix", r.Name)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("results not sorted by cluster: %v", names)
	}
}

func TestArgoCDClustersListError(t *testing.T) {
	t.Parallel()
	hub := fake.NewClientset()
	hub.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("secrets is forbidden\nmore")
	})
	rs := ArgoCDClusters(context.Background(), hub, "argocd", []string{"a", "b"})
	if len(rs) != 1 || rs[0].OK || !strings.Contains(rs[0].Detail, "cannot list cluster Secrets: secrets is forbidden") || strings.Contains(rs[0].Detail, "more") {
		t.Errorf("results = %+v, want one failure with the first line of the error", rs)
	}
}

// helloworld answers like the Istio sample, round-robin over pods.
func helloworld(t *testing.T, pods ...string) string {
	t.Helper()
	var n atomic.Int64
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hello" {
			http.NotFound(w, r)
			return
		}
		pod := pods[int(n.Add(1)-1)%len(pods)]
		fmt.Fprintf(w, "Hello version: v1, instance: %s\n", pod)
	})
	return srv.URL
}

func TestIngressReachability(t *testing.T) {
	t.Parallel()
	podCluster := map[string]string{
		"helloworld-v1-a": "argo-rollout1",
		"helloworld-v1-b": "argo-rollout2",
	}
	want := []string{"argo-rollout1", "argo-rollout2"}
	for _, tc := range []struct {
		name   string
		url    string
		ok     bool
		detail []string
	}{
		{"both clusters answer", helloworld(t, "helloworld-v1-a", "helloworld-v1-b"), true,
			[]string{"0 errors", "argo-rollout1 ", "argo-rollout2 "}},
		{"only the local cluster answers", helloworld(t, "helloworld-v1-a"), false,
			[]string{"no answer from argo-rollout2", "argo-rollout1 "}},
		{"an unknown pod does not count", helloworld(t, "helloworld-v1-a", "stranger"), false,
			[]string{"no answer from argo-rollout2", "unknown pod stranger"}},
		{"nothing listens", "http://127.0.0.1:1", false, []string{"no answer from argo-rollout1, argo-rollout2", "no pod answered"}},
		{"not loopback", "http://192.0.2.1:80", false, []string{"not a loopback address"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := IngressReachability(t.Context(), "argo-rollout1", tc.url, podCluster, want)
			if r.OK != tc.ok {
				t.Errorf("OK = %v, want %v: %s", r.OK, tc.ok, r.Detail)
			}
			for _, d := range tc.detail {
				if !strings.Contains(r.Detail, d) {
					t.Errorf("detail %q lacks %q", r.Detail, d)
				}
			}
			if r.Name != "Istio reachability from argo-rollout1" {
				t.Errorf("name %q", r.Name)
			}
		})
	}
}

func TestPodClusters(t *testing.T) {
	t.Parallel()
	pod := func(name string) runtime.Object {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "helloworld"}}
	}
	got, err := PodClusters(t.Context(), map[string]kubernetes.Interface{
		"c1": fake.NewClientset(pod("a"), pod("b")),
		"c2": fake.NewClientset(pod("c")),
	}, "helloworld")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "c1", "b": "c1", "c": "c2"}; !maps.Equal(got, want) {
		t.Errorf("PodClusters = %v, want %v", got, want)
	}
}

func TestExcess(t *testing.T) {
	t.Parallel()
	want, err := WorkloadGrants()
	if err != nil {
		t.Fatal(err)
	}
	if !want["argoproj.io/rollouts/status:patch"] || want["argoproj.io/rollouts:patch"] {
		t.Fatalf("workload grants %v: want rollouts/status patch and no rollouts patch", want)
	}
	exact := []authv1.ResourceRule{
		{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}},
		{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"argoproj.io"}, Resources: []string{"rollouts"}},
		{Verbs: []string{"patch"}, APIGroups: []string{"argoproj.io"}, Resources: []string{"rollouts/status"}},
		{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{"networking.istio.io"}, Resources: []string{"virtualservices"}},
	}
	if extra, missing := Excess(exact, want); len(extra)+len(missing) > 0 {
		t.Errorf("exact role: extra %v, missing %v", extra, missing)
	}
	wider := append(slices.Clone(exact), authv1.ResourceRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
		authv1.ResourceRule{Verbs: []string{"patch"}, APIGroups: []string{"argoproj.io"}, Resources: []string{"rollouts"}})
	if extra, _ := Excess(wider, want); !slices.Equal(extra, []string{"*/*:*", "argoproj.io/rollouts:patch"}) {
		t.Errorf("admin-like grants: extra = %v", extra)
	}
	if _, missing := Excess(exact[:2], want); !slices.Contains(missing, "argoproj.io/rollouts/status:patch") {
		t.Errorf("without the status patch: missing = %v", missing)
	}
}
