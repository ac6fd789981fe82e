package notify

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

// Notification is a rendered template: the text every service can show,
// and each service's own parts.
type Notification struct {
	Message string
	// Meta says what the notification is about (trigger, namespace, name,
	// revision, reason, type, time): a webhook whose template has no
	// request of its own receives it with the message as JSON.
	Meta map[string]string
	// Webhook is keyed by the webhook service's name.
	Webhook map[string]WebhookNotification
	Slack   SlackNotification
	Teams   TeamsNotification
}

// WebhookNotification is a template's request for one webhook.
type WebhookNotification struct {
	Method string
	Path   string
	Body   string
}

// SlackNotification holds Slack's JSON parts, as text.
type SlackNotification struct {
	Attachments string
	Blocks      string
}

// TeamsNotification holds a Teams MessageCard's parts; Facts and Sections
// are JSON.
type TeamsNotification struct {
	Title, Summary, Text, ThemeColor string
	Facts, Sections                  string
}

// templateSpec is template.<name>'s YAML, as notifications-engine writes
// it.
type templateSpec struct {
	Message string                         `json:"message,omitempty"`
	Webhook map[string]webhookTemplateSpec `json:"webhook,omitempty"`
	Slack   *struct {
		Attachments string `json:"attachments,omitempty"`
		Blocks      string `json:"blocks,omitempty"`
	} `json:"slack,omitempty"`
	Teams *struct {
		Title      string `json:"title,omitempty"`
		Summary    string `json:"summary,omitempty"`
		Text       string `json:"text,omitempty"`
		ThemeColor string `json:"themeColor,omitempty"`
		Facts      string `json:"facts,omitempty"`
		Sections   string `json:"sections,omitempty"`
	} `json:"teams,omitempty"`
}

type webhookTemplateSpec struct {
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	Body   string `json:"body,omitempty"`
}

// Template is a parsed template.<name>: every text field is a Go template
// with sprig's functions, as in Argo.
type Template struct {
	Name string
	// fields maps a field's path ("message", "webhook.x.body",
	// "slack.attachments", ...) to its parsed text.
	fields  map[string]*template.Template
	methods map[string]string
}

// ParseTemplate parses template.<name>'s YAML; errors name the field.
func ParseTemplate(name, text string) (*Template, error) {
	var spec templateSpec
	if err := yaml.UnmarshalStrict([]byte(text), &spec); err != nil {
		return nil, err
	}
	t := &Template{Name: name, fields: map[string]*template.Template{}, methods: map[string]string{}}
	add := func(field, src string) error {
		if src == "" {
			return nil
		}
		p, err := template.New(field).Funcs(sprig.TxtFuncMap()).Parse(src)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		t.fields[field] = p
		return nil
	}
	errs := []error{add("message", spec.Message)}
	for _, svc := range slices.Sorted(maps.Keys(spec.Webhook)) {
		w := spec.Webhook[svc]
		switch w.Method {
		case "", "GET", "POST", "PUT", "PATCH":
		default:
			errs = append(errs, fmt.Errorf("webhook.%s.method: %q is not GET, POST, PUT or PATCH", svc, w.Method))
		}
		t.methods[svc] = w.Method
		errs = append(errs, add("webhook."+svc+".path", w.Path), add("webhook."+svc+".body", w.Body))
	}
	if s := spec.Slack; s != nil {
		errs = append(errs, add("slack.attachments", s.Attachments), add("slack.blocks", s.Blocks))
	}
	if m := spec.Teams; m != nil {
		errs = append(errs, add("teams.title", m.Title), add("teams.summary", m.Summary), add("teams.text", m.Text),
			add("teams.themeColor", m.ThemeColor), add("teams.facts", m.Facts), add("teams.sections", m.Sections))
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// render fills n with this template's fields, over what earlier templates
// of the same trigger set (as notifications-engine merges them).
func (t *Template) render(vars map[string]any, n *Notification) error {
	out := map[string]string{}
	for field, p := range t.fields {
		var b bytes.Buffer
		if err := p.Execute(&b, vars); err != nil {
			return fmt.Errorf("template %s: %w", t.Name, err)
		}
		out[field] = b.String()
	}
	set := func(dst *string, field string) {
		if v, ok := out[field]; ok {
			*dst = v
		}
	}
	set(&n.Message, "message")
	for svc, method := range t.methods {
		if n.Webhook == nil {
			n.Webhook = map[string]WebhookNotification{}
		}
		w := n.Webhook[svc]
		w.Method = method
		set(&w.Path, "webhook."+svc+".path")
		set(&w.Body, "webhook."+svc+".body")
		n.Webhook[svc] = w
	}
	set(&n.Slack.Attachments, "slack.attachments")
	set(&n.Slack.Blocks, "slack.blocks")
	set(&n.Teams.Title, "teams.title")
	set(&n.Teams.Summary, "teams.summary")
	set(&n.Teams.Text, "teams.text")
	set(&n.Teams.ThemeColor, "teams.themeColor")
	set(&n.Teams.Facts, "teams.facts")
	set(&n.Teams.Sections, "teams.sections")
	return nil
}

// Built-in triggers, one per coordinator Event a team wants to hear of.
// Each sends the template of the same name without "on-".
var builtinTriggers = []struct{ trigger, title, color string }{
	{"on-release-started", "release started", "0076D7"},
	{"on-wave-completed", "wave completed", "0076D7"},
	{"on-awaiting-approval", "waiting for approval", "F2C744"},
	{"on-approved", "approved", "0076D7"},
	{"on-inconclusive", "paused: inconclusive", "F2C744"},
	{"on-release-aborted", "release aborted", "E01E5A"},
	{"on-release-completed", "release completed", "18BE52"},
	{"on-would-abort", "shadow: would have aborted", "F2C744"},
}

// defaultMessage is every built-in template's text.
const defaultMessage = `{{.fleetrollout.metadata.namespace}}/{{.fleetrollout.metadata.name}}: {{.event.message}}`

// Defaults is the built-in catalogue: a trigger and a template for each
// Event of a release's life (see builtinTriggers), with a Slack attachment
// and a Teams card coloured by outcome.
func Defaults() *Config {
	c := &Config{Services: map[string]Service{}, Templates: map[string]*Template{}, Triggers: map[string][]Condition{}}
	for _, b := range builtinTriggers {
		name := b.trigger[len("on-"):]
		text := fmt.Sprintf(`message: %q
slack:
  attachments: |
    [{"title": "{{.fleetrollout.metadata.name}}: %s", "color": "#%s", "text": {{toJson .event.message}},
      "fields": [{"title": "revision", "value": {{toJson .revision}}, "short": true}, {"title": "reason", "value": {{toJson .event.reason}}, "short": true}]}]
teams:
  title: "{{.fleetrollout.metadata.name}}: %s"
  themeColor: "#%s"
  text: "{{.event.message}}"
  facts: |
    [{"name": "revision", "value": {{toJson .revision}}}, {"name": "reason", "value": {{toJson .event.reason}}}]
`, defaultMessage, b.title, b.color, b.title, b.color)
		t, err := ParseTemplate(name, text)
		if err != nil {
			panic("built-in template " + name + ": " + err.Error())
		}
		c.Templates[name] = t
		c.Triggers[b.trigger] = []Condition{{Send: []string{name}}}
	}
	return c
}
