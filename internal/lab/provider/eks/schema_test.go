package eks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"lockstep.dev/lockstep/internal/lab/provider"
)

// schema is the part of JSON Schema (draft 7) that eksctl's schema.json
// uses for the fields the lab writes: $ref, type, enum, properties,
// additionalProperties, required, items and oneOf.
type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Enum                 []any              `json:"enum"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	Required             []string           `json:"required"`
	Items                *schema            `json:"items"`
	OneOf                []*schema          `json:"oneOf"`
	Definitions          map[string]*schema `json:"definitions"`
}

type checker struct{ defs map[string]*schema }

func loadSchema(t *testing.T) (*checker, *schema) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var root schema
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	if len(root.Definitions) == 0 || root.Ref == "" {
		t.Fatal("testdata/schema.json has no definitions or no root $ref")
	}
	return &checker{defs: root.Definitions}, &root
}

// validate returns every violation of v (decoded with UseNumber) against s.
func (c *checker) validate(s *schema, v any, path string) []string {
	if s.Ref != "" {
		name, ok := strings.CutPrefix(s.Ref, "#/definitions/")
		def := c.defs[name]
		if !ok || def == nil {
			return []string{path + ": unresolvable $ref " + s.Ref}
		}
		errs := c.validate(def, v, path)
		// A $ref next to other keywords (the root's "type") applies both.
		rest := *s
		rest.Ref = ""
		return append(errs, c.validate(&rest, v, path)...)
	}
	var errs []string
	if s.Type != "" && !hasType(v, s.Type) {
		return []string{fmt.Sprintf("%s: %s, want %s", path, typeOf(v), s.Type)}
	}
	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", path, v, s.Enum))
	}
	if len(s.OneOf) > 0 {
		n := 0
		for _, alt := range s.OneOf {
			if len(c.validate(alt, v, path)) == 0 {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Sprintf("%s: matches %d of oneOf, want 1", path, n))
		}
	}
	switch v := v.(type) {
	case map[string]any:
		for _, r := range s.Required {
			if _, ok := v[r]; !ok {
				errs = append(errs, path+": missing required field "+r)
			}
		}
		var extra *schema
		closed := false
		switch ap := bytes.TrimSpace(s.AdditionalProperties); {
		case len(ap) == 0, string(ap) == "true":
		case string(ap) == "false":
			closed = true
		default:
			extra = new(schema)
			if err := json.Unmarshal(ap, extra); err != nil {
				return append(errs, path+": bad additionalProperties: "+err.Error())
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p, ok := s.Properties[k]; ok {
				errs = append(errs, c.validate(p, v[k], path+"."+k)...)
			} else if closed {
				errs = append(errs, path+": unknown field "+k)
			} else if extra != nil {
				errs = append(errs, c.validate(extra, v[k], path+"."+k)...)
			}
		}
	case []any:
		if s.Items != nil {
			for i, e := range v {
				errs = append(errs, c.validate(s.Items, e, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	}
	return errs
}

func hasType(v any, t string) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "null":
		return v == nil
	}
	return false
}

func typeOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// decodeYAML turns a YAML document into the generic JSON form the checker
// walks, keeping integers apart from other numbers.
func decodeYAML(t *testing.T, b []byte) any {
	t.Helper()
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestGeneratedConfigsMatchEksctlSchema(t *testing.T) {
	t.Parallel()
	c, root := loadSchema(t)
	labs := []struct {
		name string
		o    provider.Options
		cfg  Config
	}{
		{"seed lab", provider.Options{}, Config{}},
		{"five workloads, custom sizes", provider.Options{Hub: "hub", Workloads: []string{"w1", "w2", "w3", "w4", "w5"}},
			Config{Region: "eu-central-1", KubernetesVersion: "1.32", InstanceType: "c6i.xlarge", Nodes: 3}},
	}
	for _, lab := range labs {
		t.Run(lab.name, func(t *testing.T) {
			t.Parallel()
			ccs, err := ClusterConfigs(lab.o, lab.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, cc := range ccs {
				b, err := Render(cc)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range c.validate(root, decodeYAML(t, b), cc.Metadata.Name) {
					t.Error(e)
				}
			}
		})
	}
}

// TestSchemaCheckerAcceptsEksctlExamples keeps the checker honest: eksctl's
// own examples (same version as the schema) must pass.
func TestSchemaCheckerAcceptsEksctlExamples(t *testing.T) {
	t.Parallel()
	c, root := loadSchema(t)
	files, err := filepath.Glob(filepath.Join("testdata", "eksctl-examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples (%v)", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if errs := c.validate(root, decodeYAML(t, b), filepath.Base(f)); len(errs) > 0 {
			t.Errorf("%s: %s", f, strings.Join(errs, "; "))
		}
	}
}

// TestSchemaCheckerRejectsMistakes shows that the schema test can fail: each
// mistake in an otherwise good document is reported.
func TestSchemaCheckerRejectsMistakes(t *testing.T) {
	t.Parallel()
	c, root := loadSchema(t)
	ccs, err := ClusterConfigs(provider.Options{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	good, err := Render(ccs[1])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new, want string
	}{
		{"misspelled field", "withOIDC:", "withOidc:", "unknown field withOidc"},
		{"misspelled nested field", "desiredCapacity:", "desiredCapcity:", "unknown field desiredCapcity"},
		{"wrong type", "minSize: 2", "minSize: two", "minSize: string, want integer"},
		{"not in enum", "gateway: Single", "gateway: Double", "is not one of"},
		{"wrong apiVersion", "eksctl.io/v1alpha5", "eksctl.io/v1beta1", "is not one of"},
		{"missing required", "  region: us-west-2\n", "", "missing required field region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !bytes.Contains(good, []byte(tt.old)) {
				t.Fatalf("rendered config lacks %q:\n%s", tt.old, good)
			}
			bad := bytes.Replace(good, []byte(tt.old), []byte(tt.new), 1)
			errs := c.validate(root, decodeYAML(t, bad), "doc")
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tt.want) }) {
				t.Errorf("errors %q lack %q", errs, tt.want)
			}
		})
	}
}
