/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Code object -> (qualified name, file, line), read from the target process and cached per
 * (pid, code object address). Each entry is checked again once per drain against the code
 * object now at that address, so an address reused by a new code object is noticed. */
#ifndef PYRO_SYMBOLIZE_H
#define PYRO_SYMBOLIZE_H

#include <stdint.h>
#include <sys/types.h>

struct py_binary;
struct symbolizer;

/* Whose memory a frame is read from: a process and the interpreter file it runs. */
struct py_target {
	pid_t pid;
	const struct py_binary *bin;
	int64_t bias; /* runtime address = link-time address + bias */
};

struct py_frame_sym {
	const char *name; /* co_qualname (3.11+) or co_name; owned by the symbolizer */
	const char *file; /* co_filename as the process sees it */
	int line;	  /* line of the sampled instruction; co_firstlineno if unknown */
	int firstlineno;
};

/* Why a frame could not be named; each gives its pseudo-frame (symbolizer_failure_frame). */
enum symbolizer_failure {
	SYM_FAIL_UNREADABLE, /* the code object could not be read: unmapped, process gone */
	SYM_FAIL_NOT_CODE,   /* what is there is not a code object (freed and reused) */
	SYM_FAIL_NAME,	     /* its name or file could not be read */
	SYM_FAIL_NO_MEMORY,  /* we could not allocate its cache entry */
	SYM_FAIL_MAX,
};

struct symbolizer_stats {
	uint64_t resolved, cache_hits, reused;
	uint64_t failed[SYM_FAIL_MAX];
};

/* "[unreadable code object]", ...: what a profile shows for a frame that failed so. */
const char *symbolizer_failure_frame(enum symbolizer_failure why);
/* "unreadable_code_object", ...: the metric label. */
const char *symbolizer_failure_label(enum symbolizer_failure why);

int symbolizer_new(struct symbolizer **out);
void symbolizer_free(struct symbolizer *s);
/* Starts a drain: entries are re-validated on their first use after this. */
void symbolizer_next_generation(struct symbolizer *s);
/* Resolves a frame (code object address, instruction index). On failure *out names the
 * reason (symbolizer_failure_frame: never NULL) and a negative errno is returned. */
int symbolizer_frame(struct symbolizer *s, const struct py_target *p, uint64_t code, uint32_t instr,
		     struct py_frame_sym *out);
/* Drops what is cached for a process that is gone. */
void symbolizer_forget(struct symbolizer *s, int pid);
void symbolizer_stats(const struct symbolizer *s, struct symbolizer_stats *st);

#endif
