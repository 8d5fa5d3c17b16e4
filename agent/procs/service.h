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

enum service_source {
	SERVICE_OWN,	/* out names the process's own service */
	SERVICE_PARENT, /* it is part of its parent's program: out holds the fallback */
};

/* From an argv (pure; the rules):
 *   python -m pkg.mod ...          -> pkg
 *   python path/app.py ...         -> app
 *   gunicorn|uvicorn|hypercorn|daphne [opts] pkg.mod:app -> pkg (else the server's name)
 *   celery -A proj | --app=proj    -> proj (else "celery")
 *   uwsgi --module|-w|--wsgi pkg.mod:app, --mount /=pkg.mod:app -> pkg; else
 *   uwsgi --wsgi-file|--file|--ini|--yaml|--xml path/shop.ext   -> shop (else "uwsgi")
 *   (wsgi:GROUP) (a mod_wsgi daemon process)                    -> GROUP
 *   python -c 'from multiprocessing....' (spawn, forkserver, resource tracker: uvicorn
 *     --workers, ProcessPoolExecutor)  -> SERVICE_PARENT
 *   python -c ... / nothing found  -> fallback (the comm) */
enum service_source service_from_argv(char *const *argv, int argc, const char *fallback, char *out,
				      size_t len);
/* For a live process: the first allow-listed key set in its environment, else its command
 * line; for a process that is part of its parent's program, the parent's service (up to
 * three generations up). */
void service_of(pid_t pid, const char *comm, char *out, size_t len);
/* The allow-list: comma-separated environment keys, in order of preference ("" for none). */
int service_set_env_keys(const char *csv);

#endif
