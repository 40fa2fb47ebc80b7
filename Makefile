# Cairn - top-level Makefile.
#
#   make                      build everything (release, -O2 -g)
#   make MODE=debug           debug build (-O0, DASSERT on, freed memory poisoned)
#   make SANITIZE=address,undefined   build and test under ASan/UBSan
#   make test                 install missing packages, build, run the suite
#   make run                  install, build, start cairnd on ./data
#   make lint                 clang-format check, include direction, core purity
#   make bench                benchmarks (not part of make test)
#   make fuzz                 libFuzzer targets (clang), FUZZ_SECONDS each
#   make fuzz-replay          run each fuzz target once over its corpus
#
# Sources are found by directory: every .c under a module directory goes into
# the core library, except files named *_main.c, each of which is a program
# (registry/server/cairnd_main.c -> cairnd, bench/kv_bench_main.c ->
# kv-bench). Unit tests: tests/unit/<module>/*.c -> one binary per module.
# Other test programs: tests/<kind>/*.c -> one binary per kind.
# sdk/*.c is libcairn, the client library: built twice, once plain (bench/
# and tests/unit/sdk link it through libcairn-bench.a) and once with -fPIC
# and hidden visibility, with base/ and the generated protos, into
# libcairn.so.N and libcairn.a (only CAIRN_EXPORT symbols stay global).
# sdk/cairnctl/*.c -> cairnctl, linked against libcairn.a (and the core
# library's store code, for snapshot status|restore).
#
#   make install PREFIX=/usr/local [DESTDIR=]   header, libs, cairn.pc, cairnctl
#   make chart-test           helm lint/template + render run of charts/cairn
#   make image                the container image as an OCI archive,
#                             $(B)/cairn-image.tar (umoci, no engine needed;
#                             scripts/image.sh; Containerfile is the same image)

MODE ?= release
SANITIZE ?=
V ?= 0

ifeq ($(V),0)
Q := @
else
Q :=
endif

comma := ,
B ?= build/$(MODE)$(if $(SANITIZE),-$(subst $(comma),-,$(SANITIZE)))

PKGS := libuv lmdb yaml-0.1 libwebsockets libnghttp2 libprotobuf-c openssl \
        jansson
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS = $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

BUILD_ID := $(shell git describe --always --dirty 2>/dev/null || echo dev)

CC ?= gcc
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CFLAGS_BASE := -std=gnu11 $(WARN) -I. -I$(B)/gen -D_GNU_SOURCE \
               -DCAIRN_BUILD_ID='"$(BUILD_ID)"' -MMD -MP
ifeq ($(MODE),debug)
CFLAGS_MODE := -O0 -g3 -DCAIRN_DEBUG
else ifeq ($(MODE),release)
CFLAGS_MODE := -O2 -g
else
$(error MODE must be debug or release)
endif
ifneq ($(SANITIZE),)
CFLAGS_MODE += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
               -fno-sanitize-recover=all
LDFLAGS_SAN := -fsanitize=$(SANITIZE)
endif
CFLAGS := $(CFLAGS_BASE) $(CFLAGS_MODE) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS := $(PKG_LIBS) -lcrypt -lpthread -lm -lresolv
# The consensus core is held to -Wconversion (STYLE.md section 10).
CONV_DIRS := consensus/%

# Module directories, lowest layer first (the include direction).
MODULES := base consensus/raft consensus/log consensus/kv consensus/apply \
           consensus/lease \
           consensus/watch consensus/auth consensus/transport consensus/node \
           config registry/grpc registry/http registry/services registry/config \
           registry/server bench
ALL_SRCS := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
# bench/sdk_bench_main.c is a program on libcairn.a alone (see below).
SDK_BENCH_SRC := bench/sdk_bench_main.c
PROG_SRCS := $(filter-out $(SDK_BENCH_SRC),$(filter %_main.c,$(ALL_SRCS)))
# bench/'s shared code (the cairn-bench client) is a library of its own, so
# that the daemon does not carry it.
BENCH_SRCS := $(filter-out %_main.c,$(wildcard bench/*.c))
LIB_SRCS := $(filter-out %_main.c $(BENCH_SRCS),$(ALL_SRCS))
SDK_SRCS := $(wildcard sdk/*.c)
SDK_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(SDK_SRCS))
CTL_SRCS := $(wildcard sdk/cairnctl/*.c)
CTL_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(CTL_SRCS))

# Generated protobuf-c code: proto/*.proto -> $(B)/gen/proto/*.pb-c.[ch].
PROTOS := $(wildcard proto/*.proto)
PROTO_C := $(patsubst proto/%.proto,$(B)/gen/proto/%.pb-c.c,$(PROTOS))
PROTO_H := $(PROTO_C:.c=.h)

# The web console (web/ui/, served at /ui/ by registry/http/http_console.c):
# its files become byte arrays in one generated C source. Plain files, no
# bundler: docs/console.md says why.
UI_FILES := $(sort $(shell find web/ui -type f ! -name '.*' 2>/dev/null))
UI_C := $(B)/gen/web/ui_files.c

LIB_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRCS)) \
            $(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(PROTO_C) $(UI_C))
LIB := $(B)/libcairn-core.a
# libcairn: the ABI version of libcairn.so (SONAME libcairn.so.$(SDK_MAJOR)).
SDK_VERSION := 1.0.0
SDK_MAJOR := 1
SDK_PKGS := libuv libnghttp2 libprotobuf-c jansson libssl libcrypto
SDK_LIBS = $(shell pkg-config --libs $(SDK_PKGS) 2>/dev/null) -lpthread
SDK_PIC_OBJS := $(patsubst %.c,$(B)/pic/%.o,$(SDK_SRCS) $(wildcard base/*.c)) \
                $(patsubst $(B)/gen/%.c,$(B)/pic/gen/%.o,$(PROTO_C))
SDK_SO := $(B)/libcairn.so.$(SDK_VERSION)
SDK_A := $(B)/libcairn.a
BENCH_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(BENCH_SRCS))
BENCH_LIB := $(B)/libcairn-bench.a

# sdk/examples/example_<x>.c -> $(B)/examples/example-<x>, on libcairn.a.
EXAMPLE_SRCS := $(wildcard sdk/examples/*.c)
EXAMPLES := $(patsubst sdk/examples/%.c,$(B)/examples/%,$(subst _,-,$(EXAMPLE_SRCS)))

# tests/sdk/sdk_<x>.c -> $(B)/tests/sdk-<x>: test programs on libcairn's
# public API alone (cairn.h and libcairn.a, as a user links it), driven by
# the scripts tests/sdk/*.test. <x> has no '_' (the rule maps '-' back).
SDK_TEST_SRCS := $(wildcard tests/sdk/*.c)
SDK_TESTS := $(patsubst tests/sdk/%.c,$(B)/tests/%,$(subst _,-,$(SDK_TEST_SRCS)))

prog_name = $(subst _,-,$(patsubst %_main,%,$(basename $(notdir $(1)))))
PROGS := $(foreach s,$(PROG_SRCS),$(B)/$(call prog_name,$(s))) $(B)/cairnctl

UNIT_DIRS := $(patsubst tests/unit/%/,%,$(sort $(dir $(wildcard tests/unit/*/*.c))))
UNIT_BINS := $(foreach d,$(UNIT_DIRS),$(B)/tests/unit-$(d))
TEST_KINDS := sim crash integration compat
TEST_BINS := $(foreach k,$(TEST_KINDS),$(if $(wildcard tests/$(k)/*.c),$(B)/tests/$(k)))

.PHONY: all clean test run lint bench soak deps deps-build sim sim-long crash \
        itest compat sdktest fuzz fuzz-build fuzz-replay fuzz-seeds unit \
        install image chart-test nemesis
.DEFAULT_GOAL := all

all: $(LIB) $(BENCH_LIB) $(SDK_SO) $(SDK_A) $(PROGS) $(UNIT_BINS) \
     $(TEST_BINS) $(EXAMPLES) $(SDK_TESTS) $(B)/sdk-bench

deps:
	$(Q)scripts/deps.sh

deps-build:
	$(Q)scripts/deps.sh --build-only

$(B)/gen/proto/%.pb-c.c $(B)/gen/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/gen/proto
	$(Q)protoc-c -Iproto --c_out=$(B)/gen/proto $<

# Regenerated when a file changes, is added or goes (the list is part of
# the command, kept in ui_files.list).
$(UI_C): $(UI_FILES) scripts/embed_ui.sh $(B)/gen/web/ui_files.list
	@mkdir -p $(dir $@)
	@echo "  GEN $@"
	$(Q)scripts/embed_ui.sh $@ web/ui $(patsubst web/ui/%,%,$(UI_FILES))

$(B)/gen/web/ui_files.list: FORCE
	@mkdir -p $(dir $@)
	@echo "$(UI_FILES)" | cmp -s - $@ || echo "$(UI_FILES)" >$@

.PHONY: FORCE
FORCE:

# Generated sources are kept (not removed as intermediates after a build).
.SECONDARY: $(PROTO_C) $(PROTO_H) $(UI_C)

# Every object waits for the generated headers (they are few and cheap).
$(B)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	$(Q)$(CC) $(CFLAGS) $(if $(filter $(CONV_DIRS),$<),-Wconversion) -c $< -o $@

$(B)/obj/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(filter-out -Werror -Wshadow,$(CFLAGS)) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BENCH_LIB): $(BENCH_OBJS) $(SDK_OBJS) $(LIB_OBJS)
	@rm -f $@
	$(Q)ar rcs $@ $(BENCH_OBJS) $(SDK_OBJS)

# libcairn: position-independent objects, hidden unless CAIRN_EXPORT.
$(B)/pic/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(filter-out -Werror -Wshadow,$(CFLAGS)) -fPIC \
	    -fvisibility=hidden -c $< -o $@

$(B)/pic/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC  $< (pic)"
	$(Q)$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(SDK_SO): $(SDK_PIC_OBJS)
	@echo "  LD  $@"
	$(Q)$(CC) -shared -Wl,-soname,libcairn.so.$(SDK_MAJOR) -Wl,--no-undefined \
	    $(LDFLAGS_SAN) -o $@ $^ $(SDK_LIBS)
	$(Q)ln -sf libcairn.so.$(SDK_VERSION) $(B)/libcairn.so.$(SDK_MAJOR)
	$(Q)ln -sf libcairn.so.$(SDK_VERSION) $(B)/libcairn.so

# One relocatable object whose hidden symbols (base/, protobuf descriptors,
# cairn__ internals) are made local, so that a program linking libcairn.a
# cannot collide with them.
$(SDK_A): $(SDK_PIC_OBJS)
	@echo "  AR  $@"
	$(Q)ld -r -o $(B)/pic/libcairn-all.o $^
	$(Q)objcopy --localize-hidden $(B)/pic/libcairn-all.o
	@rm -f $@
	$(Q)ar rcs $@ $(B)/pic/libcairn-all.o

# cairnctl's -w protobuf builds etcd's response messages again: it links
# the generated message code itself (libcairn.a keeps its copy local).
CTL_PB_OBJS := $(patsubst %,$(B)/obj/gen/proto/%.pb-c.o,rpc kv auth)
# snapshot status|restore read and write the store offline
# (consensus/kv/snapfile.h): those objects come from the core library.
$(B)/cairnctl: $(CTL_OBJS) $(CTL_PB_OBJS) $(LIB) $(SDK_A)
	@echo "  LD  $@"
	$(Q)$(CC) $(CFLAGS_MODE) $(LDFLAGS_SAN) -o $@ $^ $(SDK_LIBS) \
	    $(shell pkg-config --libs lmdb 2>/dev/null) -lm

$(B)/obj/sdk/examples/%.o: CFLAGS += -Isdk/include
$(B)/examples/example-%: $(B)/obj/sdk/examples/example_%.o $(SDK_A)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	$(Q)$(CC) $(CFLAGS_MODE) $(LDFLAGS_SAN) -o $@ $^ $(SDK_LIBS) -lm

$(B)/obj/tests/sdk/%.o: CFLAGS += -Isdk/include
$(B)/tests/sdk-%: $(B)/obj/tests/sdk/sdk_%.o $(SDK_A)
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	$(Q)$(CC) $(CFLAGS_MODE) $(LDFLAGS_SAN) -o $@ $^ $(SDK_LIBS) -lm

# sdk-bench: cairn-bench's put and range loads through libcairn (bench/
# sdk_compare.sh runs both on one server).
$(B)/obj/bench/sdk_bench_main.o: CFLAGS += -Isdk/include
$(B)/sdk-bench: $(B)/obj/bench/sdk_bench_main.o $(SDK_A)
	@echo "  LD  $@"
	$(Q)$(CC) $(CFLAGS_MODE) $(LDFLAGS_SAN) -o $@ $^ $(SDK_LIBS) -lm

PREFIX ?= /usr/local
DESTDIR ?=
install: $(SDK_SO) $(SDK_A) $(B)/cairnctl
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/bin
	install -m 644 sdk/include/cairn.h $(DESTDIR)$(PREFIX)/include/cairn.h
	install -m 755 $(SDK_SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libcairn.so.$(SDK_VERSION) \
	    $(DESTDIR)$(PREFIX)/lib/libcairn.so.$(SDK_MAJOR)
	ln -sf libcairn.so.$(SDK_VERSION) $(DESTDIR)$(PREFIX)/lib/libcairn.so
	install -m 644 $(SDK_A) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(SDK_VERSION)|g' \
	    -e 's|@REQUIRES@|$(SDK_PKGS)|g' sdk/cairn.pc.in \
	    >$(DESTDIR)$(PREFIX)/lib/pkgconfig/cairn.pc
	install -m 755 $(B)/cairnctl $(DESTDIR)$(PREFIX)/bin/cairnctl

# Programs link every library object (not the archive), so that a module's
# strong definition of a weak extension point (registry/server/server.h) is
# always in.
define prog_rule
$(B)/$(call prog_name,$(1)): $(B)/obj/$(1:.c=.o) $(LIB_OBJS) $(BENCH_LIB)
	@echo "  LD  $$@"
	$(Q)$(CC) $(CFLAGS_MODE) $(LDFLAGS_SAN) -o $$@ $$^ $(LDLIBS)
endef
$(foreach s,$(PROG_SRCS),$(eval $(call prog_rule,$(s))))

define unit_rule
$(B)/tests/unit-$(1): $(patsubst %.c,$(B)/obj/%.o,$(wildcard tests/unit/$(1)/*.c)) $(BENCH_LIB) $(LIB)
	@mkdir -p $$(dir $$@)
	@echo "  LD  $$@"
	$(Q)$(CC) $(CFLAGS_MODE) $(LDFLAGS_SAN) -o $$@ $$^ $(CMOCKA_LIBS) $(LDLIBS)
endef
$(foreach d,$(UNIT_DIRS),$(eval $(call unit_rule,$(d))))

define kind_rule
$(B)/tests/$(1): $(patsubst %.c,$(B)/obj/%.o,$(wildcard tests/$(1)/*.c)) $(BENCH_LIB) $(LIB)
	@mkdir -p $$(dir $$@)
	@echo "  LD  $$@"
	$(Q)$(CC) $(CFLAGS_MODE) $(LDFLAGS_SAN) -o $$@ $$^ $(CMOCKA_LIBS) $(LDLIBS)
endef
$(foreach k,$(TEST_KINDS),$(if $(wildcard tests/$(k)/*.c),$(eval $(call kind_rule,$(k)))))

# cmocka headers only where tests need them.
$(B)/obj/tests/%.o: CFLAGS += $(CMOCKA_CFLAGS)

# The whole suite: unit binaries, then the scripted tests (tests/*/*.test),
# ending with one line "N passed, N failed".
test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/run.sh $(B)

unit: all
	$(Q)ONLY=unit tests/run.sh $(B)

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)mkdir -p data
	$(B)/cairnd --data-dir ./data

sim: all
	$(Q)$(B)/tests/sim $(if $(SEED),--seed $(SEED)) $(if $(SEEDS),--seeds $(SEEDS))

sim-long: all
	$(Q)$(B)/tests/sim --seeds $(or $(SEEDS),5000)

crash: all
	$(Q)ONLY=crash tests/run.sh $(B)

itest: all
	$(Q)ONLY=integration FULL=1 tests/run.sh $(B)

compat: all
	$(Q)ONLY=compat tests/run.sh $(B)

# libcairn against real etcd and cairnd (tests/sdk; part of make test too).
sdktest: all
	$(Q)ONLY=sdk tests/run.sh $(B)

bench: deps
	$(Q)$(MAKE) --no-print-directory MODE=release all
	$(Q)bench/run.sh build/release

# Random faults one after another on five members under load, then the end
# checks (tests/integration/nemesis.test; a short form runs in make test).
nemesis: all
	$(Q)CAIRN_BUILD=$(CURDIR)/$(B) NEMESIS_ROUNDS=$(or $(ROUNDS),200) \
		NEMESIS_SEED=$(SEED) tests/integration/nemesis.test

# One member held under the full client load for SOAK_SECONDS (default
# 600), sampled every 10 s; PASS or FAIL with the reason (not in make test).
SOAK_SECONDS ?= 600
soak: all
	$(Q)SOAK_SECONDS=$(SOAK_SECONDS) nice tests/soak/soak.sh $(B)

# ------------------------------------------------------------------ fuzz
# libFuzzer targets: tests/fuzz/fuzz_<name>.c -> $(B)/fuzz/fuzz_<name>. The
# core library is compiled again with clang, ASan, UBSan and the fuzzer's
# coverage into $(B)/fuzz/obj (warnings there are not errors: clang may see
# things gcc does not, and the fuzz build must not break on them).
# tests/fuzz/run.sh runs them (fuzz: FUZZ_SECONDS each; replay: the corpus
# once); FUZZ_TARGETS=raft_codec,wal limits either to some targets.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR := $(B)/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
FUZZ_CFLAGS = $(filter-out -Werror,$(CFLAGS_BASE)) -O1 -g -DCAIRN_FUZZ \
              $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(PKG_CFLAGS)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRCS))
FUZZ_LIB_OBJS := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(LIB_SRCS)) \
                 $(patsubst $(B)/gen/%.c,$(FUZZ_DIR)/obj/gen/%.o,$(PROTO_C) $(UI_C))

$(FUZZ_DIR)/obj/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(filter-out -Wshadow,$(FUZZ_CFLAGS)) -w -c $< -o $@

$(FUZZ_DIR)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

# The targets themselves are held to -Werror.
$(FUZZ_DIR)/obj/tests/fuzz/%.o: tests/fuzz/%.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJS)
	@echo "  LD  $@"
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# Writes seed inputs with the real encoders (run by hand; the seeds are
# checked in under tests/fuzz/corpus/).
$(FUZZ_DIR)/fuzz-seeds: $(FUZZ_DIR)/obj/tests/fuzz/seeds.o $(FUZZ_LIB_OBJS)
	@echo "  LD  $@"
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(LDLIBS)

# Keep the targets' objects (not removed as intermediates).
.SECONDARY: $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/obj/tests/fuzz/%.o,$(FUZZ_SRCS))

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh fuzz $(FUZZ_DIR)

fuzz-replay: fuzz-build
	$(Q)tests/fuzz/run.sh replay $(FUZZ_DIR)

fuzz-seeds: $(FUZZ_DIR)/fuzz-seeds
	$(Q)$(FUZZ_DIR)/fuzz-seeds tests/fuzz/corpus

lint:
	$(Q)tests/lint/lint.sh $(B)

image: $(B)/cairnd $(B)/cairnctl
	$(Q)scripts/image.sh $(B) $(B)/cairn-image.tar

# charts/cairn: helm lint/template over ci/ values, offline validation, and
# the rendered StatefulSet run in network namespaces (helm from npm).
chart-test: $(B)/cairnd $(B)/cairnctl
	$(Q)CAIRN_BUILD=$(CURDIR)/$(B) CAIRN_ROOT=$(CURDIR) \
	    tests/integration/helm_chart.test

clean:
	rm -rf build

-include $(shell find $(B) -name '*.d' 2>/dev/null)
