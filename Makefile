# agentd — build, run and test. `make run` and `make test` do all set-up on a fresh Debian
# machine with Swift: they install the Debian packages that are missing, then build.

SWIFT      ?= swift
PREFIX     ?= /usr/local
DESTDIR    ?=
CONFIGURATION ?= debug

# Build dependencies (bound as system libraries) and the tools the tests drive.
BUILD_DEPS := pkg-config libyaml-dev libcurl4-openssl-dev libsystemd-dev
TEST_DEPS  := socat netcat-openbsd mandoc jq
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

BIN = .build/$(CONFIGURATION)

.PHONY: all deps test-deps build run test lint bench stress fuzz check-sanitizers install uninstall clean

all: build

deps:
	@./scripts/install-deps.sh $(BUILD_DEPS)

test-deps:
	@./scripts/install-deps.sh $(BUILD_DEPS) $(TEST_DEPS)

build: deps
	$(SWIFT) build -c $(CONFIGURATION)

# Serves agents.d/ from ./run/: against Mistral when MISTRAL_API_KEY is set, otherwise
# against the bundled offline emulator.
run: build
	@./scripts/run.sh $(BIN)

test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	$(MAKE) lint

lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests
	@if [ -d man ] && ls man/*.[0-9] >/dev/null 2>&1; then \
		out=$$(mandoc -Tlint -W warning man/*.[0-9]); \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; \
		echo "mandoc lint: clean"; \
	fi

# Reload under load at full size: 1,000 streams through 100 reloads (`make test` runs 100/10).
stress: test-deps
	AGENTD_STRESS=1 $(SWIFT) test --filter ReliabilityStressTests

# Each libFuzzer target for FUZZ_SECONDS over its seed corpus (Fuzz/corpus); see Fuzz/run.sh.
FUZZ_SECONDS ?= 60
fuzz: deps
	./Fuzz/run.sh all $(FUZZ_SECONDS)

# The whole test suite under AddressSanitizer (with leak detection), then ThreadSanitizer
# (agentd and the emulator run instrumented too, and inherit the options); separate scratch
# paths keep the normal build intact. Fuzz/*.supp say what is suppressed and why.
check-sanitizers: test-deps
	LSAN_OPTIONS=suppressions=$(CURDIR)/Fuzz/lsan.supp $(SWIFT) test --sanitize=address --scratch-path .build-asan
	TSAN_OPTIONS=suppressions=$(CURDIR)/Fuzz/tsan.supp $(SWIFT) test --sanitize=thread --scratch-path .build-tsan

clean:
	rm -rf .build run
