package partitioner

import (
	"errors"
	"fmt"

	"github.com/parquet-go/parquet-go"
)

// Row is one record as the decoder hands it to FileWriter.Append: one value
// per schema column, in the config's column order. A missing optional field
// is a null value (parquet.Value{}, IsNull). Values are built with
// parquet.ByteArrayValue (string, json), Int32Value (int32, date as days since
// 1970-01-01), Int64Value (int64, timestamp_ms, timestamp_us as units since
// the Unix epoch), DoubleValue, FloatValue and BooleanValue. Levels and column
// indexes of the values are ignored; FileWriter sets them.
type Row = []parquet.Value

// Schema is the Parquet schema of a stream, built from its config columns.
//
// parquet-go orders the fields of a group by name, so the file's leaf column
// order may differ from the config order; Schema keeps the mapping from
// config index to leaf column index. A Schema is immutable and safe for
// concurrent use; one Schema serves every FileWriter of a stream.
type Schema struct {
	pq   *parquet.Schema
	cols []Column
	leaf []int          // config index -> leaf column index
	kind []parquet.Kind // config index -> physical kind expected in Row
	// scale lists the config indexes of timestamp_ms columns written as
	// micros (Column.MillisAsMicros).
	scale []int
}

// NewSchema builds the Parquet schema named name for cols:
//
//	string, json   BYTE_ARRAY, STRING (UTF8); json keeps the nested value
//	               as JSON text, a plain string for Spark/Athena/Trino
//	int32, int64   INT32/INT64, INT(32/64, signed)
//	double, float  DOUBLE, FLOAT
//	bool           BOOLEAN
//	timestamp_ms   INT64, TIMESTAMP(isAdjustedToUTC=true, MILLIS)
//	timestamp_us   INT64, TIMESTAMP(isAdjustedToUTC=true, MICROS)
//	date           INT32, DATE
//
// Required columns are REQUIRED, the others OPTIONAL. Column names must be
// non-empty and unique.
func NewSchema(name string, cols []Column) (*Schema, error) {
	if len(cols) == 0 {
		return nil, errors.New("schema has no columns")
	}
	group := make(parquet.Group, len(cols))
	kinds := make([]parquet.Kind, len(cols))
	ids := map[int]string{}
	var scaled []int
	for i, c := range cols {
		if c.Name == "" {
			return nil, fmt.Errorf("column %d: empty name", i)
		}
		if _, dup := group[c.Name]; dup {
			return nil, fmt.Errorf("column %d: duplicate name %q", i, c.Name)
		}
		node, kind, err := nodeOf(c.Type)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Name, err)
		}
		if c.MillisAsMicros {
			if c.Type != TypeTimestampMillis {
				return nil, fmt.Errorf("column %q: only timestamp_ms columns can be written as micros, not %v", c.Name, c.Type)
			}
			node, _, _ = nodeOf(TypeTimestampMicros)
			scaled = append(scaled, i)
		}
		switch {
		case c.FieldID < 0:
			return nil, fmt.Errorf("column %q: negative field id %d", c.Name, c.FieldID)
		case c.FieldID > 0:
			if other, dup := ids[c.FieldID]; dup {
				return nil, fmt.Errorf("column %q: field id %d already used by %q", c.Name, c.FieldID, other)
			}
			ids[c.FieldID] = c.Name
			node = parquet.FieldID(node, c.FieldID)
		}
		if !c.Required {
			node = parquet.Optional(node)
		}
		group[c.Name] = node
		kinds[i] = kind
	}
	s := &Schema{
		pq:    parquet.NewSchema(name, group),
		cols:  append([]Column(nil), cols...),
		leaf:  make([]int, len(cols)),
		kind:  kinds,
		scale: scaled,
	}
	for i, c := range cols {
		leaf, ok := s.pq.Lookup(c.Name)
		if !ok {
			return nil, fmt.Errorf("column %q: not found in parquet schema", c.Name)
		}
		s.leaf[i] = leaf.ColumnIndex
	}
	return s, nil
}

func nodeOf(t ColumnType) (parquet.Node, parquet.Kind, error) {
	switch t {
	case TypeString, TypeJSON:
		return parquet.String(), parquet.ByteArray, nil
	case TypeInt32:
		return parquet.Int(32), parquet.Int32, nil
	case TypeInt64:
		return parquet.Int(64), parquet.Int64, nil
	case TypeDouble:
		return parquet.Leaf(parquet.DoubleType), parquet.Double, nil
	case TypeFloat:
		return parquet.Leaf(parquet.FloatType), parquet.Float, nil
	case TypeBool:
		return parquet.Leaf(parquet.BooleanType), parquet.Boolean, nil
	case TypeTimestampMillis:
		return parquet.Timestamp(parquet.Millisecond), parquet.Int64, nil
	case TypeTimestampMicros:
		return parquet.Timestamp(parquet.Microsecond), parquet.Int64, nil
	case TypeDate:
		return parquet.Date(), parquet.Int32, nil
	}
	return nil, 0, fmt.Errorf("unsupported column type %v", t)
}

// Parquet returns the underlying parquet-go schema.
func (s *Schema) Parquet() *parquet.Schema { return s.pq }

// Columns returns a copy of the config columns, in config order.
func (s *Schema) Columns() []Column { return append([]Column(nil), s.cols...) }
