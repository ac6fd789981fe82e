package local

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/notify"
)

// NotifyReceiverName is the fleet's notification receiver (`lockstep
// notify-receiver`), and NotifyReceiverURLKey its address in State.URLs:
// GET lists what it received.
const (
	NotifyReceiverName   = HubName + "/notify-receiver"
	NotifyReceiverURLKey = "lockstep-notify-receiver"
	// LabReceiverService is the webhook service of the fleet's
	// notifications ConfigMap that reaches the receiver; the GitOps
	// tree's FleetRollout subscribes to it.
	LabReceiverService = "lab-receiver"
)

// startNotifyReceiver runs the receiver and installs the notifications
// ConfigMap whose webhook service lab-receiver points at it: what a team
// would install with its own Slack or webhook.
func (f *fleet) startNotifyReceiver(ctx context.Context) error {
	self, err := f.self()
	if err != nil {
		return err
	}
	url := "http://" + addr(f.p.notifyReceiver) + "/"
	if err := f.startAll(ctx, ProcSpec{
		Name: NotifyReceiverName, Cluster: HubName, Path: self, Addr: url,
		Ports:  map[string]int{"http": f.p.notifyReceiver},
		Args:   []string{"notify-receiver", "--address=" + addr(f.p.notifyReceiver)},
		Health: httpOK(url),
	}); err != nil {
		return err
	}
	a, err := f.applier(HubName)
	if err != nil {
		return err
	}
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": notify.ConfigMapName, "namespace": "lockstep-system"},
		"data": map[string]any{
			"service.webhook." + LabReceiverService: fmt.Sprintf("url: %s\nretryWaitMin: 500ms\n", url),
		},
	}}
	if err := a.Apply(ctx, cm); err != nil {
		return fmt.Errorf("notifications ConfigMap: %w", err)
	}
	return f.s.Update(func(st *State) { st.URLs[NotifyReceiverURLKey] = url })
}
