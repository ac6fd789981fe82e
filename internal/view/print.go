package view

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"
)

// Output formats.
const (
	FormatTable = "table"
	FormatWide  = "wide"
	FormatJSON  = "json"
	FormatYAML  = "yaml"
)

// Formats lists the output formats Print knows, for flag help and
// completion.
var Formats = []string{FormatTable, FormatWide, FormatJSON, FormatYAML}

// ValidateFormat returns an error naming the allowed formats when format
// is not one of them, so a typo fails before any cluster is contacted.
func ValidateFormat(format string) error {
	for _, f := range Formats {
		if f == format {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q (allowed: %s)", format, strings.Join(Formats, ", "))
}

// Print writes f in format.
func Print(w io.Writer, format string, f Fleet) error {
	switch format {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		// Verdict messages hold comparisons ("0.98 > 0.9") that people and
		// jq should read as written, not as \u003e.
		enc.SetEscapeHTML(false)
		return enc.Encode(f)
	case FormatYAML:
		b, err := yaml.Marshal(f)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case FormatTable:
		return printTable(w, f, false)
	case FormatWide:
		return printTable(w, f, true)
	}
	return ValidateFormat(format)
}

func printTable(w io.Writer, f Fleet, wide bool) error {
	var b strings.Builder
	b.WriteString("ROLLOUT " + f.Rollout)
	if c := f.Coordinator; c != nil {
		fmt.Fprintf(&b, "  FLEETROLLOUT %s  PHASE %s", c.FleetRollout, dash(c.Phase))
		if c.Reason != "" {
			fmt.Fprintf(&b, " (%s)", c.Reason)
		}
		fmt.Fprintf(&b, "  REVISION %s  STEP %s", dash(c.Revision), ptr(c.CurrentStep))
		if c.Barrier != "" {
			fmt.Fprintf(&b, "  BARRIER %s", c.Barrier)
		}
		if len(c.Waves) > 0 {
			fmt.Fprintf(&b, "  WAVES %s", strings.Join(c.Waves, " > "))
		}
		if c.Soaking != "" {
			fmt.Fprintf(&b, "  SOAKING %s", c.Soaking)
		}
		if c.Global != nil {
			fmt.Fprintf(&b, "  ANALYSIS %s", verdictCell(c.Global))
			if e := EvidenceCell(c.Global); e != "-" {
				fmt.Fprintf(&b, "  EVIDENCE %s", e)
			}
		}
		b.WriteString("\n")
		if c.Shadow != "" {
			b.WriteString("  SHADOW " + c.Shadow)
			if e := EvidenceCell(&Verdict{Evidence: c.ShadowEvidence}); e != "-" {
				b.WriteString("  EVIDENCE " + e)
			}
			b.WriteString("\n")
		}
		if c.Message != "" {
			b.WriteString("  " + c.Message + "\n")
		}
	} else {
		b.WriteString("  (no FleetRollout: clusters read directly)\n")
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// A WAVE column only for a release in waves, so other tables stay
	// as they are.
	waves := false
	for _, c := range f.Clusters {
		waves = waves || c.Wave != ""
	}
	if waves {
		fmt.Fprint(tw, "WAVE\t")
	}
	if wide {
		fmt.Fprintln(tw, "CLUSTER\tSTATUS\tREVISION\tSTABLE\tSTEP\tSET\tWEIGHTS\tSTABLE IMAGE\tCANARY IMAGE\tPODS\tANALYSISRUN\tVERDICT\tEVIDENCE\tRATE\tLAST CONTACT")
	} else {
		fmt.Fprintln(tw, "CLUSTER\tSTATUS\tREVISION\tSTEP\tSET\tWEIGHTS\tCANARY IMAGE\tANALYSIS\tVERDICT\tEVIDENCE")
	}
	var problems []string
	for _, c := range f.Clusters {
		if c.Error != "" {
			problems = append(problems, fmt.Sprintf("%s: %s", c.Name, c.Error))
		}
		if c.WeightsError != "" {
			problems = append(problems, fmt.Sprintf("%s: weights: %s", c.Name, c.WeightsError))
		}
		for _, w := range c.Warnings {
			problems = append(problems, fmt.Sprintf("%s: %s", c.Name, w))
		}
		if waves {
			fmt.Fprint(tw, dash(c.Wave)+"\t")
		}
		if wide {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
				c.Name, Status(c), dash(c.Revision), dash(c.StableRevision), stepCell(c), ptr(c.SetWeight), weightsCell(c.Weights),
				dash(c.StableImage), dash(c.CanaryImage), podsCell(c.ReplicaSets), analysisRunCell(c.Analysis), verdictCell(c.Verdict),
				EvidenceCell(c.Verdict), rateCell(c.Verdict), timeCell(c.LastContact))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
				c.Name, Status(c), dash(c.Revision), stepCell(c), ptr(c.SetWeight), weightsCell(c.Weights),
				dash(c.CanaryImage), analysisPhase(c.Analysis), verdictCell(c.Verdict), EvidenceCell(c.Verdict))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range problems {
		if _, err := fmt.Fprintln(w, "  "+p); err != nil {
			return err
		}
	}
	if wide {
		for _, c := range f.Clusters {
			if c.Analysis == nil || len(c.Analysis.Metrics) == 0 {
				continue
			}
			for _, m := range c.Analysis.Metrics {
				fmt.Fprintf(w, "  %s: analysisrun %s metric %s %s value %s (%d ok, %d failed)\n",
					c.Name, c.Analysis.Name, m.Metric, dash(m.Phase), dash(m.Value), m.Successful, m.Failed)
			}
		}
		if c := f.Coordinator; c != nil && len(c.Events) > 0 {
			fmt.Fprintln(w, "\nEVENTS")
			for _, e := range c.Events {
				step := ""
				if e.Step != nil {
					step = fmt.Sprintf(" step %d", *e.Step)
				}
				fmt.Fprintf(w, "  %s  %s%s  %s  %s\n", e.Time.Format("15:04:05.000"), e.Action, step, e.Reason, e.Message)
			}
		}
	}
	return nil
}

// Status is a cluster's one-word state: Unreachable, NotFound, Aborted,
// or the Rollout's phase.
func Status(c Cluster) string {
	switch {
	case !c.Reachable:
		return "Unreachable"
	case !c.Found:
		return "NotFound"
	case c.Aborted:
		return "Aborted"
	}
	return dash(c.Phase)
}

// Line is one line per cluster for a stream of changes (status -w without
// a terminal): the cluster's state, step, weights and verdict.
func Line(c Cluster) string {
	s := fmt.Sprintf("%s %s step %s weights %s", c.Name, Status(c), stepCell(c), weightsCell(c.Weights))
	if c.Revision != "" {
		s += " revision " + c.Revision
	}
	if c.Verdict != nil {
		s += " verdict " + verdictCell(c.Verdict)
		if e := EvidenceCell(c.Verdict); e != "-" {
			s += " evidence " + e
		}
	}
	if c.Error != "" {
		s += " (" + c.Error + ")"
	}
	return s
}

func stepCell(c Cluster) string {
	if c.Step == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", *c.Step, c.Steps)
}

func weightsCell(w *Weights) string {
	if w == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", w.Stable, w.Canary)
}

func podsCell(rss []ReplicaSet) string {
	if len(rss) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(rss))
	for _, rs := range rss {
		parts = append(parts, fmt.Sprintf("%s %d/%d", rs.Role, rs.Ready, rs.Replicas))
	}
	return strings.Join(parts, ",")
}

func analysisPhase(a *AnalysisRun) string {
	if a == nil {
		return "-"
	}
	return dash(a.Phase)
}

func analysisRunCell(a *AnalysisRun) string {
	if a == nil {
		return "-"
	}
	return a.Name + " " + dash(a.Phase)
}

func verdictCell(v *Verdict) string {
	if v == nil {
		return "-"
	}
	if v.Reason != "" {
		return v.Verdict + "(" + v.Reason + ")"
	}
	return v.Verdict
}

// EvidenceCell shows the judge's counts and statistics: canary failed/
// requests, stable failed/requests, then in the relative zone the
// comparison with the stable (log e-value, failing at its bound) and the
// pass test (log-likelihood ratio, passing at its bound), e.g.
// "canary 3/120 stable 30/1100 vs-stable -1.2 (fail 6.2) LLR -4 (pass -3.7)".
func EvidenceCell(v *Verdict) string {
	if v == nil || v.Evidence == nil {
		return "-"
	}
	e := v.Evidence
	s := fmt.Sprintf("canary %d/%d stable %d/%d", e.Canary.Failures, e.Canary.Requests, e.Stable.Failures, e.Stable.Requests)
	switch {
	case e.LogEValue != "" && e.Zone != "Absolute":
		// Relative zone: the comparison with the stable fails, the pass
		// test passes.
		s += fmt.Sprintf(" vs-stable %s (fail %s) LLR %s (pass %s)", trimNum(e.LogEValue), trimNum(e.AbortAt), trimNum(e.LogLikelihoodRatio), trimNum(e.PassAt))
	case e.LogLikelihoodRatio != "":
		s += fmt.Sprintf(" LLR %s (fail %s, pass %s)", trimNum(e.LogLikelihoodRatio), trimNum(e.AbortAt), trimNum(e.PassAt))
		if e.LogEValue != "" {
			s += fmt.Sprintf(" vs-stable %s", trimNum(e.LogEValue))
		}
	}
	if l := e.Latency; l != nil {
		s += fmt.Sprintf(" slow>%s %d/%d vs %d/%d", trimNum(l.Bound), l.CanarySlow.Failures, l.CanarySlow.Requests, l.StableSlow.Failures, l.StableSlow.Requests)
	}
	return s
}

func trimNum(s string) string {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return s
}

func rateCell(v *Verdict) string {
	if v == nil || v.SuccessRate == nil {
		return "-"
	}
	return strconv.FormatFloat(*v.SuccessRate, 'f', 3, 64)
}

func timeCell(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("15:04:05")
}

func ptr(p *int32) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(int(*p))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
