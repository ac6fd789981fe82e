package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lockstep.dev/lockstep/internal/lab/local"
)

// commitRelease is the guide's sed -v1 -> -v2 as one commit, with, for a
// bad release, the fault that makes the new version fail; Argo CD is told
// at once.
func (r *runner) commitRelease(ctx context.Context, rel *release) error {
	msg := fmt.Sprintf("upgrade app to version %s", rel.next)
	if r.o.BadRelease {
		msg = fmt.Sprintf("upgrade app to version %s (bad release: %.0f%% errors)", rel.next, r.o.ErrorRate*100)
	}
	rel.start = time.Now()
	rev, err := local.Commit(r.repo, msg, func(wt string) error {
		path := filepath.Join(wt, RolloutFile(r.mode))
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		s := setVersion(string(b), rel.cur, rel.next)
		rate := 0.0
		if r.o.BadRelease && r.o.FaultCluster == "" {
			rate = r.o.ErrorRate
		}
		return os.WriteFile(path, []byte(setErrorRate(s, rate)), 0o644)
	})
	if err != nil {
		return err
	}
	rel.rev = rev
	r.say("git commit %s: %q", rev[:8], msg)
	return r.refreshApps(ctx, rolloutAppLabel)
}
