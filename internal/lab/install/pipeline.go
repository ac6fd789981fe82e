package install

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Where the pipeline records its progress on the hub.
const (
	StateNamespace = "lockstep-system"
	StateConfigMap = "lockstep-install"
)

// Phases of an action in the state ConfigMap.
const (
	PhaseRunning = "Running"
	PhaseDone    = "Done"
	PhaseFailed  = "Failed"
)

// ActionState is one action's entry in the state ConfigMap.
type ActionState struct {
	Phase    string    `json:"phase"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Counts   Counts    `json:"counts"`
	Message  string    `json:"message,omitempty"`
}

// RunOptions choose which actions run.
type RunOptions struct {
	// From starts at the named action (the earlier ones are skipped).
	From string
	// Resume starts at the first action the state ConfigMap does not
	// record as Done: the way to continue a failed run.
	Resume bool
}

// Result is what one action did.
type Result struct {
	Action   string
	Skipped  bool
	Duration time.Duration
	Counts   Counts
}

// Run executes the actions in order. Each action's counts are printed on
// its line and recorded on the hub; the first failure stops the run (and is
// recorded, so Resume continues from it).
func Run(c *Context, actions []Action, o RunOptions) ([]Result, error) {
	start := 0
	if o.From != "" && o.Resume {
		return nil, fmt.Errorf("--from and --resume exclude each other")
	}
	if o.From != "" {
		start = -1
		for i, a := range actions {
			if a.Name() == o.From {
				start = i
			}
		}
		if start < 0 {
			return nil, fmt.Errorf("unknown action %q (actions: %s)", o.From, Names(actions))
		}
	}
	if o.Resume {
		st, err := ReadState(c)
		if err != nil {
			return nil, err
		}
		start = len(actions)
		for i, a := range actions {
			if st[a.Name()].Phase != PhaseDone {
				start = i
				break
			}
		}
	}
	var results []Result
	for i, a := range actions {
		if i < start {
			results = append(results, Result{Action: a.Name(), Skipped: true})
			continue
		}
		if c.Out != nil {
			fmt.Fprintf(c.Out, "[%d/%d] %s\n", i+1, len(actions), a.Description())
		}
		t := time.Now()
		c.counts = &Counts{}
		_ = c.record(a.Name(), ActionState{Phase: PhaseRunning, Started: t})
		err := a.Execute(c)
		r := Result{Action: a.Name(), Duration: time.Since(t), Counts: *c.counts}
		c.counts = nil
		if err != nil {
			_ = c.record(a.Name(), ActionState{Phase: PhaseFailed, Started: t, Finished: time.Now(), Counts: r.Counts, Message: err.Error()})
			if c.DryRun {
				// Nothing of the earlier actions was created: a dry run can
				// only compare against what is installed.
				return results, fmt.Errorf("%s: %w (a dry run compares with what is installed; it needs the namespaces and CRDs earlier actions create, so run it on an installed lab)", a.Name(), err)
			}
			return results, fmt.Errorf("%s: %w", a.Name(), err)
		}
		if err := c.record(a.Name(), ActionState{Phase: PhaseDone, Started: t, Finished: time.Now(), Counts: r.Counts}); err != nil {
			return results, fmt.Errorf("%s: record progress: %w", a.Name(), err)
		}
		results = append(results, r)
		if c.Out != nil {
			fmt.Fprintf(c.Out, "      ✓ %s in %s\n", r.Counts, r.Duration.Round(10*time.Millisecond))
			if r.Counts.Changed > 0 && len(r.Counts.Touched) > 0 {
				fmt.Fprintf(c.Out, "        created or changed: %s\n", strings.Join(r.Counts.Touched, ", "))
			}
		}
	}
	return results, nil
}

// ReadState returns the hub's record of the pipeline (empty when it never
// ran).
func ReadState(c *Context) (map[string]ActionState, error) {
	out := map[string]ActionState{}
	cm, err := c.Hub.Kube.CoreV1().ConfigMaps(StateNamespace).Get(c, StateConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read install state: %w", c.Hub.Name, err)
	}
	for k, v := range cm.Data {
		var s ActionState
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			return nil, fmt.Errorf("%s: install state %s: %w", c.Hub.Name, k, err)
		}
		out[k] = s
	}
	return out, nil
}

// record writes one action's state with a merge patch (creating the
// ConfigMap the first time). The state is bookkeeping, not an installed
// object: it is not counted.
func (c *Context) record(action string, s ActionState) error {
	if c.DryRun {
		return nil
	}
	s.Counts.Touched = nil
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	cms := c.Hub.Kube.CoreV1().ConfigMaps(StateNamespace)
	cm, err := cms.Get(c, StateConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := c.Hub.Kube.CoreV1().Namespaces().Create(c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: StateNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: StateConfigMap, Namespace: StateNamespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "lockstep"}}, Data: map[string]string{action: string(b)}}
		_, err = cms.Create(c, cm, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[action] = string(b)
	_, err = cms.Update(c, cm, metav1.UpdateOptions{})
	return err
}
