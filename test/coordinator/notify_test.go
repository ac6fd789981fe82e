package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/notify"
	"lockstep.dev/lockstep/test/fleettest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// hookServer is a local HTTP server standing in for a webhook or for
// Slack's Web API; it answers 500 to its first failFirst requests.
type hookServer struct {
	*httptest.Server
	mu        sync.Mutex
	got       []hookRequest
	failFirst int
}

type hookRequest struct {
	at     time.Time
	path   string
	auth   string
	body   string
	status int
}

func newHookServer(t *testing.T, answer string, failFirst int) *hookServer {
	h := &hookServer{failFirst: failFirst}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		req := hookRequest{at: time.Now(), path: r.URL.Path, auth: r.Header.Get("Authorization"), body: string(b), status: 200}
		if len(h.got) < h.failFirst {
			req.status = 500
		}
		h.got = append(h.got, req)
		h.mu.Unlock()
		if req.status != 200 {
			http.Error(w, "not now", req.status)
			return
		}
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.got...)
}

// TestNotificationsOfARelease subscribes a judged FleetRollout, through
// the annotations of Argo's model, to a webhook (whose first answer is a
// 500), to Slack's API (a local stand-in at apiURL) and to a receiver that
// never answers. A release whose canary fails everywhere is aborted as
// promptly as without notifications; the webhook hears the release start
// (after a retry) and its abort with the verdict's evidence, Slack gets
// the abort in its channel with the bot token, the deliveries are counted
// in the coordinator's metrics, and an annotation naming a trigger that
// does not exist is named in NotificationsConfigured without changing any
// decision.
func TestNotificationsOfARelease(t *testing.T) {
	hook := newHookServer(t, "ok", 1)
	slackAPI := newHookServer(t, `{"ok":true}`, 0)
	hang := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); dead.Close() })
	setup(t)
	hub := hubClient(t)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "lockstep-system", Name: notify.ConfigMapName}, Data: map[string]string{
		"service.webhook.ops":  "url: " + hook.URL + "\nheaders:\n- name: Authorization\n  value: Bearer $ops-token\nretryWaitMin: 200ms\n",
		"service.webhook.dead": "url: " + dead.URL + "\ntimeout: 20s\n",
		"service.slack":        "token: $slack-token\napiURL: " + slackAPI.URL + "/api/\n",
		"template.release-aborted": `message: "{{.fleetrollout.metadata.name}} {{.revision}}: {{.event.message}}"
webhook:
  ops:
    method: POST
    path: /lockstep
    body: '{"trigger": "{{.trigger}}", "fleetRollout": "{{.fleetrollout.metadata.name}}", "message": {{toJson .event.message}}}'
`,
	}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "lockstep-system", Name: notify.SecretName},
		Data: map[string][]byte{"ops-token": []byte("ops-s3cret"), "slack-token": []byte("xoxb-s3cret")}}
	for _, o := range []client.Object{cm, sec} {
		_ = hub.Delete(ctx, o)
		if err := hub.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hub.Delete(context.Background(), o) })
	}

	a, fr, v1rev, loadCtx, run := judgedFleet(t, "notified", workloads, func(fr *v1alpha1.FleetRollout) {
		fr.Annotations = map[string]string{
			notify.SubscribePrefix + "on-release-started.ops":   "",
			notify.SubscribePrefix + "on-release-aborted.ops":   "",
			notify.SubscribePrefix + "on-release-aborted.dead":  "",
			notify.SubscribePrefix + "on-release-aborted.slack": "releases",
			notify.SubscribePrefix + "on-release-abort.ops":     "",
		}
	})
	cond := findCondition(getFleetRollout(t, fr.Name), v1alpha1.ConditionNotificationsConfigured)
	if cond == nil || cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, `subscribe.on-release-abort.ops: trigger "on-release-abort" does not exist`) {
		t.Fatalf("NotificationsConfigured = %+v; want False naming the unknown trigger", cond)
	}

	setImage(t, a, imageV2, workloads...)
	v2rev := waitRevision(t, fr.Name, v1rev)
	faultAll(loadCtx, t, a.ns, v2rev)
	got := waitAborted(t, fr.Name, 90*time.Second, "fleet aborted")
	abortedAt := got.Status.Fleet.AbortedAt.Time
	// The abort's Events queued notifications to a receiver that holds
	// every request for 20 s before the abort was sent: the members must
	// not wait for it.
	fleettest.Eventually(t, 5*time.Second, "both members aborted", func() error {
		for _, c := range workloads {
			if s, err := rolloutsStateOf(t, c, a); err != nil || !s.Aborted {
				return fmt.Errorf("%s not aborted (%+v, %v)", c, s.Phase, err)
			}
		}
		return nil
	})

	var aborted hookRequest
	fleettest.Eventually(t, 20*time.Second, "the abort's webhook", func() error {
		for _, r := range hook.requests() {
			if r.path == "/lockstep" && r.status == 200 {
				aborted = r
				return nil
			}
		}
		return fmt.Errorf("%d requests, none the abort's", len(hook.requests()))
	})
	var body struct{ Trigger, FleetRollout, Message string }
	if err := json.Unmarshal([]byte(aborted.body), &body); err != nil {
		t.Fatalf("webhook body %q: %v", aborted.body, err)
	}
	t.Logf("webhook got the abort %s after it: %s", aborted.at.Sub(abortedAt).Round(time.Millisecond), body.Message)
	if body.Trigger != "on-release-aborted" || body.FleetRollout != fr.Name || aborted.auth != "Bearer ops-s3cret" ||
		!strings.Contains(body.Message, "revision "+v2rev+" aborted: AnalysisFailed") || !regexp.MustCompile(`canary \d+/\d+ failed`).MatchString(body.Message) {
		t.Errorf("abort webhook: auth %q body %+v", aborted.auth, body)
	}
	// v1 was at rest when the FleetRollout was created: nothing was
	// released, nothing said. The first delivery, v2's start, met the 500
	// and was sent again.
	all := hook.requests()
	if len(all) < 2 || all[0].status != 500 || all[1].status != 200 || all[1].body != all[0].body || !strings.Contains(all[0].body, "revision "+v2rev+" started on 2 clusters") {
		t.Errorf("first deliveries %+v; want v2's start answered 500, then the same again, answered 200", all[:min(2, len(all))])
	}
	for _, r := range all {
		if strings.Contains(r.body, v1rev) {
			t.Errorf("a notification about v1, which was at rest: %s", r.body)
		}
	}
	fleettest.Eventually(t, 20*time.Second, "Slack's chat.postMessage", func() error {
		for _, r := range slackAPI.requests() {
			if r.path == "/api/chat.postMessage" && strings.Contains(r.body, `"channel":"releases"`) && strings.Contains(r.body, "aborted") {
				if r.auth != "Bearer xoxb-s3cret" {
					return fmt.Errorf("slack auth %q", r.auth)
				}
				return nil
			}
		}
		return fmt.Errorf("%d Slack requests, none the abort's", len(slackAPI.requests()))
	})
	metrics := scrape(t, run)
	for _, want := range []string{
		`lockstep_notifications_total{result="sent",service="ops",trigger="on-release-aborted"} 1`,
		`lockstep_notifications_total{result="sent",service="ops",trigger="on-release-started"} 1`,
		`lockstep_notifications_total{result="sent",service="slack",trigger="on-release-aborted"} 1`,
		// Where a reconcile spends its time, phase by phase.
		`lockstep_reconcile_phase_seconds_count{phase="observeMembers"}`,
		`lockstep_reconcile_phase_seconds_count{phase="persist"}`,
		`lockstep_reconcile_phase_seconds_count{phase="apply"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("coordinator metrics lack %s", want)
		}
	}
	if c := findCondition(got, v1alpha1.ConditionNotificationsConfigured); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("NotificationsConfigured = %+v", c)
	}
}
