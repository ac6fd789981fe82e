package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
)

const ns = "lockstep-system"

// received is one request a test receiver saw.
type received struct {
	Path, Method string
	Header       http.Header
	Body         string
}

// receiver is a local HTTP server standing in for a webhook, Slack's API
// or a Teams incoming webhook. fail answers 500 to the first n requests.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	fail atomic.Int32
	// answer is the body of a 200 (Slack wants {"ok":true}).
	answer string
}

func newReceiver(t *testing.T, answer string) *receiver {
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		b, _ := io.ReadAll(q.Body)
		r.mu.Lock()
		r.got = append(r.got, received{Path: q.URL.Path, Method: q.Method, Header: q.Header.Clone(), Body: string(b)})
		r.mu.Unlock()
		if r.fail.Add(-1) >= 0 {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, r.answer)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got := r.requests(); len(got) >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("receiver got %d requests, want %d", len(r.requests()), n)
	return nil
}

func fleetRollout(annotations map[string]string) *v1alpha1.FleetRollout {
	fr := &v1alpha1.FleetRollout{ObjectMeta: metav1.ObjectMeta{Name: "helloworld", Namespace: "apps", Annotations: annotations}}
	fr.Status.Fleet.Revision = "7d9c"
	return fr
}

// start runs a Notifier over a ConfigMap and Secret and returns it with
// its registry and captured log.
func start(t *testing.T, data map[string]string, secret map[string][]byte) (*Notifier, *prometheus.Registry, *lockedBuffer) {
	t.Helper()
	s := runtime.NewScheme()
	_ = corev1.AddToScheme(s)
	objs := []runtime.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ConfigMapName}, Data: data}}
	if secret != nil {
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: SecretName}, Data: secret})
	}
	logs := &lockedBuffer{}
	log := funcr.New(func(prefix, args string) { logs.write(prefix + " " + args + "\n") }, funcr.Options{Verbosity: 1})
	reg := prometheus.NewRegistry()
	n := New(Options{Reader: fake.NewClientBuilder().WithScheme(s).WithRuntimeObjects(objs...).Build(), Namespace: ns, Registerer: reg, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = n.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n, reg, logs
}

// lockedBuffer is a log shared by the workers and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) write(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func sent(n *Notifier, trigger, service, result string) float64 {
	return testutil.ToFloat64(n.total.WithLabelValues(trigger, service, result))
}

func waitCount(t *testing.T, n *Notifier, trigger, service, result string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sent(n, trigger, service, result) < want {
		if time.Now().After(deadline) {
			t.Fatalf("lockstep_notifications_total{%s,%s,%s} = %v, want %v", trigger, service, result, sent(n, trigger, service, result), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A webhook gets the template's body, with the Secret's token in its
// header, and a 500 is retried.
func TestWebhookPayloadAndRetryAfter500(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, "ok")
	rcv.fail.Store(1)
	n, _, logs := start(t, map[string]string{
		"service.webhook.ops": "url: " + rcv.URL + "\nheaders:\n- name: Authorization\n  value: Bearer $ops-token\nretryWaitMin: 20ms\nretryWaitMax: 50ms\n",
		"template.release-aborted": `message: aborted
webhook:
  ops:
    method: POST
    path: /hooks/{{.fleetrollout.metadata.name}}
    body: |
      {"fleetRollout": "{{.fleetrollout.metadata.name}}", "revision": "{{.revision}}", "why": {{toJson .event.message}}}
`,
	}, map[string][]byte{"ops-token": []byte("s3cr3t-t0ken")})
	fr := fleetRollout(map[string]string{SubscribePrefix + "on-release-aborted.ops": ""})
	if p := n.Problems(context.Background(), fr); len(p) > 0 {
		t.Fatalf("problems: %v", p)
	}
	n.Notify(context.Background(), fr, Event{Type: "Warning", Reason: "ReleaseAborted", Message: `argo-rollout2 failed: canary 9/20 "5xx"`, Time: time.Now()})
	got := rcv.wait(t, 2)
	waitCount(t, n, "on-release-aborted", "ops", ResultSent, 1)
	last := got[1]
	if last.Method != "POST" || last.Path != "/hooks/helloworld" || last.Header.Get("Authorization") != "Bearer s3cr3t-t0ken" {
		t.Fatalf("request = %s %s auth %q", last.Method, last.Path, last.Header.Get("Authorization"))
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(last.Body), &body); err != nil {
		t.Fatalf("body %q: %v", last.Body, err)
	}
	if body["fleetRollout"] != "helloworld" || body["revision"] != "7d9c" || body["why"] != `argo-rollout2 failed: canary 9/20 "5xx"` {
		t.Fatalf("body = %v", body)
	}
	if got[0].Body != last.Body {
		t.Fatalf("the retry sent another body: %q then %q", got[0].Body, last.Body)
	}
	if sent(n, "on-release-aborted", "ops", ResultFailed) != 0 {
		t.Fatal("a delivery that succeeded on retry was counted failed")
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Fatalf("the token reached the log:\n%s", logs.String())
	}
}

// Slack's API (apiURL pointed at a local server) receives chat.postMessage
// with the bot token, the channel of the subscription and the built-in
// template's attachment; a Teams incoming webhook receives a MessageCard.
func TestSlackAndTeamsBuiltinTemplates(t *testing.T) {
	t.Parallel()
	slackAPI := newReceiver(t, `{"ok":true}`)
	teamsHook := newReceiver(t, "1")
	n, _, _ := start(t, map[string]string{
		"service.slack": "token: $slack-token\napiURL: " + slackAPI.URL + "/api/\n",
		"service.teams": "recipientUrls:\n  platform: $teams-url\n",
	}, map[string][]byte{"slack-token": []byte("xoxb-123"), "teams-url": []byte(teamsHook.URL + "/webhookb2/secret-path")})
	fr := fleetRollout(map[string]string{
		SubscribePrefix + "on-release-completed.slack": "releases; platform-oncall",
		SubscribePrefix + "on-release-completed.teams": "platform",
	})
	if p := n.Problems(context.Background(), fr); len(p) > 0 {
		t.Fatalf("problems: %v", p)
	}
	n.Notify(context.Background(), fr, Event{Type: "Normal", Reason: "ReleaseCompleted", Message: "revision 7d9c completed on 2 clusters", Time: time.Now()})
	got := slackAPI.wait(t, 2)
	channels := map[string]bool{}
	for _, r := range got {
		if r.Path != "/api/chat.postMessage" || r.Header.Get("Authorization") != "Bearer xoxb-123" {
			t.Fatalf("slack request %s auth %q", r.Path, r.Header.Get("Authorization"))
		}
		var m struct {
			Channel, Text string
			Attachments   []struct{ Title, Color, Text string }
		}
		if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
			t.Fatal(err)
		}
		channels[m.Channel] = true
		if m.Text != "apps/helloworld: revision 7d9c completed on 2 clusters" || len(m.Attachments) != 1 || m.Attachments[0].Color != "#18BE52" || m.Attachments[0].Title != "helloworld: release completed" {
			t.Fatalf("slack message = %+v", m)
		}
	}
	if !channels["releases"] || !channels["platform-oncall"] {
		t.Fatalf("channels = %v", channels)
	}
	card := teamsHook.wait(t, 1)[0]
	var c map[string]any
	if err := json.Unmarshal([]byte(card.Body), &c); err != nil || card.Path != "/webhookb2/secret-path" {
		t.Fatalf("teams %s %q: %v", card.Path, card.Body, err)
	}
	if c["@type"] != "MessageCard" || c["themeColor"] != "18BE52" || c["title"] != "helloworld: release completed" || c["sections"] == nil {
		t.Fatalf("card = %v", c)
	}
	waitCount(t, n, "on-release-completed", "slack", ResultSent, 2)
	waitCount(t, n, "on-release-completed", "teams", ResultSent, 1)
}

// A receiver that never answers costs the caller nothing: Notify returns
// at once, other services still get theirs, the queue's overflow is
// dropped and counted, and the hung delivery ends failed at its timeout.
func TestDeadReceiverDoesNotSlowTheCaller(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); dead.Close() })
	alive := newReceiver(t, "ok")
	n, _, _ := start(t, map[string]string{
		"service.webhook.dead":  "url: " + dead.URL + "\ntimeout: 300ms\nretryMax: 1\nretryWaitMin: 10ms\n",
		"service.webhook.alive": "url: " + alive.URL + "\n",
	}, nil)
	fr := fleetRollout(map[string]string{SubscribePrefix + "on-release-aborted.dead": "", SubscribePrefix + "on-release-aborted.alive": ""})
	begin := time.Now()
	for range 400 {
		n.Notify(context.Background(), fr, Event{Reason: "ReleaseAborted", Message: "x", Time: time.Now()})
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Fatalf("400 Notify calls took %s with a dead receiver", took)
	}
	alive.wait(t, 1)
	if sent(n, "on-release-aborted", "dead", ResultDropped)+sent(n, "on-release-aborted", "alive", ResultDropped) == 0 {
		t.Fatal("800 deliveries into a 256-deep queue behind a hung receiver: none counted dropped")
	}
	waitCount(t, n, "on-release-aborted", "dead", ResultFailed, 1)
}

// A refused connection (nobody listening) fails after retryMax retries.
func TestRefusedConnectionFailsAfterRetries(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL
	gone.Close()
	n, _, logs := start(t, map[string]string{"service.webhook.gone": "url: " + url + "/token-in-path-XYZ\nretryMax: 2\nretryWaitMin: 5ms\nretryWaitMax: 10ms\n"}, nil)
	fr := fleetRollout(map[string]string{SubscribePrefix + "on-release-started.gone": ""})
	n.Notify(context.Background(), fr, Event{Reason: "ReleaseStarted", Message: "x", Time: time.Now()})
	waitCount(t, n, "on-release-started", "gone", ResultFailed, 1)
	if !strings.Contains(logs.String(), `"attempts"=3`) || strings.Contains(logs.String(), "XYZ") {
		t.Fatalf("want 3 attempts logged without the URL:\n%s", logs.String())
	}
}

// Bad configuration is named field by field, and only what a subscription
// touches is its problem.
func TestBadInputIsNamed(t *testing.T) {
	t.Parallel()
	c := Parse(map[string]string{
		"service.webhook.ops":    "url: http://127.0.0.1:1/\n",
		"service.slack":          "token: $slack-token\n",
		"service.pagerduty":      "serviceKeys: {}\n",
		"template.broken":        "message: '{{.event.message'\n",
		"trigger.on-broken":      "- send: [broken]\n",
		"trigger.on-conditional": "- when: time.Now() > 0\n  send: [release-aborted]\n",
		"triggers.typo":          "x",
	}, nil)
	want := []string{
		`service.pagerduty: service type "pagerduty" is not supported here (webhook, slack, teams)`,
		`service.slack: key slack-token missing from Secret lockstep-notifications-secret`,
		`template.broken: message: template: message:1: unclosed action`,
		`trigger.on-conditional: [0].when: conditions are not supported`,
		`triggers.typo: unknown key`,
		`trigger.on-broken: [0].send: template "broken" is not defined`,
	}
	for _, w := range want {
		found := false
		for _, p := range c.Problems {
			found = found || strings.HasPrefix(p, w)
		}
		if !found {
			t.Errorf("no problem %q in\n%s", w, strings.Join(c.Problems, "\n"))
		}
	}
	subs := Subscriptions(map[string]string{
		SubscribePrefix + "on-release-aborted.ops":   "",
		SubscribePrefix + "on-release-abort.ops":     "",
		SubscribePrefix + "on-release-aborted.slack": "releases",
		SubscribePrefix + "on-broken.ops":            "",
		"unrelated":                                  "x",
	})
	got := strings.Join(Check(c, subs), "\n")
	for _, w := range []string{
		`subscribe.on-release-abort.ops: trigger "on-release-abort" does not exist`,
		`subscribe.on-release-aborted.slack: service "slack" is not configured`,
		`lockstep-notifications-cm: service.slack: key slack-token missing`,
		`lockstep-notifications-cm: trigger.on-broken: [0].send: template "broken" is not defined`,
		`lockstep-notifications-cm: triggers.typo: unknown key`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("Check lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "pagerduty") {
		t.Errorf("a problem nobody subscribes to was reported:\n%s", got)
	}
	if p := Check(c, Subscriptions(map[string]string{SubscribePrefix + "on-release-aborted.ops": ""})); len(p) != 1 || !strings.Contains(p[0], "triggers.typo") {
		t.Errorf("a valid subscription: %v (want only the unknown key)", p)
	}
}

func TestTriggerOf(t *testing.T) {
	t.Parallel()
	for reason, want := range map[string]string{"ReleaseAborted": "on-release-aborted", "Inconclusive": "on-inconclusive", "WouldAbort": "on-would-abort", "AwaitingApproval": "on-awaiting-approval"} {
		if got := TriggerOf(reason); got != want {
			t.Errorf("TriggerOf(%s) = %s, want %s", reason, got, want)
		}
	}
}
