package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// JSON renders the report as indented JSON with a trailing newline.
func (r Report) JSON() []byte {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(err) // plain data
	}
	return append(b, '\n')
}

// WriteText renders the report for a terminal: one line per stream, then
// one line per finding (stream, hour, kind, key, message), or "clean".
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "audit %s .. %s\n", r.From, r.To)
	for _, s := range r.Streams {
		fmt.Fprintf(&b, "  %s: %d hour folders, %d with a marker, %d files and %d records listed", s.Name, s.Folders, s.Marked, s.Files, s.Records)
		if s.Table != "" {
			fmt.Fprintf(&b, ", table %s references %d of their files", s.Table, s.TableFiles)
		}
		b.WriteString("\n")
	}
	if r.Clean() {
		b.WriteString("clean: no findings\n")
	} else {
		fmt.Fprintf(&b, "%d findings:\n", len(r.Findings))
		for _, f := range r.Findings {
			fmt.Fprintf(&b, "  %s %s %s", f.Stream, f.Hour, f.Kind)
			if f.Key != "" {
				fmt.Fprintf(&b, " %s", f.Key)
			}
			fmt.Fprintf(&b, ": %s\n", f.Message)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
