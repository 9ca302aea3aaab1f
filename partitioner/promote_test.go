package partitioner

import "testing"

func TestPromotes(t *testing.T) {
	promotions := map[[2]ColumnType]bool{
		{TypeInt32, TypeInt64}:  true,
		{TypeFloat, TypeDouble}: true,
	}
	all := []ColumnType{TypeString, TypeInt32, TypeInt64, TypeDouble, TypeFloat, TypeBool,
		TypeTimestampMillis, TypeTimestampMicros, TypeDate, TypeJSON}
	if len(all) != len(TypeNames) {
		t.Fatalf("the test lists %d column types, there are %d", len(all), len(TypeNames))
	}
	for _, from := range all {
		for _, to := range all {
			want := from == to || promotions[[2]ColumnType{from, to}]
			if got := Promotes(from, to); got != want {
				t.Errorf("Promotes(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	// Named: never narrowing, never across kinds.
	for _, tc := range []struct {
		from, to ColumnType
		want     bool
	}{
		{TypeInt32, TypeInt64, true},
		{TypeFloat, TypeDouble, true},
		{TypeInt64, TypeInt32, false},
		{TypeDouble, TypeFloat, false},
		{TypeInt32, TypeDouble, false},
		{TypeInt64, TypeDouble, false},
		{TypeTimestampMillis, TypeTimestampMicros, false},
		{TypeJSON, TypeString, false},
	} {
		if got := Promotes(tc.from, tc.to); got != tc.want {
			t.Errorf("Promotes(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}
