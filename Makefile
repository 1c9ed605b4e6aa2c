# tsad / ocspd appliance. Targets: all check run bench asan fuzz fuzz-merge fuzz-smoke install
# format format-check clean deps.
# Sources are picked up by wildcard: a new common/x.c joins libcommon.a, a new
# tests/unit/check_x.c becomes a test binary, without editing this file.

CC      ?= gcc
BUILD   ?= build
PREFIX  ?= /usr/local
SAN     ?=

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wvla
HARDEN  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
# CFLAGS/LDFLAGS are the user's (optimisation, debug); the project's own flags are kept apart
# so that `make CFLAGS=-O1` does not drop them.
CFLAGS  ?= -O2 -g
LDFLAGS ?=
XCFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) -pthread -I. -I/usr/include/p11-kit-1
XLDFLAGS := -pie -Wl,-z,relro,-z,now -pthread
LIBS    := -lssl -lcrypto -lmicrohttpd -lgnutls -llmdb -linih -ljansson -ldl -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

COMMON_SRC := $(wildcard common/*.c)
TSA_SRC    := $(filter-out tsa/tsad.c tsa/tsactl.c,$(wildcard tsa/*.c))
OCSP_SRC   := $(filter-out ocsp/ocspd.c ocsp/ocspctl.c,$(wildcard ocsp/*.c))
UNIT_SRC   := $(wildcard tests/unit/check_*.c)
# bench/p11delay.c is a PKCS#11 module (a shared object), not a program
BENCH_SO   := $(BUILD)/bench/libp11delay.so
SHIM_SO    := $(BUILD)/tests/libclockshift.so
BENCH_SRC  := $(filter-out bench/p11delay.c,$(wildcard bench/*.c))

COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
TSA_OBJ    := $(TSA_SRC:%.c=$(BUILD)/%.o)
OCSP_OBJ   := $(OCSP_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
REPLAY_BIN := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=$(BUILD)/tests/replay_%)

BINS := $(BUILD)/tsad $(BUILD)/tsactl
ifneq ($(wildcard ocsp/ocspd.c),)
BINS += $(BUILD)/ocspd
endif
ifneq ($(wildcard ocsp/ocspctl.c),)
BINS += $(BUILD)/ocspctl
endif
BINS += $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.SECONDARY:
.PHONY: all check unit integration run bench asan fuzz fuzz-merge fuzz-smoke install format \
        format-check clean deps
all: $(BINS) $(BENCH_SO) $(SHIM_SO) $(UNIT_BIN) $(REPLAY_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(XCFLAGS) $(CFLAGS) $(SAN) -MMD -MP -c -o $@ $<

$(BUILD)/libcommon.a: $(COMMON_OBJ)
	@rm -f $@; ar rcs $@ $^
$(BUILD)/libtsa.a: $(TSA_OBJ)
	@rm -f $@; ar rcs $@ $^ $(if $^,,--thin)
$(BUILD)/libocsp.a: $(OCSP_OBJ)
	@rm -f $@; ar rcs $@ $^ $(if $^,,--thin)

APP_LIBS := $(BUILD)/libtsa.a $(BUILD)/libocsp.a $(BUILD)/libcommon.a

$(BUILD)/tsad: $(BUILD)/tsa/tsad.o $(BUILD)/libtsa.a $(BUILD)/libcommon.a
	$(CC) $(XLDFLAGS) $(LDFLAGS) $(SAN) -o $@ $< $(BUILD)/libtsa.a $(BUILD)/libcommon.a $(LIBS)
$(BUILD)/tsactl: $(BUILD)/tsa/tsactl.o $(BUILD)/libtsa.a $(BUILD)/libcommon.a
	$(CC) $(XLDFLAGS) $(LDFLAGS) $(SAN) -o $@ $< $(BUILD)/libtsa.a $(BUILD)/libcommon.a $(LIBS)
$(BUILD)/ocspd: $(BUILD)/ocsp/ocspd.o $(BUILD)/libocsp.a $(BUILD)/libcommon.a
	$(CC) $(XLDFLAGS) $(LDFLAGS) $(SAN) -o $@ $< $(BUILD)/libocsp.a $(BUILD)/libcommon.a $(LIBS)
$(BUILD)/ocspctl: $(BUILD)/ocsp/ocspctl.o $(BUILD)/libocsp.a $(BUILD)/libcommon.a
	$(CC) $(XLDFLAGS) $(LDFLAGS) $(SAN) -o $@ $< $(BUILD)/libocsp.a $(BUILD)/libcommon.a $(LIBS)
$(BUILD)/bench/storeprobe: $(BUILD)/bench/storeprobe.o $(BUILD)/libocsp.a $(BUILD)/libcommon.a
	$(CC) $(XLDFLAGS) $(LDFLAGS) $(SAN) -o $@ $< $(BUILD)/libocsp.a $(BUILD)/libcommon.a $(LIBS)
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libcommon.a
	$(CC) $(XLDFLAGS) $(LDFLAGS) $(SAN) -o $@ $< $(BUILD)/libcommon.a $(LIBS)
# The simulated network HSM: position-independent, linked alone (nothing of libcommon).
$(BUILD)/bench/p11delay.pic.o: bench/p11delay.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fPIE,$(XCFLAGS)) $(CFLAGS) -fPIC -MMD -MP -c -o $@ $<
$(BUILD)/bench/libp11delay.so: $(BUILD)/bench/p11delay.pic.o
	$(CC) -shared -Wl,-z,relro,-z,now -Wl,-z,defs -pthread $(LDFLAGS) -o $@ $< -ldl
# The clock tests' LD_PRELOAD shim (tests/lib/clockshift.c), linked alone like the above.
$(BUILD)/tests/clockshift.pic.o: tests/lib/clockshift.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fPIE,$(XCFLAGS)) $(CFLAGS) -fPIC -MMD -MP -c -o $@ $<
$(SHIM_SO): $(BUILD)/tests/clockshift.pic.o
	$(CC) -shared -Wl,-z,relro,-z,now -Wl,-z,defs $(LDFLAGS) -o $@ $< -ldl
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(APP_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(XLDFLAGS) $(LDFLAGS) $(SAN) -o $@ $< $(APP_LIBS) $(LIBS) $(CHECK_LIBS)

# Fuzz targets linked with a plain main() that replays their saved corpus (tests/fuzz/corpus).
$(BUILD)/tests/replay_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay.o $(APP_LIBS)
	$(CC) $(XLDFLAGS) $(LDFLAGS) $(SAN) -o $@ $^ $(LIBS)

deps:
	@tests/lib/deps.sh

# Unit suites (Check, fork mode) then integration tests against the real daemons.
check: deps
	$(MAKE) all
	$(MAKE) unit integration

unit: $(UNIT_BIN) $(REPLAY_BIN)
	@tests/lib/run-unit.sh $(UNIT_BIN)
	@for r in $(REPLAY_BIN); do $$r tests/fuzz/corpus/$${r##*/replay_} || exit 1; done

integration: $(BINS)
	@BUILD=$(BUILD) tests/integration/run.sh

run: deps
	$(MAKE) all
	@BUILD=$(BUILD) RUN_PARENT=$$PPID tests/lib/run.sh

bench: deps
	$(MAKE) all
	@BUILD=$(BUILD) QUICK=$(QUICK) bench/run.sh

asan: deps
	$(MAKE) BUILD=build-asan CC=clang SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" CFLAGS="-O1 -g" all
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) BUILD=build-asan CC=clang SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" CFLAGS="-O1 -g" unit integration

# libFuzzer runs (clang, ASan+UBSan) on a copy of the kept corpus under $(BUILD)/fuzz/, so the
# tree stays clean; FUZZ_TIME seconds per target, FUZZ_TARGETS="a b" for some of them.
# fuzz-merge minimises what the runs found into tests/fuzz/corpus/ (then review and commit).
FUZZ_TIME ?= 60
fuzz:
	@BUILD=$(BUILD) FUZZ_TIME=$(FUZZ_TIME) tests/fuzz/build.sh run
fuzz-smoke:
	@BUILD=$(BUILD) FUZZ_TIME=10 tests/fuzz/build.sh run
fuzz-merge:
	@BUILD=$(BUILD) tests/fuzz/build.sh merge

# make install [PREFIX=/usr/local] [DESTDIR=]: the daemons (sbin), the control programs (bin),
# the man pages, the systemd units (PREFIX/lib/systemd/system, which systemd searches) with
# their paths rewritten for PREFIX, README.md, the network-HSM drop-in, the Grafana
# dashboard and the nginx (ocspd) / HAProxy (tsad) configurations as examples (share/doc/NAME), and the configuration under /etc/NAME, where the
# units look for it. A configuration that exists is never overwritten: the shipped one goes
# beside it as NAME.conf.example (always refreshed, to compare after an upgrade). Nothing of
# bench/ is installed. Installs what $(BUILD) holds; builds only the programs it needs.
INSTALL_SBIN := $(BUILD)/tsad $(BUILD)/ocspd
INSTALL_BIN  := $(BUILD)/ocspctl
INSTALL_MAN8 := tsa/tsad.8 ocsp/ocspd.8 ocsp/ocspctl.8
ifneq ($(wildcard tsa/tsactl.c),)
INSTALL_BIN  += $(BUILD)/tsactl
INSTALL_MAN8 += tsa/tsactl.8
endif
INSTALL_MAN5 := conf/tsad.conf.5 conf/ocspd.conf.5
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL_CONF = install -d $(DESTDIR)/etc/$(1) && \
	install -m 644 $(2) $(DESTDIR)/etc/$(1)/$(3).example && \
	{ test -e $(DESTDIR)/etc/$(1)/$(3) || install -m 644 $(2) $(DESTDIR)/etc/$(1)/$(3); }

install: $(INSTALL_SBIN) $(INSTALL_BIN)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(INSTALL_SBIN) $(DESTDIR)$(PREFIX)/sbin/
	install -m 755 $(INSTALL_BIN) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(INSTALL_MAN5) $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 $(INSTALL_MAN8) $(DESTDIR)$(PREFIX)/share/man/man8/
	for u in systemd/*.service systemd/*.socket; do \
	  sed 's,/usr/local/,$(PREFIX)/,g' $$u >$(DESTDIR)$(UNITDIR)/$${u##*/}.tmp && \
	  chmod 644 $(DESTDIR)$(UNITDIR)/$${u##*/}.tmp && \
	  mv -f $(DESTDIR)$(UNITDIR)/$${u##*/}.tmp $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	for d in tsad ocspd; do \
	  install -d $(DESTDIR)$(PREFIX)/share/doc/$$d && \
	  install -m 644 README.md systemd/network-hsm.conf conf/grafana-dashboard.json \
	    $(DESTDIR)$(PREFIX)/share/doc/$$d/ || exit 1; \
	done
	install -m 644 conf/haproxy-tsad.cfg $(DESTDIR)$(PREFIX)/share/doc/tsad/
	install -m 644 conf/nginx-ocspd.conf $(DESTDIR)$(PREFIX)/share/doc/ocspd/
	$(call INSTALL_CONF,tsad,conf/tsad.conf,tsad.conf)
	$(call INSTALL_CONF,tsad,conf/softhsm2-tsad.conf,softhsm2.conf)
	$(call INSTALL_CONF,ocspd,conf/ocspd.conf,ocspd.conf)
	$(call INSTALL_CONF,ocspd,conf/softhsm2-ocspd.conf,softhsm2.conf)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# What CI checks: the tracked sources are as clang-format (.clang-format) writes them.
format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
