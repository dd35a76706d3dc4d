# agentd — build, run and test. `make run` and `make test` do all set-up on a fresh Debian
# machine with Swift: they install the Debian packages that are missing, then build.

SWIFT      ?= swift
PREFIX     ?= /usr/local
DESTDIR    ?=
CONFIGURATION ?= debug

# Build dependencies (bound as system libraries) and the tools the tests drive.
BUILD_DEPS := pkg-config libyaml-dev libcurl4-openssl-dev libsystemd-dev libsqlite3-dev
TEST_DEPS  := socat netcat-openbsd mandoc jq
# The clients README.md and the `make run` banner use.
CLIENT_DEPS := socat netcat-openbsd jq
# `make deb` (dpkg-shlibdeps, lintian) and `make check-ops` (a real Prometheus and promtool).
DEB_DEPS   := dpkg-dev binutils lintian
OPS_DEPS   := $(DEB_DEPS) prometheus curl
# `make bench`: nginx is the reference hop agentd is measured against.
BENCH_DEPS := nginx
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

BIN = .build/$(CONFIGURATION)

# `make install` builds with this configuration (check-ops may pass debug to save a build).
INSTALL_CONFIGURATION ?= release
# Extra `swift build` flags for `make install`; `make deb` passes --static-swift-stdlib.
SWIFT_BUILD_FLAGS ?=
INSTALL_BIN = .build/$(INSTALL_CONFIGURATION)
BINDIR     = $(PREFIX)/bin
LIBEXECDIR = $(PREFIX)/libexec/agentd
MANDIR     = $(PREFIX)/share/man
DOCDIR     = $(PREFIX)/share/doc/agentd
# systemd looks in /lib/systemd/system (= /usr/lib on merged /usr) and /usr/local/lib/systemd/system.
ifeq ($(PREFIX),/usr)
SYSTEMDDIR = /lib/systemd
else
SYSTEMDDIR = $(PREFIX)/lib/systemd
endif
UNITDIR     = $(SYSTEMDDIR)/system
SYSUSERSDIR = $(patsubst %/systemd,%,$(SYSTEMDDIR))/sysusers.d
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  = $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR = $(PREFIX)/share/fish/vendor_completions.d
MAN_PAGES   = man1/agentctl.1 man5/agentd.agents.5 man5/agentd.yaml.5 man8/agentd.8
EXAMPLE_AGENTS = $(notdir $(wildcard agents.d/*.yaml))

.PHONY: all deps test-deps mcp-venv build run test lint bench stress fuzz check-sanitizers install uninstall deb check-ops clean

all: build

deps:
	@./scripts/install-deps.sh $(BUILD_DEPS)

test-deps:
	@./scripts/install-deps.sh $(BUILD_DEPS) $(TEST_DEPS)

build: deps
	$(SWIFT) build -c $(CONFIGURATION)

# Serves agents.d/ from ./run/: against Mistral when MISTRAL_API_KEY is set, otherwise
# against the bundled offline emulator. Installs the clients its banner names first.
run: build
	@./scripts/install-deps.sh $(CLIENT_DEPS)
	@./scripts/run.sh $(BIN)

# The real MCP servers (and the SDK of the fixture) the end-to-end tests run, pinned, from PyPI.
mcp-venv:
	@./scripts/mcp-venv.sh .build/mcp-venv

test: test-deps mcp-venv
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

# `make install` (PREFIX=/usr/local, DESTDIR empty by default) installs exactly this tree and
# `make uninstall` removes exactly it; nothing under /etc is ever written:
#   $(PREFIX)/bin/agentd, $(PREFIX)/bin/agentctl
#   $(PREFIX)/libexec/agentd/mistral-emulator          offline Mistral API (tests, demos); off PATH
#   $(PREFIX)/share/man/man1/agentctl.1
#   $(PREFIX)/share/man/man5/agentd.agents.5, agentd.yaml.5
#   $(PREFIX)/share/man/man8/agentd.8
#   $(UNITDIR)/agentd.service                           ExecStart=$(PREFIX)/bin/agentd
#   $(SYSUSERSDIR)/agentd.conf                          user and group agentd
#   $(PREFIX)/share/doc/agentd/examples/agents.d/*.yaml the repository's agents.d
#   $(PREFIX)/share/bash-completion/completions/agentctl
#   $(PREFIX)/share/zsh/site-functions/_agentctl
#   $(PREFIX)/share/fish/vendor_completions.d/agentctl.fish
# where UNITDIR is /lib/systemd/system and SYSUSERSDIR /lib/sysusers.d when PREFIX=/usr,
# else $(PREFIX)/lib/systemd/system and $(PREFIX)/lib/sysusers.d. Afterwards, as root:
# systemd-sysusers; systemctl daemon-reload; then see agentd(8), SYSTEMD.
install: deps
	$(SWIFT) build -c $(INSTALL_CONFIGURATION) $(SWIFT_BUILD_FLAGS) --product agentd
	$(SWIFT) build -c $(INSTALL_CONFIGURATION) $(SWIFT_BUILD_FLAGS) --product agentctl
	$(SWIFT) build -c $(INSTALL_CONFIGURATION) $(SWIFT_BUILD_FLAGS) --product mistral-emulator
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(DOCDIR)/examples/agents.d \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0755 $(INSTALL_BIN)/agentd $(INSTALL_BIN)/agentctl $(DESTDIR)$(BINDIR)/
	install -m 0755 $(INSTALL_BIN)/mistral-emulator $(DESTDIR)$(LIBEXECDIR)/
	for page in $(MAN_PAGES); do install -m 0644 man/$$(basename $$page) $(DESTDIR)$(MANDIR)/$$page; done
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/agentd.service.in > $(DESTDIR)$(UNITDIR)/agentd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/agentd.service
	install -m 0644 systemd/agentd.sysusers $(DESTDIR)$(SYSUSERSDIR)/agentd.conf
	install -m 0644 $(addprefix agents.d/,$(EXAMPLE_AGENTS)) $(DESTDIR)$(DOCDIR)/examples/agents.d/
	@completions=$$(mktemp -d) && trap 'rm -rf "$$completions"' EXIT && \
	scripts/generate-completions.sh "$$completions" $(INSTALL_BIN)/agentctl && \
	install -m 0644 "$$completions/agentctl.bash" $(DESTDIR)$(BASHCOMPDIR)/agentctl && \
	install -m 0644 "$$completions/_agentctl" $(DESTDIR)$(ZSHCOMPDIR)/_agentctl && \
	install -m 0644 "$$completions/agentctl.fish" $(DESTDIR)$(FISHCOMPDIR)/agentctl.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/agentd $(DESTDIR)$(BINDIR)/agentctl
	rm -f $(DESTDIR)$(LIBEXECDIR)/mistral-emulator
	-rmdir $(DESTDIR)$(LIBEXECDIR)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/,$(MAN_PAGES))
	rm -f $(DESTDIR)$(UNITDIR)/agentd.service $(DESTDIR)$(SYSUSERSDIR)/agentd.conf
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/examples/agents.d/,$(EXAMPLE_AGENTS))
	-rmdir $(DESTDIR)$(DOCDIR)/examples/agents.d $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)
	rm -f $(DESTDIR)$(BASHCOMPDIR)/agentctl $(DESTDIR)$(ZSHCOMPDIR)/_agentctl $(DESTDIR)$(FISHCOMPDIR)/agentctl.fish

# agentd_VERSION_ARCH.deb in the repository root: the `make install` tree with PREFIX=/usr,
# release binaries with the Swift standard library linked statically, a commented
# /etc/agentd/agentd.yaml conffile, maintainer scripts (packaging/deb). See scripts/build-deb.sh.
deb: deps
	@./scripts/install-deps.sh $(DEB_DEPS)
	@./scripts/build-deb.sh

# Man page lint, the unit's verify and exposure score (<= 2.0), the installed tree, the unit
# driven by a real systemd user manager against the emulator, a real Prometheus scraping
# agentd, the `make run` banner run verbatim, and the .deb built, linted, installed and purged.
check-ops: test-deps
	@./scripts/install-deps.sh $(OPS_DEPS)
	@scripts/ops-check.sh

# Release build, then the emulator, agentd and a load generator on loopback; writes BENCHMARKS.md.
# BENCH_QUICK=1 for a one-minute run.
bench: deps
	@./scripts/install-deps.sh $(BENCH_DEPS)
	@./scripts/bench.sh

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
	AGENTD_TEST_SANITIZER=address LSAN_OPTIONS=suppressions=$(CURDIR)/Fuzz/lsan.supp \
		ASAN_OPTIONS=suppressions=$(CURDIR)/Fuzz/asan.supp \
		$(SWIFT) test --sanitize=address --scratch-path .build-asan
	AGENTD_TEST_SANITIZER=thread TSAN_OPTIONS=suppressions=$(CURDIR)/Fuzz/tsan.supp \
		$(SWIFT) test --sanitize=thread --scratch-path .build-tsan

clean:
	rm -rf .build run
