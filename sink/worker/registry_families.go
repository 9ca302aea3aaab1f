package worker

import (
	"slices"

	"github.com/lakesink/lakesink/partitioner"
)

// schemaFamilies are the families of writer schemas a registry worker with
// derived columns has fitted since it was assigned the partition: sets of
// mutually compatible writer schemas (joinColumns), each with their join,
// at most maxFamilies (the oldest forgotten). A new file starts sampling
// from its writer schema's family, so a worker's files of one family only
// widen. Not safe for concurrent use; one per registry format.
type schemaFamilies struct {
	// table: the stream has a table, whose column types only Iceberg's
	// own promotions widen (widen).
	table  bool
	fams   []*colFamily
	colsOf map[*partitioner.Schema][]partitioner.Column
}

// colFamily is a set of mutually compatible writer schemas (joinColumns)
// and their join.
type colFamily struct {
	cols  []partitioner.Column
	known map[*partitioner.Schema]bool
}

func newSchemaFamilies(table bool) schemaFamilies {
	return schemaFamilies{table: table, colsOf: map[*partitioner.Schema][]partitioner.Column{}}
}

// columns returns ws's columns (cached: Schema.Columns copies).
func (s *schemaFamilies) columns(ws *partitioner.Schema) []partitioner.Column {
	cols, ok := s.colsOf[ws]
	if !ok {
		cols = ws.Columns()
		s.colsOf[ws] = cols
	}
	return cols
}

// joined is joinColumns of a file's columns cols and ws's.
func (s *schemaFamilies) joined(cols []partitioner.Column, ws *partitioner.Schema) (out []partitioner.Column, grew, ok bool) {
	return joinColumns(cols, s.columns(ws), s.table)
}

// remap is newRemap of ws's rows into a file's columns cols (nil: cols do
// not cover ws).
func (s *schemaFamilies) remap(ws *partitioner.Schema, cols []partitioner.Column) *remap {
	return newRemap(s.columns(ws), cols, s.table)
}

// of returns the worker's family of ws: the one that has it, else the
// first it joins, else a new one (forgetting the oldest beyond
// maxFamilies).
func (s *schemaFamilies) of(ws *partitioner.Schema) *colFamily {
	for _, fam := range s.fams {
		if fam.known[ws] {
			return fam
		}
	}
	for _, fam := range s.fams {
		if s.join(fam, ws) {
			return fam
		}
	}
	fam := &colFamily{cols: s.columns(ws), known: map[*partitioner.Schema]bool{ws: true}}
	if len(s.fams) >= maxFamilies {
		s.fams = slices.Delete(s.fams, 0, 1)
	}
	s.fams = append(s.fams, fam)
	return fam
}

// join joins ws into fam if they are compatible.
func (s *schemaFamilies) join(fam *colFamily, ws *partitioner.Schema) bool {
	if fam.known[ws] {
		return true
	}
	cols, _, ok := s.joined(fam.cols, ws)
	if ok {
		fam.cols, fam.known[ws] = cols, true
	}
	return ok
}
