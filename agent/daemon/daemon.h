/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* What the daemon's files share (agent/daemon/): the run's state and each file's entry
 * points. run.c holds the loop and reload; series.c turns samples into one profile per label
 * set; outputs.c opens the sinks, the metrics endpoint and alerts; tracking.c follows
 * processes in and out (GC tracing, retirement); windows.c runs the call windows. */
#ifndef PYRO_DAEMON_H
#define PYRO_DAEMON_H

#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "gc/alerter.h"
#include "calls/callprof.h"
#include "calls/calltrace.h"
#include "base/clock.h"
#include "base/kernel.h"
#include "base/evloop.h"
#include "base/version.h"
#include "base/signals.h"
#include "daemon/config.h"
#include "cpu/cpuprof.h"
#include "delivery/export.h"
#include "gc/gc_metrics.h"
#include "gc/gctrace.h"
#include "usdt/uprobes.h"
#include "gc/gcwatch.h"
#include "imports/importtrace.h"
#include "imports/importtree.h"
#include "base/log.h"
#include "base/http_server.h"
#include "profile/pprof.h"
#include "base/privs.h"
#include "python/py_binary.h"
#include "profile/profile.h"
#include "delivery/pyroscope.h"
#include "procs/seen.h"
#include "daemon/selfmetrics.h"
#include "procs/service.h"
#include "delivery/shipper.h"
#include "delivery/spool.h"
#include "delivery/store.h"
#include "python/symbolizer.h"
#include "base/text.h"

#define DRAIN_MS 200
#define TICK_MS 1000	/* metrics, alerts, watchdog */
#define MAX_SERIES 1024 /* label sets per interval; beyond, service_name "other" */
/* An exited process is forgotten this long after its exit: by then its last samples are
 * drained and its last GC events read. */
#define RETIRE_AFTER_NS (3 * 1000000000ull)
/* How often GC figures of processes discovery never named (gone before it looked) are
 * folded into service "unknown" and taken out of the kernel maps. */
#define UNCLAIMED_MS 5000
/* What one traced probe hit costs the traced process when it cannot be measured at a window's
 * start (calltrace_calibrate): the trap into the kernel and the program. make bench measured
 * 11.2-11.9 us per traced call (two hits) on Linux 6.18 on this project's 2-CPU machine. */
#define PROBE_HIT_NS 6000.0

/* What the daemon needs after start-up (documented in README, checked by a test). */
#define KEPT_CAPS                                                                                  \
	(PRIV_BPF | PRIV_PERFMON | PRIV_SYS_PTRACE | PRIV_DAC_READ_SEARCH | PRIV_CHECKPOINT_RESTORE)
/* And with call windows on: after the others are dropped, perf_event_open of a uprobe for one
 * pid fails with EACCES without CAP_SYS_ADMIN (measured on kernel 6.18). */
#define CALL_WINDOW_CAPS PRIV_SYS_ADMIN

struct series {
	char service[EXPORT_LABEL_VALUE];
	char container[65], pod[37], version[24];
	struct profile prof;
};

/* One profile per label set: the CPU or off-CPU profiles of an interval, or the calls of a
 * window. */
enum series_kind {
	SERIES_CPU,
	SERIES_CALLS,
	SERIES_OFF_CPU,
	SERIES_IMPORTS,
};

struct series_set {
	struct series *v;
	size_t n;
	enum series_kind kind;
};

/* Off-CPU time per service since start, for /metrics (python_gil_wait_seconds_total and
 * python_off_cpu_seconds_total). */
struct wait_total {
	char service[EXPORT_LABEL_VALUE];
	uint64_t gil_ns, other_ns;
};

/* Call windows (calls-window > 0). The tracer exists only while a window runs. */
struct call_windows {
	struct calltrace *ct;
	struct series_set series;
	uint64_t next_mono, start_mono, end_mono; /* CLOCK_MONOTONIC */
	uint64_t start_wall;			  /* CLOCK_REALTIME */
	int traced;
	double ns_per_hit; /* measured at the window's start */
	struct call_window_stats st;
};

/* python_import_seconds: upper bounds of its buckets, in seconds (+Inf after them). */
#define IMPORT_BUCKETS 15

/* One (service, phase) of python_import_seconds. */
struct import_hist {
	char service[EXPORT_LABEL_VALUE];
	bool runtime; /* phase: after the process's start-up window */
	uint64_t counts[IMPORT_BUCKETS + 1];
	uint64_t count;
	uint64_t sum_ns;
};

/* A process whose imports are followed (imports = true). */
struct import_proc {
	pid_t pid;
	bool known;	     /* discovery has named it */
	bool startup_over;   /* its start-up profile went out (or it ran before we started) */
	uint64_t start_ns;   /* exec or fork, CLOCK_MONOTONIC (bpf_ktime_get_ns); 0 unknown */
	uint64_t first_seen; /* CLOCK_MONOTONIC: an unknown pid is forgotten after a while */
	uint64_t exited_at;  /* CLOCK_MONOTONIC; 0 while it runs */
	uint64_t ended_ns;   /* its exit or exec (bpf_ktime_get_ns), 0 unknown: later imports
			      * in this pid are another image's (a Python that exec'd Python) */
	struct importtree tree;
};

struct imports_state {
	struct importtrace *it;
	struct import_proc *procs;
	size_t nprocs, procs_cap;
	struct import_hist *hists;
	size_t nhists, hists_cap;
	struct series_set series;
	size_t held;	  /* imports kept in the trees of all processes */
	uint64_t dropped; /* imports not kept: over IMPORT_MAX_HELD */
	uint64_t profiles, partial, unattributed;
};

/* Most imports the start-up trees of all processes keep at once (about 200 bytes each): a
 * host, or a hostile container, starting many processes that import without end cannot
 * make the daemon grow past this. */
#define IMPORT_MAX_HELD 131072

struct exited {
	uint64_t due_ns; /* CLOCK_MONOTONIC */
	uint64_t starttime;
	bool execed;	 /* the pid lives on in a new image */
	bool gc_retired; /* its GC figures are folded already (an image left, at the next tick) */
	bool keep;	 /* exec'd into a Python we track: its symbols are not forgotten */
	struct gc_retiree gc;
};

struct run {
	struct config cfg;
	const char *config_path;
	int argc;
	char **argv;
	char host[EXPORT_LABEL_VALUE];

	struct cpuprof *cpu;
	struct gctrace *gc;
	struct alerter *alerter;
	struct metrics_server *metrics;
	struct store *store;
	struct spool *spool;
	struct pyroscope *sink;
	struct shipper *shipper;

	struct series_set cpu_series;
	struct series_set off_cpu_series; /* with off-cpu on */
	struct wait_total *waits;
	size_t nwaits;
	struct call_windows calls;
	struct imports_state imports;
	uint64_t interval_start_ns; /* CLOCK_REALTIME */
	uint64_t interval_start_mono;
	uint64_t profiles, last_store_unix;
	struct exited *exited; /* oldest first */
	size_t nexited, exited_cap;
};

/* series.c */
struct profile *series_profile_for(const struct py_process *p, void *ctx);
struct profile *series_calls_profile_for(const struct py_process *p, void *ctx);
struct profile *series_imports_profile_for(const struct py_process *p, void *ctx);
struct profile *series_off_cpu_profile_for(const struct py_process *p, void *ctx);
/* The off-CPU metrics, per service. */
void series_waits_write(const struct run *r, FILE *f);
void series_free(struct series_set *set);
/* One profile per series that has samples, to every sink; the set is emptied. */
void series_flush(struct run *r, struct series_set *set, uint64_t from, uint64_t until,
		  const char *kind);
/* Ends the interval: one CPU profile per series, and one off-CPU profile. */
void series_flush_interval(struct run *r);

/* outputs.c */
/* At start every output must open. Returns the first failure. */
int outputs_open(struct run *r);
/* After a reload: each output that fails is logged by name and left off. */
void outputs_reopen(struct run *r);
/* Stops delivery (what is queued or in flight goes to the spool, and the delivery summary is
 * logged), the metrics endpoint and alerts. */
void outputs_close(struct run *r);
void outputs_publish_metrics(struct run *r);

/* tracking.c */
void tracking_on_start(const struct py_process *p, uint64_t ktime, void *ctx);
void tracking_on_exit(const struct py_process *p, enum discover_exit_why why, int code,
		      uint64_t ktime, void *ctx);
void tracking_retire_exited(struct run *r);
bool tracking_claimed(uint32_t pid, void *ctx);
uint64_t tracking_slow_ns(const struct config *c);
int tracking_start_gc(struct run *r);

/* importing.c: start-up import profiles and python_import_seconds */
int importing_start(struct run *r);
void importing_on_start(struct run *r, const struct py_process *p, uint64_t ktime);
/* ktime: when it exited or exec'd (CLOCK_MONOTONIC), 0 if not known */
void importing_on_exit(struct run *r, const struct py_process *p, uint64_t ktime);
/* Sends the start-up profiles whose window has closed; forgets pids discovery never named. */
void importing_tick(struct run *r, uint64_t now);
void importing_metrics_write(const struct run *r, FILE *f);
/* Stopping: the start-up profiles of processes still starting go out as they are. */
void importing_flush(struct run *r);
void importing_stop(struct run *r);

/* windows.c */
uint64_t windows_every_ns(const struct run *r);
void windows_tick(struct run *r, uint64_t now);
uint64_t windows_due(const struct run *r);
void windows_end(struct run *r);

#endif
