/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Readers for /proc/PID files. The kernel writes them, but their contents (paths, comm) are
 * chosen by the process: treat every string as untrusted. */
#ifndef PYRO_PROCFS_H
#define PYRO_PROCFS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct map_entry {
	uint64_t start, end, offset;
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	char perms[5];
	bool deleted;	     /* the kernel appended " (deleted)": the path no longer names it */
	char path[PATH_MAX]; /* as the kernel shows it to us; "" for anonymous mappings */
};

/* Parses one line of /proc/PID/maps (without the newline). Returns 0 or -EINVAL. */
int procfs_parse_maps_line(const char *line, struct map_entry *out);

/* Calls cb for each file-backed mapping of pid, in address order; stops early when cb
 * returns non-zero and returns that value. Returns -errno when maps cannot be read
 * (-ENOENT: the process is gone). */
typedef int (*maps_cb)(const struct map_entry *m, void *ctx);
int procfs_for_each_map(pid_t pid, maps_cb cb, void *ctx);

/* /proc/PID/WHAT (comm, stat, cgroup, environ, cmdline...), at most len - 1 bytes and
 * NUL-terminated after them. Returns the bytes read or -errno. */
int procfs_read_file(pid_t pid, const char *what, char *buf, size_t len);
/* comm of pid, NUL-terminated, at most 15 characters. */
int procfs_read_comm(pid_t pid, char *buf, size_t len);
/* The process's root directory as seen from ours, e.g. "/" or a chroot's path. */
int procfs_read_root(pid_t pid, char *buf, size_t len);
/* Fields of /proc/PID/stat (proc(5)). starttime, in clock ticks since boot, identifies a
 * process together with its pid across pid reuse. */
struct proc_stat {
	char state; /* R, S, D, Z (zombie), X (dead), ... */
	pid_t ppid;
	uint64_t starttime;
	/* Top of the stack its image started with (0 if not shown: another process's is shown
	 * only to who may ptrace it). Each exec sets it anew, at a random place under ASLR: it
	 * tells which image of a process a reading saw. */
	uint64_t startstack;
};
int procfs_read_stat(pid_t pid, struct proc_stat *st);
/* Parses the contents of /proc/PID/stat. */
int procfs_parse_stat(const char *buf, struct proc_stat *st);

/* Is name a decimal pid (a /proc directory of a process)? */
bool procfs_is_pid(const char *name, pid_t *pid);

#endif
