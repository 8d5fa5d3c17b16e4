// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "daemon/selfmetrics.h"

#include <inttypes.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/bpfload.h"
#include "base/text.h"
#include "base/version.h"

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help, double v)
{
	head(f, name, type, help);
	fprintf(f, "%s %.17g\n", name, v);
}

static void labelled(FILE *f, const char *name, const char *label, const char *value, uint64_t v)
{
	fprintf(f, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, value, v);
}

static void sampling(const struct self_figures *s, FILE *f)
{
	const uint64_t *k = s->sampler.kernel;

	one(f, "pyrometer_sampling_frequency_hz", "gauge", "CPU samples per second per CPU.",
	    s->frequency);
	one(f, "pyrometer_processes_tracked", "gauge", "Python processes tracked now.",
	    (double)s->processes);
	one(f, "pyrometer_samples_total", "counter", "CPU samples of Python processes drained.",
	    (double)s->cpu.samples);
	head(f, "pyrometer_samples_lost_total", "counter",
	     "CPU samples lost, by where (kernel: a map was full; user: the stack was gone).");
	labelled(f, "pyrometer_samples_lost_total", "where", "kernel",
		 k[PYRO_CPU_STACKS_FULL] + k[PYRO_CPU_COUNTS_FULL]);
	labelled(f, "pyrometer_samples_lost_total", "where", "user", s->sampler.lost_stacks);
	head(f, "pyrometer_unwind_failures_total", "counter",
	     "Python stack walks that failed or were cut short, by reason.");
	labelled(f, "pyrometer_unwind_failures_total", "reason", "no_layout",
		 k[PYRO_CPU_NO_LAYOUT]);
	labelled(f, "pyrometer_unwind_failures_total", "reason", "runtime_unreadable",
		 k[PYRO_CPU_READ_RUNTIME]);
	labelled(f, "pyrometer_unwind_failures_total", "reason", "no_thread_state",
		 k[PYRO_CPU_NO_TSTATE]);
	labelled(f, "pyrometer_unwind_failures_total", "reason", "thread_state_unreadable",
		 k[PYRO_CPU_READ_TSTATE]);
	labelled(f, "pyrometer_unwind_failures_total", "reason", "frame_unreadable",
		 k[PYRO_CPU_READ_FRAME]);
	labelled(f, "pyrometer_unwind_failures_total", "reason", "truncated",
		 k[PYRO_CPU_TRUNCATED]);
	labelled(f, "pyrometer_unwind_failures_total", "reason", "gc_state_unreadable",
		 k[PYRO_CPU_READ_GC]);
	labelled(f, "pyrometer_unwind_failures_total", "reason", "chunk_unreadable",
		 k[PYRO_CPU_READ_CHUNK]);
	one(f, "pyrometer_stacks_resolved_total", "counter",
	    "Samples whose stack was walked and symbolized without a failure.",
	    (double)s->cpu.resolved);
	head(f, "pyrometer_symbolize_failures_total", "counter",
	     "Frames (CPU, off-CPU, GC, import stacks) that could not be named, by reason; each "
	     "shows as a pseudo-frame.");
	for (int i = 0; i < SYM_FAIL_MAX; i++)
		labelled(f, "pyrometer_symbolize_failures_total", "reason",
			 symbolizer_failure_label(i), s->sym.failed[i]);
}

static void failures(const struct self_figures *s, FILE *f)
{
	const uint64_t *d = s->disc.kernel;

	head(f, "pyrometer_attach_failures_total", "counter",
	     "Things that could not be attached or inspected, by reason.");
	labelled(f, "pyrometer_attach_failures_total", "reason", "inspect_binary",
		 s->disc.inspect_failed);
	labelled(f, "pyrometer_attach_failures_total", "reason", "gc_probes",
		 s->have_gc ? s->gc.attach_failed : 0);
	head(f, "pyrometer_map_full_total", "counter",
	     "Kernel map or ring buffer full: an entry or event was lost, by map.");
	labelled(f, "pyrometer_map_full_total", "map", "cpu_stacks",
		 s->sampler.kernel[PYRO_CPU_STACKS_FULL]);
	labelled(f, "pyrometer_map_full_total", "map", "cpu_counts",
		 s->sampler.kernel[PYRO_CPU_COUNTS_FULL]);
	labelled(f, "pyrometer_map_full_total", "map", "cpu_new_stacks",
		 s->sampler.kernel[PYRO_CPU_NEW_STACK_DROPPED]);
	labelled(f, "pyrometer_map_full_total", "map", "procs", d[PYRO_DISC_PIDMAP_FULL]);
	labelled(f, "pyrometer_map_full_total", "map", "proc_events",
		 d[PYRO_DISC_RINGBUF_FULL_EXEC] + d[PYRO_DISC_RINGBUF_FULL_FORK] +
			 d[PYRO_DISC_RINGBUF_FULL_EXIT]);
	if (s->have_gc) {
		labelled(f, "pyrometer_map_full_total", "map", "gc_inflight",
			 s->gc.kernel[PYRO_GC_INFLIGHT_FULL]);
		labelled(f, "pyrometer_map_full_total", "map", "gc_stats",
			 s->gc.kernel[PYRO_GC_STATS_FULL]);
		labelled(f, "pyrometer_map_full_total", "map", "gc_hist",
			 s->gc.kernel[PYRO_GC_HIST_FULL]);
		labelled(f, "pyrometer_map_full_total", "map", "gc_events",
			 s->gc.kernel[PYRO_GC_EVENTS_LOST]);
	}
	one(f, "pyrometer_discovery_resyncs_total", "counter",
	    "/proc rescans after the kernel lost process events.", (double)s->disc.resyncs);
	one(f, "pyrometer_discovery_swept_total", "counter",
	    "Pid map entries of gone processes removed by the periodic sweep.",
	    (double)s->disc.swept);
	one(f, "pyrometer_discovery_notes_total", "counter",
	    "Processes not known as Python looked at again on a hint: seen on a CPU with new "
	    "mappings, or running an installed interpreter's GC or import probes.",
	    (double)s->disc.notes);
	one(f, "pyrometer_discovery_notes_found_total", "counter",
	    "Python processes found so: interpreters that arrived by dlopen.",
	    (double)s->disc.notes_found);
}

static void exports(const struct self_figures *s, FILE *f)
{
	one(f, "pyrometer_profiles_total", "counter",
	    "Profiles encoded (one per service per interval, and per call window).",
	    (double)s->profiles);
	head(f, "pyrometer_exports_total", "counter", "Profile exports, by sink and result.");
	if (s->have_store) {
		fprintf(f,
			"pyrometer_exports_total{sink=\"store\",result=\"written\"} %" PRIu64 "\n",
			s->store.written);
		fprintf(f,
			"pyrometer_exports_total{sink=\"store\",result=\"failed\"} %" PRIu64 "\n",
			s->store.write_failed);
	}
	if (s->have_shipper) {
		fprintf(f,
			"pyrometer_exports_total{sink=\"pyroscope\",result=\"delivered\"} %" PRIu64
			"\npyrometer_exports_total{sink=\"pyroscope\",result=\"rejected\"} %" PRIu64
			"\npyrometer_exports_total{sink=\"pyroscope\",result=\"failed_attempt\"} "
			"%" PRIu64 "\n",
			s->ship.delivered, s->ship.rejected, s->ship.failed_attempts);
		one(f, "pyrometer_spool_bytes", "gauge", "Bytes of undelivered profiles on disk.",
		    (double)s->spool.bytes);
		one(f, "pyrometer_spool_profiles", "gauge", "Undelivered profiles on disk.",
		    (double)s->spool.files);
		one(f, "pyrometer_spool_dropped_total", "counter",
		    "Undelivered profiles dropped to stay under the spool cap.",
		    (double)s->spool.dropped);
		one(f, "pyrometer_spool_write_failures_total", "counter",
		    "Undelivered profiles lost because the spool could not be written (disk "
		    "full?).",
		    (double)s->spool.write_failed);
		one(f, "pyrometer_spool_corrupt_total", "counter",
		    "Spooled profiles found torn or corrupt (removed, not sent).",
		    (double)s->spool.corrupt);
		one(f, "pyrometer_queue_profiles", "gauge", "Profiles waiting in memory.",
		    (double)s->ship.queued);
	}
	head(f, "pyrometer_last_export_success_timestamp_seconds", "gauge",
	     "Unix time of the last successful export, by sink (0: none yet).");
	if (s->have_store)
		labelled(f, "pyrometer_last_export_success_timestamp_seconds", "sink", "store",
			 s->last_store_unix);
	if (s->have_shipper)
		labelled(f, "pyrometer_last_export_success_timestamp_seconds", "sink", "pyroscope",
			 s->ship.last_success_unix);
}

static void call_windows(const struct self_figures *s, FILE *f)
{
	if (!s->have_calls)
		return;
	one(f, "pyrometer_call_windows_total", "counter",
	    "Call-tracing windows run (calls-window), with at least one process traced.",
	    (double)s->calls.windows);
	one(f, "pyrometer_call_windows_failed_total", "counter",
	    "Call-tracing windows that could not start (the tracer did not load).",
	    (double)s->calls.failed);
	one(f, "pyrometer_call_windows_deferred_total", "counter",
	    "Call-tracing windows left out to keep within calls-budget.",
	    (double)s->calls.deferred);
	one(f, "pyrometer_call_probe_hits_total", "counter",
	    "Function probe hits traced in call windows.", (double)s->calls.hits);
	one(f, "pyrometer_call_cost_seconds_total", "counter",
	    "Time call windows cost the traced processes: probe hits x the measured cost of one.",
	    s->calls.cost_s);
	one(f, "pyrometer_call_probe_hit_seconds", "gauge",
	    "What one probe hit costs the traced process (trap and program), measured at the "
	    "latest call window's start.",
	    s->calls.ns_per_hit / 1e9);
}

static void own_cost(FILE *f)
{
	struct rusage ru;
	long pages = 0;
	FILE *statm = fopen("/proc/self/statm", "re");

	if (statm) {
		if (fscanf(statm, "%*d %ld", &pages) != 1)
			pages = 0;
		fclose(statm);
	}
	getrusage(RUSAGE_SELF, &ru);
	one(f, "pyrometer_cpu_seconds_total", "counter", "CPU time the agent used (user + system).",
	    (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	one(f, "pyrometer_resident_memory_bytes", "gauge", "The agent's resident set size.",
	    (double)pages * (double)sysconf(_SC_PAGESIZE));
	head(f, "pyrometer_build_info", "gauge", "pyrometer's version and the kernel it runs on.");
	fprintf(f, "pyrometer_build_info{version=\"%s\",kernel=\"", PYROMETER_VERSION);
	text_label_value(f, kernel_release());
	fputs("\"} 1\n", f);
}

static void capabilities(const struct self_figures *s, FILE *f)
{
	head(f, "pyrometer_capability_available", "gauge",
	     "1 if the capability runs, 0 if not, with the reason (a kernel without a BPF "
	     "feature it needs, or the configuration).");
	for (int c = 0; c < KERNEL_CAP_MAX; c++) {
		fprintf(f, "pyrometer_capability_available{capability=\"%s\",reason=\"",
			kernel_cap_name(c));
		text_label_value(f, s->off[c] ? s->off[c] : "");
		fprintf(f, "\"} %d\n", !s->off[c]);
	}
}

/* What each loaded BPF program cost the verifier on this kernel (base/bpfload.h). */
static void bpf_programs(FILE *f)
{
	int i, n;
	const struct bpfload_prog *p = bpfload_programs(&n);

	head(f, "pyrometer_bpf_verified_insns", "gauge",
	     "Instructions the kernel's verifier processed to load each BPF program "
	     "(0: the kernel does not say).");
	for (i = 0; i < n; i++)
		fprintf(f, "pyrometer_bpf_verified_insns{program=\"%s/%s\"} %llu\n", p[i].object,
			p[i].program, (unsigned long long)p[i].verified_insns);
	head(f, "pyrometer_bpf_load_seconds", "gauge",
	     "Time the kernel took to load each BPF program, most of it verification.");
	for (i = 0; i < n; i++)
		fprintf(f, "pyrometer_bpf_load_seconds{program=\"%s/%s\"} %.6f\n", p[i].object,
			p[i].program, (double)p[i].load_ns / 1e9);
}

void selfmetrics_write(const struct self_figures *s, FILE *f)
{
	sampling(s, f);
	failures(s, f);
	exports(s, f);
	call_windows(s, f);
	capabilities(s, f);
	bpf_programs(f);
	own_cost(f);
}
