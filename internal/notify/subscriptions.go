package notify

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Subscription is one notifications.argoproj.io/subscribe.<trigger>.<service>
// annotation: the trigger (empty: the ConfigMap's defaultTriggers), the
// service, and the recipients (Slack channels, Teams recipientUrls keys;
// none for a webhook).
type Subscription struct {
	Annotation string
	Trigger    string
	Service    string
	Recipients []string
}

// Subscriptions reads an object's subscription annotations, in a stable
// order.
func Subscriptions(annotations map[string]string) []Subscription {
	var out []Subscription
	for _, k := range slices.Sorted(maps.Keys(annotations)) {
		rest, ok := strings.CutPrefix(k, SubscribePrefix)
		if !ok || rest == "" {
			continue
		}
		s := Subscription{Annotation: k}
		if trigger, service, two := strings.Cut(rest, "."); two {
			s.Trigger, s.Service = trigger, service
		} else {
			s.Service = rest
		}
		for _, r := range strings.Split(annotations[k], ";") {
			if r = strings.TrimSpace(r); r != "" {
				s.Recipients = append(s.Recipients, r)
			}
		}
		out = append(out, s)
	}
	return out
}

// triggers is what s subscribes to under c.
func (s Subscription) triggers(c *Config) []string {
	if s.Trigger != "" {
		return []string{s.Trigger}
	}
	return c.DefaultTriggers
}

// Check lists, one line each, what keeps an object's subscriptions from
// being delivered under c: its own mistakes (a trigger or service that
// does not exist) first, then the ConfigMap's problems that touch them.
func Check(c *Config, subs []Subscription) []string {
	var out []string
	touched := map[string]bool{}
	for _, s := range subs {
		svc, ok := c.Services[s.Service]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: service %q is not configured in %s", s.Annotation, s.Service, ConfigMapName))
		case svc.Type() != serviceWebhook && len(s.Recipients) == 0:
			out = append(out, fmt.Sprintf("%s: no recipient (a %s subscription names its channel)", s.Annotation, svc.Type()))
		}
		if s.Trigger == "" && len(c.DefaultTriggers) == 0 {
			out = append(out, fmt.Sprintf("%s: no trigger named and %s has no defaultTriggers", s.Annotation, ConfigMapName))
		}
		for _, t := range s.triggers(c) {
			conds, ok := c.Triggers[t]
			if !ok {
				out = append(out, fmt.Sprintf("%s: trigger %q does not exist (known: %s)", s.Annotation, t, strings.Join(c.TriggerNames(), ", ")))
				continue
			}
			touched[triggerPrefix+t] = true
			for _, cond := range conds {
				for _, tpl := range cond.Send {
					touched[templatePrefix+tpl] = true
				}
			}
		}
		touched[servicePrefix+s.Service] = true
	}
	for _, p := range c.Problems {
		key, _, _ := strings.Cut(p, ":")
		if touched[key] || touchesService(key, touched) || !sectioned(key) {
			out = append(out, ConfigMapName+": "+p)
		}
	}
	return out
}

// touchesService matches service.<type>.<name> problems to a subscribed
// <name>.
func touchesService(key string, touched map[string]bool) bool {
	rest, ok := strings.CutPrefix(key, servicePrefix)
	if !ok {
		return false
	}
	_, name, two := strings.Cut(rest, ".")
	if !two {
		name = rest
	}
	return touched[servicePrefix+name]
}

// sectioned says whether a ConfigMap key is a service, template or
// trigger; problems with any other key concern every subscription.
func sectioned(key string) bool {
	for _, p := range []string{servicePrefix, templatePrefix, triggerPrefix} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}
