package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status page defaults: hours per stream shown, and the most a request may
// ask for with ?hours=N.
const (
	defaultStatusHours = 24
	maxStatusHours     = 168
)

// NewMux returns a ServeMux serving the endpoints that answer the same in
// every phase of the process, so that probes and scrapes see one behaviour
// from start-up (cmd/lakesink serves this mux plus a 503 for the rest
// until the sink exists) to shutdown (Handler):
//
//	/healthz   200 {"status":"ok"} while the process runs
//	/metrics   Prometheus metrics from gatherer
//
// Callers add their other routes to it.
func NewMux(gatherer prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// Handler serves the operational endpoints:
//
//	/             status page (HTML, refreshes itself every 15 s)
//	/api/status   the same data as JSON (Status)
//	/api/progress where the records are (ProgressReport)
//	/healthz      200 while the process runs (NewMux)
//	/readyz       200 when ready; 503 with {"ready":false,"reasons":[...]} otherwise
//	/metrics      Prometheus metrics from gatherer (NewMux)
//
// / and /api/status take ?hours=N (1..168, default 24): hours per stream.
// The handler is safe for concurrent use.
func (ops *Ops) Handler(gatherer prometheus.Gatherer) http.Handler {
	mux := NewMux(gatherer)
	mux.HandleFunc("GET /api/progress", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ops.Progress())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, reasons := ops.Readiness()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(struct {
			Ready   bool     `json:"ready"`
			Reasons []string `json:"reasons,omitempty"`
		}{ok, reasons})
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		st := ops.status(r)
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		st := ops.status(r)
		var buf bytes.Buffer
		if err := statusPage.Execute(&buf, st); err != nil {
			http.Error(w, "render status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	})
	return mux
}

func (ops *Ops) status(r *http.Request) Status {
	hours := defaultStatusHours
	if v, err := strconv.Atoi(r.URL.Query().Get("hours")); err == nil && v >= 1 {
		hours = min(v, maxStatusHours)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	return ops.Status(ctx, hours)
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"hh":    func(t time.Time) string { return t.Format("15") },
	"hour":  func(t time.Time) string { return t.Format("2006-01-02 15:04 MST") },
	"ts":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"bytes": fmtBytes,
	"count": fmtCount,
	"secs": func(f float64) string {
		return (time.Duration(f) * time.Second).Round(time.Second).String()
	},
	"join": func(ss []string) string {
		var b bytes.Buffer
		for i, s := range ss {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(s)
		}
		return b.String()
	},
}).Parse(statusHTML))

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fmtCount(n int64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%dk", n/1000)
	case n >= 1000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return strconv.FormatInt(n, 10)
}

const statusHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="15">
<title>lakesink status</title>
<style>
body { font-family: system-ui, sans-serif; margin: 24px; color: #1d2433; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #5b6478; font-size: 13px; }
.badge { display: inline-block; padding: 3px 10px; border-radius: 10px; font-weight: 600; font-size: 13px; }
.ready { background: #d3f4dc; color: #13652b; }
.notready { background: #fbd9d9; color: #8a1414; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, 44px); gap: 4px; }
.cell { height: 44px; border-radius: 4px; font-size: 11px; text-align: center; line-height: 1.25; padding-top: 5px; box-sizing: border-box; }
.cell b { display: block; font-size: 13px; }
.complete { background: #2e9e4f; color: #fff; }
.amended { background: #d98c12; color: #fff; }
.open { background: #4a7fd4; color: #fff; }
.empty { background: #e4e7ee; color: #5b6478; }
.err { outline: 2px solid #c0392b; }
.legend span { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin: 0 4px 0 12px; vertical-align: -1px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid #e4e7ee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.lvl-ERROR { color: #a61b1b; font-weight: 600; }
.lvl-WARN { color: #9a6300; font-weight: 600; }
code { font-size: 12px; }
</style>
</head>
<body>
<h1>lakesink</h1>
<div class="sub">{{ts .Time}} &middot;
{{if .Ready}}<span class="badge ready" id="ready">ready</span>{{else}}<span class="badge notready" id="ready">not ready</span>{{end}}
{{range .Reasons}}<div class="sub reason">{{.}}</div>{{end}}</div>

<div class="legend sub" style="margin-top:12px"><span class="complete"></span>complete<span class="amended"></span>amended (late data)<span class="open"></span>open<span class="empty"></span>no data</div>
{{range .Streams}}
<h2>{{.Name}} <span class="sub">topics: {{join .Topics}}</span></h2>
<div class="grid" data-stream="{{.Name}}">
{{range .Hours}}<div class="cell {{.State}}{{if .Error}} err{{end}}" data-hour="{{.Hour.Format "2006-01-02T15:04:05Z07:00"}}" data-state="{{.State}}" data-records="{{.Records}}" title="{{hour .Hour}}: {{.State}}, {{.Files}} files, {{bytes .Bytes}}{{if .Revision}}, revision {{.Revision}}{{end}}{{if .Error}} ({{.Error}}){{end}}"><b>{{hh .Hour}}</b>{{if eq .State "complete" "amended"}}{{count .Records}}{{else if eq .State "open"}}{{.Files}}f{{end}}</div>
{{end}}</div>
{{end}}

<h2>Partitions owned by this instance</h2>
{{if .Partitions}}<table id="partitions">
<tr><th>stream</th><th>topic</th><th>partition</th><th>committed</th><th>high watermark</th><th>lag</th><th>lag (time)</th><th>event-time watermark</th><th>last commit advance</th></tr>
{{range .Partitions}}<tr><td>{{.Stream}}</td><td>{{.Topic}}</td><td class="num">{{.Partition}}</td><td class="num">{{.CommittedOffset}}</td><td class="num">{{.HighWatermark}}</td><td class="num">{{.Lag}}</td><td class="num">{{secs .LagSeconds}}</td><td>{{if .Watermark}}{{ts .Watermark}}{{else}}&ndash;{{end}}</td><td>{{ts .LastAdvance}}</td></tr>
{{end}}</table>{{else}}<p class="sub">none yet</p>{{end}}
{{with .Rebalances}}<p class="sub" id="rebalances">Rebalances since start: {{.Generations}} generations joined &middot; {{.RecordsReplayed}} records read again &middot; {{.FilesKept}} open files kept &middot; {{.FilesAbandoned}} abandoned</p>{{end}}

<h2>Recent warnings and errors</h2>
{{if .RecentErrors}}<table id="errors">
{{range .RecentErrors}}<tr><td>{{ts .Time}}</td><td class="lvl-{{.Level}}">{{.Level}}</td><td>{{.Message}}</td><td><code>{{join .Attrs}}</code></td></tr>
{{end}}</table>{{else}}<p class="sub">none</p>{{end}}
<p class="sub">JSON: <a href="/api/status">/api/status</a> &middot; <a href="/metrics">/metrics</a> &middot; <a href="/readyz">/readyz</a></p>
</body>
</html>
`
