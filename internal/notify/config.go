package notify

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Names of the configuration objects in the coordinator's namespace, and
// of the subscription annotations: the same shapes as Argo Rollouts'
// argo-rollouts-notification-configmap and -secret.
const (
	ConfigMapName    = "lockstep-notifications-cm"
	SecretName       = "lockstep-notifications-secret"
	SubscribePrefix  = "notifications.argoproj.io/subscribe."
	defaultTriggers  = "defaultTriggers"
	contextKey       = "context"
	servicePrefix    = "service."
	templatePrefix   = "template."
	triggerPrefix    = "trigger."
	serviceWebhook   = "webhook"
	serviceSlack     = "slack"
	serviceTeams     = "teams"
	defaultRetryMax  = 3
	defaultWaitMin   = time.Second
	defaultWaitMax   = 5 * time.Second
	defaultTimeout   = 10 * time.Second
	maxResponseBytes = 64 << 10
)

// Condition is one entry of a trigger: the templates it sends. Lockstep's
// triggers fire on the coordinator's Events, so notifications-engine's
// `when` expressions have nothing to test and are refused.
type Condition struct {
	Send        []string `json:"send"`
	When        string   `json:"when,omitempty"`
	Description string   `json:"description,omitempty"`
	OncePer     string   `json:"oncePer,omitempty"`
}

// Config is a parsed notifications ConfigMap. Parts that parse are usable
// even when others do not: a broken template silences only the triggers
// that send it, and each problem names its key.
type Config struct {
	Services        map[string]Service
	Templates       map[string]*Template
	Triggers        map[string][]Condition
	DefaultTriggers []string
	Context         map[string]string
	// Problems are one line each, naming the ConfigMap key at fault.
	Problems []string
}

// Parse reads a notifications ConfigMap's data, resolving $key references
// in service entries from secret. It starts from Defaults: the ConfigMap
// replaces a built-in template or trigger by defining the same name.
func Parse(data map[string]string, secret map[string][]byte) *Config {
	c := Defaults()
	keys := slices.Sorted(maps.Keys(data))
	for _, k := range keys {
		v := data[k]
		var err error
		switch {
		case strings.HasPrefix(k, servicePrefix):
			err = c.addService(strings.TrimPrefix(k, servicePrefix), v, secret)
		case strings.HasPrefix(k, templatePrefix):
			name := strings.TrimPrefix(k, templatePrefix)
			var t *Template
			if t, err = ParseTemplate(name, v); err == nil {
				c.Templates[name] = t
			} else {
				delete(c.Templates, name)
			}
		case strings.HasPrefix(k, triggerPrefix):
			err = c.addTrigger(strings.TrimPrefix(k, triggerPrefix), v)
		case k == defaultTriggers:
			err = yaml.UnmarshalStrict([]byte(v), &c.DefaultTriggers)
		case k == contextKey:
			err = yaml.UnmarshalStrict([]byte(v), &c.Context)
		default:
			err = fmt.Errorf("unknown key (want service.*, template.*, trigger.*, %s or %s)", defaultTriggers, contextKey)
		}
		if err != nil {
			c.Problems = append(c.Problems, k+": "+firstLine(err.Error()))
		}
	}
	c.checkReferences()
	return c
}

// addService parses service.<type>[.<name>]: a webhook needs its name
// (service.webhook.<name>), Slack and Teams are named after their type
// unless given one.
func (c *Config) addService(spec, text string, secret map[string][]byte) error {
	typ, name, _ := strings.Cut(spec, ".")
	if typ == serviceWebhook && name == "" {
		return fmt.Errorf("a webhook service needs a name: service.webhook.<name>")
	}
	if name == "" {
		name = typ
	}
	resolved, err := resolveSecrets(text, secret)
	if err != nil {
		return err
	}
	var s Service
	switch typ {
	case serviceWebhook:
		s, err = newWebhook(name, resolved)
	case serviceSlack:
		s, err = newSlack(name, resolved)
	case serviceTeams:
		s, err = newTeams(name, resolved)
	default:
		return fmt.Errorf("service type %q is not supported here (webhook, slack, teams)", typ)
	}
	if err != nil {
		return err
	}
	c.Services[name] = s
	return nil
}

func (c *Config) addTrigger(name, text string) error {
	var conds []Condition
	if err := yaml.UnmarshalStrict([]byte(text), &conds); err != nil {
		delete(c.Triggers, name)
		return err
	}
	for i, cond := range conds {
		switch {
		case cond.When != "":
			delete(c.Triggers, name)
			return fmt.Errorf("[%d].when: conditions are not supported: Lockstep triggers fire on the coordinator's Events (remove `when`)", i)
		case len(cond.Send) == 0:
			delete(c.Triggers, name)
			return fmt.Errorf("[%d].send: no template", i)
		}
	}
	c.Triggers[name] = conds
	return nil
}

// checkReferences reports triggers that send templates nobody defined.
func (c *Config) checkReferences() {
	for _, name := range slices.Sorted(maps.Keys(c.Triggers)) {
		for i, cond := range c.Triggers[name] {
			for _, t := range cond.Send {
				if c.Templates[t] == nil {
					c.Problems = append(c.Problems, fmt.Sprintf("%s%s: [%d].send: template %q is not defined", triggerPrefix, name, i, t))
				}
			}
		}
	}
	for _, t := range c.DefaultTriggers {
		if _, ok := c.Triggers[t]; !ok {
			c.Problems = append(c.Problems, fmt.Sprintf("%s: trigger %q is not defined", defaultTriggers, t))
		}
	}
}

// secretRef matches notifications-engine's $key references.
var secretRef = regexp.MustCompile(`\$[\w.-]+`)

// resolveSecrets parses a service entry and replaces every $key in its
// string values with the Secret's value, returning JSON for the service's
// options. A missing key is an error naming the key, never a value.
func resolveSecrets(text string, secret map[string][]byte) ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, err
	}
	var missing []string
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return secretRef.ReplaceAllStringFunc(x, func(ref string) string {
				val, ok := secret[ref[1:]]
				if !ok {
					missing = append(missing, ref[1:])
					return ref
				}
				return string(val)
			})
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return v
	}
	doc = walk(doc)
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("key %s missing from Secret %s", strings.Join(slices.Compact(missing), ", "), SecretName)
	}
	return json.Marshal(doc)
}

// TriggerNames lists the triggers known to c.
func (c *Config) TriggerNames() []string { return slices.Sorted(maps.Keys(c.Triggers)) }

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
