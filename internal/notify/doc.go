// Package notify tells people what a FleetRollout did, in the model Argo
// CD and Argo Rollouts users already know from argoproj/notifications-engine:
//
//   - one ConfigMap (lockstep-notifications-cm in the coordinator's
//     namespace) of service.*, template.* and trigger.* entries, with
//     $key references into one Secret (lockstep-notifications-secret);
//   - notifications.argoproj.io/subscribe.<trigger>.<service> annotations
//     on the FleetRollout, whose value lists recipients separated by ';'.
//
// A trigger is named after the coordinator's Event reason, as in Argo
// Rollouts: the Event "ReleaseAborted" fires on-release-aborted. Built-in
// triggers and templates (Defaults) cover the release's life; the
// ConfigMap may replace or add to them.
//
// notifications-engine itself is not linked: its one services package
// brings about 60 modules (AWS, Google Cloud, NATS server, ...), +15 MB of
// binary and +6.5 MiB of RSS at start-up, measured against the lockstep
// binary; the coordinator's memory target leaves no room for that. This
// package implements the same configuration for the webhook, Slack and
// Microsoft Teams services.
//
// Deliveries never block the caller: Notifier.Notify renders and queues,
// a few workers send, retrying with exponential backoff, and every
// delivery is counted in lockstep_notifications_total{trigger,service,
// result}. Secrets never reach a log or an error: failures name the service
// and the HTTP status, never a URL or a header.
//
// The package imports the API types, client-go's core types,
// controller-runtime's client (to read the ConfigMap and Secret), sprig and
// client_golang; only the coordinator imports it.
package notify
