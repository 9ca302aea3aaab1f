package tables

import (
	"fmt"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/lakesink/lakesink/partitioner"
)

// The schema planner: what a table's schema needs so that it reads the
// files of some columns. Open plans for the stream's schema list, Evolve
// for each writer schema; both commit the plan with (*Table).evolveTo.

// planRules are what differs between the planner's two callers.
type planRules struct {
	// table names the table in errors.
	table string
	// source names whose columns are planned for, in errors: "the stream"
	// (its schema list) or "the writer schema".
	source string
	// timeCol is the source column of the table's hour partition: a
	// column of that name (any case) must be a timestamp.
	timeCol string
	// widen lets the plan widen a table column that is narrower than the
	// wanted one (int to long, float to double).
	//
	// Evolve widens: writer schemas change under the stream as producers
	// upgrade, and a widening Iceberg allows is a compatible version whose
	// records would otherwise all go to the dead-letter topic. Open does
	// not: a schema list is the operator's statement of the columns, and
	// an existing table that has one of them in a narrower type is an
	// error at start-up naming the column (docs/iceberg.md), not a change
	// to a column of a table other writers and readers may share. The
	// list grows the table by adding columns only.
	widen bool
}

// colChange is one column of a schemaUpdate.
type colChange struct {
	name string
	typ  iceberg.Type
}

// schemaUpdate is a change to a table's schema. The zero value changes
// nothing.
type schemaUpdate struct {
	// adds are columns the table lacks, added as optional columns: the
	// files written before have none and read as null.
	adds []colChange
	// widens are table columns promoted to a wider type, named as the
	// table spells them.
	widens []colChange
}

func (u schemaUpdate) empty() bool { return len(u.adds)+len(u.widens) == 0 }

// stage adds u to us, and returns us and u's changes as text for logs and
// errors ("+name", "name → long").
func (u schemaUpdate) stage(us *table.UpdateSchema) (*table.UpdateSchema, []string) {
	var names []string
	for _, c := range u.adds {
		us = us.AddColumn([]string{c.name}, c.typ, "", false, nil)
		names = append(names, "+"+c.name)
	}
	for _, c := range u.widens {
		us = us.UpdateColumn([]string{c.name}, table.ColumnUpdate{FieldType: iceberg.Optional[iceberg.Type]{Val: c.typ, Valid: true}})
		names = append(names, c.name+" → "+c.typ.String())
	}
	return us, names
}

// planSchema compares the wanted columns — those of a file about to be
// written — with the table schema sc. It returns the columns as a file for
// the table writes them, with the table's field id where sc has the
// column (0 where it does not yet) and timestamp_ms written as micros, and
// the update sc needs to read such a file. Per wanted column, matched to
// sc's by name in any case:
//
//   - sc lacks it: added, optional (whatever the wanted column says: the
//     files already in the table have no value for it);
//   - the same Iceberg type, or one that promotes to sc's
//     (partitioner.Promotes: an int column of a file in a long column of
//     the table): nothing, Iceberg reads the file's column as the table's
//     type;
//   - sc's type promotes to the wanted one (a long column of a file, an
//     int column in the table): widened if r.widen; the files already in
//     the table then read as the wider type;
//   - anything else, and a column named r.timeCol that is not a
//     timestamp: ErrIncompatible, wrapped, naming the column and why.
//
// Whether a column is required is not compared: an added column is
// optional, a column sc has keeps its own. Widening keeps a column's field
// id. The plan is for the schema as given; a caller that commits the
// update plans again on the new schema for the added columns' ids. Pure.
func planSchema(sc *iceberg.Schema, wanted []partitioner.Column, r planRules) ([]partitioner.Column, schemaUpdate, error) {
	var u schemaUpdate
	out := make([]partitioner.Column, len(wanted))
	for i, c := range wanted {
		typ, err := icebergType(c.Type)
		if err != nil {
			return nil, schemaUpdate{}, fmt.Errorf("%w: table %s: column %q: %v", ErrIncompatible, r.table, c.Name, err)
		}
		if strings.EqualFold(c.Name, r.timeCol) && !typ.Equals(iceberg.PrimitiveTypes.TimestampTz) {
			return nil, schemaUpdate{}, fmt.Errorf("%w: table %s is partitioned by hour(%s), and %s's %s is %s, not a timestamp",
				ErrIncompatible, r.table, r.timeCol, r.source, c.Name, c.Type)
		}
		c.MillisAsMicros = c.Type == partitioner.TypeTimestampMillis
		c.FieldID = 0
		f, ok := sc.FindFieldByNameCaseInsensitive(c.Name)
		switch {
		case !ok:
			u.adds = append(u.adds, colChange{c.Name, typ})
		case readable(typ, f.Type):
			c.FieldID = f.ID
		case r.widen && readable(f.Type, typ):
			c.FieldID = f.ID
			u.widens = append(u.widens, colChange{f.Name, typ})
		case readable(f.Type, typ):
			return nil, schemaUpdate{}, fmt.Errorf("%w: table %s: column %q is %s in the table, %s writes %s (%s): the table's column would have to widen, which lakesink does for writer schemas only: widen it in the table first",
				ErrIncompatible, r.table, c.Name, f.Type, r.source, typ, c.Type)
		default:
			return nil, schemaUpdate{}, fmt.Errorf("%w: table %s: column %q is %s in the table, %s writes %s (%s): not a promotion Iceberg allows",
				ErrIncompatible, r.table, c.Name, f.Type, r.source, typ, c.Type)
		}
		out[i] = c
	}
	return out, u, nil
}

// icebergType maps a lake column type to its Iceberg type.
func icebergType(ct partitioner.ColumnType) (iceberg.Type, error) {
	switch ct {
	case partitioner.TypeString, partitioner.TypeJSON:
		return iceberg.PrimitiveTypes.String, nil
	case partitioner.TypeInt32:
		return iceberg.PrimitiveTypes.Int32, nil
	case partitioner.TypeInt64:
		return iceberg.PrimitiveTypes.Int64, nil
	case partitioner.TypeDouble:
		return iceberg.PrimitiveTypes.Float64, nil
	case partitioner.TypeFloat:
		return iceberg.PrimitiveTypes.Float32, nil
	case partitioner.TypeBool:
		return iceberg.PrimitiveTypes.Bool, nil
	case partitioner.TypeTimestampMillis, partitioner.TypeTimestampMicros:
		return iceberg.PrimitiveTypes.TimestampTz, nil
	case partitioner.TypeDate:
		return iceberg.PrimitiveTypes.Date, nil
	}
	return nil, fmt.Errorf("column type %v has no Iceberg type", ct)
}

// columnType is icebergType's inverse (ok false: an Iceberg type lakesink
// does not write). Of the two lake types of string and timestamptz it
// returns one: they are the same column to the table.
func columnType(t iceberg.Type) (partitioner.ColumnType, bool) {
	for _, ct := range []partitioner.ColumnType{
		partitioner.TypeString, partitioner.TypeInt32, partitioner.TypeInt64, partitioner.TypeDouble,
		partitioner.TypeFloat, partitioner.TypeBool, partitioner.TypeTimestampMicros, partitioner.TypeDate,
	} {
		if it, _ := icebergType(ct); it.Equals(t) {
			return ct, true
		}
	}
	return 0, false
}

// readable reports whether a file column of Iceberg type file can be read
// as a table column of type tbl: equal, or a promotion Iceberg allows
// (partitioner.Promotes).
func readable(file, tbl iceberg.Type) bool {
	if file.Equals(tbl) {
		return true
	}
	f, ok := columnType(file)
	t, tok := columnType(tbl)
	return ok && tok && partitioner.Promotes(f, t)
}
