# docker hangar: see README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null | sed 's/^v//' || echo dev)
LDFLAGS := -s -w -X github.com/cnrancher/docker-hangar/plugin.Version=$(VERSION)
PLUGIN_DIR ?= $(or $(DOCKER_CONFIG),$(HOME)/.docker)/cli-plugins

.PHONY: build install test check fuzz bench demo try clean release-check

## build: write bin/docker-hangar
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/docker-hangar .

## install: put the plugin in the docker CLI plugins directory
install: build
	mkdir -p $(PLUGIN_DIR)
	install -m 0755 bin/docker-hangar $(PLUGIN_DIR)/docker-hangar

## test: every test, with the fuzz seed corpora (needs Go and the docker CLI);
## ends with the skipped tests (and why) and the counts
test: check
	@mkdir -p bin/tools && $(GO) build -o bin/tools/hangar-testsummary ./internal/cmd/hangar-testsummary
	@{ $(GO) test -count=1 -timeout 12m -json ./...; echo $$? > bin/.test-status; } | bin/tools/hangar-testsummary; \
		summary=$$?; status=$$(cat bin/.test-status); rm -f bin/.test-status; \
		test "$$summary" = 0 && test "$$status" = 0

## check: formatting, vet and dead code (deadcode from the main packages:
## nothing outside the test-support packages may be unreachable)
DEADCODE_VERSION ?= v0.52.0
check:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	@out=$$($(GO) run golang.org/x/tools/cmd/deadcode@$(DEADCODE_VERSION) ./...) || { echo "$$out"; exit 1; }; \
		dead=$$(echo "$$out" | grep -v -e '^internal/registrytest/' -e '^internal/fixtures/' -e '^internal/harbortest/' -e '^archive/archivetest/' -e '^$$'); \
		test -z "$$dead" || { echo "dead code (deadcode):"; echo "$$dead"; exit 1; }

## fuzz: a longer fuzz run of every fuzz target (FUZZTIME each, default 60s)
FUZZTIME ?= 60s
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

## bench: the load benchmark against the floor; writes docs/benchmarks.md
bench:
	scripts/bench.sh

## demo: build, start a throwaway registry, load a generated archive, validate
demo:
	scripts/demo.sh

## try: a throwaway registry and a generated archive to try the plugin by
## hand, kept until Ctrl-C
try:
	scripts/try.sh

clean:
	rm -rf bin dist

## release-check: goreleaser check and a snapshot build of every release binary
## into dist/ (installs goreleaser $(GORELEASER_VERSION) into bin/tools if missing)
GORELEASER_VERSION ?= v2.15.1
GORELEASER := $(CURDIR)/bin/tools/goreleaser
release-check:
	@test -x $(GORELEASER) && $(GORELEASER) --version 2>/dev/null | grep -q 'GitVersion:[[:space:]]*$(GORELEASER_VERSION)$$' || \
		GOBIN=$(CURDIR)/bin/tools $(GO) install github.com/goreleaser/goreleaser/v2@$(GORELEASER_VERSION)
	$(GORELEASER) check
	$(GORELEASER) build --snapshot --clean
