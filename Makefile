# make test   start the services the tests need, vet, and run every test
# make bench  install the tools compared against, run the benchmarks; results go to benchmarks/results/
# make demo   the zero-setup demo (no servers needed)

GO       ?= go
BIN      := .build/bin/datashift
# VERSION is what datashift --version prints: the nearest tag, or the commit.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
# Packages whose code runs concurrently are tested with the race detector.
RACE_PKGS := ./engine/... ./coordinator/... ./connectors/...
PLAIN_PKGS := $(shell $(GO) list ./... | grep -v -e /engine -e /coordinator -e /connectors -e /benchmarks)

export DATASHIFT_SERVICES ?= required
SHELL := /bin/bash

.PHONY: all build test services vet demo bench clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/datashift

services:
	scripts/services.sh

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# -v lists every test's result (CI counts them); the RUN/PAUSE/CONT chatter is dropped.
QUIET_V := grep -v -E '^[[:space:]]*=== (RUN|PAUSE|CONT|NAME)'

test: services vet build
	set -o pipefail; $(GO) test -v -race -count=1 -timeout 20m $(RACE_PKGS) 2>&1 | $(QUIET_V)
	set -o pipefail; $(GO) test -v -count=1 -timeout 20m $(PLAIN_PKGS) 2>&1 | $(QUIET_V)
	$(BIN) demo --rows 200000 --dir .build/demo-ci

demo: build
	$(BIN) demo

# BENCH picks benchmarks by name (BENCH=Pair runs the store pairs only);
# DATASHIFT_BENCH_ROWS=1000000 is the quick pass (under 10 minutes for the pairs).
BENCH ?= .
bench: services build
	scripts/bench-tools.sh
	set -o pipefail; $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime 1x -timeout 120m ./benchmarks/ | tee .build/bench.txt

clean:
	rm -rf .build
