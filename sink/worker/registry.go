package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/segmentio/kafka-go"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/sink/decode/confluent"
)

// registryFormat is Avro, Protobuf and JSON Schema in the Confluent wire
// format, schemas from a Schema Registry (package confluent has the
// decoding rules).
//
//   - Columns: the stream's schema list when it has one, else derived from
//     each record's writer schema.
//   - Files, with a column list: every writer schema decodes into the
//     list (a writer schema that does not resolve into it is the record's
//     error, incompatible_schema), so the writer schema never decides the
//     file: records of all versions share their hour's file.
//   - Files, with derived columns: writer schema versions that are
//     compatible (joinColumns: fields added or removed, the widenings
//     resolution allows) share a file whose columns are their union. Like
//     schema: infer, each new file first samples `sample` records (rows
//     copied, counted in files.memory_limit) and then gets the union of
//     its sample and of every writer schema the worker fitted before (of
//     the same family); later rows are mapped into those columns (remap:
//     nulls for absent fields, values widened). A record whose writer
//     schema the file's columns do not cover, but joins, finishes the
//     hour's files and starts a wider one (once per new version: the
//     worker's union keeps it).
//   - Families: a record whose writer schema does not join a file's
//     columns (a type that does not widen) is of another family. It goes
//     to the next open file of its hour it joins (fitOther: the worker
//     asks the hour's files in the order they opened), else to a new file
//     beside them: one file per family per partition-hour, so producers of
//     incompatible versions interleaving during a rolling deploy do not
//     cut a file at every switch. The files of an hour finish together
//     (Worker.finish); beyond maxFamilies open at once the hour's files
//     finish and it starts over. Where files are cut
//     depends only on the records and their order since the assignment;
//     a replay from a commit may cut elsewhere, as for schema: infer,
//     which names and the orphan rule make safe (docs/design.md).
//   - Every file's footer lists the writer schema ids of its records
//     (partitioner.MetaSchemaIDs, and MetaSchemaID when there is one),
//     and the hour manifest each file's (schema_ids, schema_id).
//   - Registry outages: a record whose schema cannot be fetched is not bad
//     data. The partition waits and retries the same record with capped
//     exponential backoff (never skipped, never dead-lettered); /readyz says
//     why meanwhile (registry_wait.go). Unknown ids, truncated records,
//     wrong magic bytes and writer schemas that do not fit the stream go to
//     the dead-letter topic with their reason.
//   - A stream with a table and derived columns evolves the table to take
//     each writer schema before its first record is written
//     (registry_table.go).
//
// This file has the format's path of a record; the families are
// registry_families.go's, the samples sample.go's.
type registryFormat struct {
	fx   *formatEnv
	dec  recordDecoder      // cdec, or a stand-in in tests
	cdec *confluent.Decoder // knows the schema of the record decoded last
	// table, for a stream with a table and derived columns, evolves it to
	// take each writer schema; nil otherwise.
	table *tableEvolution

	// derived: no column list. fams: the worker's families of writer
	// schemas.
	derived bool
	sample  int // records a file samples: registrySample (tests: fewer)
	fams    schemaFamilies
}

func newRegistryFormat(fx *formatEnv) (*registryFormat, error) {
	st := fx.st
	if st.cspec.Registry == nil {
		return nil, errors.New("format " + string(st.Format) + " needs schema_registry.url")
	}
	d, err := confluent.New(st.cspec)
	if err != nil {
		return nil, err
	}
	x := &registryFormat{fx: fx, dec: d, cdec: d, derived: !st.Fixed(), sample: registrySample}
	if st.Table != nil && !st.Fixed() {
		x.table = newTableEvolution(fx)
	}
	x.fams = newSchemaFamilies(x.table != nil)
	return x, nil
}

func (x *registryFormat) decode(ctx context.Context, m kafka.Message) ([]parquet.Value, time.Time, error) {
	row, ev, err := x.dec.Decode(m.Value, m.Time)
	if err != nil && !isRecordError(err) {
		row, ev, err = x.waitRegistry(ctx, m, err)
	}
	if err == nil && x.table != nil {
		err = x.table.evolve(ctx, x.cdec.SchemaID(), x.cdec.Schema(), m.Offset)
	}
	return row, ev, err
}

// fit returns the row of the record just decoded for f. With a column
// list every record fits. With derived columns a sampling file joins the
// record's writer schema into its columns; a file past its sample maps the
// row into its columns (fitRoll: they do not cover the writer schema but
// join it, a wider file follows). A writer schema that does not join the
// file's columns is of another family: fitOther.
func (x *registryFormat) fit(f *openFile, m kafka.Message, row []parquet.Value) ([]parquet.Value, fitted, error) {
	if !x.derived || f == nil {
		return row, fitOK, nil
	}
	ws := x.writerSchema()
	rf := f.reg
	if ws == rf.last {
		if rf.sampling {
			return row, fitOK, nil
		}
		return rf.lastMap.apply(row), fitOK, nil
	}
	if rf.foreign[ws] {
		return row, fitOther, nil
	}
	if rf.sampling {
		if !rf.joined[ws] {
			cols, grew, ok := x.fams.joined(rf.cols, ws)
			if !ok {
				x.other(f, ws, m)
				return row, fitOther, nil
			}
			if grew {
				clear(rf.foreign) // a wider file may join what it did not
			}
			rf.cols, rf.joined[ws] = cols, true
			x.fams.join(rf.fam, ws)
		}
		rf.last = ws
		return row, fitOK, nil
	}
	r, ok := rf.maps[ws]
	if !ok {
		r = x.fams.remap(ws, rf.cols)
		rf.maps[ws] = r
	}
	if r == nil {
		if _, _, ok := x.fams.joined(rf.cols, ws); !ok {
			x.other(f, ws, m)
			return row, fitOther, nil
		}
		x.fams.join(rf.fam, ws)
		x.fx.log.Info("writer schema not covered by the file's columns: new file", "offset", m.Offset,
			"hour", f.hour.Format(time.RFC3339), "schema_id", x.cdec.SchemaID())
		return row, fitRoll, nil
	}
	rf.last, rf.lastMap = ws, r
	return r.apply(row), fitOK, nil
}

// other notes that ws does not join f's columns: another family.
func (x *registryFormat) other(f *openFile, ws *partitioner.Schema, m kafka.Message) {
	rf := f.reg
	if rf.foreign == nil {
		rf.foreign = map[*partitioner.Schema]bool{}
	}
	rf.foreign[ws] = true
	x.fx.log.Info("writer schema incompatible with the file's columns: another family's file", "offset", m.Offset,
		"hour", f.hour.Format(time.RFC3339), "schema_id", x.cdec.SchemaID())
}

// writerSchema is the Parquet schema of the writer schema of the record
// just decoded, with the table's field ids for a table stream.
func (x *registryFormat) writerSchema() *partitioner.Schema {
	if s := x.table.schema(x.cdec.SchemaID()); s != nil {
		return s
	}
	return x.cdec.Schema()
}

// newFile sets up f's registry state. A file with derived columns starts
// sampling from the worker's family of the record's writer schema: its
// spool file is a placeholder of that writer schema until seal gives it
// the sample's columns.
func (x *registryFormat) newFile(f *openFile) *partitioner.Schema {
	f.reg = &registryFile{}
	ws := x.writerSchema()
	if x.derived {
		rf := f.reg
		rf.fam = x.fams.of(ws)
		rf.sampling, rf.last = true, ws
		rf.cols = slices.Clone(rf.fam.cols)
		rf.joined = map[*partitioner.Schema]bool{ws: true}
		rf.sample = newSampler[registrySampled](x.fx.mem, x.sample, x.fx.sampleBytes)
	}
	return ws
}

// append notes the record's writer schema id and adds its row to f: to
// the sample while f samples (sealing it when the sample is full), else to
// the file.
func (x *registryFormat) append(f *openFile, row []parquet.Value, m kafka.Message, ev time.Time) error {
	rf := f.reg
	if id := x.cdec.SchemaID(); id != 0 && !slices.Contains(rf.ids, id) {
		rf.ids = append(rf.ids, id)
	}
	if !rf.sampling {
		return appendRow(f, row, m, ev)
	}
	cp, n := copyRow(row)
	if rf.sample.add(registrySampled{row: cp, ws: rf.last}, n, m.Offset, ev) {
		return x.seal(f)
	}
	return nil
}

// seal gives a sampling file its columns, the join of its sample (and of
// what the worker saw before), and writes the sample into it. No-op for
// other files.
func (x *registryFormat) seal(f *openFile) error {
	rf := f.reg
	if rf == nil || !rf.sampling {
		return nil
	}
	st := x.fx.st
	schema, err := partitioner.NewSchema(st.Name, rf.cols)
	if err != nil {
		return fmt.Errorf("stream %s: columns of writer schemas %v: %w", st.Name, rf.ids, err)
	}
	rf.sampling, rf.last, rf.lastMap, rf.joined = false, nil, nil, nil
	rf.maps = map[*partitioner.Schema]*remap{}
	return rf.sample.writeTo(f, schema, x.fx.newWriter, func(r sampled[registrySampled]) ([]parquet.Value, error) {
		rm, ok := rf.maps[r.rec.ws]
		if !ok {
			rm = x.fams.remap(r.rec.ws, rf.cols)
			rf.maps[r.rec.ws] = rm
		}
		if rm == nil {
			// The columns are the join of the sample: this is a bug.
			return nil, fmt.Errorf("columns of writer schemas %v do not hold the sampled record at offset %d", rf.ids, r.offset)
		}
		return rm.apply(r.rec.row), nil
	})
}

// drop releases a file's sample from memory.
func (x *registryFormat) drop(f *openFile) {
	if f.reg != nil {
		f.reg.sample.release()
	}
}

// footer is the writer schema ids of f's records.
func (x *registryFormat) footer(f *openFile) map[string]string {
	if f.reg == nil {
		return nil
	}
	return partitioner.FormatSchemaIDs(f.reg.ids)
}

// registrySample is how many records a registry file with derived columns
// samples before its columns are settled (schema: infer's default).
const registrySample = 1000

// registryFile is an open file's registry state.
type registryFile struct {
	ids []int // writer schema ids of its records, in order of first appearance
	// The rest is for derived columns only. cols are the file's columns:
	// while it samples, the join so far.
	sampling bool
	cols     []partitioner.Column
	joined   map[*partitioner.Schema]bool // writer schemas in cols, while sampling
	sample   sampler[registrySampled]
	maps     map[*partitioner.Schema]*remap // after the sample: each writer schema's rows into cols (nil: not covered)
	// last is the writer schema of the record fitted last, lastMap its
	// remap: consecutive records of one version skip the maps.
	last    *partitioner.Schema
	lastMap *remap
	// fam is the worker's family the file started from; foreign are the
	// writer schemas of other families (fitOther), known so far.
	fam     *colFamily
	foreign map[*partitioner.Schema]bool
}

// registrySampled is what a registry file samples of a record: its row
// in its writer schema's columns (its own copy, copyRow), and that schema.
type registrySampled struct {
	row []parquet.Value
	ws  *partitioner.Schema
}

// copyRow returns a copy of row that shares no memory with it (rows alias
// the decoder's buffers) and the bytes it holds, roughly.
func copyRow(row []parquet.Value) ([]parquet.Value, int64) {
	var n int
	for _, v := range row {
		if k := v.Kind(); !v.IsNull() && (k == parquet.ByteArray || k == parquet.FixedLenByteArray) {
			n += len(v.ByteArray())
		}
	}
	buf := make([]byte, 0, n)
	cp := make([]parquet.Value, len(row))
	for i, v := range row {
		if k := v.Kind(); !v.IsNull() && (k == parquet.ByteArray || k == parquet.FixedLenByteArray) {
			start := len(buf)
			buf = append(buf, v.ByteArray()...)
			if k == parquet.ByteArray {
				v = parquet.ByteArrayValue(buf[start:len(buf):len(buf)])
			} else {
				v = parquet.FixedLenByteArrayValue(buf[start:len(buf):len(buf)])
			}
		}
		cp[i] = v
	}
	return cp, int64(n + 24*len(row))
}
