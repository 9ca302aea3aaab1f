# lakesink — build, test and benchmark entry points.
#
#   make test    installs the test servers it needs (versitygw, fake-gcs-server,
#                staticcheck) into .tools/bin, checks formatting and lint, then
#                runs every test with -race: unit, config tables, conformance
#                suites and end-to-end tests against real server processes.
#   make rules   promtool checks and unit-tests the example alerting rules
#                (examples/prometheus); part of make test. Installs Debian's
#                promtool (package prometheus) when missing.
#   make build   builds bin/lakesink
#   make demo    go run ./cmd/lakesink demo
#   make bench   end-to-end benchmark: builds bin/lakesink and the test broker,
#                produces BENCH_RECORDS clickstream records, runs the binary
#                to the local lake (zstd) and prints records/s, MB/s, CPU
#                seconds and peak RSS; appends a JSON line to BENCH_RESULTS.
#                Runs: the records as JSON, then the same records as
#                Avro (Confluent wire format, in-process schema registry),
#                then as Avro of two writer schema versions interleaved
#                (avro2: a rolling deploy of the producers; its summary
#                line compares it with one version), each without and
#                with an Iceberg table, followed by a summary line per
#                run. BENCH_ARGS adds flags to all, e.g. BENCH_ARGS='-schema iot', or
#                BENCH_ARGS='-format avro' for one run; BENCH_ARGS='-scenario
#                memory' (or busy, skewed) runs JSON only;
#                BENCH_ARGS='-instances 3 -rolling' restarts 3 instances
#                one after another under live traffic, with
#                kafka.assignor range and then sticky (see
#                test/bench/cmd/lakesink-bench).

GO        ?= go
TOOLS_BIN := $(CURDIR)/.tools/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
TEST_TIMEOUT ?= 45m

export LAKESINK_TOOLS_BIN := $(TOOLS_BIN)

VERSITYGW_VERSION      := v1.8.0
FAKE_GCS_VERSION       := v1.56.1
STATICCHECK_VERSION    := v0.8.2
DUCKDB_NODE_VERSION    := 1.5.6-r.1
DUCKDB_DIR             := $(CURDIR)/.tools/duckdb

.PHONY: all build test unit lint tools fuzz demo docker clean bench chromium promtool rules

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lakesink ./cmd/lakesink

demo:
	$(GO) run ./cmd/lakesink demo

tools: $(TOOLS_BIN)/versitygw $(TOOLS_BIN)/fake-gcs-server $(TOOLS_BIN)/staticcheck $(DUCKDB_DIR)/node_modules/@duckdb/node-api/package.json

$(TOOLS_BIN)/versitygw:
	GOBIN=$(TOOLS_BIN) GOFLAGS=-buildvcs=false $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(TOOLS_BIN)/fake-gcs-server:
	GOBIN=$(TOOLS_BIN) GOFLAGS=-buildvcs=false $(GO) install github.com/fsouza/fake-gcs-server@$(FAKE_GCS_VERSION)

$(TOOLS_BIN)/staticcheck:
	GOBIN=$(TOOLS_BIN) GOFLAGS=-buildvcs=false $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# DuckDB, from npm (its native library comes in the package): the
# compaction end-to-end test reads the lake's folders with it
# (test/duckdb/query.cjs), a Parquet reader that shares no code with ours.
$(DUCKDB_DIR)/node_modules/@duckdb/node-api/package.json:
	command -v npm || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm)
	npm install --prefix $(DUCKDB_DIR) --no-save --no-audit --no-fund --no-package-lock @duckdb/node-api@$(DUCKDB_NODE_VERSION)

lint: $(TOOLS_BIN)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS_BIN)/staticcheck ./...

# chromium: the status page test (test/statuspage) screenshots the page with
# Debian's headless Chromium; install it when missing (needs root and apt).
chromium:
	command -v chromium || (apt-get update && apt-get install -y chromium)

# promtool: `make rules` checks and unit-tests the example alerting rules
# with Debian's promtool (package prometheus); install it when missing
# (needs root and apt).
promtool:
	command -v promtool || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus)

# rules: the example alerts are valid, and each one fires on its fault and
# stays silent on healthy series (examples/prometheus/lakesink-alerts.test.yaml).
rules: promtool
	promtool check rules examples/prometheus/lakesink-alerts.yaml
	promtool test rules examples/prometheus/lakesink-alerts.test.yaml

test: tools lint chromium fuzz rules
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

# fuzz runs every fuzz target of the repository (every `func Fuzz...` in
# a tracked _test.go file, found anew each time, so a new target cannot be
# forgotten) for a bounded number of executions each; their seed corpora
# also run in every `go test`. A count, not a duration: with a duration,
# Go 1.26's fuzz coordinator can report "context deadline exceeded"
# without a failing input when the time runs out under CPU load
# (go.dev/issue/75804, fixed in Go 1.27). FUZZTIME=2000000x, or a
# duration, for a longer hunt.
FUZZTIME ?= 100000x
fuzz:
	@set -e; n=0; \
	for f in $$(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go' -not -path './.tools/*'); do \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
	    echo "$(GO) test -run '^$$' -fuzz '^$$t$$' -fuzztime $(FUZZTIME) ./$$(dirname $$f)"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
	    n=$$((n+1)); \
	  done; \
	done; \
	echo "fuzz: $$n targets"; test $$n -gt 0

# unit runs the fast tests only (no server processes).
unit:
	$(GO) test -race -short ./...

BENCH_RECORDS ?= 1000000
BENCH_RESULTS ?= bin/bench-results.jsonl
BENCH_ARGS    ?=

bench: build
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/kafkabroker ./test/kafkabroker
	$(GO) build -o bin/lakesink-bench ./test/bench/cmd/lakesink-bench
	bin/lakesink-bench -lakesink bin/lakesink -broker bin/kafkabroker \
	  -records $(BENCH_RECORDS) -results $(BENCH_RESULTS) $(BENCH_ARGS)

docker:
	docker build -t lakesink:$(VERSION) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) .

clean:
	rm -rf bin .tools
