// Package load sends a steady, bounded stream of requests to the fleet's
// ingress gateways and counts what answers: per gateway, per version, per
// serving pod. Every target must be a loopback URL. It imports only the
// standard library.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Target is one ingress gateway.
type Target struct {
	Cluster string
	URL     string // base URL, /hello is appended
}

// Result is one request's outcome.
type Result struct {
	Cluster string        `json:"cluster"`
	At      time.Time     `json:"at"`
	Code    int           `json:"code"` // 0: transport error
	Version string        `json:"version,omitempty"`
	Pod     string        `json:"pod,omitempty"`
	Latency time.Duration `json:"latencyNs"`
}

// ClusterStats aggregates the results of one gateway.
type ClusterStats struct {
	Requests  int            `json:"requests"`
	Errors    int            `json:"errors"` // 5xx and transport errors
	ByVersion map[string]int `json:"byVersion"`
	ByPod     map[string]int `json:"byPod"`
}

// Stats is safe for concurrent use.
type Stats struct {
	mu sync.Mutex
	m  map[string]*ClusterStats
}

// NewStats returns empty statistics.
func NewStats() *Stats { return &Stats{m: map[string]*ClusterStats{}} }

// Add counts one result.
func (s *Stats) Add(r Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[r.Cluster]
	if c == nil {
		c = &ClusterStats{ByVersion: map[string]int{}, ByPod: map[string]int{}}
		s.m[r.Cluster] = c
	}
	c.Requests++
	if r.Code == 0 || r.Code >= 500 {
		c.Errors++
	}
	if r.Version != "" {
		c.ByVersion[r.Version]++
	}
	if r.Pod != "" {
		c.ByPod[r.Pod]++
	}
}

// Snapshot copies the statistics.
func (s *Stats) Snapshot() map[string]ClusterStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]ClusterStats{}
	for k, v := range s.m {
		c := ClusterStats{Requests: v.Requests, Errors: v.Errors, ByVersion: map[string]int{}, ByPod: map[string]int{}}
		for a, b := range v.ByVersion {
			c.ByVersion[a] = b
		}
		for a, b := range v.ByPod {
			c.ByPod[a] = b
		}
		out[k] = c
	}
	return out
}

// Split formats a version split like "v1 90% v2 10%".
func (c ClusterStats) Split() string {
	var vs []string
	for v := range c.ByVersion {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	out := ""
	for _, v := range vs {
		out += fmt.Sprintf("%s %d%% ", v, c.ByVersion[v]*100/max(c.Requests, 1))
	}
	return out + fmt.Sprintf("(%d req, %d errors)", c.Requests, c.Errors)
}

var hello = regexp.MustCompile(`Hello version: (\S+), instance: (\S+)`)

// Options bound a run.
type Options struct {
	Rate     float64       // requests per second per target
	Duration time.Duration // total run time; the run always stops by itself
	Timeout  time.Duration // per request
	// OnResult, when set, sees every result (called from many goroutines).
	OnResult func(Result)
}

// MaxRate caps the rate: the load is a demo's, not a stress test.
const MaxRate = 500

// Validate checks targets and options before anything is sent.
func Validate(targets []Target, o Options) error {
	if len(targets) == 0 {
		return errors.New("load: no targets")
	}
	if o.Rate <= 0 || o.Rate > MaxRate {
		return fmt.Errorf("load: rate %.1f/s out of range (0, %d]", o.Rate, MaxRate)
	}
	if o.Duration <= 0 || o.Duration > 24*time.Hour {
		return fmt.Errorf("load: duration %s out of range (0, 24h]", o.Duration)
	}
	for _, t := range targets {
		u, err := url.Parse(t.URL)
		if err != nil {
			return fmt.Errorf("load: target %s: %w", t.Cluster, err)
		}
		ip := net.ParseIP(u.Hostname())
		if !(u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())) {
			return fmt.Errorf("load: target %s (%s) is not a loopback address", t.Cluster, t.URL)
		}
	}
	return nil
}

// Run sends requests at o.Rate to every target until o.Duration passes or
// ctx ends, and returns the statistics.
func Run(ctx context.Context, targets []Target, o Options) (*Stats, error) {
	if err := Validate(targets, o); err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	stats := NewStats()
	client := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / o.Rate)
	for _, t := range targets {
		wg.Add(1)
		go func(t Target) {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var inflight sync.WaitGroup
			defer inflight.Wait()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					r := Get(ctx, client, t)
					if ctx.Err() != nil && r.Code == 0 {
						return // cut by the end of the run, not an error
					}
					stats.Add(r)
					if o.OnResult != nil {
						o.OnResult(r)
					}
				}()
			}
		}(t)
	}
	wg.Wait()
	return stats, nil
}

// Get sends one request to a gateway and parses the helloworld answer.
func Get(ctx context.Context, c *http.Client, t Target) Result {
	start := time.Now()
	r := Result{Cluster: t.Cluster, At: start}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL+"/hello", nil)
	if err != nil {
		return r
	}
	resp, err := c.Do(req)
	if err != nil {
		r.Latency = time.Since(start)
		return r
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	r.Latency = time.Since(start)
	r.Code = resp.StatusCode
	if m := hello.FindSubmatch(body); m != nil && resp.StatusCode < 300 {
		r.Version, r.Pod = string(m[1]), string(m[2])
	}
	return r
}
