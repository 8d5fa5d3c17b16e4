// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See spool.h. Files are DIR/<16 hex digits>.spool, the digits a sequence number (the order
 * of writing). Profiles leave oldest first by their own start time, not by the order they
 * were written: one that failed to deliver is spooled after the younger ones that queued
 * behind it meanwhile. Format (little-endian):
 *
 *   0  "PYROSPL1"
 *   8  u32 CRC-32 (zlib) of every byte from offset 12 to the end
 *  12  u32 label bytes L      16  u64 payload bytes P
 *  24  u64 from_ns            32  u64 until_ns
 *  40  36 bytes: the profile's id (a UUID's text)
 *  76  L bytes: labels as name NUL value NUL pairs, service_name first
 *  76+L  P bytes: the gzip'd pprof
 */
#include "delivery/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "base/files.h"
#include "base/log.h"
#include "base/text.h"

#define MAGIC "PYROSPL1"
#define HEADER (40 + EXPORT_ID_LEN)

struct entry {
	uint64_t from_ns, id, size; /* ordered by the profile's start, then by id */
};

struct spool {
	char dir[PATH_MAX];
	uint64_t cap, next_id;
	struct entry *e; /* oldest first */
	size_t n, alloc;
	bool busy; /* e[0] is being sent: the cap drops others first */
	struct spool_stats st;
};

static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

int spool_encode(const struct export_profile *e, uint8_t **out, size_t *len)
{
	size_t labels = 0, at, i, total;
	uint8_t *buf;

	for (i = 0; i < e->n_labels; i++)
		labels += strlen(e->labels[i].name) + strlen(e->labels[i].value) + 2;
	total = HEADER + labels + e->len;
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, MAGIC, 8);
	put_u32(buf + 12, (uint32_t)labels);
	put_u64(buf + 16, e->len);
	put_u64(buf + 24, e->from_ns);
	put_u64(buf + 32, e->until_ns);
	memcpy(buf + 40, e->id, EXPORT_ID_LEN);
	at = HEADER;
	for (i = 0; i < e->n_labels; i++) {
		size_t nl = strlen(e->labels[i].name) + 1, vl = strlen(e->labels[i].value) + 1;

		memcpy(buf + at, e->labels[i].name, nl);
		memcpy(buf + at + nl, e->labels[i].value, vl);
		at += nl + vl;
	}
	if (e->len)
		memcpy(buf + at, e->data, e->len);
	put_u32(buf + 8, (uint32_t)crc32(0, buf + 12, (uInt)(total - 12)));
	*out = buf;
	*len = total;
	return 0;
}

/* Copies the NUL-terminated string at buf[*at] (within end) into out. */
static int take_str(const uint8_t *buf, size_t *at, size_t end, char *out, size_t size)
{
	const uint8_t *nul = memchr(buf + *at, '\0', end - *at);
	size_t n;

	if (!nul)
		return -EBADMSG;
	n = (size_t)(nul - (buf + *at));
	if (n >= size)
		return -EBADMSG;
	memcpy(out, buf + *at, n + 1);
	*at += n + 1;
	return 0;
}

static bool name_char(char c, bool first)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (!first && c >= '0' && c <= '9');
}

/* What export.h promises of a label, which the sinks rely on: a name [a-zA-Z_][a-zA-Z0-9_]*
 * and a value of valid UTF-8. A file that passed its CRC yet breaks this was not written by
 * spool_put: it is refused as corrupt. */
static bool label_ok(const struct export_label *l)
{
	const char *s;
	int n;

	for (s = l->name; *s; s++)
		if (!name_char(*s, s == l->name))
			return false;
	if (s == l->name)
		return false;
	for (s = l->value; *s; s += n)
		if ((n = text_utf8_len((const unsigned char *)s)) <= 0)
			return false;
	return true;
}

int spool_decode(const uint8_t *buf, size_t len, struct export_profile *e)
{
	uint64_t labels, payload;
	size_t at = HEADER, end;

	memset(e, 0, sizeof(*e));
	if (len < HEADER || memcmp(buf, MAGIC, 8) ||
	    get_u32(buf + 8) != (uint32_t)crc32(0, buf + 12, (uInt)(len - 12)))
		return -EBADMSG;
	labels = get_u32(buf + 12);
	payload = get_u64(buf + 16);
	if (labels > len - HEADER || payload != len - HEADER - labels)
		return -EBADMSG;
	e->from_ns = get_u64(buf + 24);
	e->until_ns = get_u64(buf + 32);
	memcpy(e->id, buf + 40, EXPORT_ID_LEN);
	e->id[EXPORT_ID_LEN] = '\0';
	end = HEADER + labels;
	while (at < end) {
		struct export_label *l = &e->labels[e->n_labels];

		if (e->n_labels == EXPORT_MAX_LABELS ||
		    take_str(buf, &at, end, l->name, sizeof(l->name)) ||
		    take_str(buf, &at, end, l->value, sizeof(l->value)) || !label_ok(l))
			return -EBADMSG;
		e->n_labels++;
	}
	e->data = malloc(payload + 1);
	if (!e->data)
		return -ENOMEM;
	memcpy(e->data, buf + end, payload);
	e->len = payload;
	return 0;
}

static void entry_path(const struct spool *s, uint64_t id, char *out, size_t size)
{
	snprintf(out, size, "%s/%016" PRIx64 ".spool", s->dir, id);
}

static int by_age(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->from_ns != y->from_ns)
		return x->from_ns < y->from_ns ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Adds en at the end, counted. */
static int append_entry(struct spool *s, struct entry en)
{
	if (s->n == s->alloc) {
		size_t na = s->alloc ? s->alloc * 2 : 64;
		struct entry *ne = realloc(s->e, na * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		s->e = ne;
		s->alloc = na;
	}
	s->e[s->n++] = en;
	s->st.files++;
	s->st.bytes += en.size;
	return 0;
}

/* Inserts in age order; never before e[0] while it is being sent. */
static int add_entry(struct spool *s, struct entry en)
{
	size_t i;

	if (append_entry(s, en))
		return -ENOMEM;
	for (i = s->n - 1; i > (size_t)s->busy && by_age(&s->e[i - 1], &en) > 0; i--)
		s->e[i] = s->e[i - 1];
	s->e[i] = en;
	return 0;
}

/* A spooled file's from_ns, read from its header; 0 when it is not a regular file or is
 * unreadable (it sorts first, and is found corrupt when read). Never waits: O_NONBLOCK
 * for a FIFO that slipped past the S_ISREG check. */
static uint64_t file_from_ns(const char *path, const struct stat *st)
{
	uint8_t head[32];
	uint64_t from = 0;
	int fd;

	if (!S_ISREG(st->st_mode))
		return 0;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) && !memcmp(head, MAGIC, 8))
		from = get_u64(head + 24);
	close(fd);
	return from;
}

/* Lists what an earlier run left: spooled profiles, and temporary files of writes that
 * never finished (removed: their rename did not happen, so they were never spooled). */
static int scan(struct spool *s)
{
	DIR *d = opendir(s->dir);
	struct dirent *de;
	char path[2 * PATH_MAX], tail[8];
	uint64_t id;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);

		snprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name);
		if (n > 4 && !strcmp(de->d_name + n - 4, ".tmp")) {
			unlink(path);
			continue;
		}
		if (sscanf(de->d_name, "%16" SCNx64 ".spoo%1s", &id, tail) != 2 ||
		    strcmp(tail, "l") || stat(path, &st))
			continue;
		if (append_entry(s, (struct entry){ .from_ns = file_from_ns(path, &st),
						    .id = id,
						    .size = (uint64_t)st.st_size }))
			break; /* the rest waits for the next start */
		if (id >= s->next_id)
			s->next_id = id + 1;
	}
	closedir(d);
	qsort(s->e, s->n, sizeof(*s->e), by_age);
	return 0;
}

int spool_open(const char *dir, uint64_t cap_bytes, struct spool **out)
{
	struct spool *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	s->cap = cap_bytes;
	if ((err = files_mkdirs(s->dir, 0700)) || (err = scan(s))) {
		log_error("spool: cannot use %s: %s", dir, strerror(-err));
		spool_close(s);
		return err;
	}
	s->st.carried = s->n;
	if (s->n)
		log_info("spool: %zu profiles (%" PRIu64 " bytes) left from an earlier run in %s",
			 s->n, s->st.bytes, s->dir);
	*out = s;
	return 0;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	free(s->e);
	free(s);
}

static void drop_at(struct spool *s, size_t i)
{
	char path[PATH_MAX + 32];

	entry_path(s, s->e[i].id, path, sizeof(path));
	unlink(path);
	s->st.files--;
	s->st.bytes -= s->e[i].size;
	memmove(s->e + i, s->e + i + 1, (s->n - i - 1) * sizeof(*s->e));
	s->n--;
	if (i == 0)
		s->busy = false;
}

int spool_put(struct spool *s, const struct export_profile *e)
{
	char path[PATH_MAX + 32];
	struct iovec iov;
	uint8_t *buf;
	size_t len;
	int err;

	if ((err = spool_encode(e, &buf, &len)))
		return err;
	if (len > s->cap) {
		s->st.dropped++;
		log_warn("spool: a %zu-byte profile of %s is larger than the spool cap (%" PRIu64
			 " bytes): dropped",
			 len, export_service(e), s->cap);
		free(buf);
		return -EFBIG;
	}
	/* The profile being sent stays: it may be delivered, and then it was not dropped. */
	while (s->n > (size_t)s->busy && s->st.bytes + len > s->cap) {
		s->st.dropped++;
		log_warn("spool: full (cap %" PRIu64 " bytes): dropped the oldest profile", s->cap);
		drop_at(s, s->busy ? 1 : 0);
	}
	if (s->st.bytes + len > s->cap) {
		s->st.dropped++;
		log_warn("spool: full (cap %" PRIu64 " bytes): dropped a profile of %s", s->cap,
			 export_service(e));
		free(buf);
		return -ENOSPC;
	}
	entry_path(s, s->next_id, path, sizeof(path));
	iov = (struct iovec){ .iov_base = buf, .iov_len = len };
	err = files_write_atomic(path, &iov, 1, 0600, true);
	free(buf);
	if (err) {
		s->st.write_failed++;
		log_warn("spool: cannot write %s: %s", path, strerror(-err));
		return err;
	}
	s->st.written++;
	return add_entry(s,
			 (struct entry){ .from_ns = e->from_ns, .id = s->next_id++, .size = len });
}

int spool_oldest(struct spool *s, struct export_profile *e, uint64_t *id)
{
	char path[PATH_MAX + 32];

	while (s->n) {
		uint8_t *buf = NULL;
		size_t len = 0;
		int err;

		entry_path(s, s->e[0].id, path, sizeof(path));
		err = files_read(path, s->cap + HEADER, &buf, &len);
		if (!err)
			err = spool_decode(buf, len, e);
		free(buf);
		if (!err) {
			*id = s->e[0].id;
			s->busy = true;
			return 0;
		}
		if (err == -ENOMEM)
			return err;
		s->st.corrupt++;
		log_warn("spool: %s is torn or corrupt (%s): removed, not sent", path,
			 strerror(-err));
		drop_at(s, 0);
	}
	return -ENOENT;
}

void spool_remove(struct spool *s, uint64_t id)
{
	if (s->n && s->e[0].id == id)
		drop_at(s, 0);
}

void spool_release(struct spool *s)
{
	s->busy = false;
}

void spool_stats(const struct spool *s, struct spool_stats *st)
{
	*st = s->st;
}
