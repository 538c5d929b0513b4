# kubefoundry — make help lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
PKGS  := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## Run the main example on the embedded simulators (20 VMs on an in-process vCenter).
	$(GO) run ./examples/provision-vms -n 20 -concurrency 8

.PHONY: test
test: ## Run every test with the race detector.
	$(GO) test -race -count=1 $(PKGS)

.PHONY: bench
bench: ## Run the benchmarks (BenchmarkProvisionVMs takes about a minute).
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 $(PKGS)

.PHONY: bench-govc
bench-govc: ## Compare ProvisionVMs with govc on one standalone vCenter simulator (about 5 minutes).
	./hack/bench-govc.sh

.PHONY: tools
tools: $(BIN)/staticcheck ## Build the tools of the nested hack/tools module into ./bin.

$(BIN)/staticcheck: hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && $(GO) build -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck

.PHONY: lint
lint: $(BIN)/staticcheck ## go vet and staticcheck.
	$(GO) vet $(PKGS)
	$(BIN)/staticcheck $(PKGS)

.PHONY: fmt
fmt: ## gofmt every Go file.
	gofmt -w $$(git ls-files '*.go')

.PHONY: check
check: ## The checks before a commit: gofmt, go vet, go mod tidy without a diff.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
	$(GO) mod tidy -diff
