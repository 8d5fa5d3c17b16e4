/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Levelled logging to stderr; journald picks it up when run as a service. */
#ifndef PYRO_LOG_H
#define PYRO_LOG_H

enum log_level {
	LOG_LVL_ERROR,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Route libbpf's own messages through this logger (its debug output only with -v). */
void log_hook_libbpf(void);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
