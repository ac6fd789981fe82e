package load

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := []Target{{Cluster: "a", URL: "http://127.0.0.1:1"}}
	cases := []struct {
		name    string
		targets []Target
		o       Options
		wantErr bool
	}{
		{"ok", ok, Options{Rate: 10, Duration: time.Second}, false},
		{"localhost", []Target{{Cluster: "a", URL: "http://localhost:1"}}, Options{Rate: 10, Duration: time.Second}, false},
		{"no targets", nil, Options{Rate: 10, Duration: time.Second}, true},
		{"zero rate", ok, Options{Rate: 0, Duration: time.Second}, true},
		{"rate too high", ok, Options{Rate: MaxRate + 1, Duration: time.Second}, true},
		{"unbounded", ok, Options{Rate: 1, Duration: 0}, true},
		{"not loopback", []Target{{Cluster: "a", URL: "http://10.0.0.1:80"}}, Options{Rate: 1, Duration: time.Second}, true},
		{"hostname", []Target{{Cluster: "a", URL: "http://example.com"}}, Options{Rate: 1, Duration: time.Second}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := Validate(tc.targets, tc.o); (err != nil) != tc.wantErr {
				t.Fatalf("Validate = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}

func TestRunCountsVersionsAndErrors(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		switch {
		case i%4 == 0:
			http.Error(w, "boom", http.StatusServiceUnavailable)
		case i%2 == 0:
			fmt.Fprintln(w, "Hello version: v2, instance: helloworld-b-1")
		default:
			fmt.Fprintln(w, "Hello version: v1, instance: helloworld-a-1")
		}
	}))
	defer srv.Close()
	stats, err := Run(context.Background(), []Target{{Cluster: "c1", URL: srv.URL}}, Options{Rate: 200, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c := stats.Snapshot()["c1"]
	if c.Requests < 40 {
		t.Fatalf("only %d requests at 200/s for 0.5 s", c.Requests)
	}
	if c.Requests != c.ByVersion["v1"]+c.ByVersion["v2"]+c.Errors {
		t.Errorf("requests %d != v1 %d + v2 %d + errors %d", c.Requests, c.ByVersion["v1"], c.ByVersion["v2"], c.Errors)
	}
	if c.Errors == 0 || c.ByVersion["v1"] == 0 || c.ByVersion["v2"] == 0 {
		t.Errorf("missing a kind of answer: %+v", c)
	}
	if c.ByPod["helloworld-a-1"] != c.ByVersion["v1"] {
		t.Errorf("pods %v vs versions %v", c.ByPod, c.ByVersion)
	}
	if int64(c.Requests) > n.Load() {
		t.Errorf("counted %d requests, server saw %d", c.Requests, n.Load())
	}
}
