package partitioner

// Promotes reports whether a column of type from reads as a column of type
// to with no conversion of the data: the same type, or one of the type
// promotions Apache Iceberg allows between lake column types (int32 to
// int64, float to double). It is the one promotion rule of lakesink: a
// table keeps a file whose column is narrower than the table's as is, and
// widens a table column only this way; writers that merge rows of several
// schema versions into one file may convert values further (int to double)
// on top of it, but never for a table stream, whose files the table reads
// with its one column type.
func Promotes(from, to ColumnType) bool {
	switch {
	case from == to:
		return true
	case from == TypeInt32 && to == TypeInt64,
		from == TypeFloat && to == TypeDouble:
		return true
	}
	return false
}
