# nanokube — the two commands a user needs are `make run` and `make test`.
GO        ?= go
BIN       := bin/nanokube
DATA_DIR  ?= $(CURDIR)/.data
PORT      ?= 6443
GOFILES    = $(shell find . -name '*.go' -not -path './.data/*')

.PHONY: all build run test test-unit bench fuzz deps vet clean

all: build

deps:
	@hack/install-deps.sh

$(BIN): go.mod go.sum $(GOFILES)
	$(GO) build -trimpath -ldflags '-s -w' -o $(BIN) ./cmd/nanokube

build: $(BIN)

# Starts a single-node cluster in the foreground; state lives in $(DATA_DIR).
run: deps build
	$(BIN) server --data-dir $(DATA_DIR) --secure-port $(PORT)

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# Every test: unit, integration (embedded etcd) and end-to-end (built binary, real kubectl).
test: deps build vet
	NANOKUBE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m ./...
	NANOKUBE_E2E_RUNTIME=containerd NANOKUBE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 30m -run TestNode ./test/e2e/
	$(MAKE) fuzz FUZZTIME=15s

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./internal/apiserver
	$(GO) test -run '^$$' -fuzz FuzzPatch -fuzztime $(FUZZTIME) ./internal/apiserver
	$(GO) test -run '^$$' -fuzz FuzzServeDNS -fuzztime $(FUZZTIME) ./internal/dns

# Every benchmark program under bench/ prints its figures (see docs/performance.md).
bench: deps build
	@set -e; for d in bench/*/; do [ -f $$d/main.go ] || continue; echo "== $$d"; NANOKUBE_BIN=$(CURDIR)/$(BIN) $(GO) run ./$$d; done

-include mk/*.mk

clean:
	rm -rf bin
