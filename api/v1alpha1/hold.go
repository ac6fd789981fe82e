package v1alpha1

import "time"

// DefaultHold is how long the fleet holds at a pause step when spec.hold
// gives no time for it.
const DefaultHold = 30 * time.Second

// For returns how long the fleet holds at pause step: its spec.hold.steps
// entry, else spec.hold.default, else DefaultHold.
func (h Hold) For(step int32) time.Duration {
	for _, s := range h.Steps {
		if s.Step == step {
			return s.Duration.Duration
		}
	}
	if h.Default != nil {
		return h.Default.Duration
	}
	return DefaultHold
}
