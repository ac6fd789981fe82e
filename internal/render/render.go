// Package render turns the GitOps tree (gitops/) into the files a fleet's
// git repository holds, by substituting the lab's parameters: repository
// URL and revision, the Thanos Query address the analysis reads, pause and
// analysis timings, and the rollout mode. It is pure (fs.FS in, bytes out)
// and imports only the standard library.
//
// Placeholders are ${NAME}: Argo CD's ApplicationSet templates ({{.name}})
// and Argo Rollouts' analysis arguments ({{args.service}}) pass through.
package render

import (
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Params are the values a rendered tree depends on.
type Params struct {
	RepoURL  string
	Revision string
	// ThanosURL is the Prometheus-compatible API the AnalysisTemplate queries.
	ThanosURL string
	// Pause is the duration of each timed canary pause (the guide: 20s).
	Pause time.Duration
	// AnalysisInitialDelay and AnalysisInterval time the analysis (the
	// guide: 60s and 20s).
	AnalysisInitialDelay time.Duration
	AnalysisInterval     time.Duration
	// ScaleDownDelay is how long an old ReplicaSet stays up (Rollouts: 30s).
	ScaleDownDelay time.Duration
	// ScrapeInterval is how often Prometheus scrapes the Istio metrics
	// (the FleetRollout's judge waits one interval before counting).
	ScrapeInterval time.Duration
	// Mode picks the Rollout the ApplicationSet deploys: ModeIndependent
	// (the guide's) or ModeLockstep (driven by the hub's coordinator).
	Mode string
	// ApprovalBarrier, when set, names a barrier a person approves: the
	// FleetRollout holds at ApprovalStep (the pause at 50 % canary) until
	// `lockstep approve --barrier NAME` or the dashboard approves it.
	ApprovalBarrier string
}

// ApprovalStep is the lockstep Rollout's pause at 50 % canary, where
// Params.ApprovalBarrier holds.
const ApprovalStep = 10

// Rollout modes: the folder under argo-resources/rollout/ they deploy.
const (
	ModeIndependent = "strategy"
	ModeLockstep    = "lockstep"
)

// Guide returns the lab guide's values for everything but the addresses.
func Guide() Params {
	return Params{Revision: "main", Pause: 20 * time.Second, AnalysisInitialDelay: 60 * time.Second,
		AnalysisInterval: 20 * time.Second, ScaleDownDelay: 30 * time.Second, ScrapeInterval: 15 * time.Second, Mode: ModeIndependent}
}

// Validate reports the first parameter that cannot be rendered.
func (p Params) Validate() error {
	switch {
	case p.RepoURL == "":
		return fmt.Errorf("render: repository URL is empty")
	case p.Revision == "":
		return fmt.Errorf("render: revision is empty")
	case p.ThanosURL == "":
		return fmt.Errorf("render: Thanos URL is empty")
	case p.Pause < time.Second:
		return fmt.Errorf("render: pause %s is shorter than 1s", p.Pause)
	case p.AnalysisInterval < time.Second:
		return fmt.Errorf("render: analysis interval %s is shorter than 1s", p.AnalysisInterval)
	case p.ScrapeInterval < time.Second:
		return fmt.Errorf("render: scrape interval %s is shorter than 1s", p.ScrapeInterval)
	case p.AnalysisInitialDelay < 0 || p.ScaleDownDelay < 0:
		return fmt.Errorf("render: negative delay")
	case p.Mode != ModeIndependent && p.Mode != ModeLockstep:
		return fmt.Errorf("render: unknown rollout mode %q (want %s or %s)", p.Mode, ModeIndependent, ModeLockstep)
	case p.ApprovalBarrier != "" && p.Mode != ModeLockstep:
		return fmt.Errorf("render: an approval barrier needs the lockstep mode (a FleetRollout)")
	case p.ApprovalBarrier != "" && !barrierName.MatchString(p.ApprovalBarrier):
		return fmt.Errorf("render: approval barrier %q is not a DNS label (lower-case letters, digits, '-')", p.ApprovalBarrier)
	}
	return nil
}

func (p Params) values() map[string]string {
	return map[string]string{
		"REPO_URL":               p.RepoURL,
		"REVISION":               p.Revision,
		"THANOS_URL":             p.ThanosURL,
		"PAUSE":                  dur(p.Pause),
		"ANALYSIS_INITIAL_DELAY": dur(p.AnalysisInitialDelay),
		"ANALYSIS_INTERVAL":      dur(p.AnalysisInterval),
		"SCALE_DOWN_DELAY":       fmt.Sprintf("%d", int(p.ScaleDownDelay/time.Second)),
		"ROLLOUT_MODE":           p.Mode,
		"SCRAPE_INTERVAL":        dur(p.ScrapeInterval),
		"HOLD_STEPS":             p.holdSteps(),
	}
}

// holdSteps is the FleetRollout's spec.hold.steps, in flow style.
func (p Params) holdSteps() string {
	if p.ApprovalBarrier == "" {
		return "[]"
	}
	return fmt.Sprintf(`[{step: %d, duration: "0s", name: %s, approval: Required}]`, ApprovalStep, p.ApprovalBarrier)
}

// dur prints a duration the way Argo Rollouts reads it: whole seconds.
func dur(d time.Duration) string { return fmt.Sprintf("%ds", int(d/time.Second)) }

var barrierName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

var placeholder = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Bytes substitutes the placeholders of one file.
func Bytes(name string, in []byte, p Params) ([]byte, error) {
	vals := p.values()
	var missing []string
	out := placeholder.ReplaceAllFunc(in, func(m []byte) []byte {
		k := string(placeholder.FindSubmatch(m)[1])
		v, ok := vals[k]
		if !ok {
			missing = append(missing, k)
			return m
		}
		return []byte(v)
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("render %s: unknown placeholder ${%s}", name, missing[0])
	}
	return out, nil
}

// Tree renders every YAML file of the tree; other files are copied as they
// are. Keys are slash-separated paths.
func Tree(tree fs.FS, p Params) (map[string][]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err := fs.WalkDir(tree, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
			return err
		}
		b, err := fs.ReadFile(tree, path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml") {
			if b, err = Bytes(path, b, p); err != nil {
				return err
			}
		}
		out[path] = b
		return nil
	})
	return out, err
}

// Paths lists the keys of a rendered tree in order.
func Paths(files map[string][]byte) []string {
	out := make([]string, 0, len(files))
	for k := range files {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
