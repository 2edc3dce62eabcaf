# derloop: one Makefile for the simulator, the gateway and the headend.
#
#   make            build everything (build/bin/der-sim, ...); needs no Python tooling
#   make deps       install the missing Debian packages (apt-get; quiet when none is missing)
#   make test       deps, build, unit tests, integration tests; ends with `N passed, N failed`
#   make bench      benchmarks: prints the figures, a MISS line per missed target, fails on one
#   make run        deps, build, run the reference scenario
#   make demo       deps, build, 100 simulated sites live against der-headend (Ctrl-C stops all)
#   make install    binaries, man pages, systemd units, example configuration (docs/operations.md,
#                   "Installing"); needs help2man; `make uninstall` removes them again
#   make man        only the man pages, in $(BUILD)/man/ (help2man, from each binary's --help)
#   make SAN=1 ...  the same with AddressSanitizer + UndefinedBehaviorSanitizer (in build-san/)
#
# Variables (command line or environment):
#   CC=clang        the compiler (default gcc); gcc and clang give the same digests (tested)
#   OPT=-O3         optimisation (default -O2, -O1 with SAN=1); CFLAGS defaults to `$(OPT) -g`
#   CFLAGS, CPPFLAGS, LDFLAGS, LDLIBS   the caller's additions: the flags the build needs
#                   (-std=gnu11, the determinism contract -ffp-contract=off -fno-fast-math,
#                   warnings and -Werror, -MMD -MP, includes, pkg-config, SANFLAGS) are always
#                   added, the contract after CFLAGS so that it cannot be overridden
#   HOSTCC          the compiler for the build-time generator (default gcc)
#   BUILD=DIR       the build directory (default build/, build-san/ with SAN=1)
#   V=1             show the full commands
#   PREFIX=/usr/local DESTDIR=   where `make install` puts files: $(DESTDIR)$(BINDIR)/der-sim...
#   BINDIR MANDIR SYSTEMDUNITDIR SYSUSERSDIR (under PREFIX), SYSCONFDIR=/etc, LOCALSTATEDIR=/var

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
SYSCONFDIR     ?= /etc
LOCALSTATEDIR  ?= /var
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
SAN     ?= 0
# make predefines CC=cc, so `CC ?= gcc` would never apply: replace only make's own default.
ifeq ($(origin CC),default)
CC      := gcc
endif
HOSTCC  ?= gcc

ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT     ?= -O1
else
BUILD   ?= build
SANFLAGS =
OPT     ?= -O2
endif

# Quiet build lines ("CC file", "LD file"); make V=1 shows the full commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

BIN := $(BUILD)/bin
OBJ := $(BUILD)/obj
GEN := $(BUILD)/gen
LIB := $(BUILD)/lib

# Debian packages the project needs to build and test. `make deps` installs the missing ones.
DEB_PKGS := gcc make pkg-config libmodbus-dev libcjson-dev libcunit1-dev \
            mbpoll python3 python3-pymodbus \
            libgrpc-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler \
            libmicrohttpd-dev libgnutls28-dev libsqlite3-dev libpq-dev postgresql \
            python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc \
            gnuplot-nox chromium chromium-driver libglpk-dev cppcheck clang-format \
            python3-serial-asyncio clang llvm libclang-rt-14-dev curl openssl help2man systemd \
            libjs-chart.js python3-selenium
# python3-serial-asyncio: python3-pymodbus imports it, but it is only a Recommends (and deps
# installs with --no-install-recommends); tests/integration/test_python_deps.py checks that
# every module the Python tests import comes from this list or its Depends. clang, llvm and
# libclang-rt-14-dev (libFuzzer and the sanitizer runtimes): `make CC=clang`, the fuzzers.
# libgnutls28-dev: SHA-256 of the REST tokens (headend/auth.c; libmicrohttpd's TLS library);
# curl and openssl: tests/integration/test_rest_auth.py (HTTPS against a CA the test makes).
# libssl-dev: the gateway checks its own TLS certificate (gateway/uplink/uplink.c; also a Depends of
# libgrpc-dev, named here because the code includes it directly).
# help2man: the man pages of `make install` / `make man` are made from each binary's --help.
# systemd: systemd-analyze and systemd-sysusers check the installed units (test_install.sh).
# libjs-chart.js: the web console's charts, compiled into der-headend (headend/web/embed.sh);
# python3-selenium (with chromium-driver): its browser test, tests/integration/test_console.py.

PKGS    := libmodbus libcjson libprotobuf-c grpc
HE_PKGS := libmicrohttpd sqlite3 libpq gnutls
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
HE_CFLAGS  = $(shell pkg-config --cflags $(HE_PKGS) 2>/dev/null)
HE_LIBS    = $(shell pkg-config --libs $(HE_PKGS) 2>/dev/null)

# The caller's CFLAGS/CPPFLAGS/LDFLAGS/LDLIBS only add to what the build needs. The determinism
# contract (docs/determinism.md: -ffp-contract=off, no -ffast-math) comes after CFLAGS, so that
# no optimisation flag can switch it off.
CFLAGS   ?= $(OPT) -g
WARN     := -Wall -Wextra -Werror -Werror=implicit-function-declaration -Wshadow \
            -Wno-unused-parameter
CONTRACT := -std=gnu11 -ffp-contract=off -fno-fast-math
ALL_CFLAGS = $(WARN) $(CFLAGS) $(CONTRACT) -MMD -MP $(SANFLAGS) -I. -I$(GEN) $(CPPFLAGS) \
             $(PKG_CFLAGS) $(HE_CFLAGS)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)
ALL_LDLIBS  = $(PKG_LIBS) -lglpk -lm -lpthread $(LDLIBS)

# ---- sources ---------------------------------------------------------------------------------
# The tree and which folder may include which: docs/architecture.md (checked by
# tests/integration/test_layout.sh). common/ is linked into every binary; reports/ (what turns
# runs into judgements) goes into libsim.a with the simulator.
COMMON_SRC := $(wildcard common/*.c)
GW_SRC   := $(filter-out gateway/main.c gateway/devices/sunspec_gen.c,$(wildcard gateway/*/*.c))
SIM_SRC  := $(wildcard sim/*/*.c) $(wildcard reports/*.c)
HE_SRC   := $(filter-out headend/main.c,$(wildcard headend/*.c))
HE_OBJ   := $(HE_SRC:%.c=$(OBJ)/%.o) $(OBJ)/gen/web_assets.o
PROTO    := proto/der/v1/agent.proto
PROTO_C  := $(GEN)/proto/der/v1/agent.pb-c.c
PROTO_H  := $(GEN)/proto/der/v1/agent.pb-c.h
PROTO_OBJ := $(OBJ)/gen/proto/der/v1/agent.pb-c.o
GW_OBJ   := $(GW_SRC:%.c=$(OBJ)/%.o) $(OBJ)/gen/sunspec_models.o $(OBJ)/gen/devmap_maps.o
SIM_OBJ  := $(SIM_SRC:%.c=$(OBJ)/%.o)
COMMON_OBJ := $(COMMON_SRC:%.c=$(OBJ)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(OBJ)/%.o) $(OBJ)/tests/unit/main.o
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BIN)/%)

SUNSPEC_JSON := $(sort $(wildcard gateway/devices/sunspec/model_*.json))
DEVMAP_JSON  := $(sort $(wildcard gateway/devices/maps/*.json))

.PHONY: all deps test unit integration bench run demo install uninstall man clean format lint FORCE
.DEFAULT_GOAL := all
.SECONDARY: # keep intermediate objects (bench and test objects are not rebuilt every time)

all: $(BIN)/der-sim $(BIN)/der-gateway $(BIN)/der-headend $(BENCH_BIN)

# ---- dependencies ----------------------------------------------------------------------------
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: need root to install:$$missing" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	    || { echo "deps: apt-get install$$missing failed" >&2; exit 1; }; \
	fi

# ---- build rules -----------------------------------------------------------------------------
$(OBJ)/%.o: %.c | $(GEN)/sunspec_models.h $(GEN)/devmap_maps.h $(PROTO_H)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(OBJ)/gen/%.o: $(GEN)/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC  $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# The SunSpec model tables are generated from SunSpec's own JSON definitions at build time,
# so the simulator's images and the gateway's decoder cannot drift (docs/registers.md). The
# generator runs on the build machine: HOSTCC, not CC.
$(BUILD)/host/sunspec-gen: gateway/devices/sunspec_gen.c
	@mkdir -p $(dir $@)
	$(HOSTCC) -std=gnu11 -O1 -g -Wall -Wextra -Werror $$(pkg-config --cflags libcjson) $< -o $@ \
	  $$(pkg-config --libs libcjson)

$(GEN)/sunspec_models.c $(GEN)/sunspec_models.h &: $(BUILD)/host/sunspec-gen $(SUNSPEC_JSON)
	@mkdir -p $(GEN)
	$(BUILD)/host/sunspec-gen $(GEN)/sunspec_models.c $(GEN)/sunspec_models.h $(SUNSPEC_JSON)

# The derloop EVSE and boiler maps: one description (gateway/devices/maps/*.json, in SunSpec's
# format), the same generator, tables read by the gateway's drivers, the simulator's images and
# docs/registers.md.
$(GEN)/devmap_maps.c $(GEN)/devmap_maps.h &: $(BUILD)/host/sunspec-gen $(DEVMAP_JSON)
	@mkdir -p $(GEN)
	$(BUILD)/host/sunspec-gen --maps $(GEN)/devmap_maps.c $(GEN)/devmap_maps.h $(DEVMAP_JSON)

# version.h carries the build's commit (the first log line of every run names it); rewritten
# only when it changes, so an unchanged tree does not rebuild.
VERSION := 0.1.0
COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
$(GEN)/version.h: FORCE
	@mkdir -p $(GEN)
	@printf '#define DERLOOP_VERSION "%s"\n#define DERLOOP_COMMIT "%s"\n' '$(VERSION)' '$(COMMIT)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:
$(OBJ)/sim/main.o: $(GEN)/version.h

# The wire protocol: C messages with protoc-c (both sides link libproto.a), Python stubs for the
# grpcio peer tests (Debian's grpc_python_plugin, not python3-grpc-tools); only the test targets
# build the Python stubs, so `make` and `make install` do not need protoc's Python tooling.
$(PROTO_C) $(PROTO_H) &: $(PROTO)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -I. $(PROTO)

$(GEN)/py/.stamp: $(PROTO)
	@mkdir -p $(GEN)/py
	protoc --python_out=$(GEN)/py --grpc_out=$(GEN)/py \
	  --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin -I. $(PROTO)
	@touch $@

$(LIB)/libproto.a: $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(LIB)/libheadend.a: $(HE_OBJ) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $(HE_OBJ)

# libgateway: the headend validates a pushed configuration with the gateway's own code
# (gateway/control/confsync.h; docs/architecture.md, the headend row).
$(BIN)/der-headend: $(OBJ)/headend/main.o $(LIB)/libheadend.a $(LIB)/libgateway.a $(LIB)/libcommon.a $(LIB)/libproto.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(ALL_LDLIBS) $(HE_LIBS)

$(OBJ)/headend/main.o $(OBJ)/headend/metrics.o: $(GEN)/version.h

# The web console (docs/operations.md, "The web console"): headend/web/ and Debian's Chart.js
# (libjs-chart.js) become C arrays in der-headend, so nothing is read or fetched at run time.
CHARTJS := /usr/share/javascript/chart.js/chart.min.js
WEB_SRC := $(sort $(wildcard headend/web/*.html headend/web/*.js headend/web/*.css))
$(GEN)/web_assets.c: headend/web/embed.sh $(WEB_SRC) $(CHARTJS)
	@mkdir -p $(GEN)
	$(Q)sh headend/web/embed.sh $@ $(WEB_SRC) $(CHARTJS)

$(LIB)/libcommon.a: $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(LIB)/libgateway.a: $(GW_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(LIB)/libsim.a: $(SIM_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BIN)/der-sim: $(OBJ)/sim/main.o $(LIB)/libsim.a $(LIB)/libgateway.a $(LIB)/libcommon.a $(LIB)/libproto.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(ALL_LDLIBS)

# libmicrohttpd: the optional /metrics listener (gateway/uplink/gwmetrics.c, --metrics-listen)
$(BIN)/der-gateway: $(OBJ)/gateway/main.o $(LIB)/libgateway.a $(LIB)/libcommon.a $(LIB)/libproto.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(ALL_LDLIBS) $(HE_LIBS)

$(OBJ)/gateway/main.o: $(GEN)/version.h

$(BIN)/%: $(OBJ)/tests/bench/%.o $(LIB)/libsim.a $(LIB)/libheadend.a $(LIB)/libgateway.a $(LIB)/libcommon.a $(LIB)/libproto.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(ALL_LDLIBS) $(HE_LIBS)

# Unit tests: every tests/unit/test_*.c defines `void test_register_NAME(void)`; the list of
# suites is generated so that adding a test file needs no edit elsewhere.
$(GEN)/unit_suites.h: $(UNIT_SRC)
	@mkdir -p $(GEN)
	@sed -n 's/^void \(test_register_[a-z0-9_]*\)(void)$$/\1/p' $(UNIT_SRC) | sort > $@.list
	@{ while read f; do echo "void $$f(void);"; done < $@.list; \
	   echo "#define UNIT_SUITES \\"; \
	   while read f; do echo "    X($$f) \\"; done < $@.list; echo; } > $@
	@rm -f $@.list

$(OBJ)/tests/unit/main.o: $(GEN)/unit_suites.h

$(BIN)/unit-tests: $(UNIT_OBJ) $(LIB)/libsim.a $(LIB)/libheadend.a $(LIB)/libgateway.a $(LIB)/libcommon.a $(LIB)/libproto.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD  $@")
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(ALL_LDLIBS) $(HE_LIBS) -lcunit

# ---- test, bench, run ------------------------------------------------------------------------
test: deps
	@$(MAKE) --no-print-directory all $(BIN)/unit-tests $(GEN)/py/.stamp
	@BUILD=$(BUILD) bash tests/run-all.sh

unit: all $(BIN)/unit-tests
	$(BIN)/unit-tests

integration: all $(BIN)/unit-tests $(GEN)/py/.stamp
	@BUILD=$(BUILD) bash tests/run-all.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bash tests/bench/run.sh

# The last line printed is the path of the run's report.html (docs/reports.md).
run: deps
	@$(MAKE) --no-print-directory all
	@set -e; out=$$($(BIN)/der-sim run scenarios/reference-site.json | tee /dev/stderr); \
	  echo "$$out" | sed -n 's/^report=//p' | tail -n 1

# docs/operations.md, "Demo": scenarios/fleet-demo.json (100 sites) for a day of simulated time,
# headend, serve and one multi-site gateway; prints the console URL; Ctrl-C stops everything.
demo: deps
	@$(MAKE) --no-print-directory all
	$(BIN)/der-sim demo --duration 1d scenarios/fleet-demo.json

# ---- install ---------------------------------------------------------------------------------
# docs/operations.md, "Installing". Nothing here needs root but writing to DESTDIR; only a real
# install (as root, no DESTDIR) also creates the derloop user and reloads systemd. The example
# configuration never replaces a file already in SYSCONFDIR, and `make uninstall` removes it only
# while it is still the example (an edited one is kept, and named).
PROGS     := der-sim der-gateway der-headend
MAN_PAGES := $(PROGS:%=$(BUILD)/man/%.1)
UNITS     := der-headend.service der-gateway@.service
UNIT_IN   := headend/packaging/der-headend.service.in gateway/packaging/der-gateway@.service.in
ETC       := $(SYSCONFDIR)/derloop
STATE     := $(LOCALSTATEDIR)/lib/derloop
# the example configuration: installed name, then its source
CONF      := $(ETC)/headend.env=headend/packaging/headend.env \
             $(ETC)/inventory.json=headend/examples/inventory.json \
             $(ETC)/gateway/example.json=gateway/packaging/gateway-example.json
SUBST     := sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
                 -e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g'
PKG       := $(BUILD)/pkg

man: $(MAN_PAGES)

# help2man runs each binary's --help and --version (and its subcommands' --help): the pages
# cannot drift from the code. Only `make man` and `make install` need help2man, not `make`.
$(BUILD)/man/%.1: $(BIN)/% docs/man/help2man.sh
	@mkdir -p $(dir $@)
	@command -v help2man >/dev/null || { echo "help2man not found: make deps (or apt-get install help2man)" >&2; exit 1; }
	@$(if $(Q),echo "  MAN $@")
	$(Q)sh docs/man/help2man.sh $< $@ $(VERSION)

install: $(PROGS:%=$(BIN)/%) man
	@rm -rf $(PKG) && mkdir -p $(PKG)
	@for f in $(MAN_PAGES) $(UNIT_IN) $(foreach c,$(CONF),$(word 2,$(subst =, ,$(c)))); do \
	  $(SUBST) $$f > $(PKG)/$$(basename $$f .in) || exit 1; done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSTEMDUNITDIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(ETC)/gateway $(DESTDIR)$(STATE)
	install -m 0755 $(PROGS:%=$(BIN)/%) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(PROGS:%=$(PKG)/%.1) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(UNITS:%=$(PKG)/%) $(DESTDIR)$(SYSTEMDUNITDIR)/
	install -m 0644 headend/packaging/derloop.sysusers $(DESTDIR)$(SYSUSERSDIR)/derloop.conf
	@for c in $(CONF); do dst=$(DESTDIR)$${c%%=*}; src=$(PKG)/$$(basename $${c#*=}); \
	  mode=0644; case $$dst in *.env) mode=0600;; esac; \
	  if [ -e $$dst ]; then echo "install: kept $$dst (exists; the example is $${c#*=})"; \
	  else echo "install -m $$mode $$src $$dst"; install -m $$mode $$src $$dst || exit 1; fi; done
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	  if command -v systemd-sysusers >/dev/null; then \
	    echo "systemd-sysusers $(SYSUSERSDIR)/derloop.conf"; systemd-sysusers $(SYSUSERSDIR)/derloop.conf; fi; \
	  if [ -d /run/systemd/system ]; then echo "systemctl daemon-reload"; systemctl daemon-reload; fi; \
	fi

# Removes what install put there. Example configuration: removed while it is what install wrote
# (so edited, it is kept); the state directory: only when empty (a store is never removed).
uninstall:
	rm -f $(PROGS:%=$(DESTDIR)$(BINDIR)/%) $(PROGS:%=$(DESTDIR)$(MANDIR)/man1/%.1) \
	  $(UNITS:%=$(DESTDIR)$(SYSTEMDUNITDIR)/%) $(DESTDIR)$(SYSUSERSDIR)/derloop.conf
	@for c in $(CONF); do dst=$(DESTDIR)$${c%%=*}; [ -e $$dst ] || continue; \
	  if $(SUBST) $${c#*=} | cmp -s - $$dst; then echo "rm -f $$dst"; rm -f $$dst; \
	  else echo "uninstall: kept $$dst (changed since install)"; fi; done
	@for d in $(DESTDIR)$(ETC)/gateway $(DESTDIR)$(ETC) $(DESTDIR)$(STATE); do \
	  [ ! -d $$d ] || rmdir $$d 2>/dev/null || echo "uninstall: kept $$d (not empty)"; done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem -I. -I$(GEN) common gateway sim reports headend tests/unit

clean:
	rm -rf build build-san

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

# libFuzzer harnesses: make fuzz [FUZZ_S=600] [FUZZ_ONLY="rest modbus"] (tests/fuzz/README.md).
include tests/fuzz/fuzz.mk
