# Development tasks for the messaging service; `make help` lists them.
# Local PostgreSQL clusters are provisioned by scripts/localpg.sh.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# The cluster `make run` uses when DATABASE_URL is not set; its data survives between runs.
PG_DIR ?= .data/pg
PG_PORT ?= 5433
PG_DB ?= messaging

LOCALPG := bash scripts/localpg.sh

.PHONY: help run test fuzz bench bench-quick bench-peer bench-growth bench-purge build db-stop db-reset fmt vet

help: ## List the targets.
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: ## Run the service; without DATABASE_URL, on the local cluster in .data/pg (port 5433).
	@if [[ -z "$${DATABASE_URL:-}" ]]; then \
		DATABASE_URL=$$(LOCALPG_FAST=0 $(LOCALPG) start $(PG_DIR) $(PG_PORT) $(PG_DB)); \
		export DATABASE_URL; \
	fi; \
	exec go run ./cmd/messaging serve

# The tests run under the race detector where cgo can build it (a C compiler, as Debian's gcc):
# the sends share batches and connections across requests. RACE= turns it off.
RACE ?= $(shell [[ "$$(go env CGO_ENABLED)" == 1 ]] && command -v "$$(go env CC)" >/dev/null && echo -race)

# One throwaway cluster serves every test package (through TEST_DATABASE_URL). The EXIT trap
# stops and deletes it however the recipe ends, and leaves the recipe's exit status alone.
test: ## Run go vet and all tests (with -race where cgo works) against a throwaway PostgreSQL cluster.
	@dir=$$(mktemp -d); \
	trap '$(LOCALPG) stop "$$dir" || true; rm -rf "$$dir"' EXIT; \
	port=$$($(LOCALPG) freeport); \
	TEST_DATABASE_URL=$$(LOCALPG_FAST=1 $(LOCALPG) start "$$dir" "$$port"); \
	export TEST_DATABASE_URL; \
	go vet ./... && \
	go test $(RACE) -count=1 ./...

# Each fuzz target of internal/httpapi runs for FUZZTIME against a throwaway cluster (see
# scripts/fuzz.sh). Inputs that fail are saved under testdata/fuzz, where every `make test`
# replays them.
FUZZTIME ?= 5s
fuzz: ## Run every fuzz target for FUZZTIME (default 5s) against a throwaway PostgreSQL cluster.
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Not part of `make test`: seeds PURGE_BENCH_MESSAGES expired messages (default 1,000,000) with
# SQL and measures one purge pass while live sends and polls run, on a crash-safe cluster.
bench-purge: ## Measure a purge of 1,000,000 expired messages (rows/s, longest batch).
	@dir=$$(mktemp -d); \
	trap '$(LOCALPG) stop "$$dir" || true; rm -rf "$$dir"' EXIT; \
	port=$$($(LOCALPG) freeport); \
	TEST_DATABASE_URL=$$(LOCALPG_FAST=0 $(LOCALPG) start "$$dir" "$$port"); \
	export TEST_DATABASE_URL; \
	PURGE_BENCH_MESSAGES=$${PURGE_BENCH_MESSAGES:-1000000} \
		go test -count=1 -run '^TestPurgeMillion$$' -v -timeout 60m ./internal/purge/

# Extra flags for cmd/bench, e.g. BENCH_FLAGS="-messages 1000000 -json bench.json".
BENCH_FLAGS ?=

bench: ## Load-test the service on a throwaway cluster (about 4.5 minutes); see BENCHMARKS.md.
	go run ./cmd/bench $(BENCH_FLAGS)

bench-quick: ## A smoke run of the load test: 3 seconds per scenario.
	go run ./cmd/bench -quick $(BENCH_FLAGS)

bench-growth: ## The growth check: 100,000 and 10,000,000 stored messages side by side on one cluster (about 7 minutes); see BENCHMARKS.md.
	go run ./cmd/bench -growth 10000000 -scenarios latest,drain,send -d 10s $(BENCH_FLAGS)

bench-peer: ## The load test beside ejabberd and Prosody on the same cluster (installs Debian's packages; as root); see BENCHMARKS.md.
	@dpkg -s ejabberd erlang-p1-pgsql prosody lua-dbi-postgresql >/dev/null 2>&1 || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ejabberd erlang-p1-pgsql prosody lua-dbi-postgresql; }
	go run ./cmd/bench -peer ejabberd,prosody -scenarios conversation,send,send-low $(BENCH_FLAGS)

build: ## Build bin/messaging.
	go build -o bin/messaging ./cmd/messaging

db-stop: ## Stop the local cluster of `make run`.
	$(LOCALPG) stop $(PG_DIR)

db-reset: ## Stop the local cluster of `make run` and delete its data.
	$(LOCALPG) stop $(PG_DIR)
	rm -rf $(PG_DIR)

fmt: ## Format the Go code.
	go fmt ./...

vet: ## Run go vet.
	go vet ./...
