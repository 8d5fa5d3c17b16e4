// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer record --mode imports: the import tree of Python processes, from CPython's
 * import__find__load__start/done probes (agent/imports/), as a table, folded stacks or
 * pprof. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/evloop.h"
#include "base/log.h"
#include "base/privs.h"
#include "base/signals.h"
#include "base/version.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/targets.h"
#include "imports/importtrace.h"
#include "imports/importtree.h"
#include "procs/discover.h"
#include "procs/seen.h"
#include "profile/folded.h"
#include "profile/pprof.h"
#include "profile/profile.h"
#include "python/py_binary.h"
#include "python/symbolizer.h"

static const char imports_usage[] =
	"usage: pyrometer record --mode imports (-p PID... | -a) [-d SECONDS] [-o FILE]\n"
	"                        [--format table|pprof|folded] [-v]\n"
	"\n"
	"Records every import that loads a module in the given processes (or in every Python\n"
	"process with -a, including ones that start later), from CPython's\n"
	"import__find__load__start/done probes, and writes each process's import tree: modules\n"
	"nested under the import they were loaded inside, inclusive and exclusive wall time,\n"
	"and the Python line that made each outermost import. The probes are armed once per\n"
	"interpreter binary: a process whose binary is already armed (an interpreter installed\n"
	"on the host, or one another process ran during the recording) is seen from its first\n"
	"import; the first process of any other binary from when discovery armed it.\n"
	"\n"
	"  -p, --pid PID         record this process (repeatable): the imports it makes from now\n"
	"  -a, --all             record every Python process\n"
	"  -d, --duration SECS   stop after this long (default: Ctrl-C, or when every -p process\n"
	"                        has exited)\n"
	"  -o, --output FILE     where to write (default: standard output)\n"
	"      --format FMT      table (default), pprof (value import/nanoseconds, exclusive) or\n"
	"                        folded (exclusive microseconds); from FILE's extension if absent\n"
	"  -v                    verbose (repeat for debug output)\n"
	"  -h, --help            this help\n";

struct proc_tree {
	int pid;
	char comm[PYRO_COMM_LEN];
	struct importtree tree;
};

struct imports_cmd {
	struct targets targets;
	bool all;
	double duration;
	const char *output;
	enum options_format format;
	bool format_set;
	bool floor; /* make bench: --floor */

	struct evloop *loop;
	struct discover *disc;
	struct symbolizer *sym;
	struct importtrace *it;
	struct seen seen;
	struct proc_tree *procs;
	size_t nprocs, procs_cap;
	uint64_t events, lost_nodes;
	uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC */
	uint64_t wall_start_ns;	   /* CLOCK_REALTIME */
};

/* ---- options ---- */

enum {
	OPT_FORMAT = 256,
	OPT_MODE,
	OPT_FLOOR,
};

static int parse_args(int argc, char **argv, struct imports_cmd *c)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "all", no_argument, NULL, 'a' },
		{ "duration", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "mode", required_argument, NULL, OPT_MODE },
		/* make bench: the probes with a program that only counts hits */
		{ "floor", no_argument, NULL, OPT_FLOOR },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int opt, err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "p:ad:o:vh", opts, NULL)) != -1) {
		err = options_target(opt, "record", &c->targets, &c->all, &c->duration, 31536000);
		if (err < 0)
			return err;
		if (err > 0)
			continue;
		switch (opt) {
		case 'o':
			c->output = optarg;
			break;
		case OPT_FORMAT:
			if (options_format(optarg, &c->format))
				return -EINVAL;
			c->format_set = true;
			break;
		case OPT_MODE: /* imports: how we got here */
			break;
		case OPT_FLOOR:
			c->floor = true;
			break;
		default:
			if ((err = options_common(opt, imports_usage)))
				return err;
			break;
		}
	}
	if (options_no_operands(argc, argv, "record"))
		return -EINVAL;
	if (!c->targets.n && !c->all) {
		log_error("record: say whose imports to record: -p PID or -a");
		return -EINVAL;
	}
	if (!c->format_set)
		options_format_from_name(c->output, &c->format);
	return 0;
}

/* ---- processes ---- */

static struct proc_tree *tree_of(struct imports_cmd *c, int pid)
{
	struct proc_tree *t;
	const struct py_process *p;

	for (size_t i = c->nprocs; i-- > 0;) /* a pid reused: its latest process */
		if (c->procs[i].pid == pid)
			return &c->procs[i];
	if (!(t = intern_grow((void **)&c->procs, &c->procs_cap, c->nprocs, sizeof(*t))))
		return NULL;
	c->nprocs++;
	t->pid = pid;
	p = seen_get(&c->seen, pid);
	snprintf(t->comm, sizeof(t->comm), "%s", p ? p->comm : "python");
	importtree_init(&t->tree);
	return t;
}

static void track(struct imports_cmd *c, const struct py_process *p)
{
	int err = importtrace_track(c->it, p);

	if (err == -ENOTSUP)
		log_info("pid %d (%s, CPython %s): imports unavailable: %s", p->pid, p->comm,
			 p->bin->version, p->bin->caps.no_imports);
	else if (!err)
		log_debug("recording the imports of pid %d (%s)", p->pid, p->comm);
}

static void on_start(const struct py_process *p, uint64_t ktime, void *ctx)
{
	struct imports_cmd *c = ctx;

	(void)ktime;
	seen_add(&c->seen, p);
	if (c->it && (c->all || targets_has(&c->targets, p->pid)))
		track(c, p);
}

static void on_exit_(const struct py_process *p, enum discover_exit_why why, int code,
		     uint64_t ktime, void *ctx)
{
	struct imports_cmd *c = ctx;

	(void)why, (void)code, (void)ktime;
	targets_exited(&c->targets, p->pid);
	if (c->it)
		importtrace_untrack(c->it, p);
}

static int track_existing(const struct py_process *p, void *ctx)
{
	struct imports_cmd *c = ctx;

	seen_add(&c->seen, p);
	if (c->all)
		track(c, p);
	return 0;
}

static bool imports_capable(const struct py_binary *b, const char **why)
{
	*why = b->caps.no_imports;
	return b->caps.imports;
}

/* ---- events ---- */

static int on_import(void *ctx, void *data, size_t len)
{
	struct imports_cmd *c = ctx;
	const struct pyro_import_event *e = data;
	struct importtree_sym frames[PYRO_SEG_FRAMES];
	struct proc_tree *t;
	uint32_t n = 0;

	if (len < sizeof(*e) ||
	    ((e->flags & PYRO_IMPORT_ROOT) && len < sizeof(struct pyro_import_root)))
		return 0;
	if (!c->all && !targets_has(&c->targets, (pid_t)e->pid))
		return 0; /* a child of a target: not asked for */
	c->events++;
	if (!(t = tree_of(c, (int)e->pid)))
		return 0;
	if (e->flags & PYRO_IMPORT_ROOT)
		n = importtrace_importer(c->sym, seen_get(&c->seen, (pid_t)e->pid), data, frames);
	if (importtree_add(&t->tree, e, frames, n))
		c->lost_nodes++;
	return 0;
}

/* ---- output ---- */

static int write_profile(struct imports_cmd *c, FILE *f)
{
	struct profile prof;
	char comment[64];
	const char *comments[] = { comment };
	uint8_t *buf = NULL;
	size_t len;
	int err = profile_init(&prof, 1);

	if (err)
		return err;
	prof.types[0] = "modules", prof.types[1] = "count";
	prof.types[2] = "import", prof.types[3] = "nanoseconds";
	prof.weighted = true;
	prof.folded_weight_div = 1000; /* folded: microseconds */
	prof.start_ns = c->wall_start_ns;
	prof.duration_ns = c->end_ns - c->start_ns;
	for (size_t i = 0; i < c->nprocs && !err; i++)
		err = importtree_profile(&c->procs[i].tree, &prof, c->procs[i].pid,
					 c->procs[i].comm);
	if (!err && c->format == OPTIONS_FOLDED) {
		err = folded_write(&prof, f);
	} else if (!err) {
		snprintf(comment, sizeof(comment), "pyrometer %s", PYROMETER_VERSION);
		err = pprof_encode(&prof, comments, 1, &buf, &len);
		if (!err && fwrite(buf, 1, len, f) != len)
			err = -EIO;
		free(buf);
	}
	profile_free(&prof);
	return err;
}

static void write_table(struct imports_cmd *c, FILE *f)
{
	for (size_t i = 0; i < c->nprocs; i++) {
		fprintf(f, "%spid %d (%s): %zu imports\n", i ? "\n" : "", c->procs[i].pid,
			c->procs[i].comm, c->procs[i].tree.n);
		importtree_print(&c->procs[i].tree, f);
	}
	if (!c->nprocs)
		fprintf(f, "no imports seen\n");
}

static int output(struct imports_cmd *c)
{
	FILE *f = strcmp(c->output, "-") ? fopen(c->output, "we") : stdout;
	int err = 0;

	if (!f) {
		log_error("record: cannot write %s: %s", c->output, strerror(errno));
		return -errno;
	}
	if (c->format == OPTIONS_TABLE)
		write_table(c, f);
	else
		err = write_profile(c, f);
	if (f == stdout) {
		if (fflush(stdout) && !err)
			err = -EIO;
	} else if (fclose(f) && !err) {
		err = -errno;
	}
	if (err)
		log_error("record: cannot write %s: %s", c->output, strerror(-err));
	return err;
}

static void summary(struct imports_cmd *c)
{
	struct importtrace_stats st;
	uint64_t run_ns = 0, run_cnt = 0, *k = st.kernel;

	importtrace_stats(c->it, &st);
	fprintf(stderr,
		"pyrometer: %" PRIu64 " imports from %zu processes in %.1f s; lost: %" PRIu64
		" (ring buffer full), %" PRIu64 " deeper than %d, %" PRIu64
		" without storage, %" PRIu64 " over the per-process limit; %" PRIu64
		" finished imports whose start was not seen\n",
		c->events, c->nprocs, (double)(c->end_ns - c->start_ns) / 1e9,
		k[PYRO_IMP_EVENTS_LOST], k[PYRO_IMP_TOO_DEEP], PYRO_IMPORT_DEPTH,
		k[PYRO_IMP_NO_STORAGE], c->lost_nodes, k[PYRO_IMP_NO_START]);
	importtrace_prog_stats(c->it, &run_ns, &run_cnt);
	if (run_cnt)
		log_info("bpf: %" PRIu64 " runs, %" PRIu64 " ns in all (kernel.bpf_stats_enabled)",
			 run_cnt, run_ns);
	log_info("kernel: starts %" PRIu64 ", dones %" PRIu64 ", arguments unread %" PRIu64
		 ", importer stacks not taken (scratch busy) %" PRIu64,
		 k[PYRO_IMP_STARTS], k[PYRO_IMP_DONES], k[PYRO_IMP_ARG_FAULT],
		 k[PYRO_IMP_STACK_BUSY]);
}

/* ---- running ---- */

static int start(struct imports_cmd *c)
{
	struct discover_ops ops = { .on_start = on_start, .on_exit = on_exit_, .ctx = c };
	struct importtrace_opts io = { .all = c->all, .linger_ns = UINT64_MAX, .floor = c->floor };
	int err, i;

	if ((err = evloop_new(&c->loop)) || (err = discover_new(&ops, c->loop, &c->disc)) ||
	    (err = discover_start_live(c->disc)) || (err = discover_scan(c->disc)) ||
	    (err = targets_check(&c->targets, c->disc, "record", "import tracing",
				 imports_capable)) ||
	    (err = symbolizer_new(&c->sym)))
		return err;
	io.procs_fd = discover_procs_map_fd(c->disc);
	if ((err = importtrace_new(&io, &c->it)) ||
	    (err = evloop_add_ring(c->loop, importtrace_events_fd(c->it), on_import, c)))
		return err;
	for (i = 0; i < c->targets.n; i++) {
		const struct py_process *p = discover_get(c->disc, c->targets.pid[i]);

		if (!p || discover_set_flags(c->disc, p->pid, PYRO_PROC_IMPORTS)) {
			log_error("record: pid %d exited before recording started",
				  c->targets.pid[i]);
			return -ESRCH;
		}
		if ((err = importtrace_track(c->it, p)))
			return err;
	}
	discover_for_each(c->disc, track_existing, c);
	if (c->all)
		importtrace_pin_installed(c->it);
	return 0;
}

static int run(struct imports_cmd *c)
{
	uint64_t end;
	int err;

	if ((err = start(c)))
		return err;
	c->start_ns = monotonic_ns();
	c->wall_start_ns = realtime_ns();
	end = c->duration > 0 ? c->start_ns + (uint64_t)(c->duration * 1e9) : UINT64_MAX;
	log_info("recording imports; Ctrl-C to stop");
	while (!signals_stop_requested && (c->all || !targets_all_gone(&c->targets))) {
		uint64_t now = monotonic_ns(), wait = end - now;

		if (now >= end)
			break;
		err = discover_poll(c->disc, wait > 200000000ull ? 200 : (int)(wait / 1000000) + 1);
		if (err < 0 && err != -EINTR)
			return err;
		symbolizer_next_generation(c->sym); /* code object addresses may be reused */
	}
	evloop_drain(c->loop);
	c->end_ns = monotonic_ns();
	err = output(c);
	if (!err)
		summary(c);
	return err;
}

int cmd_imports(int argc, char **argv)
{
	struct imports_cmd *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return 1;
	c->output = "-";
	err = parse_args(argc, argv, c);
	if (err) {
		free(c);
		return err > 0 ? 0 : 2;
	}
	if (privs_require(PRIV_BPF | PRIV_PERFMON | PRIV_SYS_PTRACE | PRIV_SYS_ADMIN, "record")) {
		free(c);
		return 1;
	}
	signals_handle_stop();
	seen_init(&c->seen);
	err = run(c);
	importtrace_free(c->it);
	symbolizer_free(c->sym);
	discover_free(c->disc);
	evloop_free(c->loop);
	seen_free(&c->seen);
	for (size_t i = 0; i < c->nprocs; i++)
		importtree_free(&c->procs[i].tree);
	free(c->procs);
	free(c);
	return err ? 1 : 0;
}
