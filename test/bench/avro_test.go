package bench

import (
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/lakesink/lakesink/cmd/lakesink/demo"
	"github.com/lakesink/lakesink/config"
	"github.com/lakesink/lakesink/sink/decode"
)

// TestAvroMatchesJSON: the Avro generator's records, read by the sink's
// Confluent decoder with the harness's columns, give exactly the rows and
// event times that the JSON generator's records give through the JSON
// decoder — so a JSON and an Avro run write the same Parquet rows and
// differ only in decoding. It also pins the Avro values' size, which the
// bench tables report.
func TestAvroMatchesJSON(t *testing.T) {
	hour := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		sc                     config.Stream
		minAvroB, maxAvroB     float64 // average Avro value bytes
		minShrink, maxShrinkTo float64 // avro/json size ratio bounds
	}{
		{demo.ClickstreamStream(SchemaClickstream), 130, 180, 0.35, 0.6}, // 150 of 322 bytes
		{demo.IoTStream(SchemaIoT), 38, 60, 0.2, 0.4},                    // 45 of 160 bytes
	} {
		t.Run(tc.sc.Name, func(t *testing.T) {
			_, spec := streamSpec(t, tc.sc)
			jdec, err := decode.New(spec)
			if err != nil {
				t.Fatal(err)
			}
			adec, id := avroDecoder(t, tc.sc)
			agen, err := avroGenerator(tc.sc.Name, id)
			if err != nil {
				t.Fatal(err)
			}
			const n = 3000
			jvals := sampleValues(t, jsonGenerator(tc.sc.Name), n, hour)
			avals := sampleValues(t, agen, n, hour)
			var jbytes, abytes int
			nulls := 0
			for i := range n {
				jbytes += len(jvals[i])
				abytes += len(avals[i])
				if avals[i][0] != 0 || adec.SchemaID() != 0 && adec.SchemaID() != id {
					t.Fatalf("record %d: magic %d, schema id %d, want 0 and %d", i, avals[i][0], adec.SchemaID(), id)
				}
				jrow, jt, err := jdec.Decode(jvals[i], hour)
				if err != nil {
					t.Fatalf("json record %d: %v\n%s", i, err, jvals[i])
				}
				arow, at, err := adec.Decode(avals[i], hour)
				if err != nil {
					t.Fatalf("avro record %d: %v (json %s)", i, err, jvals[i])
				}
				if !jt.Equal(at) {
					t.Errorf("record %d: event time %s from avro, %s from json", i, at, jt)
				}
				if len(arow) != len(jrow) {
					t.Fatalf("record %d: %d avro columns, %d json", i, len(arow), len(jrow))
				}
				for c := range jrow {
					if jrow[c].IsNull() {
						nulls++
					}
					if !parquet.DeepEqual(jrow[c], arow[c]) {
						t.Errorf("record %d column %s: avro %v, json %v", i, spec.Fields[c].Column.Name, arow[c], jrow[c])
					}
				}
			}
			if tc.sc.Name == SchemaClickstream && nulls == 0 {
				t.Error("no null price or quantity in the sample: the optional fields are not exercised")
			}
			if avg := float64(abytes) / n; avg < tc.minAvroB || avg > tc.maxAvroB {
				t.Errorf("%.0f avro bytes per record, want %.0f to %.0f", avg, tc.minAvroB, tc.maxAvroB)
			}
			if r := float64(abytes) / float64(jbytes); r < tc.minShrink || r > tc.maxShrinkTo {
				t.Errorf("avro values are %.2f of the json size, want %.2f to %.2f", r, tc.minShrink, tc.maxShrinkTo)
			}
			t.Logf("%s: %.0f json bytes, %.0f avro bytes per record", tc.sc.Name, float64(jbytes)/n, float64(abytes)/n)
		})
	}
}
