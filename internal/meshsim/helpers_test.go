package meshsim

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// series is one labelled sample of a gathered metric family.
type series struct {
	labels map[string]string
	// value is a counter's value or a histogram's sample count.
	value float64
	// sum is a histogram's sample sum.
	sum float64
}

// gather returns the series of metric name whose labels include want.
func gather(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) []series {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather() error: %v", err)
	}
	var out []series
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			s := series{labels: labels}
			switch {
			case m.GetCounter() != nil:
				s.value = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				s.value = float64(m.GetHistogram().GetSampleCount())
				s.sum = m.GetHistogram().GetSampleSum()
			}
			out = append(out, s)
		}
	}
	return out
}

// requests sums istio_requests_total over the series matching want.
func requests(t *testing.T, g prometheus.Gatherer, want map[string]string) int {
	t.Helper()
	total := 0.0
	for _, s := range gather(t, g, "istio_requests_total", want) {
		total += s.value
	}
	return int(total)
}

// logSink collects log output and lets a test wait for a line without
// polling: every write closes the current notification channel.
type logSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogSink() *logSink { return &logSink{changed: make(chan struct{})} }

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor blocks until a logged line contains all of parts.
func (l *logSink) waitFor(t *testing.T, parts ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		l.mu.Lock()
		text, ch := l.buf.String(), l.changed
		l.mu.Unlock()
		for line := range strings.Lines(text) {
			if containsAll(line, parts) {
				return line
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no log line contains %q; log:\n%s", parts, text)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
