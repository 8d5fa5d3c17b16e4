// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "log.h"

#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>

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

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
	if (level > current)
		return;
	fprintf(stderr, "pyrometer: %s: ", names[level]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
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
