// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "base/log.h"

#include <bpf/libbpf.h>
#include <stdarg.h>
#include <string.h>
#include <stdio.h>

#include "base/text.h"

static enum log_level current = LOG_LVL_WARN;

static const char *const names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warning",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
	current = level;
}

enum log_level log_get_level(void)
{
	return current;
}

/* Longest message written; longer ones end in "...". Messages carry text from collectors,
 * targets and binaries, so a line must stay a line of bounded size. */
#define LOG_LINE_MAX 2048

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX], line[4 * LOG_LINE_MAX];
	int n;

	if (level > current)
		return;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n >= (int)sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	text_escape(line, sizeof(line), msg);
	fprintf(stderr, "pyrometer: %s: %s\n", names[level], line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's warnings duplicate the error we report ourselves; show them with -v only. */
	if (current < LOG_LVL_DEBUG)
		return 0;
	fprintf(stderr, "pyrometer: libbpf: %s: ",
		level == LIBBPF_WARN   ? "warning"
		: level == LIBBPF_INFO ? "info"
				       : "debug");
	return vfprintf(stderr, fmt, ap);
}

void log_hook_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
