package tables

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"

	"github.com/lakesink/lakesink/partitioner"
)

// TestPlanSchema is the planner's rules, one case each: what a table needs
// to read files of the wanted columns, or why it cannot.
func TestPlanSchema(t *testing.T) {
	p := iceberg.PrimitiveTypes
	sc := iceberg.NewSchema(3,
		iceberg.NestedField{ID: 1, Name: "id", Type: p.String, Required: true},
		iceberg.NestedField{ID: 2, Name: "ts", Type: p.TimestampTz, Required: true},
		iceberg.NestedField{ID: 3, Name: "n", Type: p.Int32},
		iceberg.NestedField{ID: 4, Name: "big", Type: p.Int64},
		iceberg.NestedField{ID: 5, Name: "f", Type: p.Float32},
		iceberg.NestedField{ID: 6, Name: "d", Type: p.Float64},
		iceberg.NestedField{ID: 7, Name: "Count", Type: p.Int32},
	)
	type col = partitioner.Column
	const (
		str    = partitioner.TypeString
		i32    = partitioner.TypeInt32
		i64    = partitioner.TypeInt64
		f32    = partitioner.TypeFloat
		f64    = partitioner.TypeDouble
		tsMs   = partitioner.TypeTimestampMillis
		tsUs   = partitioner.TypeTimestampMicros
		asJSON = partitioner.TypeJSON
	)
	for _, tc := range []struct {
		name   string
		widen  bool
		wanted []col
		// want: the columns returned (nil with an error), adds and widens
		// as "name type", the error's text.
		want         []col
		adds, widens []string
		err          string
	}{
		{name: "nothing wanted", want: []col{}},
		{
			name:   "the table's columns: field ids, millis written as micros",
			wanted: []col{{Name: "id", Type: str, Required: true}, {Name: "ts", Type: tsMs, Required: true}, {Name: "n", Type: i32}},
			want:   []col{{Name: "id", Type: str, Required: true, FieldID: 1}, {Name: "ts", Type: tsMs, Required: true, FieldID: 2, MillisAsMicros: true}, {Name: "n", Type: i32, FieldID: 3}},
		},
		{
			name:   "lake types of one Iceberg type: json is string, timestamp_us is timestamptz",
			wanted: []col{{Name: "id", Type: asJSON}, {Name: "ts", Type: tsUs}},
			want:   []col{{Name: "id", Type: asJSON, FieldID: 1}, {Name: "ts", Type: tsUs, FieldID: 2}},
		},
		{
			name:   "a column the table lacks is added optional, even when required; no id yet",
			wanted: []col{{Name: "n", Type: i32}, {Name: "extra", Type: f64, Required: true}, {Name: "note", Type: str, FieldID: 42}},
			want:   []col{{Name: "n", Type: i32, FieldID: 3}, {Name: "extra", Type: f64, Required: true}, {Name: "note", Type: str}},
			adds:   []string{"extra double", "note string"},
		},
		{
			name:   "a narrower file column reads as the table's type: no narrowing of the table",
			widen:  true,
			wanted: []col{{Name: "big", Type: i32}, {Name: "d", Type: f32}},
			want:   []col{{Name: "big", Type: i32, FieldID: 4}, {Name: "d", Type: f32, FieldID: 6}},
		},
		{
			name:   "widen int to long and float to double, keeping the ids",
			widen:  true,
			wanted: []col{{Name: "n", Type: i64}, {Name: "f", Type: f64}, {Name: "id", Type: str}},
			want:   []col{{Name: "n", Type: i64, FieldID: 3}, {Name: "f", Type: f64, FieldID: 5}, {Name: "id", Type: str, FieldID: 1}},
			widens: []string{"n long", "f double"},
		},
		{
			name:   "without widen a widening is refused",
			wanted: []col{{Name: "n", Type: i64}},
			err:    `table lake.t: column "n" is int in the table, the stream writes long (int64): the table's column would have to widen`,
		},
		{
			name:   "a type change is refused",
			widen:  true,
			wanted: []col{{Name: "n", Type: str}},
			err:    `table lake.t: column "n" is int in the table, the stream writes string (string): not a promotion Iceberg allows`,
		},
		{
			name:   "int to double is no Iceberg promotion",
			widen:  true,
			wanted: []col{{Name: "n", Type: f64}},
			err:    `column "n" is int in the table, the stream writes double (double): not a promotion`,
		},
		{
			name:   "long to double is no Iceberg promotion",
			widen:  true,
			wanted: []col{{Name: "big", Type: f64}},
			err:    `column "big" is long in the table, the stream writes double (double): not a promotion`,
		},
		{
			name:   "a narrowing of the file's column is no widening of the table's",
			widen:  true,
			wanted: []col{{Name: "d", Type: i64}},
			err:    `column "d" is double in the table, the stream writes long (int64): not a promotion`,
		},
		{
			name:   "the time column must be a timestamp",
			widen:  true,
			wanted: []col{{Name: "id", Type: str}, {Name: "ts", Type: i64}},
			err:    `table lake.t is partitioned by hour(ts), and the stream's ts is int64, not a timestamp`,
		},
		{
			name:   "the time column in another case too",
			widen:  true,
			wanted: []col{{Name: "TS", Type: tsMs}, {Name: "Ts", Type: str}},
			err:    `the stream's Ts is string, not a timestamp`,
		},
		{
			name:   "columns match in any case; the table's spelling is widened",
			widen:  true,
			wanted: []col{{Name: "ID", Type: str}, {Name: "count", Type: i64}},
			want:   []col{{Name: "ID", Type: str, FieldID: 1}, {Name: "count", Type: i64, FieldID: 7}},
			widens: []string{"Count long"},
		},
		{
			name:   "required is not compared with the table's; field ids are the table's",
			wanted: []col{{Name: "id", Type: str, FieldID: 9}, {Name: "n", Type: i32, Required: true}},
			want:   []col{{Name: "id", Type: str, FieldID: 1}, {Name: "n", Type: i32, Required: true, FieldID: 3}},
		},
		{
			name:   "a lake type without an Iceberg type",
			widen:  true,
			wanted: []col{{Name: "n", Type: partitioner.ColumnType(99)}},
			err:    `table lake.t: column "n": column type ColumnType(99) has no Iceberg type`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := planRules{table: "lake.t", source: "the stream", timeCol: "ts", widen: tc.widen}
			got, u, err := planSchema(sc, tc.wanted, r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one saying %q", err, tc.err)
				}
				if !errors.Is(err, ErrIncompatible) || Retryable(err) {
					t.Errorf("err %v is not ErrIncompatible", err)
				}
				if got != nil || !u.empty() {
					t.Errorf("columns %+v and update %+v with an error", got, u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("columns\n %+v\nwant\n %+v", got, tc.want)
			}
			if a := changes(u.adds); !slices.Equal(a, tc.adds) {
				t.Errorf("adds %q, want %q", a, tc.adds)
			}
			if w := changes(u.widens); !slices.Equal(w, tc.widens) {
				t.Errorf("widens %q, want %q", w, tc.widens)
			}
			if u.empty() != (len(tc.adds)+len(tc.widens) == 0) {
				t.Errorf("empty() = %v", u.empty())
			}
		})
	}
}

func changes(cs []colChange) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.name+" "+c.typ.String())
	}
	return out
}

// TestReadable is Iceberg's promotion rule over the Iceberg types:
// partitioner.Promotes for the types lakesink writes, equality for others.
func TestReadable(t *testing.T) {
	p := iceberg.PrimitiveTypes
	types := []iceberg.Type{p.Bool, p.Int32, p.Int64, p.Float32, p.Float64, p.Date, p.Time, p.Timestamp, p.TimestampTz,
		p.String, p.Binary, p.UUID, iceberg.DecimalTypeOf(9, 2), iceberg.DecimalTypeOf(18, 2), iceberg.FixedTypeOf(4)}
	promotes := map[string]bool{"int long": true, "float double": true}
	for _, file := range types {
		for _, tbl := range types {
			want := file.Equals(tbl) || promotes[fmt.Sprint(file, " ", tbl)]
			if got := readable(file, tbl); got != want {
				t.Errorf("readable(%s, %s) = %v, want %v", file, tbl, got, want)
			}
		}
	}
}
