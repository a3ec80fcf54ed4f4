# Rampart's tasks. `make help` lists them.
SHELL := bash
.DEFAULT_GOAL := help
GO ?= go
GOTEST_FLAGS ?= -race -count=1 -timeout 12m
TEST_PG_DIR ?= .data/testpg
# Developer tools pinned in tools/go.mod, apart from the project's own
# dependencies: the first use builds them from the module cache.
TOOL := $(GO) tool -modfile=tools/go.mod

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

.PHONY: setup
setup: ## Install what is missing (the PostgreSQL server package when root).
	@./scripts/setup

.PHONY: build
build: ## Build bin/rampart and bin/dnsedge.
	$(GO) build -o bin/rampart ./cmd/rampart
	$(GO) build -o bin/dnsedge ./cmd/dnsedge

.PHONY: run
run: setup build ## Start everything with a private PostgreSQL and a demo account (Ctrl-C stops it).
	./bin/rampart dev

.PHONY: test
test: setup ## Run every test against a throwaway PostgreSQL (or TEST_DATABASE_URL).
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		$(GO) test $(GOTEST_FLAGS) ./...; \
	else \
		$(GO) run ./cmd/rampart devdb run -dir $(TEST_PG_DIR) -fresh -- $(GO) test $(GOTEST_FLAGS) ./...; \
	fi

.PHONY: test-short
test-short: ## Run the tests without the race detector.
	$(MAKE) test GOTEST_FLAGS="-count=1 -timeout 10m"

.PHONY: test-attacks
test-attacks: setup ## Run the attack tests with memory, CPU or socket bounds against the built binaries, without the race detector.
	$(GO) run ./cmd/rampart devdb run -dir .data/testpg-attacks -fresh -- \
		$(GO) test -tags attack -count=1 -timeout 20m -run '^TestBounded' ./...

.PHONY: bench
bench: setup ## Run the Go benchmarks.
	$(GO) run ./cmd/rampart devdb run -dir $(TEST_PG_DIR) -fresh -- $(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-ingest
bench-ingest: setup ## Measure report ingestion (one 100k-record report, then 1,000 small ones), with the test cluster's settings and with PostgreSQL's durable ones.
	BENCH_PG_SETTINGS="test cluster (fsync off)" $(GO) run ./cmd/rampart devdb run -dir $(TEST_PG_DIR) -fresh -- $(GO) test -tags ingestbench -run '^TestIngestThroughput$$' -count=1 -v ./internal/ingest/
	BENCH_PG_SETTINGS="durable (fsync on)" $(GO) run ./cmd/rampart devdb run -dir $(TEST_PG_DIR) -fresh -durable -- $(GO) test -tags ingestbench -run '^TestIngestThroughput$$' -count=1 -v ./internal/ingest/

.PHONY: bench-ingest-rows
bench-ingest-rows: setup ## Time PostgreSQL's COPY of each table the large report of bench-ingest writes, alone, and of one row per source (needs psql).
	GO=$(GO) TEST_PG_DIR=$(TEST_PG_DIR) ./scripts/bench-ingest-rows

.PHONY: bench-report
bench-report: setup ## Measure the authentication report's reads over 90 days of 10M records across 1,000 domains (one domain's report, the account's).
	$(GO) run ./cmd/rampart devdb run -dir $(TEST_PG_DIR) -fresh -- $(GO) test -tags reportbench -run '^TestReportReads$$' -count=1 -timeout 60m -v ./internal/authreport/benchdata/

.PHONY: bench-dns
bench-dns: setup ## Measure dnsedge against NSD with dnsperf on loopback, one core each, and the queries an SPF check costs behind Unbound (installs dnsperf, nsd and unbound).
	./scripts/bench-dns

.PHONY: bench-dns-scale
bench-dns-scale: setup build ## Measure the DNS edge at scale (100k domains, 2 edges, 20k TCP connections).
	DNSEDGE_SCALE=1 DNSEDGE_BIN=$(CURDIR)/bin/dnsedge $(GO) run ./cmd/rampart devdb run -dir $(TEST_PG_DIR) -fresh -- \
		$(GO) test -count=1 -timeout 20m -v -run '^(TestScaleTargets|TestIdleTCPConnectionsAtScale)$$' \
		-bench '^(BenchmarkBuildIndex|BenchmarkSnapshotWrite|BenchmarkSnapshotRead|BenchmarkFullLoad)$$' \
		-benchtime 3x -benchmem ./dnsedge/

.PHONY: interop
interop: setup ## Run Rampart's records through Unbound, NSD and the receivers' SPF/DKIM/DMARC libraries (installs them); writes docs/interop.md.
	./scripts/interop-run

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 20s).
	@for target in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -h '^func Fuzz' $$target/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$target $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} $$target || exit 1; \
		done; \
	done

.PHONY: generate
generate: ## Regenerate sqlc and gqlgen code with the pinned tools.
	$(TOOL) sqlc generate
	$(GO) run github.com/99designs/gqlgen generate

.PHONY: check-generated
check-generated: generate ## Fail when generated code differs from what `make generate` produces.
	@git diff --exit-code --stat -- . ':!tools' || (echo "generated code is stale: run make generate and commit"; exit 1)
	@test -z "$$(git ls-files --others --exclude-standard -- graph internal dnsedge)" || \
		(git ls-files --others --exclude-standard -- graph internal dnsedge; echo "make generate made new files: commit them"; exit 1)

.PHONY: lint
lint: ## gofmt, go vet and golangci-lint (.golangci.yml) with the pinned tools.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(TOOL) golangci-lint run ./...

.PHONY: db-stop
db-stop: ## Stop the private clusters left running (dev and test).
	-$(GO) run ./cmd/rampart devdb stop -dir .data/pg
	-$(GO) run ./cmd/rampart devdb stop -dir $(TEST_PG_DIR)

.PHONY: clean
clean: db-stop ## Remove built binaries and the private clusters' data.
	rm -rf bin .data
