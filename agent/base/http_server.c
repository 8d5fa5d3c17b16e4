// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "base/http_server.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"

struct metrics_server {
	struct MHD_Daemon *daemon;
	pthread_mutex_t lock;
	char *text;
	size_t len;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *type,
			     const char *body, size_t len)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *ctx, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **state)
{
	struct metrics_server *m = ctx;
	enum MHD_Result ret;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)state;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n", 9);
	if (strcmp(url, "/metrics"))
		return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", "see /metrics\n", 13);
	pthread_mutex_lock(&m->lock);
	/* Before the first figures (the daemon is still starting): not an empty page, which a
	 * scraper would take for a target without series. */
	if (m->text)
		ret = reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", m->text,
			    m->len);
	else
		ret = reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "starting\n", 9);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static int resolve(const char *addr, struct sockaddr_storage *sa)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM },
			*res;
	char host[256];
	const char *colon = strrchr(addr, ':');
	size_t n;
	int err;

	if (!colon || !colon[1] || (size_t)(colon - addr) >= sizeof(host))
		return -EINVAL;
	n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') { /* [::1]:9464 */
		memcpy(host, addr + 1, n - 2);
		host[n - 2] = '\0';
	} else {
		memcpy(host, addr, n);
		host[n] = '\0';
	}
	err = getaddrinfo(host[0] ? host : "0.0.0.0", colon + 1, &hints, &res);
	if (err)
		return -EINVAL;
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

int http_server_start(const char *addr, struct metrics_server **out)
{
	struct sockaddr_storage sa = {};
	struct metrics_server *m;
	/* epoll (or poll): select() cannot serve a connection whose fd is past FD_SETSIZE,
	 * and the daemon may hold more than 1,024 fds */
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD;

	if (resolve(addr, &sa)) {
		log_error("metrics address must be HOST:PORT (numeric), not '%s'", addr);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	if (sa.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle, m, MHD_OPTION_SOCK_ADDR, &sa,
				     MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!m->daemon) {
		log_error("cannot serve metrics on %s (address in use?)", addr);
		http_server_free(m);
		return -EADDRINUSE;
	}
	*out = m;
	return 0;
}

void http_server_publish(struct metrics_server *m, const char *text, size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return; /* the last text stays served */
	memcpy(copy, text, len);
	copy[len] = '\0';
	pthread_mutex_lock(&m->lock);
	free(m->text);
	m->text = copy;
	m->len = len;
	pthread_mutex_unlock(&m->lock);
}

void http_server_free(struct metrics_server *m)
{
	if (!m)
		return;
	if (m->daemon)
		MHD_stop_daemon(m->daemon);
	pthread_mutex_destroy(&m->lock);
	free(m->text);
	free(m);
}
