# nanokube — the two commands a user needs are `make run` and `make test`.
GO        ?= go
BIN       := bin/nanokube
DATA_DIR  ?= $(CURDIR)/.data
PORT      ?= 6443
GOFILES    = $(shell find . -name '*.go' -not -path './.data/*')
# Static binaries: nanokube runs on any Linux, and every build (the binary, the tests, the
# programs tests put into containers, which have no libc) shares one build cache.
export CGO_ENABLED = 0

.PHONY: all build run cluster demo-image test test-unit bench fuzz deps vet clean

all: build

deps:
	@hack/install-deps.sh

# The dedicated container shim, embedded in $(BIN) (see internal/runtime/shimbin). It
# imports only its own package and golang.org/x/sys (a test guards that), hence its sources.
SHIM      := internal/runtime/shimbin/payload/nanokube-shim
$(SHIM): go.mod go.sum $(shell find internal/runtime/shim -name '*.go')
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(SHIM) ./internal/runtime/shim/cmd/nanokube-shim
	sha256sum $(SHIM) | cut -d' ' -f1 > $(SHIM).sha256

$(BIN): go.mod go.sum $(GOFILES) $(SHIM)
	$(GO) build -trimpath -ldflags '-s -w' -o $(BIN) ./cmd/nanokube

build: $(BIN)

# Starts a single-node cluster in the foreground; state lives in $(DATA_DIR). The demo image
# (examples/demo) is placed where the node imports images at start, so the quickstart in the
# README needs no registry.
run: deps build demo-image
	$(BIN) server --data-dir $(DATA_DIR) --secure-port $(PORT)

# The quickstart's image nanokube.local/demo:1, rebuilt only when its sources change.
DEMO_IMAGE := $(DATA_DIR)/agent/runtime/images/demo.tar
demo-image: $(DEMO_IMAGE)

$(DEMO_IMAGE): $(wildcard examples/demo/*.go) $(wildcard hack/demo-image/*.go) go.mod go.sum
	$(GO) run ./hack/demo-image -out $@

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# Every test: unit, integration (embedded etcd) and end-to-end (built binary, real kubectl).
test: deps build vet
	NANOKUBE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m ./...
	NANOKUBE_E2E_RUNTIME=containerd NANOKUBE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m -run TestNode ./test/e2e/
	$(MAKE) fuzz FUZZTIME=20000x

# A count of executions, not a duration: with a duration, Go 1.26's fuzzing coordinator can
# fail a target with a bare "context deadline exceeded" when the deadline fires
# (go.dev/issue/75804, fixed in Go 1.27). FUZZTIME=30s still works for a run by hand.
FUZZTIME ?= 100000x
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./internal/apiserver
	$(GO) test -run '^$$' -fuzz FuzzPatch -fuzztime $(FUZZTIME) ./internal/apiserver
	$(GO) test -run '^$$' -fuzz FuzzServeDNS -fuzztime $(FUZZTIME) ./internal/dns

# Every benchmark program under bench/ prints its figures (see docs/performance.md).
bench: deps build
	@set -e; for d in bench/*/; do [ -f $$d/main.go ] || continue; echo "== $$d"; NANOKUBE_BIN=$(CURDIR)/$(BIN) $(GO) run ./$$d; done

# A server and $(AGENTS) agents, each node in its own network namespace on a private bridge,
# with the demo image on every node; Ctrl-C tears it all down (internal/multinode).
AGENTS ?= 2
cluster: deps build
	@mkdir -p $(CURDIR)/.multinode-images
	$(GO) run ./hack/demo-image -out $(CURDIR)/.multinode-images/demo.tar
	$(GO) run ./hack/multinode -bin $(BIN) -agents $(AGENTS) -images $(CURDIR)/.multinode-images

-include mk/*.mk

clean:
	rm -rf bin $(SHIM) $(SHIM).sha256
