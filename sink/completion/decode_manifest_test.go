package completion

import (
	"reflect"
	"testing"
)

func TestDecodeManifest(t *testing.T) {
	m := Manifest{
		Version: ManifestVersion, Stream: "clicks", Hour: "2026-11-25T13:00:00Z", Revision: 2,
		Ranges:      []HourRange{{Start: "2026-11-25T13:00:00Z", End: "2026-11-25T14:00:00Z"}},
		CompletedAt: "2026-11-25T14:11:00Z", Records: 3,
		Files: []ManifestFile{{Path: "clicks/dt=2026-11-25/hour=13/clicks+0+7.parquet", Records: 3, Bytes: 100,
			Topic: "clicks", FirstOffset: 7, LastOffset: 9, SchemaIDs: []int{4}, SchemaID: 4}},
	}
	got, err := DecodeManifest(m.Encode())
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("DecodeManifest(Encode()) = %+v, %v; want %+v", got, err, m)
	}
	if _, err := DecodeManifest([]byte(`{"revision": "two"}`)); err == nil {
		t.Error("DecodeManifest of a mistyped field succeeded")
	}
}
