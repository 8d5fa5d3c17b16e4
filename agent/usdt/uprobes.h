/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Arming USDT sites as plain uprobes, with the least privilege the kernel allows.
 *
 * Since Linux 6.16 (commit ba677dbe77af, "perf: Revert to requiring CAP_SYS_ADMIN for
 * uprobes", backported to the 6.1, 6.6 and 6.12 stable series in July 2025), creating a
 * uprobe perf event needs CAP_SYS_ADMIN; CAP_PERFMON no longer does. Attaching a BPF program
 * to the event once it exists needs only CAP_BPF and CAP_PERFMON. So the daemon forks a broker
 * before it drops its privileges: a process that keeps CAP_SYS_ADMIN alone, reads nothing
 * from the network or from targets' memory, and does one thing: given an open binary and a
 * file offset, it checks that the offset is a USDT site of that binary inside its code
 * (parsing the notes itself) and returns a uprobe perf event for it over a socket. The
 * daemon, which parses untrusted input, never holds CAP_SYS_ADMIN again. */
#ifndef PYRO_UPROBES_H
#define PYRO_UPROBES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct bpf_link;
struct bpf_program;
struct usdt_probe;

/* The BPF cookie that tells bpf/usdt_arg.bpf.h how to fetch argument `arg` of a probe site
 * (struct usdt_arg); -EINVAL when it cannot (scale-index-base operands, unknown register). */
int uprobes_arg_cookie(const struct usdt_probe *site, int arg, uint64_t *cookie);

/* Starts the broker (call while CAP_SYS_ADMIN is still held, before dropping it). Later
 * uprobes_open calls go through it whenever this process lacks CAP_SYS_ADMIN. */
int uprobes_start_broker(void);
/* Gives the broker a reference to each of these fds (BPF links of uprobes) to hold until it
 * ends. Removing a uprobe costs an RCU grace period (about 90-150 ms here, one after
 * another under the kernel's event mutex); handed over before we exit, that cost falls on
 * the broker's exit, so a stop is not held up and no process of ours waits unkillable in
 * the kernel while the service manager waits for the daemon. */
int uprobes_hand_over(const int *fds, int n);
/* Ends the broker (it also ends by itself when this process dies). */
void uprobes_stop_broker(void);

/* A uprobe perf event at site of the binary open as file_fd, for every process (pid -1):
 * directly with CAP_SYS_ADMIN, else through the broker. Returns the perf event fd or a
 * negative errno. */
int uprobes_open(int file_fd, const struct usdt_probe *site);

/* Opens the event for site and attaches prog to it with cookie. The link owns the event. */
int uprobes_attach(struct bpf_program *prog, int file_fd, const struct usdt_probe *site,
		   uint64_t cookie, struct bpf_link **out);

/* The broker's loop, for tests: serves requests on sock until it closes. */
int uprobes_serve(int sock);

#endif
