package notify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Service delivers a rendered notification to one recipient. Errors never
// carry a URL, a header or a token.
type Service interface {
	// Type is webhook, slack or teams.
	Type() string
	// Retry is how often and how patiently a failed delivery is retried.
	Retry() RetryPolicy
	Send(ctx context.Context, n Notification, recipient string) error
}

// RetryPolicy is notifications-engine's webhook retry settings, for every
// service here: retryMax retries, waits doubling from retryWaitMin up to
// retryWaitMax, each attempt bounded by timeout.
type RetryPolicy struct {
	Max     int
	WaitMin time.Duration
	WaitMax time.Duration
	Timeout time.Duration
}

// delivery is the options every service shares.
type delivery struct {
	RetryMax           *int   `json:"retryMax,omitempty"`
	RetryWaitMin       string `json:"retryWaitMin,omitempty"`
	RetryWaitMax       string `json:"retryWaitMax,omitempty"`
	Timeout            string `json:"timeout,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

func (d delivery) policy() (RetryPolicy, error) {
	p := RetryPolicy{Max: defaultRetryMax, WaitMin: defaultWaitMin, WaitMax: defaultWaitMax, Timeout: defaultTimeout}
	if d.RetryMax != nil {
		if *d.RetryMax < 0 || *d.RetryMax > 10 {
			return p, fmt.Errorf("retryMax: %d is not within 0..10", *d.RetryMax)
		}
		p.Max = *d.RetryMax
	}
	for _, f := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{{"retryWaitMin", d.RetryWaitMin, &p.WaitMin}, {"retryWaitMax", d.RetryWaitMax, &p.WaitMax}, {"timeout", d.Timeout, &p.Timeout}} {
		if f.s == "" {
			continue
		}
		v, err := time.ParseDuration(f.s)
		if err != nil || v <= 0 {
			return p, fmt.Errorf("%s: %q is not a positive duration", f.name, f.s)
		}
		*f.dst = v
	}
	if p.WaitMax < p.WaitMin {
		return p, fmt.Errorf("retryWaitMax (%s) is shorter than retryWaitMin (%s)", p.WaitMax, p.WaitMin)
	}
	return p, nil
}

func (d delivery) client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if d.InsecureSkipVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for in the service's entry
	}
	return &http.Client{Transport: t,
		// A redirect could carry the request (and its token) elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// base is what every service has: its name in the ConfigMap, its retry
// policy and its HTTP client.
type base struct {
	name   string
	retry  RetryPolicy
	client *http.Client
}

func (b *base) Retry() RetryPolicy { return b.retry }

// newBase reads a service entry's JSON into opts (strictly) and sets the
// retry policy and client from its shared part d (a field of opts).
func newBase(name string, raw []byte, opts any, d *delivery) (base, error) {
	if err := strictJSON(raw, opts); err != nil {
		return base{}, err
	}
	p, err := d.policy()
	if err != nil {
		return base{}, err
	}
	return base{name: name, retry: p, client: d.client()}, nil
}

// sendError is a failed delivery; retry says whether trying again may help
// (a transport error, 429 or 5xx).
type sendError struct {
	msg   string
	retry bool
}

func (e *sendError) Error() string { return e.msg }

// retryable says whether err may succeed on another attempt.
func retryable(err error) bool {
	var se *sendError
	return errors.As(err, &se) && se.retry
}

// post sends one request and reads at most maxResponseBytes of the answer.
// what names the service in errors; the URL never appears in one.
func post(ctx context.Context, c *http.Client, method, target string, header http.Header, body []byte, what string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, &sendError{msg: what + ": bad request URL or method"}
	}
	req.Header = header
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error would print the URL
		}
		return nil, &sendError{msg: fmt.Sprintf("%s: %v", what, err), retry: true}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return answer, nil
	}
	return nil, &sendError{msg: fmt.Sprintf("%s: HTTP %d", what, resp.StatusCode),
		retry: resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500}
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// webhook is service.webhook.<name>: any HTTP endpoint.
type webhook struct {
	base
	opts webhookOptions
}

type webhookOptions struct {
	URL     string `json:"url"`
	Headers []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"headers,omitempty"`
	BasicAuth *struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"basicAuth,omitempty"`
	delivery
}

func newWebhook(name string, raw []byte) (Service, error) {
	w := &webhook{}
	var err error
	if w.base, err = newBase(name, raw, &w.opts, &w.opts.delivery); err != nil {
		return nil, err
	}
	if err := checkURL("url", w.opts.URL); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *webhook) Type() string { return serviceWebhook }

// Send sends the template's request for this webhook, or, when the
// template has none, POSTs the message and Meta as one JSON object (Argo
// would send an empty GET; a receiver learns nothing from that).
func (w *webhook) Send(ctx context.Context, n Notification, _ string) error {
	req, ok := n.Webhook[w.name]
	if !ok {
		body := map[string]string{"message": n.Message}
		for k, v := range n.Meta {
			body[k] = v
		}
		b, _ := json.Marshal(body)
		req = WebhookNotification{Method: http.MethodPost, Body: string(b)}
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	h := http.Header{}
	for _, kv := range w.opts.Headers {
		h.Add(kv.Name, kv.Value)
	}
	if h.Get("Content-Type") == "" && req.Body != "" {
		h.Set("Content-Type", "application/json")
	}
	if a := w.opts.BasicAuth; a != nil {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password)))
	}
	_, err := post(ctx, w.client, method, strings.TrimSuffix(w.opts.URL, "/")+req.Path, h, []byte(req.Body), "webhook "+w.name)
	return err
}

// slack is service.slack: Slack's Web API chat.postMessage, at apiURL
// (default https://slack.com/api/).
type slack struct {
	base
	opts slackOptions
}

type slackOptions struct {
	Token    string `json:"token"`
	APIURL   string `json:"apiURL,omitempty"`
	Username string `json:"username,omitempty"`
	Icon     string `json:"icon,omitempty"`
	delivery
}

func newSlack(name string, raw []byte) (Service, error) {
	s := &slack{}
	var err error
	if s.base, err = newBase(name, raw, &s.opts, &s.opts.delivery); err != nil {
		return nil, err
	}
	if s.opts.Token == "" {
		return nil, errors.New("token: empty (use $<key> to read it from the Secret)")
	}
	if s.opts.APIURL == "" {
		s.opts.APIURL = "https://slack.com/api/"
	}
	if err := checkURL("apiURL", s.opts.APIURL); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *slack) Type() string { return serviceSlack }

func (s *slack) Send(ctx context.Context, n Notification, channel string) error {
	what := "slack " + s.name
	if channel == "" {
		return &sendError{msg: what + ": no channel (the subscription's value names it)"}
	}
	msg := map[string]any{"channel": channel, "text": n.Message}
	for _, part := range []struct{ key, text string }{{"attachments", n.Slack.Attachments}, {"blocks", n.Slack.Blocks}} {
		if strings.TrimSpace(part.text) == "" {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(part.text), &v); err != nil {
			return &sendError{msg: fmt.Sprintf("%s: the template's slack.%s is not JSON: %v", what, part.key, err)}
		}
		msg[part.key] = v
	}
	if s.opts.Username != "" {
		msg["username"] = s.opts.Username
	}
	if icon := s.opts.Icon; icon != "" {
		if strings.HasPrefix(icon, ":") {
			msg["icon_emoji"] = icon
		} else {
			msg["icon_url"] = icon
		}
	}
	body, _ := json.Marshal(msg)
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "Authorization": {"Bearer " + s.opts.Token}}
	answer, err := post(ctx, s.client, http.MethodPost, strings.TrimSuffix(s.opts.APIURL, "/")+"/chat.postMessage", h, body, what)
	if err != nil {
		return err
	}
	// Slack answers 200 with ok=false for its own errors.
	var res struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(answer, &res); err != nil || !res.OK {
		return &sendError{msg: fmt.Sprintf("%s: not accepted (%s)", what, cmp.Or(res.Error, "no ok in the answer"))}
	}
	return nil
}

// teams is service.teams: Microsoft Teams incoming webhooks, one URL per
// recipient (recipientUrls), sent a MessageCard.
type teams struct {
	base
	opts teamsOptions
}

type teamsOptions struct {
	RecipientURLs map[string]string `json:"recipientUrls"`
	delivery
}

func newTeams(name string, raw []byte) (Service, error) {
	t := &teams{}
	var err error
	if t.base, err = newBase(name, raw, &t.opts, &t.opts.delivery); err != nil {
		return nil, err
	}
	if len(t.opts.RecipientURLs) == 0 {
		return nil, errors.New("recipientUrls: empty")
	}
	for r, u := range t.opts.RecipientURLs {
		if err := checkURL("recipientUrls."+r, u); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *teams) Type() string { return serviceTeams }

func (t *teams) Send(ctx context.Context, n Notification, recipient string) error {
	what := "teams " + t.name
	target, ok := t.opts.RecipientURLs[recipient]
	if !ok {
		return &sendError{msg: fmt.Sprintf("%s: no recipientUrls entry %q", what, recipient)}
	}
	card := map[string]any{"@type": "MessageCard", "@context": "https://schema.org/extensions",
		"summary": cmp.Or(n.Teams.Summary, n.Teams.Title, n.Message), "text": cmp.Or(n.Teams.Text, n.Message)}
	if n.Teams.Title != "" {
		card["title"] = n.Teams.Title
	}
	if n.Teams.ThemeColor != "" {
		card["themeColor"] = strings.TrimPrefix(n.Teams.ThemeColor, "#")
	}
	var sections []any
	if s := strings.TrimSpace(n.Teams.Sections); s != "" {
		if err := json.Unmarshal([]byte(s), &sections); err != nil {
			return &sendError{msg: fmt.Sprintf("%s: the template's teams.sections is not JSON: %v", what, err)}
		}
	}
	if f := strings.TrimSpace(n.Teams.Facts); f != "" {
		var facts []any
		if err := json.Unmarshal([]byte(f), &facts); err != nil {
			return &sendError{msg: fmt.Sprintf("%s: the template's teams.facts is not JSON: %v", what, err)}
		}
		sections = append(sections, map[string]any{"facts": facts})
	}
	if len(sections) > 0 {
		card["sections"] = sections
	}
	body, _ := json.Marshal(card)
	_, err := post(ctx, t.client, http.MethodPost, target, http.Header{"Content-Type": {"application/json"}}, body, what)
	return err
}

// checkURL refuses what is not an absolute http(s) URL, without echoing
// it: a URL may carry a token.
func checkURL(field, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: not an absolute http(s) URL", field)
	}
	return nil
}
