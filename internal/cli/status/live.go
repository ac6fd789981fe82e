package status

import (
	"errors"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/view"
)

// sparkWidth is how many success-rate samples a sparkline keeps.
const sparkWidth = 24

// Model is the live view's state. It is a plain bubbletea model: Update
// folds a fleet picture or a key into it and View renders it, with no I/O,
// so frames are tested as strings.
type Model struct {
	fleet view.Fleet
	err   error
	at    time.Time
	seen  bool
	// rates are each cluster's success-rate samples, oldest first; a
	// sample is taken when the verdict's evaluation time changes, so an
	// unchanged verdict redrawn many times counts once.
	rates    map[string][]float64
	rateAt   map[string]time.Time
	lastRate map[string]float64
	// thanos is set once rates come from Thanos rather than verdicts.
	thanos   bool
	steps    map[string][]stepMark
	width    int
	quitting bool
}

type stepMark struct {
	step int32
	at   time.Time
}

// NewModel returns an empty live view.
func NewModel() Model {
	return Model{rates: map[string][]float64{}, rateAt: map[string]time.Time{}, lastRate: map[string]float64{}, steps: map[string][]stepMark{}, width: 100}
}

type updateMsg Update
type closedMsg struct{}

// Init implements tea.Model.
func (m Model) Init() tea.Cmd { return nil }

// Update implements tea.Model.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			m.quitting = true
			return m, tea.Quit
		}
	case tea.WindowSizeMsg:
		// A pseudo-terminal without a size reports 0; keep the default
		// rather than cutting every line to nothing.
		if msg.Width > 0 {
			m.width = msg.Width
		}
	case updateMsg:
		m = m.apply(Update(msg))
	case closedMsg:
		m.quitting = true
		return m, tea.Quit
	}
	return m, nil
}

func (m Model) apply(u Update) Model {
	m.fleet, m.err, m.at, m.seen = u.Fleet, u.Err, u.At, true
	// Maps are shared between copies of the model; bubbletea keeps only
	// the latest copy, so updating them in place is safe.
	for _, c := range u.Fleet.Clusters {
		if u.Rates != nil {
			// Thanos rates: every update is a new reading.
			m.thanos = true
			if v, ok := u.Rates[c.Name]; ok {
				m.rates[c.Name] = lastN(append(m.rates[c.Name], v), sparkWidth)
				m.lastRate[c.Name] = v
			} else {
				delete(m.lastRate, c.Name)
			}
		} else if v := c.Verdict; v != nil && v.SuccessRate != nil {
			at := u.At
			if v.EvaluatedAt != nil {
				at = *v.EvaluatedAt
			}
			if !at.Equal(m.rateAt[c.Name]) {
				m.rateAt[c.Name] = at
				m.rates[c.Name] = lastN(append(m.rates[c.Name], *v.SuccessRate), sparkWidth)
			}
			m.lastRate[c.Name] = *v.SuccessRate
		} else {
			// An inconclusive or missing verdict has no rate; showing the
			// previous one would pass an old value off as current.
			delete(m.lastRate, c.Name)
		}
		if c.Step != nil {
			marks := m.steps[c.Name]
			if len(marks) == 0 || marks[len(marks)-1].step != *c.Step {
				m.steps[c.Name] = append(marks, stepMark{step: *c.Step, at: u.At})
			}
		}
	}
	return m
}

// View implements tea.Model.
func (m Model) View() string {
	if m.quitting {
		return ""
	}
	if !m.seen {
		return "reading the fleet...\n"
	}
	var b strings.Builder
	f := m.fleet
	fmt.Fprintf(&b, "lockstep status  %s  %s\n", f.Rollout, m.at.UTC().Format("15:04:05"))
	if c := f.Coordinator; c != nil {
		fmt.Fprintf(&b, "fleet %s  %s", c.FleetRollout, orDash(c.Phase))
		if c.Reason != "" {
			fmt.Fprintf(&b, " (%s)", c.Reason)
		}
		if c.Barrier != "" {
			fmt.Fprintf(&b, "  barrier %s", c.Barrier)
		}
		if len(c.Waves) > 0 {
			fmt.Fprintf(&b, "  waves %s", strings.Join(c.Waves, " > "))
		}
		if c.Soaking != "" {
			fmt.Fprintf(&b, "  soaking %s", c.Soaking)
		}
		if c.Global != nil {
			fmt.Fprintf(&b, "  analysis %s", c.Global.Verdict)
			if c.Global.SuccessRate != nil {
				fmt.Fprintf(&b, " %.3f", *c.Global.SuccessRate)
			}
		}
		b.WriteString("\n")
		if c.Global != nil && c.Global.Evidence != nil {
			b.WriteString("  evidence " + truncate(view.EvidenceCell(c.Global), m.width-11) + "\n")
		}
		if c.Message != "" {
			b.WriteString("  " + truncate(c.Message, m.width-2) + "\n")
		}
	} else {
		b.WriteString("no FleetRollout: clusters read directly\n")
	}
	if m.err != nil {
		b.WriteString("hub: " + truncate(m.err.Error(), m.width-5) + "\n")
	}
	for _, c := range f.Clusters {
		b.WriteString("\n")
		fmt.Fprintf(&b, "%-16s %-11s rev %-10s weights %-7s set %s", c.Name, view.Status(c), orDash(c.Revision), weights(c.Weights), ptrStr(c.SetWeight))
		if c.Wave != "" {
			b.WriteString("  wave " + c.Wave)
		}
		b.WriteString("\n")
		if !c.Reachable {
			b.WriteString("  " + truncate(c.Error, m.width-2) + "\n")
			continue
		}
		fmt.Fprintf(&b, "  steps %s\n", Timeline(c))
		if marks := m.steps[c.Name]; len(marks) > 1 {
			parts := make([]string, 0, 4)
			if len(marks) > 4 {
				marks = marks[len(marks)-4:]
			}
			for _, mk := range marks {
				parts = append(parts, fmt.Sprintf("%d@%s", mk.step, mk.at.UTC().Format("15:04:05")))
			}
			fmt.Fprintf(&b, "  moved %s\n", strings.Join(parts, " "))
		}
		rate := "-"
		if v, ok := m.lastRate[c.Name]; ok {
			rate = fmt.Sprintf("%.3f", v)
		}
		if m.thanos {
			rate += " (thanos)"
		}
		verdict := "-"
		if c.Verdict != nil {
			verdict = c.Verdict.Verdict
		}
		fmt.Fprintf(&b, "  success %s %s  verdict %s\n", Sparkline(m.rates[c.Name]), rate, verdict)
		if c.Verdict != nil && c.Verdict.Evidence != nil {
			b.WriteString("  evidence " + truncate(view.EvidenceCell(c.Verdict), m.width-11) + "\n")
		}
	}
	b.WriteString("\nq to quit\n")
	return b.String()
}

// Timeline draws a cluster's steps: done, the current one, still ahead,
// or where an abort stopped it.
func Timeline(c view.Cluster) string {
	if c.Steps == 0 {
		return "-"
	}
	cur := int32(-1)
	if c.Step != nil {
		cur = *c.Step
	}
	var b strings.Builder
	for i := int32(0); i < int32(c.Steps); i++ {
		switch {
		case i < cur:
			b.WriteRune('■')
		case i == cur && c.Aborted:
			b.WriteRune('✗')
		case i == cur:
			b.WriteRune('▶')
		default:
			b.WriteRune('·')
		}
	}
	fmt.Fprintf(&b, " %s/%d", ptrStr(c.Step), c.Steps)
	return b.String()
}

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws success rates on a fixed 0..1 scale, so a fall from
// 0.99 to 0.7 looks like one and a flat 0.99 does not look like noise.
func Sparkline(vals []float64) string {
	if len(vals) == 0 {
		return "-"
	}
	var b strings.Builder
	for _, v := range vals {
		if v < 0 {
			v = 0
		}
		if v > 1 {
			v = 1
		}
		b.WriteRune(sparkRunes[int(v*float64(len(sparkRunes)-1)+0.5)])
	}
	return b.String()
}

func runLive(s streams.IO, updates <-chan Update) error {
	p := tea.NewProgram(NewModel(), tea.WithInput(s.In), tea.WithOutput(s.Out), tea.WithAltScreen())
	go func() {
		for u := range updates {
			p.Send(updateMsg(u))
		}
		p.Send(closedMsg{})
	}()
	_, err := p.Run()
	// Ctrl-C and q are how a person leaves the view, not failures.
	if errors.Is(err, tea.ErrInterrupted) || errors.Is(err, tea.ErrProgramKilled) {
		return nil
	}
	return err
}

func lastN(v []float64, n int) []float64 {
	if len(v) > n {
		return v[len(v)-n:]
	}
	return v
}

func weights(w *view.Weights) string {
	if w == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", w.Stable, w.Canary)
}

func ptrStr(p *int32) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if n < 10 {
		n = 10
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
