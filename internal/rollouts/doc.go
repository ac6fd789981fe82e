// Package rollouts holds typed operations on Argo Rollouts over the dynamic
// client: reading a Rollout into decide.RolloutState, reading the weights
// Argo Rollouts wrote into the Istio VirtualService, and sending promote,
// abort and retry patches to the rollouts/status subresource.
//
// Two flavours of patch exist on purpose. The coordinator sends the guarded
// JSON patches of package decide through Apply: their "test" operations
// make a stale or repeated patch fail with ErrPreconditionFailed instead of
// moving a member twice. People (the CLI) use Promote, Abort and Retry,
// which send exactly what the Argo Rollouts kubectl plugin sends.
//
// The package deliberately does not depend on github.com/argoproj/argo-
// rollouts (it pins an older Kubernetes); it reads the few fields it needs
// from unstructured objects. It imports client-go's dynamic client,
// apimachinery and package decide.
package rollouts
