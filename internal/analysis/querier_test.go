package analysis

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const vectorBody = `{"status":"success","data":{"resultType":"vector","result":[
 {"metric":{"cluster":"data-producer-1"},"value":[1767225600,"0.97"]},
 {"metric":{"cluster":"data-producer-2"},"value":[1767225600,"0.5"]}]}}`

// fakeProm is an httptest Prometheus that fails the test unless every
// request says partial_response=false everywhere a server could read it.
type fakeProm struct {
	t *testing.T
	// status and body are the canned reply.
	status int
	body   string
	// rejectPost makes POSTs answer 405, as some proxies do, so that
	// client_golang falls back to GET.
	rejectPost bool
	// block makes the handler wait for the client to give up.
	block bool

	posts, gets atomic.Int32
	lastQuery   atomic.Value // string
	lastTimeout atomic.Value // string
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		f.t.Errorf("path = %q, want /api/v1/query", r.URL.Path)
	}
	switch r.Method {
	case http.MethodPost:
		f.posts.Add(1)
		if f.rejectPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
	case http.MethodGet:
		f.gets.Add(1)
	}
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("parse form: %v", err)
	}
	if got := r.URL.Query()[PartialResponseParam]; !slices.Equal(got, []string{"false"}) {
		f.t.Errorf("%s URL %s = %q, want [false]", r.Method, PartialResponseParam, got)
	}
	if r.Method == http.MethodPost {
		if got := r.PostForm[PartialResponseParam]; !slices.Equal(got, []string{"false"}) {
			f.t.Errorf("POST body %s = %q, want [false]", PartialResponseParam, got)
		}
	}
	for _, v := range r.Form[PartialResponseParam] {
		if v != "false" {
			f.t.Errorf("request carries %s=%q", PartialResponseParam, v)
		}
	}
	f.lastQuery.Store(r.Form.Get("query"))
	f.lastTimeout.Store(r.Form.Get("timeout"))
	if f.block {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	_, _ = w.Write([]byte(f.body))
}

func newFake(t *testing.T, f *fakeProm) (*fakeProm, *httptest.Server) {
	t.Helper()
	f.t = t
	if f.status == 0 {
		f.status = http.StatusOK
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func TestPrometheusQuerier(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1767225600, 0)
	tests := []struct {
		name         string
		fake         *fakeProm
		address      string // appended to the server URL
		wantVec      int
		wantWarnings []string
		wantErr      string
		wantGets     int32
	}{
		{name: "vector", fake: &fakeProm{body: vectorBody}, wantVec: 2},
		{
			name:         "warnings are returned with the data",
			fake:         &fakeProm{body: `{"status":"success","warnings":["store data-producer-2 unavailable"],"data":{"resultType":"vector","result":[]}}`},
			wantWarnings: []string{"store data-producer-2 unavailable"},
		},
		{
			name:    "API error",
			fake:    &fakeProm{status: http.StatusUnprocessableEntity, body: `{"status":"error","errorType":"execution","error":"receive series from store: unavailable"}`},
			wantErr: "receive series from store: unavailable",
		},
		{
			name:    "bad request",
			fake:    &fakeProm{status: http.StatusBadRequest, body: `{"status":"error","errorType":"bad_data","error":"parse error at char 4"}`},
			wantErr: "parse error",
		},
		{
			name:    "matrix instead of vector",
			fake:    &fakeProm{body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1767225600,"1"]]}]}}`},
			wantErr: "returned a matrix, want an instant vector",
		},
		{
			name:    "scalar instead of vector",
			fake:    &fakeProm{body: `{"status":"success","data":{"resultType":"scalar","result":[1767225600,"1"]}}`},
			wantErr: "returned a scalar",
		},
		{
			name:     "GET fallback still sends partial_response=false",
			fake:     &fakeProm{body: vectorBody, rejectPost: true},
			wantVec:  2,
			wantGets: 1,
		},
		{
			name:    "partial_response=true in the address is overridden",
			fake:    &fakeProm{body: vectorBody},
			address: "/?partial_response=true",
			wantVec: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, srv := newFake(t, tc.fake)
			q, err := NewPrometheusQuerier(PrometheusConfig{Address: srv.URL + tc.address, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			const promql = `sum by (cluster) (up{job="x"})`
			vec, warnings, err := q.Query(context.Background(), promql, ts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(vec) != tc.wantVec {
				t.Errorf("vector = %v, want %d samples", vec, tc.wantVec)
			}
			if tc.wantVec == 2 {
				if vec[0].Metric["cluster"] != "data-producer-1" || vec[0].Value != 0.97 {
					t.Errorf("first sample = %v", vec[0])
				}
			}
			if !slices.Equal(warnings, tc.wantWarnings) {
				t.Errorf("warnings = %q, want %q", warnings, tc.wantWarnings)
			}
			if got := f.lastQuery.Load(); got != promql {
				t.Errorf("server saw query %q", got)
			}
			if got := f.lastTimeout.Load(); got != "2s" {
				t.Errorf("server saw timeout %q, want 2s", got)
			}
			if got := f.gets.Load(); got != tc.wantGets {
				t.Errorf("GETs = %d, want %d", got, tc.wantGets)
			}
		})
	}
}

func TestPrometheusQuerierTimeout(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t, &fakeProm{block: true})
	q, err := NewPrometheusQuerier(PrometheusConfig{Address: srv.URL, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = q.Query(context.Background(), "up", time.Now())
	if err == nil {
		t.Fatal("query against a hanging server succeeded")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("query took %s despite a 100ms timeout", elapsed)
	}
}

func TestNewPrometheusQuerierRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []PrometheusConfig{
		{},
		{Address: "thanos-query:9090"},
		{Address: "ftp://thanos"},
		{Address: "http://thanos", Timeout: -time.Second},
	} {
		if _, err := NewPrometheusQuerier(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

// TestPrometheusQuerierDefaultTimeout checks that an unset timeout is not
// sent as "no timeout".
func TestPrometheusQuerierDefaultTimeout(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t, &fakeProm{body: vectorBody})
	q, err := NewPrometheusQuerier(PrometheusConfig{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Query(context.Background(), "up", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := f.lastTimeout.Load(); got != DefaultQueryTimeout.String() {
		t.Errorf("timeout = %q, want %s", got, DefaultQueryTimeout)
	}
}

// An answer past MaxResponseBytes is refused, saying so; one of exactly
// the limit is read whole.
func TestPrometheusQuerierSizeLimit(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t, &fakeProm{body: vectorBody})
	for _, tc := range []struct {
		limit   int64
		wantErr bool
	}{{int64(len(vectorBody)), false}, {int64(len(vectorBody)) - 1, true}} {
		q, err := NewPrometheusQuerier(PrometheusConfig{Address: srv.URL, MaxResponseBytes: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = q.Query(context.Background(), "up", time.Now())
		if tc.wantErr != (err != nil) || (err != nil && !strings.Contains(err.Error(), "answer too large")) {
			t.Errorf("limit %d of a %d-byte answer: %v", tc.limit, len(vectorBody), err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://thanos-query:9090":                         "http://thanos-query:9090",
		"https://bob:s3cret@thanos.example/prom":           "https://bob:xxxxx@thanos.example/prom",
		"https://thanos.example/api?token=s3cret&org=acme": "https://thanos.example/api?org=xxxxx&token=xxxxx",
	} {
		if got := RedactURL(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
