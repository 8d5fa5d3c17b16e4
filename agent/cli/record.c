// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer record: CPU profiles of Python processes, written as pprof, folded stacks or an
 * SVG flame graph: agent/cpu/cpuprof.c does the sampling, this file the options and the output.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/commands.h"
#include "base/version.h"
#include "base/signals.h"
#include "cpu/cpuprof.h"
#include "profile/flamegraph.h"
#include "profile/folded.h"
#include "profile/intern.h"
#include "base/log.h"
#include "profile/pprof.h"
#include "base/privs.h"
#include "profile/profile.h"
#include "cli/options.h"
#include "cli/targets.h"

#define DRAIN_MS 200 /* short, so that little is left unsymbolized when a process exits */

static const char record_usage[] =
	"usage: pyrometer record [-p PID]... [-a] [-d SECONDS] [-F HZ] [-o FILE]\n"
	"                        [--format pprof|folded|svg] [--mode cpu|wall|calls|imports]\n"
	"                        [-v]\n"
	"\n"
	"Samples the on-CPU Python stacks of the given processes (and the processes they fork),\n"
	"or of every Python process on the host with -a (including ones that start later and ones\n"
	"in containers), and writes a CPU profile.\n"
	"\n"
	"  -p, --pid PID         profile this process (repeatable)\n"
	"  -a, --all             profile every Python process\n"
	"  -d, --duration SECS   stop after this long (default: Ctrl-C, or when every -p process\n"
	"                        has exited)\n"
	"  -F, --frequency HZ    samples per second per CPU (default 99, at most 10000)\n"
	"  -o, --output FILE     where to write (default pyrometer.pb.gz; '-' is standard output)\n"
	"      --format FMT      pprof (gzip'd protobuf), folded (one line per stack) or svg\n"
	"                        (flame graph); by default from FILE's extension: .pb.gz/.pprof,\n"
	"                        .folded/.txt, .svg\n"
	"      --mode MODE       cpu (sampling, the default); wall (CPU samples plus every\n"
	"                        stretch a thread spends off the CPU, with its stack and a\n"
	"                        [gil] or [off-cpu] leaf: a profile of wall time per thread,\n"
	"                        microseconds in folded); calls (exact function calls from\n"
	"                        CPython's probes: see 'record --mode calls --help'); or\n"
	"                        imports (the import tree and its times from CPython's probes:\n"
	"                        see 'record --mode imports --help')\n"
	"  -v                    verbose (repeat for debug output)\n"
	"  -h, --help            this help\n";

enum out_format {
	FMT_UNSET,
	FMT_PPROF,
	FMT_FOLDED,
	FMT_SVG
};

struct record {
	struct targets targets;
	bool all;
	double duration;
	int freq;
	bool wall; /* --mode wall */
	const char *output;
	enum out_format format;

	struct cpuprof *cpu;
	struct profile prof;
};

/* ---- options ---- */

static int parse_format(const char *s, enum out_format *f)
{
	if (!strcmp(s, "pprof"))
		*f = FMT_PPROF;
	else if (!strcmp(s, "folded"))
		*f = FMT_FOLDED;
	else if (!strcmp(s, "svg"))
		*f = FMT_SVG;
	else
		return -EINVAL;
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

static int format_from_name(const char *name, enum out_format *f)
{
	if (ends_with(name, ".pb.gz") || ends_with(name, ".pprof") || ends_with(name, ".pb"))
		*f = FMT_PPROF;
	else if (ends_with(name, ".folded") || ends_with(name, ".txt"))
		*f = FMT_FOLDED;
	else if (ends_with(name, ".svg"))
		*f = FMT_SVG;
	else
		return -EINVAL;
	return 0;
}

static int parse_number(const char *what, const char *s, double min, double max, double *out)
{
	return options_number("record", what, s, min, max, out);
}

static int parse_args(int argc, char **argv, struct record *r)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "all", no_argument, NULL, 'a' },
		{ "duration", required_argument, NULL, 'd' },
		{ "frequency", required_argument, NULL, 'F' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "mode", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	double v;
	int opt, err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "p:ad:F:o:vh", opts, NULL)) != -1) {
		err = options_target(opt, "record", &r->targets, &r->all, &r->duration, 31536000);
		if (err < 0)
			return err;
		if (err > 0)
			continue;
		switch (opt) {
		case 'F':
			if (parse_number("the frequency (-F)", optarg, 1, 10000, &v) ||
			    v != floor(v))
				return -EINVAL;
			r->freq = (int)v;
			break;
		case 'o':
			r->output = optarg;
			break;
		case 'm': /* calls is dispatched before this parser runs */
			if (strcmp(optarg, "cpu") && strcmp(optarg, "wall")) {
				log_error("record: --mode must be cpu, wall, calls or imports, not "
					  "'%s'",
					  optarg);
				return -EINVAL;
			}
			r->wall = !strcmp(optarg, "wall");
			break;
		case 'f':
			if (parse_format(optarg, &r->format)) {
				log_error("record: --format must be pprof, folded or svg, not '%s'",
					  optarg);
				return -EINVAL;
			}
			break;
		default:
			if ((err = options_common(opt, record_usage)))
				return err;
			break;
		}
	}
	if (options_no_operands(argc, argv, "record"))
		return -EINVAL;
	if (!r->targets.n && !r->all) {
		log_error("record: say what to profile: -p PID or -a");
		return -EINVAL;
	}
	if (r->format == FMT_UNSET && format_from_name(r->output, &r->format)) {
		log_error("record: cannot tell the format of '%s' from its name: use --format",
			  r->output);
		return -EINVAL;
	}
	return 0;
}

/* ---- processes ---- */

static void on_exit_(const struct py_process *p, enum discover_exit_why why, int code,
		     uint64_t ktime, void *ctx)
{
	struct record *r = ctx;

	(void)why;
	(void)code;
	(void)ktime;
	targets_exited(&r->targets, p->pid);
}

static struct profile *profile_for(const struct py_process *p, void *ctx)
{
	struct record *r = ctx;

	(void)p;
	return &r->prof;
}

static bool cpu_capable(const struct py_binary *b, const char **why)
{
	*why = b->caps.no_cpu;
	return b->caps.cpu;
}

static int check_targets(struct record *r)
{
	struct discover *d = cpuprof_discover(r->cpu);
	int i, err = targets_check(&r->targets, d, "record", "CPU sampling", cpu_capable);

	for (i = 0; !err && i < r->targets.n; i++) {
		if (discover_set_flags(d, r->targets.pid[i], PYRO_PROC_SAMPLE)) {
			log_error("record: pid %d exited before sampling started",
				  r->targets.pid[i]);
			err = -ESRCH;
		}
	}
	return err;
}

/* ---- output ---- */

static int write_output(struct record *r, FILE *f)
{
	uint8_t *buf;
	size_t len;
	char comment[64];
	const char *comments[] = { comment };
	int err;

	switch (r->format) {
	case FMT_PPROF:
		snprintf(comment, sizeof(comment), "pyrometer %s", PYROMETER_VERSION);
		err = pprof_encode(&r->prof, comments, 1, &buf, &len);
		if (err)
			return err;
		err = fwrite(buf, 1, len, f) == len ? 0 : -EIO;
		free(buf);
		return err;
	case FMT_FOLDED:
		return folded_write(&r->prof, f);
	default:
		return flamegraph_write(&r->prof, "pyrometer CPU profile", f);
	}
}

/* Writes into what is there already when that is not a regular file: renaming over a
 * device or a FIFO would replace it (as root, `-o /dev/null` replaced /dev/null with a
 * regular file, which then filled /dev). */
static int save_into(struct record *r)
{
	FILE *f = fopen(r->output, "we");
	int err;

	if (!f) {
		err = -errno;
		log_error("record: cannot write %s: %s", r->output, strerror(errno));
		return err;
	}
	err = write_output(r, f);
	if (fclose(f) && !err)
		err = -errno;
	if (err)
		log_error("record: cannot write %s: %s", r->output, strerror(-err));
	return err;
}

/* Writes a regular file under a temporary name and renames it, so a reader never sees half
 * a profile. */
static int save(struct record *r)
{
	char tmp[4096];
	struct stat st;
	FILE *f;
	int err;

	if (!strcmp(r->output, "-"))
		return write_output(r, stdout) || fflush(stdout) ? -EIO : 0;
	if (!stat(r->output, &st) && !S_ISREG(st.st_mode))
		return save_into(r);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", r->output, getpid());
	f = fopen(tmp, "we");
	if (!f) {
		err = -errno;
		log_error("record: cannot write %s: %s", tmp, strerror(errno));
		return err;
	}
	err = write_output(r, f);
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, r->output))
		err = -errno;
	if (err) {
		log_error("record: cannot write %s: %s", r->output, strerror(-err));
		unlink(tmp);
	}
	return err;
}

static size_t sampled_processes(const struct profile *p)
{
	struct intern pids;
	size_t i, n;

	intern_init(&pids);
	for (i = 0; i < p->samples.n; i++)
		intern_put(&pids, &profile_sample_at(p, (uint32_t)i)->pid, sizeof(int32_t));
	n = pids.n;
	intern_free(&pids);
	return n;
}

static void summary(struct record *r, double secs)
{
	struct sampler *sampler = cpuprof_sampler(r->cpu);
	struct cpuprof_totals t;
	struct sampler_stats st;
	uint64_t run_ns = 0, run_cnt = 0;
	static const char *const fmt[] = { "", "pprof", "folded", "svg" };

	cpuprof_totals(r->cpu, &t);
	sampler_stats(sampler, &st);
	fprintf(stderr,
		"pyrometer: %" PRIu64 " samples from %zu processes in %.1f s, %" PRIu64
		" lost, %.1f%% of stacks resolved; wrote %s (%s)\n",
		t.samples, sampled_processes(&r->prof), secs, t.lost,
		t.samples ? 100.0 * (double)t.resolved / (double)t.samples : 100.0,
		strcmp(r->output, "-") ? r->output : "standard output", fmt[r->format]);
	if (r->wall)
		fprintf(stderr,
			"pyrometer: off the CPU: %.3f s waiting for the GIL, %.3f s otherwise; "
			"%" PRIu64 " stretches lost\n",
			(double)t.gil_ns / 1e9, (double)t.off_cpu_ns / 1e9,
			st.kernel[PYRO_CPU_WAITS_FULL] + st.kernel[PYRO_CPU_WAIT_NO_STORAGE] +
				st.kernel[PYRO_CPU_WAIT_NO_STACK] + st.lost_waits);
	if (!sampler_prog_stats(sampler, &run_ns, &run_cnt) && run_cnt)
		log_info("bpf: %" PRIu64 " runs, %" PRIu64 " ns in all (kernel.bpf_stats_enabled)",
			 run_cnt, run_ns);
	if (!sampler_switch_stats(sampler, &run_ns, &run_cnt) && run_cnt)
		log_info("bpf switch: %" PRIu64 " runs, %" PRIu64 " ns in all, %" PRIu64
			 " switch-outs of sampled threads walked",
			 run_cnt, run_ns, st.kernel[PYRO_CPU_SWITCHES]);
	log_info("kernel: samples %" PRIu64 ", other tasks %" PRIu64 ", no tstate %" PRIu64
		 ", runtime unreadable %" PRIu64 ", tstate unreadable %" PRIu64
		 ", frame unreadable %" PRIu64 ", truncated %" PRIu64 ", no layout %" PRIu64,
		 st.kernel[PYRO_CPU_SAMPLES], st.kernel[PYRO_CPU_OTHER],
		 st.kernel[PYRO_CPU_NO_TSTATE], st.kernel[PYRO_CPU_READ_RUNTIME],
		 st.kernel[PYRO_CPU_READ_TSTATE], st.kernel[PYRO_CPU_READ_FRAME],
		 st.kernel[PYRO_CPU_TRUNCATED], st.kernel[PYRO_CPU_NO_LAYOUT]);
	log_info("lost: stacks map full %" PRIu64 ", counts map full %" PRIu64
		 ", stack not found %" PRIu64,
		 st.kernel[PYRO_CPU_STACKS_FULL], st.kernel[PYRO_CPU_COUNTS_FULL], st.lost_stacks);
	log_info("reads: windows %" PRIu64 ", pages %" PRIu64 ", single frames %" PRIu64
		 ", chunks entered %" PRIu64 ", chunk headers unreadable %" PRIu64,
		 st.kernel[PYRO_CPU_WINDOW_READS], st.kernel[PYRO_CPU_PAGE_READS],
		 st.kernel[PYRO_CPU_FRAME_READS], st.kernel[PYRO_CPU_CHUNKS_ENTERED],
		 st.kernel[PYRO_CPU_READ_CHUNK]);
	log_info("gc: samples while collecting %" PRIu64 ", gc state unreadable %" PRIu64,
		 st.kernel[PYRO_CPU_GC], st.kernel[PYRO_CPU_READ_GC]);
}

static int sample_loop(struct record *r)
{
	uint64_t start = monotonic_ns(), next_drain = start + DRAIN_MS * 1000000ull;
	uint64_t end = r->duration > 0 ? start + (uint64_t)(r->duration * 1e9) : UINT64_MAX;
	int err;

	while (!signals_stop_requested && (r->all || !targets_all_gone(&r->targets))) {
		uint64_t now = monotonic_ns(), until = next_drain < end ? next_drain : end;

		if (now >= end)
			break;
		err = cpuprof_poll(r->cpu, (int)((until - now) / 1000000) + 1);
		if (err < 0 && err != -EINTR)
			return err;
		if (monotonic_ns() >= next_drain) {
			if ((err = cpuprof_drain(r->cpu)))
				return err;
			next_drain = monotonic_ns() + DRAIN_MS * 1000000ull;
		}
	}
	return cpuprof_drain(r->cpu);
}

/* Fails now, not after a long recording, if the output cannot be written. */
static int check_output(const struct record *r)
{
	char dir[4096], *slash;

	if (!strcmp(r->output, "-"))
		return 0;
	snprintf(dir, sizeof(dir), "%s", r->output);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (access(dir, W_OK | X_OK)) {
		log_error("record: cannot write into '%s': %s", dir, strerror(errno));
		return -errno;
	}
	return 0;
}

static int run(struct record *r)
{
	struct cpuprof_ops ops = { .profile_for = profile_for,
				   .wait_profile_for = r->wall ? profile_for : NULL,
				   .on_exit = on_exit_,
				   .ctx = r };
	uint64_t t0;
	int err;

	if ((err = check_output(r)) || (err = profile_init(&r->prof, 1000000000ull / r->freq)) ||
	    (err = cpuprof_new(&ops, &r->cpu)) || (err = check_targets(r)) ||
	    (err = cpuprof_sample(r->cpu, r->freq, r->all)))
		return err;
	if (r->wall) { /* before the first drain */
		/* a CPU sample weighs its period, an off-CPU stretch its length */
		r->prof.types[0] = "samples", r->prof.types[1] = "count";
		r->prof.types[2] = "wall", r->prof.types[3] = "nanoseconds";
		r->prof.weighted = true;
		r->prof.folded_weight_div = 1000; /* folded: microseconds */
	}
	r->prof.start_ns = realtime_ns();
	t0 = monotonic_ns();
	log_info("sampling at %d Hz%s; Ctrl-C to stop", r->freq,
		 r->wall ? " and timing off-CPU stretches" : "");
	err = sample_loop(r);
	r->prof.duration_ns = monotonic_ns() - t0;
	if (err)
		return err;
	err = save(r);
	if (!err)
		summary(r, (double)r->prof.duration_ns / 1e9);
	return err;
}

/* --mode calls and --mode imports are other tools with their own options
 * (agent/cli/record_calls.c, record_imports.c). */
static bool mode_is(int argc, char **argv, const char *mode)
{
	char eq[32];

	snprintf(eq, sizeof(eq), "--mode=%s", mode);
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], eq) ||
		    (!strcmp(argv[i], "--mode") && i + 1 < argc && !strcmp(argv[i + 1], mode)))
			return true;
	return false;
}

int cmd_record(int argc, char **argv)
{
	struct record r = { .freq = 99, .output = "pyrometer.pb.gz" };
	int err;

	if (mode_is(argc, argv, "calls"))
		return cmd_calls(argc, argv);
	if (mode_is(argc, argv, "imports"))
		return cmd_imports(argc, argv);
	err = parse_args(argc, argv, &r);

	if (err)
		return err > 0 ? 0 : 2;
	if (privs_require(PRIV_BPF | PRIV_PERFMON | PRIV_SYS_PTRACE, "record"))
		return 1;
	signals_handle_stop();
	err = run(&r);
	cpuprof_free(r.cpu);
	profile_free(&r.prof);
	return err ? 1 : 0;
}
