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

void service_from_argv(char *const *argv, int argc, const char *fallback, char *out, size_t len)
{
	int i = 0;

	if (argc > 0 && is_python(argv[0])) {
		for (i = 1; i < argc && argv[i][0] == '-'; i++) {
			if (!strcmp(argv[i], "-m") && i + 1 < argc) {
				put(out, len, argv[i + 1], ".");
				return;
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
			return;
		}
		if (i > 0 || !is_python(argv[0])) {
			put(out, len, base, "");
			if (strlen(out) > 3 && !strcmp(out + strlen(out) - 3, ".py"))
				out[strlen(out) - 3] = '\0';
			if (out[0])
				return;
		}
	}
fallback:
	put(out, len, fallback, "");
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

void service_of(pid_t pid, const char *comm, char *out, size_t len)
{
	static char buf[64 * 1024];
	char *argv[MAX_ARGS], *p, *end;
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
	service_from_argv(argv, argc, comm, out, len);
	memset(buf, 0, sizeof(buf));
}
