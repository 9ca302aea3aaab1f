package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lakesink/lakesink/sink/decode/confluent"
	"github.com/lakesink/lakesink/test/schemaregistry"
	"github.com/lakesink/lakesink/test/testenv"
)

const (
	paymentV1Schema = `{"$schema": "http://json-schema.org/draft-07/schema#", "title": "Payment", "type": "object",
  "properties": {
    "id": {"type": "integer"},
    "paid_at": {"type": "string", "format": "date-time"},
    "day": {"type": "string", "format": "date"},
    "amount": {"type": "number"},
    "card": {"$ref": "#/definitions/Card"},
    "items": {"type": "array", "items": {"type": "string"}}
  },
  "required": ["id", "paid_at", "card"],
  "definitions": {"Card": {"type": "object", "properties": {"brand": {"type": "string", "enum": ["visa", "amex"]}}, "required": ["brand"]}}}`
	// v2 adds an optional property: a compatible change.
	paymentV2Schema = `{"$schema": "http://json-schema.org/draft-07/schema#", "title": "Payment", "type": "object",
  "properties": {
    "id": {"type": "integer"},
    "paid_at": {"type": "string", "format": "date-time"},
    "day": {"type": "string", "format": "date"},
    "amount": {"type": "number"},
    "card": {"$ref": "#/definitions/Card"},
    "items": {"type": "array", "items": {"type": "string"}},
    "coupon": {"type": ["string", "null"]}
  },
  "required": ["id", "paid_at", "card"],
  "definitions": {"Card": {"type": "object", "properties": {"brand": {"type": "string", "enum": ["visa", "amex"]}}, "required": ["brand"]}}}`
)

// TestJSONSchemaStream runs a json_schema stream through the binary:
// Confluent-framed records of v1 and v2 (an added optional property)
// interleaved, as during a rolling deploy of the producers, plain JSON
// records read with the subject's latest version (v2), and two bad
// records. It checks the rows through the manifest — one file of both
// versions with their schema ids and the union of their columns,
// date-time as a Parquet TIMESTAMP(MICROS) and date as DATE — and the
// dead letters. The same records also go through a stream with a column
// list (a case of versions_test.go).
func TestJSONSchemaStream(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: not in -short mode")
	}
	k := testenv.StartKafka(t)
	k.CreateTopic(t, "payments", 1)
	reg := testenv.StartRegistry(t, schemaregistry.Options{})
	v1 := reg.Register("payments-value", "JSON", paymentV1Schema)
	v2 := reg.Register("payments-value", "JSON", paymentV2Schema)
	if v1 == v2 {
		t.Fatalf("v1 and v2 got the same id %d", v1)
	}

	hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	base := hour.Add(7 * time.Minute)
	type wantPayment struct {
		at     time.Time
		coupon any
	}
	want := map[int64]wantPayment{}
	body := func(i int64, at time.Time, coupon string) string {
		s := fmt.Sprintf(`{"id": %d, "paid_at": %q, "day": %q, "amount": %d.25, "card": {"brand": %q}, "items": ["a", "b%d"]`,
			i, at.Format(time.RFC3339Nano), at.Format(time.DateOnly), i, []string{"visa", "amex"}[i%2], i)
		if coupon != "" {
			s += fmt.Sprintf(`, "coupon": %q`, coupon)
		}
		return s + "}"
	}
	var vals [][]byte
	var bad map[string][]byte
	for i := range int64(35) {
		at := base.Add(time.Duration(i)*time.Second + 123456*time.Microsecond)
		w := wantPayment{at: at}
		switch {
		case i < 25 && i%2 == 0: // framed v1
			vals = append(vals, append(confluent.Header(v1), body(i, at, "")...))
		case i < 25: // framed v2, every other one with a coupon
			c := ""
			if i%4 == 1 {
				c = "c-" + strconv.FormatInt(i, 10)
				w.coupon = c
			}
			vals = append(vals, append(confluent.Header(v2), body(i, at, c)...))
		default: // plain JSON: the subject's latest version, v2
			c := "p-" + strconv.FormatInt(i, 10)
			w.coupon = c
			vals = append(vals, []byte(body(i, at, c)))
		}
		want[i] = w
		if i == 14 {
			bad = map[string][]byte{
				"bad_magic":      append([]byte{1, 0, 0, 0, byte(v1)}, body(901, at, "")...),
				"unknown_schema": append(confluent.Header(99999), body(902, at, "")...),
			}
			vals = append(vals, bad["bad_magic"], bad["unknown_schema"])
		}
	}
	sendValues(t, k.Addr, "payments", vals)
	// The same records on a stream with a column list (day and items not
	// listed, card.brand as brand): one file of both versions, v1 rows
	// null in coupon.
	listed := versionCase{stream: "payments_listed", format: "json_schema", time: "paid_at", key: "id", msgs: vals, more: `    subject: payments-value
    schema:
      - {name: id, type: int64, required: true}
      - {name: paid_at, type: timestamp_us, required: true}
      - {name: amount, type: double}
      - {name: brand, path: card.brand, type: string}
      - {name: coupon, type: string}
`}
	lf := versionFile{ids: []int{v1, v2}, rows: map[string]map[string]any{}, cols: []string{"id INT(64,true)",
		"paid_at TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", "amount? DOUBLE", "brand? STRING", "coupon? STRING"}}
	for id, w := range want {
		lf.rows[fmt.Sprint(id)] = map[string]any{"id": id, "paid_at": w.at.UnixMicro(), "amount": float64(id) + 0.25,
			"brand": []string{"visa", "amex"}[id%2], "coupon": w.coupon}
	}
	listed.files = []versionFile{lf}
	sendVersionCases(t, k, []versionCase{listed})

	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  group_id: lakesink-jsonschema
  commit_interval: 200ms
schema_registry:
  url: %q
  timeout: 5s
streams:
  - name: payments
    topics: [payments]
    format: json_schema
    subject: payments-value
    time: {field: paid_at}
    allowed_lateness: 1m
`, k.Addr, reg.URL) + listed.yaml()
	root, cfgPath := writeLocalConfig(t, t.TempDir(), cfg, "127.0.0.1:0")
	proc := testenv.Start(t, "lakesink", testenv.Build(t, "./cmd/lakesink"), testenv.Options{}, "run", "-c", cfgPath)

	folder := fmt.Sprintf("payments/dt=%s/hour=%s", hour.Format("2006-01-02"), hour.Format("15"))
	lake, m := awaitLocalManifest(t, root, folder, 90*time.Second)
	if len(m.Files) != 1 {
		t.Fatalf("manifest has %d files, want 1 (v1, v2 and the plain values share it): %+v", len(m.Files), m.Files)
	}
	if ids := m.Files[0].SchemaIDs; !slices.Equal(ids, []int{v1, v2}) {
		t.Errorf("schema ids %v, want [%d %d]", ids, v1, v2)
	}
	if m.Records != 35 || m.Files[0].Records != 35 {
		t.Errorf("records: manifest %d, file %d; want 35", m.Records, m.Files[0].Records)
	}
	seen := map[int64]int{}
	for fi, f := range m.Files {
		rows, schema := readParquet(t, lake, f.Path)
		checkLogical(t, schema, "paid_at", func(lt parquetLogical) bool { return lt.ts == "us" })
		checkLogical(t, schema, "day", func(lt parquetLogical) bool { return lt.date })
		if leaf, ok := schema.Lookup("paid_at"); ok && leaf.Node.Optional() {
			t.Errorf("file %d: paid_at is optional, want required (listed in required)", fi)
		}
		if leaf, ok := schema.Lookup("amount"); ok && !leaf.Node.Optional() {
			t.Errorf("file %d: amount is required, want optional", fi)
		}
		if leaf, ok := schema.Lookup("coupon"); !ok || !leaf.Node.Optional() {
			t.Errorf("file %d: coupon column present %v, want an optional one", fi, ok)
		}
		for _, r := range rows {
			id, _ := r["id"].(int64)
			seen[id]++
			w, ok := want[id]
			if !ok {
				t.Errorf("unexpected row %v", r)
				continue
			}
			cols := map[string]any{
				"paid_at": w.at.UnixMicro(), "day": int32(w.at.Unix() / 86400), "amount": float64(id) + 0.25,
				"card.brand": []string{"visa", "amex"}[id%2], "items": fmt.Sprintf(`["a", "b%d"]`, id),
			}
			cols["coupon"] = w.coupon
			if len(r) != len(cols)+1 {
				t.Errorf("payment %d: columns %v, want id and %v", id, r, cols)
			}
			for col, v := range cols {
				if r[col] != v {
					t.Errorf("payment %d: %s = %#v, want %#v", id, col, r[col], v)
				}
			}
		}
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("payment %d is in the lake %d times, want once", id, seen[id])
		}
	}
	checkVersionCase(t, root, hour, listed)
	checkManifestsAgainstSchema(t, root)

	checkDeadLettered(t, k.Addr, "payments", bad)
	checkDeadLettered(t, k.Addr, "payments_listed", bad)
	proc.Stop(20 * time.Second)
	if err := proc.ExitErr(); err != nil {
		t.Errorf("lakesink exit: %v", err)
	}
}
