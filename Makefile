# pyrometer — build, run, test. Everything generated goes to build/.
#
#   make run    install what is missing, build, start pyrometer on its local default
#   make test   install what is missing, build, build the CPython zoo, run every test
#
# Other targets: deps, all (default), lint, fuzz (timed fuzzing), fuzz-replay (the fuzz corpora,
# as make test runs them), zoo, unit, integration, test-load (the integration suite beside two
# CPU hogs), test-kernels (the smoke suite on Debian's 5.10,
# 6.1, 6.12, 6.19, 7.2 and 7.3 kernels under QEMU and on this host's; KERNELS="6.1" for
# one), bench, clean.

.DELETE_ON_ERROR:
.SUFFIXES:
# Generated BPF objects and skeletons are kept: headers depend on them.
.SECONDARY:

BUILD      := build
CC         ?= cc
CLANG      ?= clang
BPFTOOL    ?= bpftool
PYTHON     ?= /usr/bin/python3
ZOO        ?= /var/cache/pyrometer-zoo
KERNELS    ?= 5.10 6.1 6.12 6.19 7.2 7.3 host
FUZZ_SECONDS ?= 60

ARCH_DEFINE := -D__TARGET_ARCH_x86
WARNINGS    := -Wall -Wextra -Werror
CFLAGS      ?= -g -O2
AGENT_CFLAGS := $(CFLAGS) $(WARNINGS) -std=gnu11 -D_GNU_SOURCE -MMD -MP \
	-I$(BUILD) -Ibpf -Iagent
# BPF_PROG() and the CO-RE read macros expand to parameters a program may not use.
# usdt.bpf.h includes <linux/errno.h>, whose asm/ headers live under the multiarch dir.
BPF_CFLAGS  := -g -O2 -target bpf $(ARCH_DEFINE) $(WARNINGS) -Wno-unused-parameter -MMD -MP -I$(BUILD) -Ibpf \
	-idirafter /usr/include/$(shell $(CC) -print-multiarch)
LDLIBS      := -lbpf -lelf -lz -lprotobuf-c -lmicrohttpd -lcurl -linih -lsystemd -lcap -lpthread -lm

# Debian packages the build, the tests and the zoo need. `make deps` installs the missing ones.
DEB_PACKAGES := make gcc clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config \
	libprotobuf-c-dev protobuf-c-compiler protobuf-compiler golang-go libmicrohttpd-dev prometheus prometheus-alertmanager libcurl4-openssl-dev libcmocka-dev libinih-dev libsystemd-dev libcap-dev systemd \
	libclang-rt-14-dev python3 python3-pytest python3.11-dev debootstrap binutils \
	clang-format cppcheck util-linux procps gdb python3.11-dbg \
	qemu-system-x86 busybox-static cpio gpgv \
	gunicorn uwsgi-core uwsgi-plugin-python3 uvicorn python3-flask celery python3-celery wrk \
	redis-server redis-tools python3-redis python3-yaml systemtap-sdt-dev

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
PROTOS     := $(wildcard proto/*.proto)
PROTO_CS   := $(patsubst proto/%.proto,$(BUILD)/%.pb-c.c,$(PROTOS))
PROTO_HS   := $(PROTO_CS:.c=.h)
PROTO_OBJS := $(patsubst $(BUILD)/%.pb-c.c,$(BUILD)/obj/%.pb-c.o,$(PROTO_CS))
AGENT_SRCS := $(wildcard agent/*.c agent/*/*.c)
AGENT_OBJS := $(patsubst agent/%.c,$(BUILD)/obj/%.o,$(AGENT_SRCS)) $(PROTO_OBJS)
LIB_OBJS   := $(filter-out $(BUILD)/obj/main.o,$(AGENT_OBJS))
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS  := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
LINT_FILES := $(wildcard agent/*.[ch] agent/*/*.[ch] bpf/*.[ch] tests/unit/*.[ch] tests/fuzz/*.[ch] tests/zoo/*.c \
	tests/bench/*.c)

.PHONY: all deps run test test-load test-kernels kernels lint fuzz fuzz-replay zoo unit integration bench soak clean

all: $(BUILD)/pyrometer

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi

# Until the daemon exists, `make run` lists the Python processes on this host.
# The daemon on its local default: a pprof per service every 15 s under
# /var/lib/pyrometer/profiles. RUN_ARGS adds options, e.g. RUN_ARGS="--pyroscope URL".
run: deps
	$(MAKE) all
	$(BUILD)/pyrometer ps
	@echo "pyrometer run: profiles go to /var/lib/pyrometer/profiles/SERVICE/, metrics to http://127.0.0.1:9464/metrics; Ctrl-C to stop"
	$(BUILD)/pyrometer run $(RUN_ARGS)

test: deps
	$(MAKE) all unit zoo lint fuzz-replay
	$(MAKE) integration
	$(MAKE) kernels

# The kernel matrix (tests/kernels/matrix.py): each kernel is downloaded once, to
# /var/cache/pyrometer-kernels, and booted under QEMU (TCG) with this tree over virtiofs.
test-kernels: deps
	$(MAKE) all zoo
	$(MAKE) kernels

kernels: all
	PYROMETER=$(abspath $(BUILD)/pyrometer) PYROMETER_ZOO=$(ZOO) \
		$(PYTHON) tests/kernels/matrix.py $(KERNELS)

# The integration suite and the kernel matrix with two CPU hogs beside them: flaky under
# load is broken.
test-load: deps
	$(MAKE) all zoo
	@yes > /dev/null & h1=$$!; yes > /dev/null & h2=$$!; \
	trap 'kill $$h1 $$h2' EXIT; \
	echo "test-load: two CPU hogs running (pids $$h1 $$h2)"; \
	$(MAKE) integration kernels

$(BUILD) $(BUILD)/obj $(BUILD)/tests $(BUILD)/fuzz:
	mkdir -p $@

$(BUILD)/vmlinux.h: | $(BUILD)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# Atomic exchange (calls.bpf.c's flush guard) needs BPF ISA v3.
$(BUILD)/calls.bpf.o: BPF_CFLAGS += -mcpu=v3

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

# protobuf-c code for the protocols in proto/.
$(BUILD)/%.pb-c.c $(BUILD)/%.pb-c.h: proto/%.proto | $(BUILD)
	protoc-c --proto_path=proto --c_out=$(BUILD) $<

$(BUILD)/obj/%.pb-c.o: $(BUILD)/%.pb-c.c | $(BUILD)/obj
	$(CC) $(CFLAGS) -Wall -Werror -MMD -MP -I$(BUILD) -c $< -o $@

# Skeletons and protobuf headers are generated: they must exist before the first compile
# (afterwards the .d files track them like any header).
$(BUILD)/obj/%.o: agent/%.c | $(BUILD)/obj $(SKELS) $(PROTO_HS)
	@mkdir -p $(@D)
	$(CC) $(AGENT_CFLAGS) -c $< -o $@

$(BUILD)/pyrometer: $(AGENT_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# ---- tests ----

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) | $(BUILD)/tests
	$(CC) $(AGENT_CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

zoo:
	tests/zoo/build.sh $(ZOO)

integration: all
	PYROMETER=$(abspath $(BUILD)/pyrometer) PYROMETER_ZOO=$(ZOO) \
		$(PYTHON) -m pytest -v -p no:cacheprovider tests/integration

# The daemon beside the server zoo under mixed traffic for SOAK_SECONDS (1800): memory and
# file descriptors must stay flat, the daemon alive (tests/soak/soak.py).
soak: deps
	$(MAKE) all zoo
	PYROMETER=$(abspath $(BUILD)/pyrometer) PYROMETER_ZOO=$(ZOO) $(PYTHON) tests/soak/soak.py

# Costs measured side by side in one run; figures go to the README.
bench: deps
	$(MAKE) all $(BUILD)/bench_gaps $(BUILD)/bench_pingpong $(BUILD)/bench_store
	@d=$$(mktemp -d); echo "== Store: 20,000 writes of 1 KiB into one service"; \
		$(BUILD)/bench_store $$d 20000; rm -rf $$d
	PYROMETER=$(abspath $(BUILD)/pyrometer) GAPS=$(abspath $(BUILD)/bench_gaps) \
		$(PYTHON) tests/bench/bench_cpu.py
	PYROMETER=$(abspath $(BUILD)/pyrometer) $(PYTHON) tests/bench/bench_gc.py
	PYROMETER=$(abspath $(BUILD)/pyrometer) $(PYTHON) tests/bench/bench_churn.py
	PYROMETER=$(abspath $(BUILD)/pyrometer) PYROMETER_ZOO=$(ZOO) $(PYTHON) tests/bench/bench_notes.py
	PYROMETER=$(abspath $(BUILD)/pyrometer) $(PYTHON) tests/bench/bench_calls.py
	PYROMETER=$(abspath $(BUILD)/pyrometer) $(PYTHON) tests/bench/bench_imports.py
	PYROMETER=$(abspath $(BUILD)/pyrometer) PINGPONG=$(abspath $(BUILD)/bench_pingpong) \
		$(PYTHON) tests/bench/bench_wall.py

$(BUILD)/bench_gaps: tests/bench/gaps.c | $(BUILD)
	$(CC) $(CFLAGS) $(WARNINGS) -o $@ $<

$(BUILD)/bench_store: tests/bench/store_bench.c $(LIB_OBJS) | $(BUILD)
	$(CC) $(AGENT_CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/bench_pingpong: tests/bench/pingpong.c | $(BUILD)
	$(CC) $(CFLAGS) $(WARNINGS) -o $@ $<

# libFuzzer with ASan and UBSan over the parsers of untrusted input and the writers that carry
# it into other formats. Each target names the agent sources it links.
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-D_GNU_SOURCE -I$(BUILD) -Ibpf -Iagent $(WARNINGS)
FUZZ_SRCS_fuzz_usdt_notes := agent/python/usdt_notes.c
FUZZ_SRCS_fuzz_linetable  := agent/python/linetable.c
FUZZ_SRCS_fuzz_spool      := agent/delivery/spool.c agent/base/files.c agent/base/log.c \
	agent/base/text.c
FUZZ_SRCS_fuzz_procfs     := agent/base/procfs.c agent/base/text.c agent/procs/cgroup_ids.c \
	agent/procs/service.c
FUZZ_SRCS_fuzz_config     := agent/daemon/config.c agent/base/files.c agent/base/log.c \
	agent/base/text.c
FUZZ_SRCS_fuzz_text       := agent/delivery/pyroscope.c agent/base/json.c agent/base/text.c \
	agent/base/log.c agent/base/files.c $(BUILD)/push.pb-c.c
.SECONDEXPANSION:
$(BUILD)/fuzz/%: tests/fuzz/%.c $$(FUZZ_SRCS_$$*) | $(BUILD)/fuzz $(PROTO_HS)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $^ $(LDLIBS)

# Timed fuzzing: FUZZ_SECONDS per target, from the committed corpus; what it finds new is kept
# in build/fuzz/NAME.corpus (merge it into tests/fuzz/corpus/NAME with -merge=1), crashes in
# build/fuzz/. Logging goes to a closed stderr (-close_fd_mask=2): the config target logs
# every refused file.
fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
		name=$$(basename $$f); mkdir -p $(BUILD)/fuzz/$$name.corpus; \
		echo "== $$name for $(FUZZ_SECONDS) s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -timeout=5 -close_fd_mask=2 -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/$$name.corpus tests/fuzz/corpus/$$name; \
	done

# The committed corpora, each input run once under ASan and UBSan (seconds): every crash and
# hang fuzzing ever found stays found.
fuzz-replay: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
		name=$$(basename $$f); \
		echo "== $$name: $$(ls tests/fuzz/corpus/$$name | wc -l) inputs"; \
		$$f -runs=0 -timeout=5 -close_fd_mask=2 tests/fuzz/corpus/$$name; \
	done

lint:
	clang-format --dry-run --Werror $(LINT_FILES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem --std=c11 -D__linux__ \
		-I agent -I bpf agent
	$(PYTHON) tests/lint/layers.py .

clean:
	rm -rf $(BUILD)

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/obj/*/*.d $(BUILD)/*.d)
