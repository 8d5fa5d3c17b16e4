/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* USDT probes armed once per interpreter binary (device + inode) for every process using
 * it (pid -1), as plain uprobes with the argument's spec in the BPF cookie; the programs
 * filter by pid. A binary stays attached while tracked processes run it and, after the last
 * one exits, for a linger period (or from start to stop for interpreters installed on the
 * host). Short-lived processes of a binary nothing long-lived runs (cron jobs, CLI tools)
 * then neither pay an attach and a detach each (a detach costs an RCU grace period under
 * the kernel's event mutex) nor lose what they do before discovery would attach again.
 * The GC tracer and the import tracer each keep one. Bounded: at most USDT_MAX_SITES sites
 * per probe and max_uprobes uprobes in all. */
#ifndef PYRO_BINATTACH_H
#define PYRO_BINATTACH_H

#include <stdbool.h>
#include <stdint.h>

struct bpf_program;
struct py_binary;
struct py_process;
struct binattach;

/* A probe of the python provider, the program it runs and which argument its cookie
 * fetches. */
struct binattach_probe {
	const char *probe;
	int arg;
	struct bpf_program *prog;
};

#define BINATTACH_MAX_PROBES 4

struct binattach_opts {
	const char *what; /* "GC", "import": for messages */
	struct binattach_probe probes[BINATTACH_MAX_PROBES];
	int nprobes;
	int max_uprobes;    /* held at once: each costs a grace period to remove at exit */
	uint64_t linger_ns; /* a binary no process runs stays attached this long */
};

struct binattach_stats {
	uint64_t attached, attach_failed, binaries;
	uint64_t uprobes;	/* held now */
	uint64_t refused;	/* binaries refused for the uprobe limit */
	uint64_t sites_dropped; /* duplicate, outside code or beyond the limit, in notes */
};

/* A binary that failed to attach is tried again after this long, not for every process. */
#define BINATTACH_RETRY_NS (60 * 1000000000ull)

int binattach_new(const struct binattach_opts *o, struct binattach **out);
void binattach_free(struct binattach *a);
/* Makes sure p's interpreter binary is attached (the caller checked it has the probes). */
int binattach_track(struct binattach *a, const struct py_process *p);
/* p is gone: its binary lingers, and is detached by binattach_expire once no tracked
 * process has used it for the linger period. */
void binattach_untrack(struct binattach *a, const struct py_process *p);
/* Detaches binaries idle for longer than the linger period, and forgets failed ones. */
void binattach_expire(struct binattach *a);
/* Attaches the probes of an interpreter installed at path (in our root) until the end, so
 * that its processes are seen from their start. -ENOTSUP if has() says it lacks them. */
int binattach_pin_file(struct binattach *a, const char *path,
		       bool (*has)(const struct py_binary *b));
/* Pins every interpreter installed on the host (/usr/bin/python3*, libpython3*.so*, ...)
 * that has() accepts: processes started from them are seen from their first probe hit (one
 * started later would otherwise run unseen until discovery has inspected it). */
void binattach_pin_installed(struct binattach *a, bool (*has)(const struct py_binary *b));
/* When p's binary was attached (CLOCK_MONOTONIC ns), 0 if it is not. */
uint64_t binattach_since(struct binattach *a, const struct py_process *p);
/* 1 if p's binary is attached; else 0 with a label and a sentence saying why not. */
int binattach_status(struct binattach *a, const struct py_process *p, const char **reason,
		     const char **why);
/* At exit: hands the uprobes to the broker (usdt/uprobes.h), so that removing them does not
 * hold up our exit. */
int binattach_hand_over(struct binattach *a);
void binattach_set_linger_ns(struct binattach *a, uint64_t linger_ns);
void binattach_stats(struct binattach *a, struct binattach_stats *st);

#endif
