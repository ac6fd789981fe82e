package analysis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Querier runs one instant query. It is all Evaluate needs, so tests and
// other backends can stand in for Prometheus.
type Querier interface {
	// Query evaluates promql at ts and returns the instant vector, any
	// warnings the server attached, or an error (including a result that
	// is not an instant vector).
	Query(ctx context.Context, promql string, ts time.Time) (model.Vector, []string, error)
}

// PartialResponseParam is the Thanos Query parameter that controls partial
// responses. Lockstep always sends it as "false": with partial responses a
// Thanos whose store for one cluster is down answers with the other
// clusters' data and a warning, and a per-cluster comparison would then be
// judged on half the fleet.
const PartialResponseParam = "partial_response"

// DefaultQueryTimeout bounds a query when PrometheusConfig.Timeout is zero.
const DefaultQueryTimeout = 30 * time.Second

// PrometheusConfig configures NewPrometheusQuerier.
type PrometheusConfig struct {
	// Address is the base URL of Prometheus or Thanos Query, e.g.
	// http://thanos-query.monitoring:9090.
	Address string
	// Timeout bounds each query, both as the server-side evaluation timeout
	// and as the client's deadline. Zero means DefaultQueryTimeout.
	Timeout time.Duration
	// RoundTripper is the transport to use (TLS, auth); nil means
	// client_golang's default. It is wrapped so every request carries
	// partial_response=false.
	RoundTripper http.RoundTripper
	// MaxResponseBytes refuses an answer larger than this, saying so
	// (default DefaultMaxResponseBytes): a selector that matches far more
	// series than meant must not take the coordinator's memory with it.
	MaxResponseBytes int64
}

// DefaultMaxResponseBytes bounds one answer of Prometheus or Thanos Query.
const DefaultMaxResponseBytes = 32 << 20

// PrometheusQuerier is a Querier over the Prometheus HTTP API.
type PrometheusQuerier struct {
	api     v1.API
	timeout time.Duration
}

var _ Querier = (*PrometheusQuerier)(nil)

// NewPrometheusQuerier returns a Querier for the API at cfg.Address.
func NewPrometheusQuerier(cfg PrometheusConfig) (*PrometheusQuerier, error) {
	u, err := url.Parse(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("prometheus address: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus address %q: want an http(s) URL with a host", cfg.Address)
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("prometheus query timeout must not be negative")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultQueryTimeout
	}
	next := cfg.RoundTripper
	if next == nil {
		next = api.DefaultRoundTripper
	}
	client, err := api.NewClient(api.Config{
		Address:      cfg.Address,
		RoundTripper: &noPartialResponse{next: next, limit: cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes)},
	})
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	return &PrometheusQuerier{api: v1.NewAPI(client), timeout: timeout}, nil
}

// Query implements Querier. Informational annotations (Prometheus "infos")
// are dropped: unlike warnings they do not say the data is incomplete.
func (p *PrometheusQuerier) Query(ctx context.Context, promql string, ts time.Time) (model.Vector, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	val, warnings, _, err := p.api.Query(ctx, promql, ts, v1.WithTimeout(p.timeout))
	if err != nil {
		return nil, warnings, fmt.Errorf("query %q: %w", promql, err)
	}
	switch v := val.(type) {
	case model.Vector:
		return v, warnings, nil
	case nil:
		return nil, warnings, fmt.Errorf("query %q: no result", promql)
	default:
		return nil, warnings, fmt.Errorf("query %q returned a %s, want an instant vector", promql, val.Type())
	}
}

// QueryRange evaluates promql from start to end every step (the
// dashboard's plot history), with the same timeout and partial-response
// rule as Query.
func (p *PrometheusQuerier) QueryRange(ctx context.Context, promql string, start, end time.Time, step time.Duration) (model.Matrix, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	val, warnings, _, err := p.api.QueryRange(ctx, promql, v1.Range{Start: start, End: end, Step: step}, v1.WithTimeout(p.timeout))
	if err != nil {
		return nil, warnings, fmt.Errorf("query range %q: %w", promql, err)
	}
	m, ok := val.(model.Matrix)
	if !ok {
		return nil, warnings, fmt.Errorf("query range %q returned a %v, want a matrix", promql, val)
	}
	return m, warnings, nil
}

// noPartialResponse sets partial_response=false on every request, in the URL
// and, for form-encoded POSTs (client_golang's default for queries), in the
// body too. Setting both leaves no way for a server to read another value,
// whichever one it parses first, and it overrides any value smuggled in
// through the configured address.
type noPartialResponse struct {
	next  http.RoundTripper
	limit int64
}

func (rt *noPartialResponse) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	q := out.URL.Query()
	q.Set(PartialResponseParam, "false")
	out.URL.RawQuery = q.Encode()

	if req.Body != nil && req.Body != http.NoBody && isForm(req.Header.Get("Content-Type")) {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read query form: %w", err)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("parse query form: %w", err)
		}
		form.Set(PartialResponseParam, "false")
		encoded := form.Encode()
		out.Body = io.NopCloser(strings.NewReader(encoded))
		out.ContentLength = int64(len(encoded))
		out.GetBody = func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(encoded)), nil
		}
	}
	resp, err := rt.next.RoundTrip(out)
	if err == nil && rt.limit > 0 {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: rt.limit, limit: rt.limit}
	}
	return resp, err
}

// ErrResponseTooLarge is an answer past PrometheusConfig.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("answer too large")

// limitedBody fails a read past limit bytes instead of buffering them.
type limitedBody struct {
	io.ReadCloser
	left, limit int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	// Read at most one byte past the limit: that byte says the answer is
	// longer than allowed.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, fmt.Errorf("%w: more than %d MiB; refused (narrow the selectors, or raise the limit)", ErrResponseTooLarge, b.limit>>20)
	}
	return n, err
}

func isForm(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// QuerySamples implements SampleQuerier: promql must be a range selector,
// whose answer is every raw scrape in the range (no extrapolation, no
// resampling).
func (p *PrometheusQuerier) QuerySamples(ctx context.Context, promql string, ts time.Time) (model.Matrix, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	val, warnings, _, err := p.api.Query(ctx, promql, ts, v1.WithTimeout(p.timeout))
	if err != nil {
		return nil, warnings, fmt.Errorf("query %q: %w", promql, err)
	}
	m, ok := val.(model.Matrix)
	if !ok {
		return nil, warnings, fmt.Errorf("query %q returned a %v, want raw samples (a matrix)", promql, val)
	}
	return m, warnings, nil
}

// RedactURL is a Prometheus or Thanos address fit for logs and pages: a
// password in it and the values of its query parameters are replaced.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(an address that does not parse)"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q.Set(k, "xxxxx")
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
