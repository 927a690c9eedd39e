# Candor: `make help` lists the targets.

GO          ?= go
BIN         ?= bin
DATA        ?= data
LISTEN      ?= localhost:8080
ORIGIN      ?= localhost/candor
SIZES       ?= 1M,10M
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOBIN_DIR   := $(shell $(GO) env GOPATH)/bin
# The integration tests of the log's guarantees, run on both storages.
TRILLIAN_SUITE := ^(TestKill9Durability|TestKill9DuringFirstStart|TestBadInputChangesNothing|TestRestartKeepsKeyAndOrigin|TestLogHTTPEdges|TestSearchReindex|TestFsckDetectsCorruption|TestFullDiskLog|TestFullDiskWriteErrors|TestWitnessPolicy)$$

.PHONY: help build run demo demo-trillian test test-short lint bench bench-http bench-growth fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

build: ## build candor-log, candor-witness, candor and candor-growth into ./bin
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/...

run: build ## run a log on embedded pebble in ./data (ORIGIN, LISTEN, DATA to change)
	$(BIN)/candor-log --data $(DATA) --listen $(LISTEN) --origin $(ORIGIN)

demo: build ## a log and three witnesses on loopback (2-of-3 policy): submit, show the cosigned checkpoint, stop
	BIN=$(BIN) sh scripts/demo.sh

demo-trillian: build ## the log on Trillian on loopback: MariaDB, Trillian's servers, two front ends; submit to both, compare, stop
	BIN=$(BIN) GO=$(GO) sh scripts/demo-trillian.sh

test: lint ## gofmt, vet, staticcheck, then every test with the race detector (what CI runs)
	$(GO) test -race -count=1 -timeout 30m ./...
	@# Too slow under the race detector on small machines: 50 memberlist nodes.
	$(GO) test -count=1 -run '^TestSplitView50$$' ./witness/gossip/
	@# The log's suite again, every candor-log a front end on a Trillian tree
	@# (Trillian's servers on a private MariaDB).
	CANDOR_TEST_STORAGE=trillian $(GO) test -race -count=1 -timeout 30m -run '$(TRILLIAN_SUITE)' ./integration/

test-short: ## the fast tests only, no race detector
	$(GO) test -short ./...

lint: ## gofmt, go vet, builds for macOS and FreeBSD, staticcheck (installed on first use)
	@test -z "$$(gofmt -l .)" || { echo "not gofmt-ed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	@# The commands build on macOS and FreeBSD too (no Linux-only calls).
	GOOS=darwin $(GO) build -o /dev/null ./cmd/...
	GOOS=freebsd $(GO) build -o /dev/null ./cmd/...
	@test -x $(GOBIN_DIR)/staticcheck || $(GO) install $(STATICCHECK)
	$(GOBIN_DIR)/staticcheck ./...

bench: ## the benchmarks; compare runs with benchstat
	$(GO) test -run='^$$' -bench=. -benchmem -count=5 ./... | tee bench.out

bench-http: build ## a fresh log on loopback under candor bench (and wrk, if installed): submissions, proofs, tiles
	BIN=$(BIN) sh scripts/bench-http.sh

bench-growth: build ## one log grown to each of SIZES (1M,10M; 100M on request) and measured at each: rates, p99, memory, disk, start
	$(BIN)/candor-growth --bin $(BIN) --sizes $(SIZES)

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$${FUZZTIME:-30s} $$pkg || exit 1; \
	  done; \
	done

clean: ## remove ./bin (not ./data)
	rm -rf $(BIN)
