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

struct symbolizer_stats {
	uint64_t resolved, cache_hits, reused, failed;
};

int symbolizer_new(struct symbolizer **out);
void symbolizer_free(struct symbolizer *s);
/* Starts a drain: entries are re-validated on their first use after this. */
void symbolizer_next_generation(struct symbolizer *s);
/* Resolves a frame (code object address, instruction index). On failure *out names the
 * reason ("[unreadable code object]", ...) and a negative errno is returned. */
int symbolizer_frame(struct symbolizer *s, const struct py_target *p, uint64_t code, uint32_t instr,
		     struct py_frame_sym *out);
/* Drops what is cached for a process that is gone. */
void symbolizer_forget(struct symbolizer *s, int pid);
void symbolizer_stats(const struct symbolizer *s, struct symbolizer_stats *st);

#endif
