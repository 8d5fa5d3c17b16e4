// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "usdt/uprobes.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <linux/types.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "python/elf_file.h"
#include "base/log.h"
#include "base/privs.h"
#include "pyrometer.h"
#include "python/usdt_sites.h"

/* ---- argument specs ---- */

/* The 64-bit register a GNU as register name is part of, numbered as bpf/pyrometer.h says. */
static int reg_number(const char *name)
{
	static const char *const cores[] = { "ax", "bx", "cx", "dx", "si", "di", "bp", "sp" };
	char core[3] = { 0 };
	size_t n = strlen(name);

	if (name[0] == 'r' && name[1] >= '0' && name[1] <= '9') { /* r8 ... r15[dwb] */
		int r = atoi(name + 1);

		return r >= 8 && r <= 15 ? r : -1;
	}
	if (n == 3 && (name[0] == 'r' || name[0] == 'e')) /* rax, eax */
		memcpy(core, name + 1, 2);
	else if (n == 2 && name[1] == 'l') /* al, bl, cl, dl */
		core[0] = name[0], core[1] = 'x';
	else if (n == 3 && name[2] == 'l') /* sil, dil, bpl, spl */
		memcpy(core, name, 2);
	else if (n == 2) /* ax, si, ... */
		memcpy(core, name, 2);
	for (int i = 0; i < 8; i++)
		if (!strcmp(core, cores[i]))
			return i;
	return -1;
}

int uprobes_arg_cookie(const struct usdt_probe *site, int arg, uint64_t *cookie)
{
	const struct usdt_arg *a;
	uint64_t size, kind;
	int reg = 0;

	if (arg >= site->nargs)
		return -EINVAL;
	a = &site->args[arg];
	size = a->size ? (uint64_t)a->size : 8;
	if (a->val < INT32_MIN || a->val > INT32_MAX || size > 8)
		return -EINVAL;
	switch (a->kind) {
	case USDT_ARG_CONST:
		kind = PYRO_ARG_CONST;
		break;
	case USDT_ARG_REG:
		kind = PYRO_ARG_REG;
		break;
	case USDT_ARG_REG_DEREF:
		kind = PYRO_ARG_DEREF;
		break;
	default:
		return -EINVAL;
	}
	if (kind != PYRO_ARG_CONST && (reg = reg_number(a->reg)) < 0)
		return -EINVAL;
	*cookie = kind | (uint64_t)reg << PYRO_ARG_REG_SHIFT | size << PYRO_ARG_SIZE_SHIFT |
		  (a->is_signed ? PYRO_ARG_SIGNED : 0) |
		  (uint64_t)(uint32_t)(int32_t)a->val << PYRO_ARG_VAL_SHIFT;
	return 0;
}

/* ---- opening the event ---- */

/* The uprobe PMU's type, from sysfs (readable without privileges). */
static int uprobe_pmu_type(void)
{
	static int type = -1;
	FILE *f;

	if (type >= 0)
		return type;
	f = fopen("/sys/bus/event_source/devices/uprobe/type", "re");
	if (!f)
		return -errno;
	if (fscanf(f, "%d", &type) != 1)
		type = -1;
	fclose(f);
	return type >= 0 ? type : -EINVAL;
}

/* What the daemon sends the broker: a uprobe to open (the binary's fd beside it), or fds
 * to hold until the broker ends (BROKER_KEEP, up to BROKER_MAX_FDS beside it). */
enum broker_kind {
	BROKER_OPEN = 1,
	BROKER_KEEP = 2
};
#define BROKER_MAX_FDS 64

struct broker_req {
	uint32_t kind, pad;
	uint64_t offset, ref_ctr_offset;
};

static int perf_open(int file_fd, const struct broker_req *q)
{
	struct perf_event_attr attr = { .size = sizeof(attr) };
	char path[64];
	int type = uprobe_pmu_type(), fd;

	if (type < 0)
		return type;
	/* the kernel resolves the path itself: give it our fd, never a path in another root */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", file_fd);
	attr.type = (__u32)type;
	attr.config1 = (__u64)(unsigned long)path; /* uprobe_path */
	attr.config2 = q->offset;		   /* probe_offset */
	attr.config = q->ref_ctr_offset << 32;	   /* PERF_UPROBE_REF_CTR_OFFSET_SHIFT */
	/* pid -1 with cpu 0: one event for every process, as libbpf opens them */
	fd = (int)syscall(SYS_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int broker_fd = -1;
static pid_t broker_pid;

static bool have_sys_admin(void)
{
	return privs_require_quiet(PRIV_SYS_ADMIN) == 0;
}

/* One message with nfds fds beside it. */
static int send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	char ctl[CMSG_SPACE(BROKER_MAX_FDS * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > BROKER_MAX_FDS)
		return -E2BIG;
	if (nfds > 0) {
		struct cmsghdr *c;

		m.msg_control = ctl;
		m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EPIPE;
}

static int send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	return send_fds(sock, buf, len, &fd, fd >= 0);
}

/* Receives exactly len bytes and up to BROKER_MAX_FDS fds beside them (*nfds of them).
 * 0 at end of stream. */
static ssize_t recv_fds(int sock, void *buf, size_t len, int *fds, int *nfds)
{
	char ctl[CMSG_SPACE(BROKER_MAX_FDS * sizeof(int))];
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)
	};
	struct cmsghdr *c;
	ssize_t n;

	*nfds = 0;
	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (c = CMSG_FIRSTHDR(&m); n >= 0 && c; c = CMSG_NXTHDR(&m, c)) {
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    *nfds + (int)k > BROKER_MAX_FDS)
			continue;
		memcpy(fds + *nfds, CMSG_DATA(c), k * sizeof(int));
		*nfds += (int)k;
	}
	if (n > 0 && (size_t)n != len) {
		for (int i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		return -EPROTO;
	}
	return n < 0 ? -errno : n;
}

static ssize_t recv_with_fd(int sock, void *buf, size_t len, int *fd)
{
	int fds[BROKER_MAX_FDS], nfds;
	ssize_t n = recv_fds(sock, buf, len, fds, &nfds);

	*fd = nfds ? fds[0] : -1;
	for (int i = 1; i < nfds; i++) /* one was asked for */
		close(fds[i]);
	return n;
}

/* The broker's check: the offset must be a USDT site of this very file, in its code, with
 * the file's own semaphore, and the site must not be one of more than USDT_MAX_SITES of its
 * probe. A daemon that has been taken over can therefore arm only what the binary's
 * builder marked as probe sites, never the middle of an instruction (the reason the kernel
 * asks for CAP_SYS_ADMIN). */
static int check_site(int file_fd, const struct broker_req *q)
{
	struct usdt_site_stats st;
	struct usdt_probe *sites = NULL;
	struct elf_file *ef = NULL;
	struct stat sb;
	int n = 0, err, i;

	if (fstat(file_fd, &sb) || !S_ISREG(sb.st_mode))
		return -EBADF;
	if ((err = elf_file_open_fd(file_fd, &ef)) ||
	    (err = usdt_sites_read(ef, "python", &sites, &n, &st)))
		goto out;
	err = -EPERM;
	for (i = 0; i < n; i++)
		if (sites[i].pc_offset == q->offset &&
		    sites[i].semaphore_offset == q->ref_ctr_offset &&
		    usdt_notes_attachable(&sites[i]) &&
		    usdt_sites_count(sites, n, sites[i].name) <= USDT_MAX_SITES)
			err = 0;
out:
	free(sites);
	elf_file_free(ef);
	return err;
}

int uprobes_serve(int sock)
{
	struct broker_req q;
	int fds[BROKER_MAX_FDS], nfds, file_fd, reply, perf_fd;
	ssize_t n;

	while ((n = recv_fds(sock, &q, sizeof(q), fds, &nfds)) > 0) {
		if (q.kind == BROKER_KEEP)
			continue; /* held until we end: their release is our exit's work */
		for (int i = 1; i < nfds; i++)
			close(fds[i]);
		file_fd = nfds ? fds[0] : -1;
		perf_fd = -1;
		reply = q.kind != BROKER_OPEN ? -EINVAL
			: file_fd < 0	      ? -EBADF
					      : check_site(file_fd, &q);
		if (!reply && (perf_fd = perf_open(file_fd, &q)) < 0)
			reply = perf_fd;
		if (file_fd >= 0)
			close(file_fd);
		n = send_with_fd(sock, &reply, sizeof(reply), perf_fd);
		if (perf_fd >= 0)
			close(perf_fd);
		if (n)
			break;
	}
	return n < 0 ? (int)n : 0;
}

static void broker_main(int sock)
{
	/* Only the socket stays open; the broker dies with the daemon and ignores the
	 * terminal's and the service manager's signals meant for it (the daemon ends it). */
	if (dup2(sock, 3) < 0 || syscall(SYS_close_range, 4, ~0U, 0))
		_exit(1);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	prctl(PR_SET_NAME, "pyrometer-uprob");
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (privs_keep_only(PRIV_SYS_ADMIN))
		_exit(1);
	_exit(uprobes_serve(3) ? 1 : 0);
}

int uprobes_start_broker(void)
{
	int sv[2];
	pid_t pid;

	if (broker_fd >= 0)
		return 0;
	if (!have_sys_admin())
		return -EPERM;
	uprobe_pmu_type(); /* cached before any privilege is dropped */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (pid == 0) {
		close(sv[0]);
		broker_main(sv[1]);
	}
	close(sv[1]);
	broker_fd = sv[0];
	broker_pid = pid;
	log_debug("uprobe broker started (pid %d)", pid);
	return 0;
}

static bool handed_over;

int uprobes_hand_over(const int *fds, int n)
{
	struct broker_req q = { .kind = BROKER_KEEP };
	int err = 0;

	if (broker_fd < 0)
		return -ENOTCONN;
	for (int i = 0; i < n && !err; i += BROKER_MAX_FDS)
		err = send_fds(broker_fd, &q, sizeof(q), fds + i,
			       n - i < BROKER_MAX_FDS ? n - i : BROKER_MAX_FDS);
	handed_over |= !err && n > 0;
	return err;
}

void uprobes_stop_broker(void)
{
	if (broker_fd < 0)
		return;
	/* With uprobes handed over, the broker must outlive our own references to them (the
	 * perf event files libbpf keeps open beside each link): closed first, it would drop
	 * its links while we still hold the events, and removing them (an RCU tasks-trace
	 * grace period each, 50-80 ms here) would fall on our exit after all. So the socket
	 * stays open, and our exit closes it after our other files: the broker then sees the
	 * end of the stream, or our death, and the removals are its own wait. */
	if (handed_over)
		return;
	close(broker_fd); /* it exits at end of stream */
	broker_fd = -1;
	waitpid(broker_pid, NULL, 0);
}

static int broker_open(int file_fd, const struct broker_req *q)
{
	int reply, perf_fd, err;
	ssize_t n;

	if ((err = send_with_fd(broker_fd, q, sizeof(*q), file_fd)))
		return err;
	n = recv_with_fd(broker_fd, &reply, sizeof(reply), &perf_fd);
	if (n <= 0)
		return n < 0 ? (int)n : -EPIPE;
	if (reply >= 0 && perf_fd < 0)
		return -EPROTO;
	if (reply < 0 && perf_fd >= 0)
		close(perf_fd);
	return reply < 0 ? reply : perf_fd;
}

int uprobes_open(int file_fd, const struct usdt_probe *site)
{
	struct broker_req q = { .kind = BROKER_OPEN,
				.offset = site->pc_offset,
				.ref_ctr_offset = site->semaphore_offset };

	if (!site->pc_offset || (site->semaphore && !site->semaphore_offset))
		return -ENOEXEC;
	if (broker_fd >= 0 && !have_sys_admin())
		return broker_open(file_fd, &q);
	return perf_open(file_fd, &q);
}

int uprobes_attach(struct bpf_program *prog, int file_fd, const struct usdt_probe *site,
		   uint64_t cookie, struct bpf_link **out)
{
	struct bpf_perf_event_opts o = { .sz = sizeof(o), .bpf_cookie = cookie };
	int pfd = uprobes_open(file_fd, site), err;

	if (pfd < 0)
		return pfd;
	*out = bpf_program__attach_perf_event_opts(prog, pfd, &o);
	if (!*out) {
		err = -errno;
		close(pfd);
		return err;
	}
	return 0;
}
