// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer inspect --bpf: loads every BPF object as the daemon does with every capability
 * on (then unloads it) and prints what each program cost this kernel's verifier, one JSON
 * object per program. The figures differ between kernel builds by orders of magnitude;
 * this is how to read them on a host before deploying, and what the kernel matrix checks
 * against its budget. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/bpfload.h"
#include "base/json.h"
#include "base/kernel.h"
#include "base/log.h"
#include "cli/commands.h"
/* the skeletons' global data uses the shared BPF types */
#include <linux/types.h>
#include "pyrometer.h"
#include "calls.skel.h"
#include "cpu.skel.h"
#include "discover.skel.h"
#include "gc.skel.h"
#include "imports.skel.h"

/* Each object's load, its programs' autoload set as the daemon sets them with everything
 * on (the off-CPU program included, each uprobe program's variant picked as the tracers
 * pick it). */
static int load_discover(void)
{
	struct discover_bpf *s = discover_bpf__open();
	int err = s ? bpfload_done(s->obj, "discover", discover_bpf__load(s)) : -errno;

	discover_bpf__destroy(s);
	return err;
}

static int load_cpu(void)
{
	struct cpu_bpf *s = cpu_bpf__open();
	int err;

	if (!s)
		return -errno;
	s->rodata->sample_all = true; /* as the daemon's rodata, so the same code verifies */
	s->rodata->note_all = true;
	bpf_program__set_autoload(s->progs.on_switch, true);
	err = bpfload_done(s->obj, "cpu", cpu_bpf__load(s));
	cpu_bpf__destroy(s);
	return err;
}

static int load_gc(void)
{
	struct gc_bpf *s = gc_bpf__open();
	int err;

	if (!s)
		return -errno;
	s->rodata->gc_all = true;
	bpfload_pick_all(s->obj);
	err = bpfload_done(s->obj, "gc", gc_bpf__load(s));
	gc_bpf__destroy(s);
	return err;
}

static int load_imports(void)
{
	struct imports_bpf *s = imports_bpf__open();
	int err;

	if (!s)
		return -errno;
	s->rodata->imports_all = true;
	bpfload_pick_all(s->obj);
	err = bpfload_done(s->obj, "imports", imports_bpf__load(s));
	imports_bpf__destroy(s);
	return err;
}

static int load_calls(void)
{
	struct calls_bpf *s = calls_bpf__open();
	int err;

	if (!s)
		return -errno;
	bpfload_pick_all(s->obj);
	err = bpfload_done(s->obj, "calls", calls_bpf__load(s));
	calls_bpf__destroy(s);
	return err;
}

static const struct {
	const char *object;
	int cap; /* enum kernel_cap, or -1: needed by everything */
	int (*load)(void);
} objects[] = {
	{ "discover", -1, load_discover },	   { "cpu", KERNEL_CAP_CPU, load_cpu },
	{ "gc", KERNEL_CAP_GC, load_gc },	   { "imports", KERNEL_CAP_IMPORTS, load_imports },
	{ "calls", KERNEL_CAP_CALLS, load_calls },
};

static void print_programs(const char *object)
{
	int i, n;
	const struct bpfload_prog *p = bpfload_programs(&n);
	struct json j;

	for (i = 0; i < n; i++) {
		if (strcmp(p[i].object, object))
			continue;
		json_begin(&j, stdout);
		json_obj_open(&j, NULL);
		json_str(&j, "object", p[i].object);
		json_str(&j, "program", p[i].program);
		json_u64(&j, "verified_insns", p[i].verified_insns);
		json_u64(&j, "load_us", p[i].load_ns / 1000);
		json_obj_close(&j);
		fputc('\n', stdout);
	}
}

/* An object that did not load, with the reason. */
static void print_unloaded(const char *object, const char *status, const char *reason)
{
	struct json j;

	json_begin(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "object", object);
	json_str(&j, "status", status);
	json_str(&j, "reason", reason);
	json_obj_close(&j);
	fputc('\n', stdout);
}

/* Exits 1 if the kernel refused an object it has every feature for. */
int inspect_bpf_programs(void)
{
	int failed = 0;

	for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
		const char *lacks = objects[i].cap < 0 ? NULL : kernel_lacks(objects[i].cap);
		int err;

		if (lacks) {
			print_unloaded(objects[i].object, "unavailable", lacks);
			continue;
		}
		err = objects[i].load();
		if (err) {
			print_unloaded(objects[i].object, "refused", strerror(-err));
			failed = 1;
			continue;
		}
		print_programs(objects[i].object);
	}
	return failed;
}
