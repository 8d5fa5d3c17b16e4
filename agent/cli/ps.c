// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer ps: the Python processes on this host, once or as they come and go. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/kernel.h"
#include "base/evloop.h"
#include "cli/commands.h"
#include "base/signals.h"
#include "base/text.h"
#include "procs/discover.h"
#include "base/json.h"
#include "base/log.h"
#include "base/privs.h"
#include "python/describe.h"
#include "cli/options.h"
#include "cli/targets.h"

static const char ps_usage[] =
	"usage: pyrometer ps [--json] [--watch] [-v]\n"
	"\n"
	"Lists the CPython processes on this host (containers and chroots included): pid, version\n"
	"(read from the interpreter binary), where the interpreter lives, its USDT probes and\n"
	"what pyrometer can do with it (cpu: stack sampling; gc: GC pause tracing; imports:\n"
	"import tree and times; calls: exact call counts and latency; call-counts: exact counts\n"
	"only).\n"
	"\n"
	"  --json     one JSON object per line\n"
	"  --watch    keep running; print a line when a Python process starts or exits\n"
	"             (with --json: the snapshot as \"present\" events, then "
	"{\"event\":\"synced\"},\n"
	"             then \"start\" and \"exit\" events as they happen)\n"
	"  -v         verbose (repeat for debug output)\n"
	"  -h, --help this help\n";

struct ps_ctx {
	bool json;
	bool watch;
};

static void print_json(const struct py_process *p, const char *event, uint64_t ktime)
{
	struct json j;
	char buf[32];

	json_begin(&j, stdout);
	json_obj_open(&j, NULL);
	if (event)
		json_str(&j, "event", event);
	json_i64(&j, "pid", p->pid);
	json_i64(&j, "ppid", p->ppid);
	json_str(&j, "comm", p->comm);
	json_str(&j, "version", p->bin->version[0] ? p->bin->version : NULL);
	json_str(&j, "version_source", describe_version_source(p->bin));
	json_bool(&j, "free_threaded", p->bin->layout.free_threaded);
	json_str(&j, "interpreter_path", p->interp_path);
	json_str(&j, "interpreter_kind", p->in_shared_lib ? "shared-library" : "executable");
	snprintf(buf, sizeof(buf), "0x%" PRIx64, p->load_addr);
	json_str(&j, "load_address", buf);
	snprintf(buf, sizeof(buf), "%x:%x", p->dev_major, p->dev_minor);
	json_str(&j, "device", buf);
	json_u64(&j, "inode", p->inode);
	json_str(&j, "root", p->root);
	/* the labels its profiles and metrics get (README: pyrometer run) */
	json_str(&j, "service_name", p->service);
	json_str(&j, "container_id", p->container_id[0] ? p->container_id : NULL);
	json_str(&j, "pod_uid", p->pod_uid[0] ? p->pod_uid : NULL);
	describe_binary(&j, p->bin);
	if (event) {
		json_u64(&j, "ktime_ns", ktime);
		json_u64(&j, "reported_ns", monotonic_ns());
	}
	json_obj_close(&j);
	fputc('\n', stdout);
}

static void caps_text(const struct py_caps *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s", c->cpu ? "cpu," : "", c->gc ? "gc," : "",
		 c->imports ? "imports," : "", c->calls ? py_binary_calls_mode_name(c->calls) : "",
		 c->calls ? "," : "");
	if (buf[0])
		buf[strlen(buf) - 1] = '\0';
	else
		snprintf(buf, len, "-");
}

static void print_text(const struct py_process *p, const char *event)
{
	/* comm and paths are the target's to choose: escaped, so that no byte of theirs moves
	 * the terminal's cursor or starts a row */
	char caps[64], comm[4 * sizeof(p->comm)], service[4 * sizeof(p->service)], root[256],
		path[512];
	struct py_caps here;

	describe_caps_here(p->bin, &here);
	caps_text(&here, caps, sizeof(caps));
	text_escape(comm, sizeof(comm), p->comm);
	text_escape(service, sizeof(service), p->service);
	text_escape(root, sizeof(root), strcmp(p->root, "/") ? p->root : "");
	text_escape(path, sizeof(path), p->interp_path);
	if (event)
		printf("%-6s ", event);
	printf("%7d %7d %-15s %-15s %-9s %-17s %s%s%s\n", p->pid, p->ppid, comm, service,
	       p->bin->version[0] ? p->bin->version : "?", caps, root, root[0] ? ":" : "", path);
}

static void print_header(const struct ps_ctx *c)
{
	if (c->json)
		return;
	if (c->watch)
		printf("%-6s ", "EVENT");
	printf("%7s %7s %-15s %-15s %-9s %-17s %s\n", "PID", "PPID", "COMM", "SERVICE", "VERSION",
	       "CAPABILITIES", "[ROOT:]INTERPRETER");
}

static int print_one(const struct py_process *p, void *ctx)
{
	struct ps_ctx *c = ctx;

	if (c->json)
		print_json(p, c->watch ? "present" : NULL, 0);
	else
		print_text(p, c->watch ? "-" : NULL);
	return ferror(stdout) ? -EPIPE : 0;
}

static void on_start(const struct py_process *p, uint64_t ktime, void *ctx)
{
	struct ps_ctx *c = ctx;

	if (!c->watch || !ktime) /* ktime 0: found by the initial scan, printed as a list */
		return;
	if (c->json)
		print_json(p, "start", ktime);
	else
		print_text(p, "start");
}

static void on_exit_(const struct py_process *p, enum discover_exit_why why, int code,
		     uint64_t ktime, void *ctx)
{
	static const char *const whys[] = { "exited", "exec", "vanished" };
	struct ps_ctx *c = ctx;
	struct json j;

	if (!c->watch)
		return;
	if (!c->json) {
		char comm[4 * sizeof(p->comm)];

		text_escape(comm, sizeof(comm), p->comm);
		printf("%-6s %7d %-15s %s", "exit", p->pid, comm, whys[why]);
		if (why == DISCOVER_EXITED)
			printf(" (status %d)", code >> 8 & 0xFF);
		putchar('\n');
		return;
	}
	json_begin(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "event", "exit");
	json_i64(&j, "pid", p->pid);
	json_str(&j, "comm", p->comm);
	json_str(&j, "why", whys[why]);
	if (why == DISCOVER_EXITED) {
		if (code & 0x7F)
			json_i64(&j, "signal", code & 0x7F);
		else
			json_i64(&j, "exit_status", code >> 8 & 0xFF);
	}
	if (why == DISCOVER_VANISHED) /* when it ended was never seen */
		json_str(&j, "ktime_ns", NULL);
	else
		json_u64(&j, "ktime_ns", ktime);
	json_u64(&j, "reported_ns", monotonic_ns());
	json_obj_close(&j);
	fputc('\n', stdout);
}

static int parse_args(int argc, char **argv, struct ps_ctx *c)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "watch", no_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int opt, err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "jwvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			c->json = true;
			break;
		case 'w':
			c->watch = true;
			break;
		default:
			if ((err = options_common(opt, ps_usage)))
				return err;
			break;
		}
	}
	if (options_no_operands(argc, argv, "ps"))
		return -EINVAL;
	return 0;
}

static int watch_loop(struct discover *d)
{
	int err = 0;

	while (!signals_stop_requested && !ferror(stdout)) {
		err = discover_poll(d, 500);
		if (err == -EINTR) {
			err = 0;
			continue;
		}
		if (err < 0) {
			log_error("waiting for process events: %s", strerror(-err));
			return err;
		}
	}
	return 0;
}

int cmd_ps(int argc, char **argv)
{
	struct ps_ctx c = {};
	struct discover_ops ops = { .on_start = on_start, .on_exit = on_exit_, .ctx = &c };
	struct discover *d = NULL;
	struct evloop *loop = NULL;
	uint64_t needed;
	int err;

	err = parse_args(argc, argv, &c);
	if (err)
		return err > 0 ? 0 : 2;
	needed = PRIV_SYS_PTRACE | (c.watch ? PRIV_BPF | PRIV_PERFMON : 0);
	if (privs_require(needed, c.watch ? "ps --watch" : "ps"))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	signals_handle_stop();
	err = evloop_new(&loop) ?: discover_new(&ops, loop, &d);
	if (err)
		goto cleanup;
	if (c.watch && (err = discover_start_live(d)))
		goto cleanup;
	err = discover_scan(d);
	if (err) {
		log_error("cannot scan /proc: %s", strerror(-err));
		goto cleanup;
	}
	for (int k = 0; k < KERNEL_CAP_MAX; k++)
		if (kernel_lacks(k))
			log_warn("%s unavailable on this host: %s", kernel_cap_name(k),
				 kernel_lacks(k));
	print_header(&c);
	err = discover_for_each(d, print_one, &c);
	if (!err && c.watch) {
		if (c.json) /* the snapshot is complete; what follows is live */
			puts("{\"event\":\"synced\"}");
		err = watch_loop(d);
	}
cleanup:
	discover_free(d);
	evloop_free(loop);
	return err && err != -EPIPE ? 1 : 0;
}
