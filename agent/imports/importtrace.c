// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "imports/importtrace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/bpfload.h"
#include "base/bpfstats.h"
#include "base/kernel.h"
#include "base/log.h"
#include "imports.skel.h"
#include "imports/importtree.h"
#include "procs/discover.h"
#include "python/py_binary.h"
#include "python/symbolizer.h"

struct importtrace {
	struct imports_bpf *skel;
	struct bpf_program *start, *done; /* the variants loaded (bpfload_pick) */
	struct binattach *bins;
};

/* The start's cookie fetches the module name (argument 0); the done's the found flag
 * (argument 1): the name was kept at the start. */
static int new_bins(struct importtrace *t, uint64_t linger_ns)
{
	struct binattach_opts ao = {
		.what = "import",
		.probes = { { "import__find__load__start", 0, t->start },
			    { "import__find__load__done", 1, t->done } },
		.nprobes = 2,
		.max_uprobes = IMPORT_MAX_UPROBES,
		.linger_ns = linger_ns,
	};

	return binattach_new(&ao, &t->bins);
}

int importtrace_new(const struct importtrace_opts *o, struct importtrace **out)
{
	struct importtrace *t;
	int err = kernel_require(KERNEL_CAP_IMPORTS, "imports");

	if (err)
		return err;
	if (!(t = calloc(1, sizeof(*t))))
		return -ENOMEM;
	t->skel = imports_bpf__open();
	if (!t->skel) {
		err = -errno;
		goto fail;
	}
	t->skel->rodata->imports_all = o->all;
	t->skel->rodata->floor_only = o->floor;
	t->start = bpfload_pick(t->skel->progs.on_import_start,
				t->skel->progs.on_import_start_nopreempt);
	t->done = bpfload_pick(t->skel->progs.on_import_done,
			       t->skel->progs.on_import_done_nopreempt);
	err = bpf_map__reuse_fd(t->skel->maps.procs, o->procs_fd);
	if (!err)
		err = bpfload_done(t->skel->obj, "imports", imports_bpf__load(t->skel));
	if (err) {
		log_error("cannot load the import tracing BPF program: %s", strerror(-err));
		kernel_refused(KERNEL_CAP_IMPORTS, err);
		goto fail;
	}
	if ((err = new_bins(t, o->linger_ns)))
		goto fail;
	*out = t;
	return 0;
fail:
	importtrace_free(t);
	return err;
}

void importtrace_free(struct importtrace *t)
{
	if (!t)
		return;
	binattach_free(t->bins);
	imports_bpf__destroy(t->skel);
	free(t);
}

int importtrace_track(struct importtrace *t, const struct py_process *p)
{
	if (!p->bin->caps.imports)
		return -ENOTSUP;
	return binattach_track(t->bins, p);
}

void importtrace_untrack(struct importtrace *t, const struct py_process *p)
{
	if (p->bin->caps.imports)
		binattach_untrack(t->bins, p);
}

void importtrace_expire(struct importtrace *t)
{
	binattach_expire(t->bins);
}

static bool has_imports(const struct py_binary *b)
{
	return b->caps.imports;
}

void importtrace_pin_installed(struct importtrace *t)
{
	binattach_pin_installed(t->bins, has_imports);
}

uint64_t importtrace_since(struct importtrace *t, const struct py_process *p)
{
	return binattach_since(t->bins, p);
}

int importtrace_hand_over(struct importtrace *t)
{
	return binattach_hand_over(t->bins);
}

int importtrace_events_fd(const struct importtrace *t)
{
	return bpf_map__fd(t->skel->maps.import_events);
}

void importtrace_stats(struct importtrace *t, struct importtrace_stats *st)
{
	memset(st, 0, sizeof(*st));
	binattach_stats(t->bins, &st->bins);
	bpfstats_percpu_sum(t->skel->maps.import_counters, PYRO_IMP_COUNTER_MAX, st->kernel);
}

void importtrace_prog_stats(struct importtrace *t, uint64_t *run_ns, uint64_t *run_cnt)
{
	*run_ns = *run_cnt = 0;
	bpfstats_prog_runs(t->start, run_ns, run_cnt);
	bpfstats_prog_runs(t->done, run_ns, run_cnt);
}

uint32_t importtrace_importer(struct symbolizer *sym, const struct py_process *p,
			      const struct pyro_import_root *e, struct importtree_sym *out)
{
	struct py_target target;
	struct py_frame_sym fs;
	uint32_t n = 0;

	if (!p)
		return 0;
	target = discover_target(p);
	for (uint32_t i = 0; i < e->stack.depth && i < PYRO_SEG_FRAMES; i++, n++) {
		symbolizer_frame(sym, &target, e->stack.frames[i] & PYRO_FRAME_CODE_MASK,
				 (uint32_t)(e->stack.frames[i] >> PYRO_FRAME_INSTR_SHIFT), &fs);
		out[n] = (struct importtree_sym){ fs.name, fs.file, fs.line, fs.firstlineno };
	}
	return n;
}
