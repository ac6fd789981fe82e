package analysis

import (
	"errors"
	"fmt"
	"strings"
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
			return "", fmt.Errorf("failed to resolve {{%s}}", tag)
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

// CheckQuery is the cheap stand-in for a PromQL parser: the query must be
// non-empty and its (), [] and {} balanced, ignoring string literals
// ("...", '...', `...`) and # comments, where brackets are just text (a
// regex matcher like =~"a{2}" is common). It cannot catch everything; the
// first real query does.
func CheckQuery(q string) error {
	if strings.TrimSpace(q) == "" {
		return errors.New("query is empty")
	}
	closing := map[byte]byte{')': '(', ']': '[', '}': '{'}
	var stack []int // offsets of open brackets
	for i := 0; i < len(q); i++ {
		switch c := q[i]; c {
		case '"', '\'', '`':
			end := stringEnd(q, i)
			if end < 0 {
				return fmt.Errorf("unterminated string starting at offset %d", i)
			}
			i = end
		case '#':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case '(', '[', '{':
			stack = append(stack, i)
		case ')', ']', '}':
			if len(stack) == 0 || q[stack[len(stack)-1]] != closing[c] {
				return fmt.Errorf("unbalanced %q at offset %d", c, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		at := stack[len(stack)-1]
		return fmt.Errorf("unclosed %q at offset %d", q[at], at)
	}
	return nil
}

// stringEnd returns the offset of the quote closing the string literal
// opened at start, or -1. Backquoted strings have no escapes, as in PromQL.
func stringEnd(q string, start int) int {
	quote := q[start]
	for i := start + 1; i < len(q); i++ {
		switch q[i] {
		case '\\':
			if quote != '`' {
				i++
			}
		case quote:
			return i
		}
	}
	return -1
}
