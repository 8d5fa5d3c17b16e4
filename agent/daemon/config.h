/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The daemon's settings. One table (config.c) names every setting once: it is a key of the
 * INI file and a long option of `pyrometer run` under the same name, so every config option
 * is also a flag. Precedence: defaults < config file < flags. */
#ifndef PYRO_CONFIG_H
#define PYRO_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_STR 1024

struct config {
	/* sampling and export */
	int64_t frequency;	      /* Hz */
	double interval;	      /* seconds */
	char service_env[CONFIG_STR]; /* comma-separated env keys of targets that name a service */
	/* local store */
	char store_enabled[8]; /* auto (on unless pyroscope is set) | true | false */
	char store[PATH_MAX];
	int64_t store_cap, store_max_age;
	/* Pyroscope */
	char pyroscope[CONFIG_STR];
	char pyroscope_api[16]; /* push | ingest */
	char basic_auth_user[256];
	char password_file[PATH_MAX], token_file[PATH_MAX];
	char tenant[256];
	char spool[PATH_MAX];
	int64_t spool_cap;
	double backoff_max;
	/* GC, metrics, alerts */
	bool gc;
	double gc_threshold_ms;
	double gc_linger;
	char metrics_addr[256]; /* "" or "off": no endpoint */
	char alertmanager[CONFIG_STR];
	double alert_pause, alert_p99, alert_window, alert_resend; /* seconds */
	bool off_cpu; /* off-CPU profiles and the GIL/off-CPU metrics */
	/* imports: a start-up profile per new process, python_import_seconds */
	bool imports;
	double import_startup; /* seconds from a process's start that count as its start-up */
	/* call windows: function-call tracing on a schedule */
	double calls_window, calls_every; /* seconds; window 0: off */
	double calls_budget;		  /* percent of one CPU, averaged over time */
	/* logging */
	char log_level[16]; /* error | warn | info | debug */
};

void config_defaults(struct config *c);
/* Reads an INI file over c. Unknown keys and bad values are errors naming the file, line and
 * key (logged); c is left unchanged then. */
int config_load(struct config *c, const char *path);
/* The same for a file's NUL-terminated text; name is the file's name, for the errors. */
int config_load_text(struct config *c, const char *name, const char *text);
/* Applies `pyrometer run` flags over c (argv as main gets it). Sets *config_path to -c's
 * argument and *check_only for --check-config. Returns 1 after --help, -EINVAL on errors. */
int config_flags(struct config *c, int argc, char **argv, const char **config_path,
		 bool *check_only);
/* Checks what single values cannot: combinations. Logs and returns -EINVAL. */
int config_check(const struct config *c);
/* Sets the log level the configuration names. */
void config_apply_log_level(const struct config *c);
/* Whether the local store is written. */
bool config_store_on(const struct config *c);
/* Prints the effective configuration in the file's syntax (secrets are file names only). */
void config_print(const struct config *c, FILE *f);
extern const char config_usage[];

/* url with any password replaced by ***, for logs. */
void config_redact_url(const char *url, char *out, size_t len);

#endif
