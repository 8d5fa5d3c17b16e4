/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Checking, up front, that we hold the capabilities a command needs, so that a missing
 * privilege is one clear line instead of a libbpf error dump. */
#ifndef PYRO_PRIVS_H
#define PYRO_PRIVS_H

#include <stdint.h>

/* Capability numbers from <linux/capability.h>. */
#define PRIV_SYS_PTRACE (1ULL << 19)	     /* read other users' /proc/PID/{maps,root,mem} */
#define PRIV_SYS_ADMIN (1ULL << 21)	     /* /proc/PID/map_files of deleted binaries */
#define PRIV_PERFMON (1ULL << 38)	     /* tracing programs, perf events */
#define PRIV_BPF (1ULL << 39)		     /* loading BPF programs and maps */
#define PRIV_DAC_READ_SEARCH (1ULL << 2)     /* reading binaries inside containers' roots */
#define PRIV_CHECKPOINT_RESTORE (1ULL << 40) /* /proc/PID/map_files without CAP_SYS_ADMIN */

/* Returns 0 if every capability in `needed` is effective, otherwise prints
 * "pyrometer: error: COMMAND needs root or CAP_X, CAP_Y (missing: CAP_Y)" and returns -EPERM. */
int privs_require(uint64_t needed, const char *command);
/* The same check, silent: 0 or -EPERM. */
int privs_require_quiet(uint64_t needed);
/* Keeps only the capabilities in keep (permitted and effective), drops every other from
 * the bounding set, clears inheritable and ambient ones, and sets no_new_privs. */
int privs_keep_only(uint64_t keep);

#endif
