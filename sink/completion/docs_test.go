package completion

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestDocsWebhookFields checks the field table of docs/configuration.md's
// "Webhook body template" against Event: a template may use every
// exported field of the event, so every one is documented, and every
// documented field exists (a template naming a field that does not exist
// fails at every delivery).
func TestDocsWebhookFields(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "## Webhook body template")
	section, _, _ = strings.Cut(section, "\n## ")
	top, files := map[string]bool{}, map[string]bool{}
	field := regexp.MustCompile("`\\.([A-Za-z]+)`")
	for line := range strings.SplitSeq(section, "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `.") || len(cells) < 2 {
			continue
		}
		for _, m := range field.FindAllStringSubmatch(cells[0], -1) {
			top[m[1]] = true
		}
		if strings.Contains(cells[0], "`.Files`") {
			for _, m := range field.FindAllStringSubmatch(strings.Join(cells[1:], " | "), -1) {
				files[m[1]] = true
			}
		}
	}
	if len(top) == 0 || len(files) == 0 {
		t.Fatalf("no field table found in docs/configuration.md's webhook section (fields %v, file fields %v)", top, files)
	}
	check := func(what string, typ reflect.Type, documented map[string]bool) {
		t.Helper()
		code := map[string]bool{}
		for _, f := range reflect.VisibleFields(typ) {
			if !f.IsExported() || f.Anonymous || f.Tag.Get("json") == "-" {
				continue
			}
			code[f.Name] = true
			if !documented[f.Name] {
				t.Errorf("docs/configuration.md: %s field .%s is not in the webhook template's field table", what, f.Name)
			}
		}
		for name := range documented {
			if !code[name] {
				t.Errorf("docs/configuration.md: the webhook template's field table names %s field .%s, which does not exist", what, name)
			}
		}
	}
	check("event", reflect.TypeFor[Event](), top)
	check("file", reflect.TypeFor[ManifestFile](), files)
}
