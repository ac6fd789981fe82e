package demo

import (
	"sync"
	"time"

	"lockstep.dev/lockstep/internal/load"
)

// release is what the demo's phases found so far, for the phases after
// them.
type release struct {
	// commitParams
	files       map[string][]byte
	paramsRev   string
	cur, newest string
	liveRate    float64
	// settle
	served, next string
	// startLoad: the load's results, and when the outcome was seen.
	mu          sync.Mutex
	outcome     time.Time
	after       *load.Stats
	canaryTimes []time.Time // answers of the new version
	stats       *load.Stats
	loadDone    chan error
	cancelLoad  func()
	// commitRelease
	start time.Time
	rev   string
	// watchOutcome
	sum        *Summary
	firstAbort time.Time
	zeroAt     map[string]time.Time
}

// stopLoad ends the load, if it runs.
func (rel *release) stopLoad() {
	if rel.cancelLoad != nil {
		rel.cancelLoad()
	}
}
