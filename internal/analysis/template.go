package analysis

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

const (
	openTag  = "{{"
	closeTag = "}}"
	// argPrefix is how Argo Rollouts names arguments inside tags.
	argPrefix = "args."
	// scopeTag is Lockstep's own tag: where the grouping clause goes.
	scopeTag = "scope"
)

// ResolveArgs substitutes {{args.NAME}} tags with the Argo Rollouts
// semantics, so an AnalysisTemplate query can be pasted unchanged: a tag's
// content is trimmed of spaces ({{ args.x }} works), values are inserted
// verbatim and not re-scanned, a tag naming no supplied argument is an error
// ("failed to resolve {{args.x}}"), and so is a "{{" with no "}}". Any other
// tag, {{scope}} included, is an error here; Metric.Expand resolves it.
func ResolveArgs(template string, args map[string]string) (string, error) {
	return resolve(template, argTags(args))
}

func argTags(args map[string]string) map[string]string {
	tags := make(map[string]string, len(args)+1)
	for k, v := range args {
		tags[argPrefix+k] = v
	}
	return tags
}

// resolve replaces every {{tag}} in template with tags[trimmed tag].
func resolve(template string, tags map[string]string) (string, error) {
	var b strings.Builder
	rest := template
	for {
		i := strings.Index(rest, openTag)
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		rest = rest[i+len(openTag):]
		j := strings.Index(rest, closeTag)
		if j < 0 {
			return "", fmt.Errorf("cannot find end tag %q in template %q", closeTag, template)
		}
		tag := rest[:j]
		val, ok := tags[strings.TrimSpace(tag)]
		if !ok {
			return "", fmt.Errorf("failed to resolve {{%s}}", escapeLines(tag))
		}
		b.WriteString(val)
		rest = rest[j+len(closeTag):]
	}
}

// hasTag reports whether template contains {{name}} (spaces allowed).
func hasTag(template, name string) bool {
	rest := template
	for {
		i := strings.Index(rest, openTag)
		if i < 0 {
			return false
		}
		rest = rest[i+len(openTag):]
		j := strings.Index(rest, closeTag)
		if j < 0 {
			return false
		}
		if strings.TrimSpace(rest[:j]) == name {
			return true
		}
		rest = rest[j+len(closeTag):]
	}
}

// promQLParser parses queries the way a Prometheus server with default flags
// does: experimental functions (--enable-feature=promql-experimental-functions)
// are unknown functions here too. A Parser is safe for concurrent use.
var promQLParser = parser.NewParser(parser.Options{})

// CheckQuery reports whether q is a PromQL expression Prometheus would
// accept: it parses q and type-checks it (rate needs a range vector, by
// needs a label list, functions must exist and get the right number of
// arguments). The error is one line, the parser's position (line:column of
// q) and message, e.g. `1:6: parse error: expected type range vector in
// call to function "rate", got instant vector`.
//
// q is the query as sent, with its {{args.NAME}} and {{scope}} tags
// already resolved: a tag is not PromQL.
func CheckQuery(q string) error {
	if strings.TrimSpace(q) == "" {
		return errors.New("query is empty")
	}
	if _, err := promQLParser.ParseExpr(q); err != nil {
		return parseError(err)
	}
	return nil
}

// parseError is a parser error as one line. The parser recovers from its
// own panics with a bare ErrUnexpected, which would say nothing about the
// query.
func parseError(err error) error {
	if errors.Is(err, parser.ErrUnexpected) {
		return errors.New("the PromQL parser failed on this query (a bug in the parser); check it with promtool")
	}
	return errors.New(escapeLines(err.Error()))
}

// escapeLines keeps a message that quotes user input on one line, as the
// status condition it ends up in expects: the parser quotes what it did not
// expect, but not everything it repeats, and a tag is repeated as written.
func escapeLines(s string) string {
	return lineBreaks.Replace(s)
}

var lineBreaks = strings.NewReplacer("\n", `\n`, "\r", `\r`)
