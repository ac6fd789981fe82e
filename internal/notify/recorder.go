package notify

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
)

// TriggerOf names the trigger an Event reason fires, as Argo Rollouts
// does: "on-" and the reason in kebab case (ReleaseAborted ->
// on-release-aborted).
func TriggerOf(reason string) string {
	var b strings.Builder
	b.WriteString("on-")
	for i, r := range reason {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Recorder records Events and notifies their subscribers: the adapter
// Argo Rollouts puts around its event recorder.
type Recorder struct {
	record.EventRecorder
	Notifier *Notifier
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var _ record.EventRecorder = (*Recorder)(nil)

// Event records and notifies.
func (r *Recorder) Event(obj runtime.Object, eventtype, reason, message string) {
	r.EventRecorder.Event(obj, eventtype, reason, message)
	r.notify(obj, eventtype, reason, message)
}

// Eventf records and notifies.
func (r *Recorder) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	r.EventRecorder.Eventf(obj, eventtype, reason, messageFmt, args...)
	r.notify(obj, eventtype, reason, fmt.Sprintf(messageFmt, args...))
}

// AnnotatedEventf records and notifies.
func (r *Recorder) AnnotatedEventf(obj runtime.Object, annotations map[string]string, eventtype, reason, messageFmt string, args ...any) {
	r.EventRecorder.AnnotatedEventf(obj, annotations, eventtype, reason, messageFmt, args...)
	r.notify(obj, eventtype, reason, fmt.Sprintf(messageFmt, args...))
}

func (r *Recorder) notify(obj runtime.Object, eventtype, reason, message string) {
	fr, ok := obj.(*v1alpha1.FleetRollout)
	if !ok || r.Notifier == nil {
		return
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	r.Notifier.Notify(context.Background(), fr, Event{Type: eventtype, Reason: reason, Message: message, Time: now()})
}
