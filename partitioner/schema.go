package partitioner

import "fmt"

// ColumnType is the logical type of a lake column, as named in the config.
type ColumnType int

// The column types of a stream's schema list (docs/configuration.md).
const (
	TypeString ColumnType = iota + 1
	TypeInt32
	TypeInt64
	TypeDouble
	TypeFloat
	TypeBool
	TypeTimestampMillis // INT64, Parquet TIMESTAMP(MILLIS, UTC)
	TypeTimestampMicros // INT64, Parquet TIMESTAMP(MICROS, UTC)
	TypeDate            // INT32 days since 1970-01-01, Parquet DATE
	TypeJSON            // nested value kept as JSON text (BYTE_ARRAY, UTF8 string)
)

var typeNames = map[string]ColumnType{
	"string": TypeString, "int32": TypeInt32, "int64": TypeInt64,
	"double": TypeDouble, "float": TypeFloat, "bool": TypeBool,
	"timestamp_ms": TypeTimestampMillis, "timestamp_us": TypeTimestampMicros,
	"date": TypeDate, "json": TypeJSON,
}

// TypeNames lists the config spellings of every column type, in a fixed order.
var TypeNames = []string{"string", "int32", "int64", "double", "float", "bool", "timestamp_ms", "timestamp_us", "date", "json"}

// ParseColumnType maps a config type name to its ColumnType.
func ParseColumnType(s string) (ColumnType, error) {
	if t, ok := typeNames[s]; ok {
		return t, nil
	}
	return 0, fmt.Errorf("unknown column type %q", s)
}

// String returns the config spelling of t.
func (t ColumnType) String() string {
	for k, v := range typeNames {
		if v == t {
			return k
		}
	}
	return fmt.Sprintf("ColumnType(%d)", int(t))
}

// Column is one column of a stream's lake table. Columns appear in the Parquet
// file in the order given; Required columns are REQUIRED in Parquet, the others
// OPTIONAL (nullable).
type Column struct {
	Name     string
	Type     ColumnType
	Required bool
	// FieldID, when positive, is written as the column's field id in the
	// Parquet schema: table formats such as Apache Iceberg resolve columns
	// by id, so that renames and schema versions keep meaning the same
	// column. 0: none (the bytes of the file are as without the field).
	FieldID int
	// MillisAsMicros writes a timestamp_ms column as TIMESTAMP(MICROS):
	// rows still carry milliseconds and FileWriter.Append scales them.
	// Apache Iceberg stores timestamps in microseconds only.
	MillisAsMicros bool
}
