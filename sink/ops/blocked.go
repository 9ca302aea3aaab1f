package ops

import "fmt"

// Blocked reports that stream's hour markers wait for files in the lake
// that no manifest may list and that nothing proves superseded
// (completion.UnprovenError): err nil once a marker of the stream was
// published again. Such files are never deleted, so the sink is not ready
// until a replay covers them or an operator looks (docs/operations.md,
// "Blocked markers"). Counted as an error of the storage dependency's
// contents, dependency label "lake".
func (h *Health) Blocked(stream string, err error) {
	h.report(DepLake, DepLake+"/"+stream, fmt.Sprintf("%s %s blocked: files hold records no manifest lists", ReasonBlocked, stream), true, err)
}
