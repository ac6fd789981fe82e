package demo

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/notify"
	"lockstep.dev/lockstep/internal/render"
)

// notification waits up to wait for the fleet's notification receiver to
// hear trigger (on the lab-receiver webhook the GitOps tree's FleetRollout
// subscribes to) after since (the commit), says it and returns its
// message. Only a
// lockstep run on a fleet with a receiver has one.
func (r *runner) notification(ctx context.Context, trigger string, since time.Time, wait time.Duration) string {
	url := r.o.State.URLs[local.NotifyReceiverURLKey]
	if r.mode != render.ModeLockstep || url == "" {
		return ""
	}
	deadline := time.Now().Add(wait)
	for {
		if got, at, ok := received(ctx, url, trigger, since); ok {
			r.say("%-14s %s: %s (received %s after the commit)", "notification", trigger, got, at.Sub(since).Round(100*time.Millisecond))
			return got
		}
		if time.Now().After(deadline) {
			r.say("%-14s no %s reached %s within %s", "notification", trigger, local.LabReceiverService, wait)
			return ""
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// received finds the first notification of trigger after since in what
// the receiver at url took.
func received(ctx context.Context, url, trigger string, since time.Time) (string, time.Time, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", time.Time{}, false
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", time.Time{}, false
	}
	defer resp.Body.Close()
	var list []notify.Received
	if json.NewDecoder(resp.Body).Decode(&list) != nil {
		return "", time.Time{}, false
	}
	for _, n := range list {
		var body struct{ Trigger, Message string }
		if n.Time.Before(since) || json.Unmarshal(n.Body, &body) != nil || body.Trigger != trigger {
			continue
		}
		return body.Message, n.Time, true
	}
	return "", time.Time{}, false
}
