// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer record --mode calls: exact function-call counts and latencies from CPython's
 * function probes, for chosen processes and a bounded time (every call of a traced process
 * traps into the kernel while it runs). Output: a table, pprof (calls/count,
 * wall/nanoseconds) or folded call paths. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "calls/callprof.h"
#include "calls/calltrace.h"
#include "base/clock.h"
#include "base/evloop.h"
#include "cli/commands.h"
#include "base/version.h"
#include "base/signals.h"
#include "procs/discover.h"
#include "profile/folded.h"
#include "profile/intern.h"
#include "base/log.h"
#include "profile/pprof.h"
#include "base/privs.h"
#include "profile/profile.h"
#include "python/py_binary.h"
#include "procs/seen.h"
#include "cli/options.h"
#include "cli/targets.h"

static const char calls_usage[] =
	"usage: pyrometer record --mode calls (-p PID... | -a) -d SECONDS [-o FILE]\n"
	"                        [--format table|pprof|folded] [--max-duration SECONDS] [-n ROWS]\n"
	"\n"
	"Counts every Python function call of the given processes (or of every Python process\n"
	"with -a) for SECONDS, with inclusive and exclusive wall time and latency percentiles,\n"
	"from CPython's function__entry/function__return probes. Each traced call traps into the\n"
	"kernel (about 1-2 us), so tracing is bounded: -d is required and at most\n"
	"--max-duration (default 60). On CPython 3.11 only call counts are available (its\n"
	"function__entry does not fire); 3.13 and 3.14 have no function probes.\n"
	"\n"
	"  -p, --pid PID         trace this process (repeatable)\n"
	"  -a, --all             trace every Python process that can be\n"
	"  -d, --duration SECS   how long to trace (required)\n"
	"      --max-duration S  refuse a longer -d (default 60)\n"
	"  -o, --output FILE     where to write (default: standard output)\n"
	"      --format FMT      table (default), pprof or folded; from FILE's extension if "
	"absent\n"
	"  -n ROWS               table rows (default 30)\n"
	"  -v                    verbose (repeat for debug output)\n"
	"  -h, --help            this help\n";

struct calls_cmd {
	struct targets targets;
	bool all;
	enum calltrace_floor floor;
	double duration, max_duration;
	const char *output;
	enum options_format format;
	bool format_set;
	int rows;

	struct evloop *loop;
	struct discover *disc;
	struct calltrace *ct;
	struct seen seen;
	int attached, unavailable;
	bool counts_only_seen, full_seen;
	uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC */
	uint64_t wall_start_ns;	   /* CLOCK_REALTIME */
};

/* ---- options ---- */

enum {
	OPT_FORMAT = 256,
	OPT_MAX,
	OPT_MODE,
	OPT_FLOOR
};

static int parse_args(int argc, char **argv, struct calls_cmd *c)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "all", no_argument, NULL, 'a' },
		{ "duration", required_argument, NULL, 'd' },
		{ "max-duration", required_argument, NULL, OPT_MAX },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "mode", required_argument, NULL, OPT_MODE },
		/* make bench: --floor (count hits, nothing else) or --floor=timer */
		{ "floor", optional_argument, NULL, OPT_FLOOR },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	double v;
	int opt, err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "p:ad:o:n:vh", opts, NULL)) != -1) {
		err = options_target(opt, "record", &c->targets, &c->all, &c->duration, 86400);
		if (err < 0)
			return err;
		if (err > 0)
			continue;
		switch (opt) {
		case OPT_MAX:
			if (options_number("record", "--max-duration", optarg, 0.001, 86400,
					   &c->max_duration))
				return -EINVAL;
			break;
		case 'o':
			c->output = optarg;
			break;
		case 'n':
			if (options_number("record", "-n", optarg, 1, 100000, &v) || v != floor(v))
				return -EINVAL;
			c->rows = (int)v;
			break;
		case OPT_FORMAT:
			if (options_format(optarg, &c->format))
				return -EINVAL;
			c->format_set = true;
			break;
		case OPT_MODE:
			if (strcmp(optarg, "calls")) {
				log_error("record: --mode must be calls here");
				return -EINVAL;
			}
			break;
		case OPT_FLOOR:
			if (!optarg || !strcmp(optarg, "count")) {
				c->floor = FLOOR_COUNT;
			} else if (!strcmp(optarg, "timer")) {
				c->floor = FLOOR_TIMER;
			} else {
				log_error("record: --floor must be count or timer, not '%s'",
					  optarg);
				return -EINVAL;
			}
			break;
		default:
			if ((err = options_common(opt, calls_usage)))
				return err;
			break;
		}
	}
	if (options_no_operands(argc, argv, "record"))
		return -EINVAL;
	if (!c->targets.n && !c->all) {
		log_error("record: say what to trace: -p PID or -a");
		return -EINVAL;
	}
	if (c->duration <= 0) {
		log_error("record: --mode calls needs -d SECONDS: every traced call traps into the "
			  "kernel, so tracing is time-boxed");
		return -EINVAL;
	}
	if (c->duration > c->max_duration) {
		log_error("record: -d %g is longer than --max-duration %g", c->duration,
			  c->max_duration);
		return -EINVAL;
	}
	if (!c->format_set)
		options_format_from_name(c->output, &c->format);
	return 0;
}

/* ---- attaching ---- */

/* Attaches to p, or says why not. Returns 0 when traced. */
static int trace(struct calls_cmd *c, const struct py_process *p)
{
	const char *why = NULL;
	int err = calltrace_attach(c->ct, p, &why);

	if (err) {
		c->unavailable++;
		if (!c->all || targets_has(&c->targets, p->pid))
			log_error(
				"record: pid %d (%s, CPython %s): function tracing unavailable: %s",
				p->pid, p->comm, p->bin->version[0] ? p->bin->version : "?",
				why ? why : strerror(-err));
		else
			log_info("pid %d (%s, CPython %s): function tracing unavailable: %s",
				 p->pid, p->comm, p->bin->version, why ? why : strerror(-err));
		return err;
	}
	c->attached++;
	if (p->bin->caps.calls == PY_CALLS_COUNTS)
		c->counts_only_seen = true;
	else
		c->full_seen = true;
	log_info("tracing calls of pid %d (%s, CPython %s)%s", p->pid, p->comm, p->bin->version,
		 p->bin->caps.calls == PY_CALLS_COUNTS ? ": call counts only" : "");
	return 0;
}

static void on_start(const struct py_process *p, uint64_t ktime, void *ctx)
{
	struct calls_cmd *c = ctx;

	(void)ktime;
	seen_add(&c->seen, p);
	if (c->ct && c->all)
		trace(c, p);
}

static void on_exit_(const struct py_process *p, enum discover_exit_why why, int code,
		     uint64_t ktime, void *ctx)
{
	(void)why, (void)code, (void)ktime;
	targets_exited(&((struct calls_cmd *)ctx)->targets, p->pid);
}

static int trace_existing(const struct py_process *p, void *ctx)
{
	struct calls_cmd *c = ctx;

	if (c->all)
		trace(c, p);
	return 0;
}

static bool calls_capable(const struct py_binary *b, const char **why)
{
	*why = b->caps.no_calls;
	return b->caps.calls != PY_CALLS_NONE;
}

/* ---- the table ---- */

struct row {
	char name[256], file[256];
	uint64_t calls, returns, incl_ns, excl_ns;
	uint64_t hist[PYRO_CALL_BUCKETS];
};

struct table {
	struct callprof_names *nm;
	struct intern keys; /* "name\0file" */
	struct row *rows;
	size_t cap;
};

static struct row *row_of(struct table *t, const struct pyro_fn_key *k)
{
	const char *name = callprof_names_get(t->nm, k, 0), *file = callprof_names_get(t->nm, k, 1);
	char key[520];
	int len = snprintf(key, sizeof(key), "%s%c%s", name, '\0', file);
	int64_t id = intern_put(&t->keys, key, (size_t)len);

	if (id < 0 || !intern_grow((void **)&t->rows, &t->cap, (size_t)id, sizeof(*t->rows)))
		return NULL;
	if (!t->rows[id].name[0]) {
		snprintf(t->rows[id].name, sizeof(t->rows[id].name), "%s", name);
		snprintf(t->rows[id].file, sizeof(t->rows[id].file), "%s", file);
	}
	return &t->rows[id];
}

static void add_fn(const struct pyro_fn_key *k, const struct pyro_fn_stats *s, void *ctx)
{
	struct row *r = row_of(ctx, k);

	if (!r)
		return;
	r->calls += s->calls;
	r->returns += s->returns;
	r->incl_ns += s->incl_ns;
	r->excl_ns += s->excl_ns;
	for (int b = 0; b < PYRO_CALL_BUCKETS; b++)
		r->hist[b] += s->hist[b];
}

/* The q-quantile's bucket bound: calls in bucket b took [2^(b-1), 2^b) ns. */
static double quantile_ns(const struct row *r, double q)
{
	uint64_t total = 0, seen = 0;
	int b;

	for (b = 0; b < PYRO_CALL_BUCKETS; b++)
		total += r->hist[b];
	for (b = 0; total && b < PYRO_CALL_BUCKETS; b++) {
		seen += r->hist[b];
		if ((double)seen >= q * (double)total)
			return b ? ldexp(1, b) : 1;
	}
	return NAN;
}

static int by_calls(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	return x->calls < y->calls ? 1 : x->calls > y->calls ? -1 : strcmp(x->name, y->name);
}

static void fmt_ms(char *out, size_t size, double ns, bool have)
{
	if (!have || isnan(ns))
		snprintf(out, size, "n/a");
	else
		snprintf(out, size, "%.3f", ns / 1e6);
}

static int write_table(struct calls_cmd *c, struct table *t, FILE *f)
{
	size_t n = t->keys.n, i;
	bool times = c->full_seen;

	qsort(t->rows, n, sizeof(*t->rows), by_calls);
	fprintf(f, "%12s %12s %12s %10s %10s  %s\n", "calls", "incl_ms", "excl_ms", "p50_ms",
		"p99_ms", "function (file)");
	for (i = 0; i < n && (int)i < c->rows; i++) {
		const struct row *r = &t->rows[i];
		bool have = times && r->returns > 0;
		char incl[32], excl[32], p50[32], p99[32];

		fmt_ms(incl, sizeof(incl), (double)r->incl_ns, have);
		fmt_ms(excl, sizeof(excl), (double)r->excl_ns, have);
		fmt_ms(p50, sizeof(p50), quantile_ns(r, 0.5), have);
		fmt_ms(p99, sizeof(p99), quantile_ns(r, 0.99), have);
		fprintf(f, "%12" PRIu64 " %12s %12s %10s %10s  %s (%s)\n", r->calls, incl, excl,
			p50, p99, r->name, r->file);
	}
	if (c->counts_only_seen)
		fprintf(f,
			"# CPython 3.11: call counts only, from function__return; latency is not "
			"available there (function__entry does not fire)\n");
	fprintf(f, "# p50/p99: upper bounds of power-of-two latency buckets\n");
	return ferror(f) ? -EIO : 0;
}

/* ---- call paths: pprof and folded ---- */

static struct profile *the_profile(const struct py_process *p, void *ctx)
{
	(void)p;
	return ctx;
}

static int write_profile(struct calls_cmd *c, struct callprof_names *nm, FILE *f)
{
	struct profile prof;
	uint8_t *buf = NULL;
	size_t len = 0;
	const char *comment = "pyrometer " PYROMETER_VERSION " call trace";
	int err;

	if ((err = callprof_init(&prof)))
		return err;
	prof.start_ns = c->wall_start_ns;
	prof.duration_ns = c->end_ns - c->start_ns;
	callprof_add(c->ct, nm, &c->seen, the_profile, &prof);
	if (c->format == OPTIONS_FOLDED) {
		err = folded_write(&prof, f);
	} else {
		err = pprof_encode(&prof, &comment, 1, &buf, &len);
		if (!err && fwrite(buf, 1, len, f) != len)
			err = -EIO;
		free(buf);
	}
	profile_free(&prof);
	return err;
}

/* ---- running ---- */

static int output(struct calls_cmd *c)
{
	struct callprof_names nm;
	struct table t = { .nm = &nm };
	FILE *f = strcmp(c->output, "-") ? fopen(c->output, "we") : stdout;
	int err;

	if (!f) {
		log_error("record: cannot write %s: %s", c->output, strerror(errno));
		return -errno;
	}
	callprof_names_init(&nm, c->ct);
	intern_init(&t.keys);
	if (c->format == OPTIONS_TABLE) {
		calltrace_for_each_fn(c->ct, add_fn, &t);
		err = write_table(c, &t, f);
	} else {
		err = write_profile(c, &nm, f);
	}
	if (f != stdout && fclose(f) && !err)
		err = -errno;
	if (f == stdout)
		fflush(stdout);
	intern_free(&t.keys);
	free(t.rows);
	callprof_names_free(&nm);
	return err;
}

static void summary(struct calls_cmd *c)
{
	uint64_t k[PYRO_CALLS_COUNTER_MAX] = { 0 }, run_ns = 0, run_cnt = 0;

	calltrace_counters(c->ct, k);
	fprintf(stderr,
		"pyrometer: traced %d processes for %.1f s: %" PRIu64 " entries, %" PRIu64
		" returns; %" PRIu64 " returns without an entry, %" PRIu64 " re-paired, %" PRIu64
		" deeper than %d, %" PRIu64 " lost (map full)\n",
		c->attached, (double)(c->end_ns - c->start_ns) / 1e9, k[PYRO_CALLS_ENTRIES],
		k[PYRO_CALLS_RETURNS], k[PYRO_CALLS_UNMATCHED], k[PYRO_CALLS_MISMATCHED],
		k[PYRO_CALLS_TOO_DEEP], PYRO_CALL_DEPTH,
		k[PYRO_CALLS_STATS_FULL] + k[PYRO_CALLS_NO_STORAGE]);
	if (c->floor == FLOOR_COUNT)
		fprintf(stderr, "pyrometer: floor: %" PRIu64 " probe hits\n",
			calltrace_floor_hits(c->ct));
	calltrace_prog_stats(c->ct, &run_ns, &run_cnt);
	if (run_cnt)
		log_info("bpf: %" PRIu64 " runs, %" PRIu64 " ns in all (kernel.bpf_stats_enabled)",
			 run_cnt, run_ns);
}

static int run(struct calls_cmd *c)
{
	struct discover_ops ops = { .on_start = on_start, .on_exit = on_exit_, .ctx = c };
	struct calltrace_opts co = { .floor = c->floor };
	uint64_t end;
	int err, i;

	if ((err = evloop_new(&c->loop)) || (err = discover_new(&ops, c->loop, &c->disc)) ||
	    (err = discover_start_live(c->disc)) || (err = discover_scan(c->disc)) ||
	    (err = targets_check(&c->targets, c->disc, "record", "function tracing",
				 calls_capable)))
		return err;
	co.procs_fd = discover_procs_map_fd(c->disc);
	if ((err = calltrace_new(&co, &c->ct)))
		return err;
	for (i = 0; i < c->targets.n; i++) {
		const struct py_process *p = discover_get(c->disc, c->targets.pid[i]);

		if (!p) {
			log_error("record: pid %d exited before tracing started",
				  c->targets.pid[i]);
			return -ESRCH;
		}
		if ((err = trace(c, p)))
			return err;
	}
	discover_for_each(c->disc, trace_existing, c);
	c->start_ns = monotonic_ns();
	c->wall_start_ns = realtime_ns();
	end = c->start_ns + (uint64_t)(c->duration * 1e9);
	log_info("tracing function calls for %g s", c->duration);
	while (!signals_stop_requested && (c->all || !targets_all_gone(&c->targets))) {
		uint64_t now = monotonic_ns();

		if (now >= end)
			break;
		err = discover_poll(c->disc, (int)((end - now) / 1000000) + 1);
		if (err < 0 && err != -EINTR)
			return err;
	}
	calltrace_detach_all(c->ct); /* the traced processes stop trapping now */
	c->end_ns = monotonic_ns();
	err = output(c);
	if (!err)
		summary(c);
	return err;
}

int cmd_calls(int argc, char **argv)
{
	struct calls_cmd *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return 1;
	c->max_duration = 60;
	c->output = "-";
	c->rows = 30;
	err = parse_args(argc, argv, c);
	if (err) {
		free(c);
		return err > 0 ? 0 : 2;
	}
	if (privs_require(PRIV_BPF | PRIV_PERFMON | PRIV_SYS_PTRACE, "record")) {
		free(c);
		return 1;
	}
	signals_handle_stop();
	seen_init(&c->seen);
	err = run(c);
	calltrace_free(c->ct);
	discover_free(c->disc);
	evloop_free(c->loop);
	seen_free(&c->seen);
	free(c);
	return err ? 1 : 0;
}
