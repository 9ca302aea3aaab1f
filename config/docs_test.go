package config

import (
	"encoding"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDocsKeyTable checks docs/configuration.md's "Every key" tables
// against the Config structs, so the reference cannot drift from the
// code: every key the decoder accepts is documented, every documented key
// exists, and every default written as a literal is the one Default() or
// DefaultStream() gives.
func TestDocsKeyTable(t *testing.T) {
	documented := docsKeys(t, "../docs/configuration.md")
	if len(documented) < 50 {
		t.Fatalf("found only %d keys in docs/configuration.md's key tables: has the table format changed?", len(documented))
	}
	leaves := map[string]reflect.Value{}
	interior := map[string]bool{}
	cfg := Default()
	cfg.Streams = []Stream{DefaultStream()}
	configKeys(reflect.ValueOf(cfg).Elem(), "", leaves, interior)

	for _, k := range slices.Sorted(maps.Keys(leaves)) {
		if _, ok := documented[k]; !ok {
			t.Errorf("docs/configuration.md: key %s is accepted by the config but not in the key table", k)
		}
	}
	compared := 0
	for _, k := range slices.Sorted(maps.Keys(documented)) {
		v, leaf := leaves[k]
		if !leaf && !interior[k] {
			t.Errorf("docs/configuration.md: key %s is in the key table but the config has no such key", k)
			continue
		}
		def := documented[k]
		if !leaf || def == "" || !v.IsValid() {
			continue
		}
		compared++
		if ok, why := sameDefault(v, def); !ok {
			t.Errorf("docs/configuration.md: key %s: documented default `%s`, the code's is %s", k, def, why)
		}
	}
	if compared < 30 {
		t.Errorf("compared only %d documented defaults with the code's: has the table format changed?", compared)
	}
}

// keyRow matches a key table row (escaped pipes replaced): its first
// cell and its third (the default).
var keyRow = regexp.MustCompile("^\\| (`[^|]+) \\| [^|]* \\| ([^|]*) \\|")

var backticked = regexp.MustCompile("`([^`]+)`")

// docsKeys returns the keys of the tables under "## Every key" in the
// Markdown file at path, each with its default when the table gives it as
// one literal in backticks ("" otherwise: prose such as "none" or
// "(required)"). A cell "`a.b`, `.c`" names a.b and a.c.
func docsKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	in := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = line == "## Every key"
			continue
		}
		m := keyRow.FindStringSubmatch(strings.ReplaceAll(line, `\|`, "/"))
		if !in || m == nil {
			continue
		}
		def := ""
		if d := strings.TrimSpace(m[2]); backticked.MatchString(d) && backticked.FindString(d) == d {
			def = strings.Trim(d, "`")
		}
		prev := ""
		for _, km := range backticked.FindAllStringSubmatch(m[1], -1) {
			k := km[1]
			if strings.HasPrefix(k, ".") && prev != "" {
				k = prev[:strings.LastIndex(prev, ".")] + k
			}
			keys[k], prev = def, k
		}
	}
	return keys
}

// configKeys walks v (a config struct) by its yaml tags and records every
// key the decoder accepts: leaves (scalars, maps, types that decode
// themselves) with their value, and the blocks above them. Elements of
// lists of blocks are "[]": streams[].name.
func configKeys(v reflect.Value, prefix string, leaves map[string]reflect.Value, interior map[string]bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		fv := v.Field(i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
			if fv.IsNil() {
				fv = reflect.New(ft) // no default: walk a zero block, compare no default
				leavesOf := map[string]reflect.Value{}
				configKeys(fv.Elem(), key, leavesOf, interior)
				for k := range leavesOf {
					leaves[k] = reflect.Value{}
				}
				interior[key] = true
				continue
			}
			fv = fv.Elem()
		}
		switch {
		case decodesItself(ft):
			leaves[key] = fv
		case ft.Kind() == reflect.Struct:
			interior[key] = true
			configKeys(fv, key, leaves, interior)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			interior[key] = true
			elem := reflect.New(ft.Elem()).Elem()
			if fv.Len() > 0 {
				elem = fv.Index(0)
			}
			configKeys(elem, key+"[]", leaves, interior)
		default:
			leaves[key] = fv
		}
	}
}

func decodesItself(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

// sameDefault reports whether the literal doc, decoded as v's type,
// equals v; why gives v as the code would write it.
func sameDefault(v reflect.Value, doc string) (ok bool, why string) {
	why = "`" + fmtValue(v) + "`"
	if u, isU := reflect.New(v.Type()).Interface().(encoding.TextUnmarshaler); isU {
		if err := u.UnmarshalText([]byte(doc)); err != nil {
			return false, why + " (the documented one does not parse: " + err.Error() + ")"
		}
		return reflect.DeepEqual(reflect.ValueOf(u).Elem().Interface(), v.Interface()), why
	}
	switch v.Kind() {
	case reflect.String:
		return v.String() == doc, why
	case reflect.Bool:
		b, err := strconv.ParseBool(doc)
		return err == nil && b == v.Bool(), why
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(doc, 10, 64)
		return err == nil && n == v.Int(), why
	}
	return true, why // lists and maps: prose defaults only
}

func fmtValue(v reflect.Value) string {
	if s, ok := v.Interface().(interface{ String() string }); ok {
		return s.String()
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64, reflect.Int32:
		return strconv.FormatInt(v.Int(), 10)
	}
	return v.Kind().String()
}
