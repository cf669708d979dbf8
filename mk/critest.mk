# critest: cri-tools' conformance suite against `nanokube runtime` (included from the Makefile).
#   make critest                      build critest in a temp module, run it, print the counts
#   CRITEST_FOCUS='Streaming' make critest   run a subset
# critest is built from sigs.k8s.io/cri-tools in a throwaway module under $(CRITEST_DIR) so
# that our go.mod never depends on it. hack/images/critest.sh starts a loopback registry with
# stand-ins for critest's images, the runtime on a temp socket, runs critest, and cleans up.
CRITEST_VERSION ?= v1.37.0
CRITEST_DIR     ?= /tmp/nanokube-critest
CRITEST_BIN     := $(CRITEST_DIR)/critest-$(CRITEST_VERSION)
CRITEST_SKIP    ?= [Ww]indows|SELinux|[Ss]elinux|AppArmor|[Aa]pparmor|ImageVolume
CRITEST_FOCUS   ?=

.PHONY: critest critest-bin

$(CRITEST_BIN):
	@mkdir -p $(CRITEST_DIR)/mod
	cd $(CRITEST_DIR)/mod && { test -f go.mod || printf 'module critestbuild\n\ngo 1.24\n' > go.mod; } && \
		dir=$$(GOFLAGS=-mod=mod $(GO) mod download -json sigs.k8s.io/cri-tools@$(CRITEST_VERSION) | sed -n 's/.*"Dir": "\(.*\)",/\1/p') && \
		test -n "$$dir" && rm -rf src && cp -r "$$dir" src && chmod -R u+w src && \
		cd src && $(GO) test -c -o $(CRITEST_BIN) ./cmd/critest

critest-bin: $(CRITEST_BIN)

critest: deps build critest-bin
	NANOKUBE_BIN=$(CURDIR)/$(BIN) CRITEST_BIN=$(CRITEST_BIN) CRITEST_SKIP='$(CRITEST_SKIP)' CRITEST_FOCUS='$(CRITEST_FOCUS)' \
		hack/images/critest.sh
