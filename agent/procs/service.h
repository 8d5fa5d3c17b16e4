/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The service a process belongs to, for labels: from its command line by the rules below,
 * unless its environment sets one of the allow-listed keys (PYROMETER_SERVICE by default).
 * Nothing else of argv or the environment is kept or exported. */
#ifndef PYRO_SERVICE_H
#define PYRO_SERVICE_H

#include <stddef.h>
#include <sys/types.h>

#define SERVICE_NAME_MAX 64
#define SERVICE_ENV "PYROMETER_SERVICE" /* the default allow-list */

/* From an argv (pure; the rules):
 *   python -m pkg.mod ...          -> pkg
 *   python path/app.py ...         -> app
 *   gunicorn|uvicorn|hypercorn|daphne [opts] pkg.mod:app -> pkg (else the server's name)
 *   celery -A proj | --app=proj    -> proj (else "celery")
 *   python -c ... / nothing found  -> fallback (the comm) */
void service_from_argv(char *const *argv, int argc, const char *fallback, char *out, size_t len);
/* For a live process: the first allow-listed key set in its environment, else its command
 * line. */
void service_of(pid_t pid, const char *comm, char *out, size_t len);
/* The allow-list: comma-separated environment keys, in order of preference ("" for none). */
int service_set_env_keys(const char *csv);

#endif
