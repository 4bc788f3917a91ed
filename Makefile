# Flotilla. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BIN        ?= $(CURDIR)/bin
SANDBOX    ?= $(CURDIR)/.sandbox
TARGETS    ?= 2
GO         ?= go
GOTESTFLAGS ?=
E2E_TIMEOUT ?= 30m

COMMANDS := proxy-scheduler candidate-scheduler controller-manager flotillactl
SANDBOX_TOOLS := etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Build

.PHONY: build
build: ## Build the Flotilla binaries (and flotillactl) into bin/.
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(COMMANDS))
	$(GO) build -o $(BIN)/sandbox ./hack/sandbox

.PHONY: tools
tools: ## Build (once, cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and helm into bin/.
	hack/build-tools.sh $(SANDBOX_TOOLS) helm

##@ Test

.PHONY: test
test: verify tools build ## What CI runs: verify, then unit and end-to-end tests (the e2e suite starts its own sandbox).
	FLOTILLA_BIN=$(BIN) $(GO) test $(GOTESTFLAGS) -p 1 -count=1 -timeout $(E2E_TIMEOUT) -v ./... 2>&1 | hack/test-summary.sh

.PHONY: test-unit
test-unit: ## Unit tests only (no API server needed).
	$(GO) test $(GOTESTFLAGS) -count=1 $$($(GO) list ./... | grep -v /test/e2e)

.PHONY: test-e2e
test-e2e: tools build ## End-to-end tests on a sandbox of their own (or FLOTILLA_SANDBOX=.sandbox to reuse one).
	FLOTILLA_BIN=$(BIN) $(GO) test $(GOTESTFLAGS) -p 1 -count=1 -timeout $(E2E_TIMEOUT) -v ./test/e2e/... 2>&1 | hack/test-summary.sh

.PHONY: test-resilience
test-resilience: tools build ## Target loss and return: a target's API server stopped, then the source's access to it revoked, under an elected Deployment.
	FLOTILLA_BIN=$(BIN) $(GO) test $(GOTESTFLAGS) -count=1 -timeout 30m -v ./test/e2e/resilience/ 2>&1 | hack/test-summary.sh

.PHONY: test-isolation
test-isolation: tools build ## Two sources sharing a target: neither's identity reaches the other's chaperons, delegates, followers or streams; the target's Pod Security holds; Secrets follow only their pods.
	FLOTILLA_BIN=$(BIN) $(GO) test $(GOTESTFLAGS) -count=1 -timeout 30m -v ./test/e2e/isolation/ 2>&1 | hack/test-summary.sh

CHAOS_PODS     ?= 1000
CHAOS_KILLS    ?= 15
CHAOS_INTERVAL ?= 4s
CHAOS_SEED     ?=

.PHONY: test-chaos
test-chaos: tools build ## Chaos: CHAOS_PODS elected pods over 3 targets while CHAOS_KILLS random Flotilla processes are killed (-9) and restarted (CHAOS_SEED repeats a run).
	FLOTILLA_BIN=$(BIN) FLOTILLA_CHAOS_PODS=$(CHAOS_PODS) FLOTILLA_CHAOS_KILLS=$(CHAOS_KILLS) FLOTILLA_CHAOS_INTERVAL=$(CHAOS_INTERVAL) FLOTILLA_CHAOS_SEED=$(CHAOS_SEED) \
		$(GO) test $(GOTESTFLAGS) -count=1 -timeout 60m -v -run TestChaos ./test/e2e/chaos/ 2>&1 | hack/test-summary.sh

##@ Benchmark

BENCH_TARGETS ?= 1,3,10
BENCH_PODS    ?= 200
BENCH_RATE    ?= 20
BENCH_FANOUT  ?= 0,3
BENCH_QPS     ?= 500
BENCH_BURST   ?= 1000
BENCH_PROFILE ?= 0
BENCH_OUT     ?= bench-results/$(shell date +%Y%m%d-%H%M%S)

.PHONY: bench
bench: tools build ## Throughput, latency and API cost vs a stock kube-scheduler (BENCH_TARGETS, BENCH_PODS, BENCH_RATE, BENCH_FANOUT, BENCH_QPS, BENCH_BURST, BENCH_PROFILE, BENCH_OUT).
	$(GO) build -o $(BIN)/bench ./hack/bench
	FLOTILLA_BIN=$(BIN) $(BIN)/bench --bin $(BIN) --targets $(BENCH_TARGETS) --pods $(BENCH_PODS) --rate $(BENCH_RATE) --fan-out $(BENCH_FANOUT) --qps $(BENCH_QPS) --burst $(BENCH_BURST) --profile $(BENCH_PROFILE) --out $(BENCH_OUT)

##@ Code generation

CONTROLLER_GEN = $(BIN)/controller-gen

.PHONY: manifests
manifests: ## Generate CRDs (config/crd/bases), RBAC (config/rbac, incl. the uninstall hook's) and the webhook with controller-gen, and copy them into charts/flotilla.
	hack/build-tools.sh controller-gen
	$(CONTROLLER_GEN) crd paths=./pkg/apis/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=flotilla-controller-manager paths="./pkg/controllers/...;./pkg/webhook/...;./pkg/vk/..." output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=flotilla-proxy-scheduler paths=./pkg/plugins/proxy/... output:rbac:artifacts:config=config/rbac/proxy-scheduler
	$(CONTROLLER_GEN) rbac:roleName=flotilla-candidate-scheduler paths=./pkg/plugins/candidate/... output:rbac:artifacts:config=config/rbac/candidate-scheduler
	$(CONTROLLER_GEN) rbac:roleName=flotilla-uninstall paths=./pkg/uninstall/... output:rbac:artifacts:config=config/rbac/uninstall
	$(CONTROLLER_GEN) webhook paths=./pkg/webhook/... output:webhook:artifacts:config=config/webhook
	$(GO) run ./hack/gen-source-roles > config/rbac/source-roles.yaml
	$(GO) run ./hack/gen-source-roles -policies > config/rbac/source-policies.yaml
	hack/sync-chart.sh

.PHONY: generate
generate: ## Generate deepcopy functions for the API types with controller-gen.
	hack/build-tools.sh controller-gen
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./pkg/apis/...

##@ Code quality

.PHONY: lint
lint: ## golangci-lint v2 (built from its module), config in .golangci.yaml.
	hack/build-tools.sh golangci-lint
	$(BIN)/golangci-lint run ./...

.PHONY: verify
verify: ## Generated files up to date; gofmt, go vet, go mod tidy (every module) leave no diff.
	hack/verify.sh

##@ Sandbox

.PHONY: sandbox-up
sandbox-up: tools ## Start the local fleet: source + TARGETS targets (default 2) on loopback.
	$(GO) build -o $(BIN)/sandbox ./hack/sandbox
	$(BIN)/sandbox up --dir $(SANDBOX) --bin $(BIN) --targets $(TARGETS) $(SANDBOX_FLAGS)

# Extra flags for `sandbox up`, e.g. SANDBOX_FLAGS='--nodes target-1=count=5,cpu=8'.
SANDBOX_FLAGS ?=

.PHONY: sandbox-status
sandbox-status: ## Show the fleet's clusters, nodes and processes.
	$(GO) build -o $(BIN)/sandbox ./hack/sandbox
	$(BIN)/sandbox status --dir $(SANDBOX)

.PHONY: sandbox-down
sandbox-down: ## Stop exactly what sandbox-up started and remove its state.
	$(GO) build -o $(BIN)/sandbox ./hack/sandbox
	$(BIN)/sandbox down --dir $(SANDBOX)

##@ Demo

.PHONY: demo
demo: tools build ## Start a fleet (source + TARGETS targets), install Flotilla with its chart, join, run an elected Deployment and Job, show where they run.
	$(BIN)/sandbox up --reuse --dir $(SANDBOX) --bin $(BIN) --targets $(TARGETS) $(SANDBOX_FLAGS)
	$(BIN)/sandbox demo --dir $(SANDBOX) --bin $(BIN) --root $(CURDIR)

.PHONY: demo-uninstall
demo-uninstall: ## `helm uninstall` in every cluster of the demo (the chart's pre-delete hook, then its objects deleted); the sandbox keeps running.
	$(GO) build -o $(BIN)/sandbox ./hack/sandbox
	$(BIN)/sandbox uninstall --dir $(SANDBOX) --bin $(BIN) --root $(CURDIR)

.PHONY: demo-down
demo-down: sandbox-down ## Stop the demo: every process it started (by PID), and its files.
