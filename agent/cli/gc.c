// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer gc: GC pauses of Python processes as they happen, and a summary per process and
 * generation on exit. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/evloop.h"
#include "cli/commands.h"
#include "base/signals.h"
#include "procs/discover.h"
#include "gc/gctrace.h"
#include "gc/gcwatch.h"
#include "profile/intern.h"
#include "gc/alerter.h"
#include "gc/gc_metrics.h"
#include "base/json.h"
#include "base/http_server.h"
#include "base/log.h"
#include "base/privs.h"
#include "procs/seen.h"
#include "python/symbolizer.h"
#include "cli/options.h"
#include "cli/targets.h"
#include "base/text.h"
#include "cli/gc_cmd.h"

static const char gc_usage[] =
	"usage: pyrometer gc [-p PID]... [-a] [-d SECONDS] [--threshold MS] [--json] [-v]\n"
	"\n"
	"Traces garbage-collection pauses of the given processes (and the processes they fork) or\n"
	"of every Python process with -a, from CPython's gc__start/gc__done USDT probes. Prints "
	"each\n"
	"pause at or above the threshold as it happens, with the Python stack whose allocation\n"
	"triggered it, and on exit a summary per process and generation: count, total, max, p50,\n"
	"p99. Interpreters built without the probes are reported as unavailable, never as zero.\n"
	"\n"
	"  -p, --pid PID         trace this process (repeatable)\n"
	"  -a, --all             trace every Python process\n"
	"  -d, --duration SECS   stop after this long (default: Ctrl-C, or when every -p process\n"
	"                        has exited)\n"
	"      --threshold MS    print pauses at least this long (default 10; 0: every "
	"collection)\n"
	"      --linger S        keep a binary's probes this long after its last process exits\n"
	"                        (default 600)\n"
	"      --json            one JSON object per line\n"
	"      --metrics-addr HOST:PORT\n"
	"                        serve Prometheus metrics at http://HOST:PORT/metrics\n"
	"      --metrics-pid     label GC series with the pid too (one series per process)\n"
	"      --alertmanager URL send alerts to Alertmanager (API v2) at URL\n"
	"      --alert-pause MS  alert on any single pause this long (default: --threshold)\n"
	"      --alert-p99 MS    alert when the p99 pause over the window is this long\n"
	"      --alert-window S  p99 window, and how long a rule must stop holding before its\n"
	"                        alert is resolved (default 60)\n"
	"      --alert-resend S  re-send firing alerts this often (default 30)\n"
	"  -v                    verbose (repeat for debug output)\n"
	"  -h, --help            this help\n";

/* ---- options ---- */

static int parse_number(const char *what, const char *s, double min, double max, double *out)
{
	return options_number("gc", what, s, min, max, out);
}

static int parse_args(int argc, char **argv, struct gc_cmd *c)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "all", no_argument, NULL, 'a' },
		{ "duration", required_argument, NULL, 'd' },
		{ "threshold", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "linger", required_argument, NULL, 'L' },
		{ "metrics-addr", required_argument, NULL, 'm' },
		{ "metrics-pid", no_argument, NULL, 'M' },
		{ "alertmanager", required_argument, NULL, 'A' },
		{ "alert-pause", required_argument, NULL, 'P' },
		{ "alert-p99", required_argument, NULL, 'Q' },
		{ "alert-window", required_argument, NULL, 'W' },
		{ "alert-resend", required_argument, NULL, 'R' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int opt, err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "p:ad:vh", opts, NULL)) != -1) {
		err = options_target(opt, "gc", &c->targets, &c->all, &c->duration, 31536000);
		if (err < 0)
			return err;
		if (err > 0)
			continue;
		switch (opt) {
		case 't':
			if (parse_number("the threshold (--threshold, ms)", optarg, 0, 3600000,
					 &c->threshold_ms))
				return -EINVAL;
			break;
		case 'L':
			if (parse_number("the linger (--linger, s)", optarg, 0, 86400,
					 &c->linger_s))
				return -EINVAL;
			break;
		case 'j':
			c->json = true;
			break;
		case 'm':
			c->metrics_addr = optarg;
			break;
		case 'M':
			c->metrics_pid = true;
			break;
		case 'A':
			c->alert.url = optarg;
			break;
		case 'P':
			if (parse_number("--alert-pause (ms)", optarg, 0, 3600000,
					 &c->alert.pause_s))
				return -EINVAL;
			c->alert.pause_s /= 1000;
			break;
		case 'Q':
			if (parse_number("--alert-p99 (ms)", optarg, 0, 3600000, &c->alert.p99_s))
				return -EINVAL;
			c->alert.p99_s /= 1000;
			break;
		case 'W':
			if (parse_number("--alert-window (s)", optarg, 1, 600, &c->alert.window_s))
				return -EINVAL;
			break;
		case 'R':
			if (parse_number("--alert-resend (s)", optarg, 1, 86400,
					 &c->alert.resend_s))
				return -EINVAL;
			break;
		default:
			if ((err = options_common(opt, gc_usage)))
				return err;
			break;
		}
	}
	if (options_no_operands(argc, argv, "gc"))
		return -EINVAL;
	if (!c->targets.n && !c->all) {
		log_error("gc: say what to trace: -p PID or -a");
		return -EINVAL;
	}
	if (!c->alert.url && (c->alert.pause_s || c->alert.p99_s)) {
		log_error("gc: alert rules need --alertmanager URL");
		return -EINVAL;
	}
	if (c->alert.url && !c->alert.pause_s && !c->alert.p99_s)
		c->alert.pause_s = c->threshold_ms / 1000;
	return 0;
}

/* ---- processes ---- */

/* Which processes are reported: all with -a; else the targets and what they fork. */
static bool wanted(const struct gc_cmd *c, const struct py_process *p)
{
	return c->all || targets_has(&c->targets, p->pid) || seen_get(&c->traced, p->ppid);
}

static void say_unavailable(struct gc_cmd *c, const struct py_process *p)
{
	const char *reason = NULL, *why = NULL;
	struct json j;

	gctrace_status(c->gc, p, &reason, &why);
	if (!why)
		why = p->bin->caps.no_gc ? p->bin->caps.no_gc : "unknown";
	if (!c->json) {
		log_warn("pid %d (%s, CPython %s): GC tracing unavailable: %s", p->pid, p->comm,
			 p->bin->version[0] ? p->bin->version : "?", why);
		return;
	}
	json_begin(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "event", "unavailable");
	json_i64(&j, "pid", p->pid);
	json_str(&j, "comm", p->comm);
	json_str(&j, "version", p->bin->version[0] ? p->bin->version : NULL);
	json_str(&j, "reason", why);
	json_obj_close(&j);
	fputc('\n', stdout);
}

static void say_tracking(struct gc_cmd *c, const struct py_process *p)
{
	struct json j;

	log_info("tracing GC of pid %d (%s, CPython %s)", p->pid, p->comm, p->bin->version);
	if (!c->json)
		return;
	json_begin(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "event", "tracking");
	json_i64(&j, "pid", p->pid);
	json_str(&j, "comm", p->comm);
	json_str(&j, "version", p->bin->version);
	json_obj_close(&j);
	fputc('\n', stdout);
}

static void on_start(const struct py_process *p, uint64_t ktime, void *ctx)
{
	struct gc_cmd *c = ctx;
	int err;

	(void)ktime;
	seen_add(&c->seen, p);
	symbolizer_forget(c->sym, p->pid);
	if (!c->gc || !wanted(c, p))
		return;
	err = gctrace_track(c->gc, p);
	if (err != -ENOTSUP)
		seen_add(&c->traced, p); /* it holds a reference on its binary, attached or not */
	if (err) {
		say_unavailable(c, p);
		return;
	}
	if (!c->all)
		discover_set_flags(c->disc, p->pid, PYRO_PROC_GC);
	say_tracking(c, p);
}

static void on_exit_(const struct py_process *p, enum discover_exit_why why, int code,
		     uint64_t ktime, void *ctx)
{
	struct gc_cmd *c = ctx;

	(void)code;
	(void)ktime;
	if (c->gc && seen_get(&c->traced, p->pid))
		gctrace_untrack(c->gc, p);
	/* an exec ends an image, not the process: the rows of each image it ran are its own
	 * (an image unread is left to the process's end) */
	if (c->gc && why != DISCOVER_EXECED)
		gc_cmd_finish_process(c, p, 0);
	else if (c->gc && p->startstack)
		gc_cmd_finish_process(c, p, p->startstack);
	targets_exited(&c->targets, p->pid);
}

static bool gc_capable(const struct py_binary *b, const char **why)
{
	*why = b->caps.no_gc;
	return b->caps.gc;
}

/* ---- pauses ---- */

static void print_pause(struct gc_cmd *c, const struct pyro_gc_event *e)
{
	const struct py_process *p = seen_get(&c->seen, (pid_t)e->pid);
	struct py_target target = p ? discover_target(p) : (struct py_target){ 0 };
	struct py_frame_sym fs;
	struct json j;
	char frame[1024];
	uint32_t i;

	if ((double)e->duration_ns < c->threshold_ms * 1e6)
		return; /* sent for an alert rule only */

	if (c->json) {
		json_begin(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "event", "pause");
		json_i64(&j, "pid", e->pid);
		json_i64(&j, "tid", e->tid);
		json_i64(&j, "generation", e->generation);
		json_u64(&j, "start_ns", e->start_ns);
		json_u64(&j, "duration_ns", e->duration_ns);
		json_i64(&j, "collected", e->collected);
		json_bool(&j, "stack_truncated", e->stack.flags & PYRO_STACK_TRUNCATED);
		json_arr_open(&j, "stack"); /* leaf first */
	} else {
		printf("pid %u tid %u gen %d: %.3f ms, %lld collected", e->pid, e->tid,
		       e->generation, (double)e->duration_ns / 1e6, (long long)e->collected);
	}
	for (i = 0; p && i < e->stack.depth && i < PYRO_SEG_FRAMES; i++) {
		symbolizer_frame(c->sym, &target, e->stack.frames[i] & PYRO_FRAME_CODE_MASK,
				 (uint32_t)(e->stack.frames[i] >> PYRO_FRAME_INSTR_SHIFT), &fs);
		snprintf(frame, sizeof(frame), "%s (%s:%d)", fs.name, fs.file, fs.line);
		if (c->json) {
			json_str(&j, NULL, frame);
		} else {
			char shown[4 * sizeof(frame)];

			text_escape(shown, sizeof(shown), frame);
			printf("%s%s", i ? " < " : ", in ", shown);
		}
	}
	if (c->json) {
		json_arr_close(&j);
		json_obj_close(&j);
	}
	fputc('\n', stdout);
}

static int on_pause(void *ctx, void *data, size_t len)
{
	struct gc_cmd *c = ctx;

	if (len < sizeof(struct pyro_gc_event)) {
		c->events_lost_user++;
		return 0;
	}
	c->events++;
	print_pause(c, data);
	if (c->alerter) {
		const struct pyro_gc_event *e = data;

		gcwatch_alert_pause(c->alerter, c->sym, seen_get(&c->seen, (pid_t)e->pid), e);
	}
	return 0;
}

static void publish_metrics(struct gc_cmd *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return;
	if (gc_metrics_write(c->gc, &c->seen, c->metrics_pid, f) == 0 && fflush(f) == 0)
		http_server_publish(c->metrics, text, len);
	fclose(f);
	free(text);
}

static int trace_loop(struct gc_cmd *c)
{
	uint64_t end =
		c->duration > 0 ? monotonic_ns() + (uint64_t)(c->duration * 1e9) : UINT64_MAX;
	uint64_t next_publish = 0;
	int err;

	while (!signals_stop_requested && (c->all || !targets_all_gone(&c->targets)) &&
	       monotonic_ns() < end) {
		uint64_t left = (end - monotonic_ns()) / 1000000;

		/* cached code objects are checked again once per pass, not once per pause */
		symbolizer_next_generation(c->sym);
		err = discover_poll(c->disc, left > 200 ? 200 : (int)left + 1);
		if (err < 0 && err != -EINTR)
			return err;
		if (monotonic_ns() >= next_publish) {
			if (c->metrics)
				publish_metrics(c); /* scrapes see figures at most a second old */
			if (c->alerter)
				gcwatch_alert_tick(c->alerter, c->gc, &c->seen, c->alert.p99_s > 0);
			gctrace_expire(c->gc);
			next_publish = monotonic_ns() + 1000000000ull;
		}
	}
	/* what the kernel still holds for us */
	while (discover_poll(c->disc, 0) > 0)
		;
	evloop_drain(c->loop);
	return 0;
}

static int track_existing(const struct py_process *p, void *ctx)
{
	on_start(p, 0, ctx);
	return 0;
}

static int run(struct gc_cmd *c)
{
	struct discover_ops ops = { .on_start = on_start, .on_exit = on_exit_, .ctx = c };
	struct gctrace_opts go = { .all = c->all,
				   .slow_ns = (uint64_t)(c->threshold_ms * 1e6),
				   .linger_ns = (uint64_t)(c->linger_s * 1e9) };
	int err;

	if ((err = symbolizer_new(&c->sym)) || (err = evloop_new(&c->loop)) ||
	    (err = discover_new(&ops, c->loop, &c->disc)) || (err = discover_start_live(c->disc)) ||
	    (err = discover_scan(c->disc)) ||
	    (err = targets_check(&c->targets, c->disc, "gc", "GC tracing", gc_capable)))
		return err;
	go.procs_fd = discover_procs_map_fd(c->disc);
	/* the kernel sends what either printing or the single-pause rule needs */
	if (c->alert.pause_s > 0 && c->alert.pause_s * 1e9 < (double)go.slow_ns)
		go.slow_ns = (uint64_t)(c->alert.pause_s * 1e9);
	if (c->alert.url && (err = alerter_new(&c->alert, &c->alerter)))
		return err;
	if ((err = gctrace_new(&go, &c->gc)) ||
	    (err = evloop_add_ring(c->loop, gctrace_events_fd(c->gc), on_pause, c)))
		return err;
	/* the scan ran before the tracer existed: track what it found */
	discover_for_each(c->disc, track_existing, c);
	if (c->metrics_addr) {
		if ((err = http_server_start(c->metrics_addr, &c->metrics)))
			return err;
		publish_metrics(c);
	}
	if (c->json)
		puts("{\"event\":\"ready\"}");
	else
		log_info("tracing GC pauses; Ctrl-C to stop");
	err = trace_loop(c);
	if (!err) {
		gc_cmd_print_summary(c);
		gc_cmd_print_losses(c);
	}
	return err;
}

int cmd_gc(int argc, char **argv)
{
	struct gc_cmd c = { .threshold_ms = 10,
			    .linger_s = GC_LINGER_NS / 1e9,
			    .alert = { .window_s = 60, .resend_s = 30 } };
	int err = parse_args(argc, argv, &c);

	if (err)
		return err > 0 ? 0 : 2;
	/* CAP_SYS_ADMIN: creating uprobes (agent/usdt/uprobes.h) */
	if (privs_require(PRIV_BPF | PRIV_PERFMON | PRIV_SYS_PTRACE | PRIV_SYS_ADMIN, "gc"))
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signals_handle_stop();
	seen_init(&c.seen);
	seen_init(&c.traced);
	err = run(&c);
	if (c.alerter)
		alerter_tick(c.alerter); /* what fired last is sent once more */
	alerter_free(c.alerter);
	http_server_free(c.metrics);
	gctrace_free(c.gc);
	discover_free(c.disc);
	evloop_free(c.loop);
	symbolizer_free(c.sym);
	seen_free(&c.seen);
	seen_free(&c.traced);
	free(c.finished);
	return err ? 1 : 0;
}
