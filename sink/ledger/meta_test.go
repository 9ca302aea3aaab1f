package ledger

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Meta
		ok      bool
		wantErr string
	}{
		{name: "no commit", in: "", want: Empty()},
		{name: "ours", in: `{"v":1,"wm":5,"rw":7,"fh":3600000,"la":9,"d":[{"h":0,"to":12}],"am":[{"h":0,"o":4}]}`,
			want: Meta{V: 1, WM: 5, RW: 7, FH: HourMs, LA: 9, Done: []DoneMark{{Hour: 0, To: 12}}, AM: []Amend{{Hour: 0, First: 4}}}, ok: true},
		{name: "another tool's text", in: "committed by kcat", want: Empty(), wantErr: "parse commit metadata"},
		{name: "other version", in: `{"v":2,"wm":5}`, want: Empty(), wantErr: "commit metadata version 2, want 1"},
		{name: "wrong type", in: `{"v":1,"wm":"x"}`, want: Empty(), wantErr: "parse commit metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := Parse(tt.in)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Parse error = %v, want %q", err, tt.wantErr)
			}
			if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzMeta: metadata that parses encodes back to metadata that parses to
// the same value; anything else is an error with the empty state, never a
// panic.
func FuzzMeta(f *testing.F) {
	f.Add(`{"v":1,"wm":5,"rw":7,"fh":3600000,"la":9,"d":[{"h":0,"to":12}],"am":[{"h":0,"o":4}]}`)
	f.Add(Meta{V: Version, WM: math.MinInt64, RW: math.MaxInt64}.Encode())
	f.Add("")
	f.Add("{")
	f.Add(`{"v":1,"d":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		m, ok, err := Parse(s)
		if err != nil || !ok {
			if !reflect.DeepEqual(m, Empty()) {
				t.Fatalf("Parse(%q) failed (%v) but returned %+v", s, err, m)
			}
			if s != "" && err == nil {
				t.Fatalf("Parse(%q): not ok without an error", s)
			}
			return
		}
		back, ok, err := Parse(m.Encode())
		if err != nil || !ok || !reflect.DeepEqual(normal(back), normal(m)) {
			t.Fatalf("round trip of %q: %+v (%v, %v), want %+v", s, back, ok, err, m)
		}
	})
}

// normal maps empty lists to nil (omitempty drops them).
func normal(m Meta) Meta {
	if len(m.Done) == 0 {
		m.Done = nil
	}
	if len(m.AM) == 0 {
		m.AM = nil
	}
	return m
}

func TestAmendsDue(t *testing.T) {
	l := New(0, Meta{V: Version, AM: []Amend{{Hour: 0, First: 1}, {Hour: HourMs, First: 2}}}, 0)
	if due := l.AmendsDue(1000, 500); len(due) != 2 {
		t.Fatalf("first look: %v due, want both", due)
	}
	if due := l.AmendsDue(1200, 500); len(due) != 0 {
		t.Fatalf("within the interval: %v due, want none", due)
	}
	l.AmendDone(0, 1)
	l.Amended(2*HourMs, 3)
	due := l.AmendsDue(1300, 500)
	if len(due) != 1 || due[0] != (Amend{Hour: 2 * HourMs, First: 3}) {
		t.Fatalf("new entry: %v due, want only it", due)
	}
	if due := l.AmendsDue(1600, 500); len(due) != 1 || due[0].Hour != HourMs {
		t.Fatalf("after the interval: %v due, want the hour-1 entry", due)
	}
}
