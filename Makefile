# EdgeLink. `make help` lists the targets.
GO      ?= go
BIN     := bin
PKG     := github.com/edgelink/edgelink
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X $(PKG)/pkg/version.Version=$(VERSION) -X $(PKG)/pkg/version.Commit=$(COMMIT)
export GOFLAGS := -buildvcs=false
# Go 1.27.3, fetched by the go command from the module proxy (README).
export GOTOOLCHAIN ?= go1.27.3

.PHONY: help build test e2e bench mutate demo demo-cni lint clean

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build edgelink and edgelink-cni into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/edgelink ./cni/edgelink-cni

test: build ## everything CI runs: lint, unit, fuzz, e2e (e2e needs root)
	tests/run.sh lint unit fuzz e2e

e2e: build ## end-to-end tests only (root)
	tests/run.sh e2e

bench: build ## benchmarks; prints a table and writes bench-results.json
	tests/bench/run.sh

mutate: ## mutation testing of the unit-tested packages (gremlins; slow; PKGS="pkg/ipam ..." for some)
	tests/mutate.sh $(PKGS)

demo: ## the simulated cloud-edge cluster: pods pinging across NATs, status, throughput (root; KEEP=1 stays up)
	tests/demo/run.sh

demo-cni: build ## two pods on one node pinging through edgelink-cni (root)
	tests/demo/cni-demo.sh

lint: ## gofmt check and go vet
	tests/run.sh lint

clean: ## remove build output
	rm -rf $(BIN) bench-results.json
