// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "python/describe.h"

#include "base/kernel.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Distinct probe names in note order (a probe can have several sites). */
static void json_probes(struct json *j, const struct py_binary *b)
{
	int i, k;

	json_arr_open(j, "usdt");
	for (i = 0; i < b->nprobes; i++) {
		for (k = 0; k < i && strcmp(b->probes[k].name, b->probes[i].name); k++)
			;
		if (k == i)
			json_str(j, NULL, b->probes[i].name);
	}
	json_arr_close(j);
	json_arr_open(j, "usdt_sites");
	for (i = 0; i < b->nprobes; i++) {
		char addr[24];

		json_obj_open(j, NULL);
		json_str(j, "name", b->probes[i].name);
		snprintf(addr, sizeof(addr), "0x%" PRIx64, b->probes[i].pc);
		json_str(j, "address", addr);
		json_str(j, "args", b->probes[i].args_spec);
		json_bool(j, "semaphore", b->probes[i].semaphore != 0);
		json_obj_close(j);
	}
	json_arr_close(j);
}

static void json_caps(struct json *j, const struct py_caps *c)
{
	json_arr_open(j, "capabilities");
	if (c->cpu)
		json_str(j, NULL, "cpu");
	if (c->gc)
		json_str(j, NULL, "gc");
	if (c->imports)
		json_str(j, NULL, "imports");
	if (c->calls)
		json_str(j, NULL, py_binary_calls_mode_name(c->calls));
	json_arr_close(j);
	json_obj_open(j, "unavailable");
	if (c->no_cpu)
		json_str(j, "cpu", c->no_cpu);
	if (c->no_gc)
		json_str(j, "gc", c->no_gc);
	if (c->no_imports)
		json_str(j, "imports", c->no_imports);
	if (c->no_calls)
		json_str(j, "calls", c->no_calls);
	json_obj_close(j);
}

void describe_caps_here(const struct py_binary *b, struct py_caps *out)
{
	*out = b->caps;
	if (kernel_lacks(KERNEL_CAP_CPU)) {
		out->cpu = false;
		out->no_cpu = kernel_lacks(KERNEL_CAP_CPU);
	}
	if (kernel_lacks(KERNEL_CAP_GC)) {
		out->gc = false;
		out->no_gc = kernel_lacks(KERNEL_CAP_GC);
		out->no_gc_label = "kernel";
	}
	if (kernel_lacks(KERNEL_CAP_IMPORTS)) {
		out->imports = false;
		out->no_imports = kernel_lacks(KERNEL_CAP_IMPORTS);
	}
	if (kernel_lacks(KERNEL_CAP_CALLS)) {
		out->calls = PY_CALLS_NONE;
		out->no_calls = kernel_lacks(KERNEL_CAP_CALLS);
	}
}

void describe_binary(struct json *j, const struct py_binary *b)
{
	struct py_caps here;

	describe_caps_here(b, &here);
	json_probes(j, b);
	json_caps(j, &here);
}

const char *describe_version_source(const struct py_binary *b)
{
	static const char *const sources[] = { "none", "_Py_DebugOffsets", "Py_Version",
					       ".rodata" };

	return sources[b->version_source];
}

void describe_layout(struct json *j, const struct py_layout *l)
{
	const struct pyro_py_layout *b = &l->bpf;
	const struct py_sym_layout *s = &l->sym;

	json_obj_open(j, "layout");
	json_bool(j, "ok", l->ok);
	if (!l->ok) {
		json_str(j, "why_not", l->why_not);
		json_obj_close(j);
		return;
	}
	json_u64(j, "frames_kind", b->frames_kind);
	json_u64(j, "owner_skip", b->owner_skip);
	json_u64(j, "runtime_interp_head", b->runtime_interp_head);
	json_u64(j, "interp_next", b->interp_next);
	json_u64(j, "interp_threads_head", b->interp_threads_head);
	json_u64(j, "tstate_next", b->tstate_next);
	json_u64(j, "tstate_thread_id", b->tstate_thread_id);
	json_u64(j, "tstate_frame", b->tstate_frame);
	json_u64(j, "cframe_current_frame", b->cframe_current_frame);
	json_u64(j, "frame_previous", b->frame_previous);
	json_u64(j, "frame_code", b->frame_code);
	json_u64(j, "frame_instr", b->frame_instr);
	json_u64(j, "frame_owner", b->frame_owner);
	json_u64(j, "code_adaptive", b->code_adaptive);
	json_u64(j, "tstate_datastack", b->tstate_datastack);
	json_u64(j, "interp_gc_collecting", b->interp_gc_collecting);
	json_u64(j, "gil_offset", b->gil_offset);
	json_u64(j, "gil_in_interp", b->gil_in_interp);
	json_u64(j, "frame_span", b->frame_span);
	json_u64(j, "ob_type", s->ob_type);
	json_u64(j, "code_filename", s->code_filename);
	json_u64(j, "code_name", s->code_name);
	json_u64(j, "code_qualname", s->code_qualname);
	json_u64(j, "code_firstlineno", s->code_firstlineno);
	json_u64(j, "code_linetable", s->code_linetable);
	json_u64(j, "bytes_size", s->bytes_size);
	json_u64(j, "bytes_sval", s->bytes_sval);
	json_u64(j, "unicode_state", s->unicode_state);
	json_u64(j, "unicode_length", s->unicode_length);
	json_u64(j, "unicode_ascii_size", s->unicode_ascii_size);
	json_u64(j, "unicode_compact_size", s->unicode_compact_size);
	json_obj_close(j);
}
