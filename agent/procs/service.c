// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "procs/service.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/procfs.h"
#include "base/text.h"

#define MAX_ARGS 64

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static bool is_python(const char *arg)
{
	return strncmp(basename_of(arg), "python", 6) == 0;
}

/* Interpreter options that take a value as the next argument. */
static bool takes_value(const char *opt)
{
	return !strcmp(opt, "-X") || !strcmp(opt, "-W") || !strcmp(opt, "--check-hash-based-pycs");
}

/* Copies s up to the first of `stops` (or its end) into out, sanitized. */
static void put(char *out, size_t len, const char *s, const char *stops)
{
	size_t n = strcspn(s, stops);

	if (n >= len)
		n = len - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	text_sanitize(out);
}

static bool asgi_wsgi_server(const char *name)
{
	static const char *const servers[] = { "gunicorn", "uvicorn", "hypercorn", "daphne" };
	size_t i;

	for (i = 0; i < sizeof(servers) / sizeof(servers[0]); i++)
		if (!strcmp(name, servers[i]))
			return true;
	return false;
}

static bool ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool ident_char(char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '.';
}

/* "pkg.module:app" or "pkg.module:create_app(...)": an application as ASGI/WSGI servers take
 * it. Not "0.0.0.0:8000" or "localhost:8000", the values of their --bind options. */
static bool app_spec(const char *s)
{
	if (!ident_start(*s))
		return false;
	while (ident_char(*s))
		s++;
	if (*s++ != ':' || !ident_start(*s))
		return false;
	while (ident_char(*s))
		s++;
	return !*s || *s == '(';
}

/* The application of a server command line (argv[i] is the server), if it names one. */
static bool server_app(char *const *argv, int argc, int i, char *out, size_t len)
{
	const char *server = basename_of(argv[i]);

	for (i++; i < argc; i++) {
		if (!strcmp(server, "celery")) {
			if ((!strcmp(argv[i], "-A") || !strcmp(argv[i], "--app")) && i + 1 < argc) {
				put(out, len, argv[i + 1], ".:");
				return true;
			}
			if (!strncmp(argv[i], "--app=", 6)) {
				put(out, len, argv[i] + 6, ".:");
				return true;
			}
		} else if (app_spec(argv[i])) {
			put(out, len, argv[i], ".:"); /* pkg.module:app */
			return true;
		}
	}
	put(out, len, server, "");
	return true;
}

/* The value of option `name` (given as "NAME VALUE" or "NAME=VALUE") in argv[i], or NULL. */
static const char *option_value(char *const *argv, int argc, int i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[i], name, n))
		return NULL;
	if (!argv[i][n])
		return i + 1 < argc ? argv[i + 1] : NULL;
	return argv[i][n] == '=' ? argv[i] + n + 1 : NULL;
}

/* Copies a file's base name without its extension (".py", ".ini", ...). */
static void put_file_stem(char *out, size_t len, const char *path)
{
	put(out, len, basename_of(path), "");
	if (strrchr(out, '.') && strrchr(out, '.') != out)
		*strrchr(out, '.') = '\0';
}

/* uWSGI: its application (--module/-w/--wsgi pkg.mod:app, --mount /=pkg.mod:app), else the
 * file it loads (--wsgi-file, --file, --ini). */
static void uwsgi_app(char *const *argv, int argc, char *out, size_t len)
{
	static const char *const modules[] = { "--module", "--wsgi", "-w", "--callable-module" };
	static const char *const files[] = { "--wsgi-file", "--file", "--ini", "--yaml", "--xml" };
	const char *v;
	int i;

	for (i = 1; i < argc; i++) {
		for (size_t k = 0; k < sizeof(modules) / sizeof(modules[0]); k++)
			if ((v = option_value(argv, argc, i, modules[k]))) {
				put(out, len, v, ".:");
				return;
			}
		if ((v = option_value(argv, argc, i, "--mount")) && strchr(v, '=')) {
			put(out, len, strchr(v, '=') + 1, ".:");
			return;
		}
	}
	for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++)
		for (i = 1; i < argc; i++)
			if ((v = option_value(argv, argc, i, files[k]))) {
				put_file_stem(out, len, v);
				return;
			}
	put(out, len, "uwsgi", "");
}

/* mod_wsgi's daemon processes show "(wsgi:GROUP)" as their name (display-name=%{GROUP}). */
static bool mod_wsgi_group(const char *arg0, char *out, size_t len)
{
	if (strncmp(arg0, "(wsgi:", 6) || !strchr(arg0, ')'))
		return false;
	put(out, len, arg0 + 6, ")");
	return out[0] != '\0';
}

enum service_source service_from_argv(char *const *argv, int argc, const char *fallback, char *out,
				      size_t len)
{
	int i = 0;

	if (argc > 0 && mod_wsgi_group(argv[0], out, len))
		return SERVICE_OWN;
	if (argc > 0 && (!strcmp(basename_of(argv[0]), "uwsgi") ||
			 !strcmp(basename_of(argv[0]), "uwsgi-core"))) {
		uwsgi_app(argv, argc, out, len);
		return SERVICE_OWN;
	}
	if (argc > 0 && is_python(argv[0])) {
		for (i = 1; i < argc && argv[i][0] == '-'; i++) {
			if (!strcmp(argv[i], "-m") && i + 1 < argc) {
				put(out, len, argv[i + 1], ".");
				return SERVICE_OWN;
			}
			/* multiprocessing's spawn, forkserver and resource tracker: a part of
			 * the program that started them */
			if (!strcmp(argv[i], "-c") && i + 1 < argc &&
			    !strncmp(argv[i + 1], "from multiprocessing.", 21)) {
				put(out, len, fallback, "");
				return SERVICE_PARENT;
			}
			if (!strcmp(argv[i], "-c"))
				goto fallback;
			if (takes_value(argv[i]))
				i++;
		}
		if (i >= argc)
			goto fallback;
	}
	if (i < argc) {
		const char *base = basename_of(argv[i]);

		if (asgi_wsgi_server(base) || !strcmp(base, "celery")) {
			server_app(argv, argc, i, out, len);
			return SERVICE_OWN;
		}
		if (i > 0 || !is_python(argv[0])) {
			put(out, len, base, "");
			if (strlen(out) > 3 && !strcmp(out + strlen(out) - 3, ".py"))
				out[strlen(out) - 3] = '\0';
			if (out[0])
				return SERVICE_OWN;
		}
	}
fallback:
	put(out, len, fallback, "");
	return SERVICE_OWN;
}

static char env_keys[1024] = SERVICE_ENV; /* comma-separated */

int service_set_env_keys(const char *csv)
{
	if (strlen(csv) >= sizeof(env_keys) || strchr(csv, '='))
		return -EINVAL;
	snprintf(env_keys, sizeof(env_keys), "%s", csv);
	return 0;
}

/* The value of the first allow-listed key that environ (NUL-separated, n bytes) sets. */
static const char *allowed_env(const char *buf, size_t n)
{
	const char *best = NULL;
	size_t best_rank = SIZE_MAX;

	for (const char *p = buf; p < buf + n; p += strlen(p) + 1) {
		const char *eq = strchr(p, '=');
		size_t rank = 0, klen;

		if (!eq || !eq[1])
			continue;
		klen = (size_t)(eq - p);
		for (const char *k = env_keys; *k; rank++) {
			size_t len = strcspn(k, ",");

			if (len == klen && !strncmp(k, p, klen) && rank < best_rank) {
				best = eq + 1;
				best_rank = rank;
			}
			k += len + (k[len] == ',');
		}
	}
	return best;
}

/* Parents looked through for a process that is part of its parent's program. */
#define PARENT_DEPTH 3

static void service_at(pid_t pid, const char *comm, char *out, size_t len, int depth)
{
	static char buf[64 * 1024];
	char *argv[MAX_ARGS], *p, *end, parent_comm[16];
	struct proc_stat st;
	enum service_source from;
	const char *named;
	ssize_t n;
	int argc = 0;

	/* Only allow-listed variables are looked at; the buffer is cleared after. */
	n = procfs_read_file(pid, "environ", buf, sizeof(buf));
	named = allowed_env(buf, n > 0 ? (size_t)n : 0);
	if (named) {
		put(out, len, named, "");
		memset(buf, 0, sizeof(buf));
		return;
	}
	memset(buf, 0, sizeof(buf));
	n = procfs_read_file(pid, "cmdline", buf, sizeof(buf));
	for (p = buf, end = buf + (n > 0 ? n : 0); p < end && argc < MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	from = service_from_argv(argv, argc, comm, out, len);
	memset(buf, 0, sizeof(buf));
	/* out holds the fallback if the parent cannot be read */
	if (from == SERVICE_PARENT && depth < PARENT_DEPTH && !procfs_read_stat(pid, &st) &&
	    st.ppid > 1 && !procfs_read_comm(st.ppid, parent_comm, sizeof(parent_comm)))
		service_at(st.ppid, parent_comm, out, len, depth + 1);
}

void service_of(pid_t pid, const char *comm, char *out, size_t len)
{
	service_at(pid, comm, out, len, 0);
}
