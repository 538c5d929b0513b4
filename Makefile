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
demo: ## Build a Kubernetes cluster (3 control-plane nodes, 3 workers) on the embedded simulated foundation, show it, resize it to 5 workers, delete it.
	@missing=$$(for t in $(KUBE_TOOLS) $(BIN)/kwok; do test -x $$t || echo $$(basename $$t); done); \
	  if [ -n "$$missing" ]; then echo "make demo: building the Kubernetes binaries the cluster runs ($$missing) into bin/: once, several minutes"; fi
	@$(MAKE) -s --no-print-directory $(KUBE_TOOLS) $(BIN)/kwok
	@command -v ruby >/dev/null || { echo "make demo: ruby is needed (BOSH job templates are ERB): apt-get install ruby"; exit 1; }
	$(GO) run ./examples/cluster-build

.PHONY: demo-vms
demo-vms: ## Provision 20 VMs on an in-process vCenter simulator and print them (the first example).
	$(GO) run ./examples/provision-vms -n 20 -concurrency 8

.PHONY: test
test: tools ## Run every test with the race detector, the ones on a real kube-apiserver included.
	KUBEFOUNDRY_REQUIRE_KUBE=1 $(GO) test -race -count=1 -timeout 30m $(PKGS)
	cd hack/bench && $(GO) test -count=1 ./...

# make bench runs every benchmark once and writes what they print, in the
# standard Go benchmark format, to bench-results/<UTC time>.txt (latest.txt
# links the last); it ends with the table of every figure the SDK promises
# against its target (hack/bench/targets.yaml, each with where it comes
# from). A benchmark that cannot run here (no kube-apiserver built: make
# tools) says so in its row.
BENCH_DIR  := bench-results
BENCH_TIME := $(shell date -u +%Y%m%dT%H%M%SZ)
BENCH_OUT  ?= $(BENCH_DIR)/$(BENCH_TIME).txt

.PHONY: bench
bench: $(BIN)/benchtable ## Run every benchmark once (about 7 minutes); raw output to bench-results/, then the table of figures against their targets.
	@mkdir -p $(BENCH_DIR)
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -v $(PKGS) 2>&1 | tee $(BENCH_OUT) || \
		echo "make bench: some benchmarks failed; their rows say so" >&2
	ln -sf $(notdir $(BENCH_OUT)) $(BENCH_DIR)/latest.txt
	@echo; echo "$(BENCH_OUT) $(wildcard $(BENCH_DIR)/govc-latest.txt):"
	@$(BIN)/benchtable -targets hack/bench/targets.yaml $(BENCH_OUT) $(wildcard $(BENCH_DIR)/govc-latest.txt)

.PHONY: bench-compare
bench-compare: $(BIN)/benchstat ## Compare two make bench runs: make bench-compare OLD=bench-results/a.txt NEW=bench-results/b.txt
	@test -n "$(OLD)" -a -n "$(NEW)" || { echo "usage: make bench-compare OLD=<file> NEW=<file>"; exit 2; }
	$(BIN)/benchstat $(OLD) $(NEW)

$(BIN)/benchtable: hack/bench/go.mod hack/bench/go.sum $(wildcard hack/bench/benchtable/*.go)
	cd hack/bench && $(GO) build -o $@ ./benchtable
	@touch $@

$(BIN)/benchstat: hack/bench/go.mod hack/bench/go.sum
	cd hack/bench && $(GO) build -o $@ golang.org/x/perf/cmd/benchstat
	@touch $@

.PHONY: bench-govc
bench-govc: ## Compare ProvisionVMs with govc and the simulator's floor on one standalone vCenter simulator (about 5 minutes); make bench's table shows the last.
	@mkdir -p $(BENCH_DIR)
	BENCH_FILE=$(BENCH_DIR)/govc-$(BENCH_TIME).txt ./hack/bench-govc.sh
	ln -sf govc-$(BENCH_TIME).txt $(BENCH_DIR)/govc-latest.txt

# Mutation testing with gremlins (its own module, hack/mutate): every mutant
# of the covered lines under PKG (a directory: its subpackages too), or only
# of the lines changed since the merge base of SINCE and HEAD (uncommitted
# changes included; a new file must be tracked, git add -N), each run against
# its package's tests; it prints the mutants that LIVED (no test failed) or
# TIMED OUT, with file and line. A mutant's run is stopped after 3 times the
# coverage run's time. MUTATE_FLAGS go to gremlins unleash (an
# -E '^simulator/' leaves a subdirectory out; --timeout-coefficient 5).
# hack/mutate/unleash.sh says why it runs gremlins in PKG with git's
# diff.relative and diff.context=0. Too slow for CI on whole packages.
#   make mutate PKG=./bosh/links
#   make mutate PKG=./vsphere SINCE=main~3
.PHONY: mutate
mutate: $(BIN)/gremlins ## Mutation-test PKG (or its lines changed since SINCE); prints the mutants no test killed.
	@test -n "$(PKG)" || { echo "usage: make mutate PKG=./bosh/links [SINCE=<git ref>] [MUTATE_FLAGS=...]"; exit 2; }
	./hack/mutate/unleash.sh $(BIN)/gremlins $(PKG) "$(SINCE)" $(MUTATE_FLAGS)

$(BIN)/gremlins: hack/mutate/go.mod hack/mutate/go.sum
	cd hack/mutate && $(GO) build -o $@ github.com/go-gremlins/gremlins/cmd/gremlins
	@touch $@

# The tools module pins every tool; a tool is rebuilt only when its go.mod or
# go.sum changes (touch: go build leaves an up-to-date binary's mtime alone).
TOOLS_MOD    := hack/tools/go.mod hack/tools/go.sum
KUBE_VERSION := v1.36.3
KUBE_MAJOR   := 1
KUBE_MINOR   := 36
# Without these the kube binaries report v0.0.0-master and kubectl cannot
# parse the server's version.
KUBE_LDFLAGS := $(strip $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(p).gitVersion=$(KUBE_VERSION) -X $(p).gitMajor=$(KUBE_MAJOR) -X $(p).gitMinor=$(KUBE_MINOR)))
KUBE_CMDS    := kube-apiserver kube-controller-manager kube-scheduler kubectl
KUBE_TOOLS   := $(addprefix $(BIN)/,$(KUBE_CMDS) etcd)
# kwok, the simulated workers' kubelet, has a module of its own: in
# hack/tools its requirements would upgrade grpc and otel under etcd and
# the kube binaries (hack/kwok/tools.go).
KWOK_MOD     := hack/kwok/go.mod hack/kwok/go.sum

.PHONY: tools
tools: $(BIN)/staticcheck $(KUBE_TOOLS) $(BIN)/kwok ## Build the tools of the nested hack/tools and hack/kwok modules into ./bin (cold: 8-14 minutes).

$(BIN)/staticcheck: $(TOOLS_MOD)
	cd hack/tools && $(GO) build -o $(BIN)/staticcheck honnef.co/go/tools/cmd/staticcheck
	@touch $@

$(addprefix $(BIN)/,$(KUBE_CMDS)): $(BIN)/%: $(TOOLS_MOD)
	cd hack/tools && $(GO) build -trimpath -ldflags '$(KUBE_LDFLAGS)' -o $@ k8s.io/kubernetes/cmd/$*
	@touch $@

$(BIN)/kwok: $(KWOK_MOD)
	cd hack/kwok && $(GO) build -trimpath -o $@ sigs.k8s.io/kwok/cmd/kwok
	@touch $@

# etcd's own main is the root package of go.etcd.io/etcd/server/v3 (go install
# of it fails on etcd's replace directives); build it inside the tools module.
$(BIN)/etcd: $(TOOLS_MOD)
	cd hack/tools && $(GO) build -trimpath -o $@ go.etcd.io/etcd/server/v3
	@touch $@

# A real Harbor v2.4.0 on 127.0.0.1:8080, built from the nested hack/harbor
# module; build.sh skips what its stamps say is up to date.
.PHONY: harbor-build harbor-up harbor-down
harbor-build: ## Build Harbor v2.4.0 (core, jobservice, registry) into ./bin/harbor (cold: about 8 minutes).
	./hack/harbor/build.sh

harbor-up: harbor-build ## Build and start Harbor on 127.0.0.1:8080; prints the KUBEFOUNDRY_HARBOR_* exports.
	./hack/harbor/start.sh

harbor-down: ## Stop the Harbor that harbor-up started (keeps its data).
	./hack/harbor/stop.sh

.PHONY: test-harbor
test-harbor: harbor-build ## Run the harbor suite against a real Harbor 2.4 (started for the run, stopped after).
	@set -e; eval "$$(./hack/harbor/start.sh)"; trap './hack/harbor/stop.sh' EXIT; \
	KUBEFOUNDRY_HARBOR_URL=$$KUBEFOUNDRY_HARBOR_URL KUBEFOUNDRY_HARBOR_USERNAME=$$KUBEFOUNDRY_HARBOR_USERNAME \
	KUBEFOUNDRY_HARBOR_PASSWORD=$$KUBEFOUNDRY_HARBOR_PASSWORD KUBEFOUNDRY_HARBOR_PSQL="$$KUBEFOUNDRY_HARBOR_PSQL" \
	KUBEFOUNDRY_REQUIRE_HARBOR=1 \
	$(GO) test -race -count=1 -v -run . ./harbor/ 2>&1 | grep -E '^(=== RUN|--- |    --- |ok|FAIL|PASS|panic)|harbor_test.go|Error' ; \
	test $${PIPESTATUS[0]} -eq 0

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
