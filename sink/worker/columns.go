package worker

import (
	"slices"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/partitioner"
)

// The column rules of registry streams with derived columns
// (registryFormat): which writer schema versions share a file, and how a
// record of one version becomes a row of a file whose columns are the
// union of several.

// widen returns the type of a column that holds values of both a and b:
// the same type, or the wider one of a widening that writer-schema
// resolution allows (Avro int to long, float to double, int and long to
// double; Protobuf int32 to int64; JSON Schema integer to number). For a
// table stream only the promotions of partitioner.Promotes count (int to
// long, float to double, Iceberg's): the table reads every file with its
// one column type. ok false: no such type, an incompatible change.
func widen(a, b partitioner.ColumnType, table bool) (t partitioner.ColumnType, ok bool) {
	switch {
	case partitioner.Promotes(a, b):
		return b, true
	case partitioner.Promotes(b, a):
		return a, true
	case table:
		return 0, false
	}
	if b < a {
		a, b = b, a // the ColumnType constants order them: Int32 < Int64 < Double
	}
	if b == partitioner.TypeDouble && (a == partitioner.TypeInt32 || a == partitioner.TypeInt64) {
		return partitioner.TypeDouble, true
	}
	return 0, false
}

// joinColumns returns the columns of a file that holds rows of both
// column lists a (the file's so far) and b (a writer schema's): a's
// columns in order with their types widened to b's, then b's new columns
// in order. A column missing from either side, or optional on either
// side, is optional. ok false: a column's types do not widen, or its
// table field ids differ (an incompatible change: a new file family).
// grew reports whether the result differs from a.
func joinColumns(a, b []partitioner.Column, table bool) (out []partitioner.Column, grew, ok bool) {
	if len(a) == 0 {
		return slices.Clone(b), len(b) > 0, true
	}
	out = append(make([]partitioner.Column, 0, len(a)+len(b)), a...)
	seen := make(map[string]bool, len(b))
	for _, c := range b {
		seen[c.Name] = true
		i := columnIndex(out, c.Name)
		if i < 0 {
			c.Required = false // the rows of a have no value
			out, grew = append(out, c), true
			continue
		}
		o := &out[i]
		t, ok := widen(o.Type, c.Type, table)
		if !ok || (o.FieldID != c.FieldID && o.FieldID > 0 && c.FieldID > 0) {
			return nil, false, false
		}
		if t != o.Type || (o.Required && !c.Required) || o.FieldID != max(o.FieldID, c.FieldID) || (c.MillisAsMicros && !o.MillisAsMicros) {
			grew = true
		}
		o.Type, o.Required, o.FieldID = t, o.Required && c.Required, max(o.FieldID, c.FieldID)
		o.MillisAsMicros = o.MillisAsMicros || c.MillisAsMicros
	}
	for i := range out {
		if out[i].Required && !seen[out[i].Name] {
			out[i].Required, grew = false, true // the rows of b have no value
		}
	}
	return out, grew, true
}

func columnIndex(cols []partitioner.Column, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// remap turns the rows of one writer schema into rows of a file's
// columns: column i of the writer's row goes to column to[i] of the
// file's, widened if widen[i]; the file's other columns are null.
type remap struct {
	identity bool // rows pass unchanged
	width    int  // columns of the file
	to       []int
	widen    []partitioner.ColumnType // 0: as is, else the file column's type
	from     []partitioner.ColumnType // the writer's column types
	out      []parquet.Value          // the row last mapped
}

// newRemap returns the remap of rows of writer columns w into file columns
// f, or nil if f does not cover w: a column of w missing from f or of a
// type f's does not widen to, or a required column of f that w does not
// fill in every row.
func newRemap(w, f []partitioner.Column, table bool) *remap {
	r := &remap{identity: len(w) == len(f), width: len(f), to: make([]int, len(w)),
		widen: make([]partitioner.ColumnType, len(w)), from: make([]partitioner.ColumnType, len(w))}
	filled := make([]bool, len(f))
	for i, c := range w {
		j := columnIndex(f, c.Name)
		if j < 0 {
			return nil
		}
		if t, ok := widen(c.Type, f[j].Type, table); !ok || t != f[j].Type {
			return nil
		}
		r.to[i], r.from[i], filled[j] = j, c.Type, c.Required
		if c.Type != f[j].Type {
			r.widen[i] = f[j].Type
		}
		r.identity = r.identity && j == i && c.Type == f[j].Type
	}
	for j, c := range f {
		if c.Required && !filled[j] {
			return nil
		}
	}
	return r
}

// apply returns row as a row of the file's columns. The result is reused
// by the next call.
func (r *remap) apply(row []parquet.Value) []parquet.Value {
	if r.identity {
		return row
	}
	if r.out == nil {
		r.out = make([]parquet.Value, r.width)
	}
	clear(r.out)
	for i, v := range row {
		if t := r.widen[i]; t != 0 && !v.IsNull() {
			v = widenValue(v, r.from[i], t)
		}
		r.out[r.to[i]] = v
	}
	return r.out
}

// widenValue converts v of type from to the wider type to (a pair widen
// allows).
func widenValue(v parquet.Value, from, to partitioner.ColumnType) parquet.Value {
	switch {
	case from == partitioner.TypeInt32 && to == partitioner.TypeInt64:
		return parquet.Int64Value(int64(v.Int32()))
	case from == partitioner.TypeInt32 && to == partitioner.TypeDouble:
		return parquet.DoubleValue(float64(v.Int32()))
	case from == partitioner.TypeInt64 && to == partitioner.TypeDouble:
		return parquet.DoubleValue(float64(v.Int64()))
	case from == partitioner.TypeFloat && to == partitioner.TypeDouble:
		return parquet.DoubleValue(float64(v.Float()))
	}
	return v
}
