// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* libFuzzer target for the writers that carry strings from other processes (function names,
 * paths, comm, service names) into formats with their own syntax. The input, NUL-terminated,
 * goes through each, and each output is checked against its format:
 *   - json_write_string (agent/base/json.c): one valid JSON string literal, and it decodes
 *     back to the input when the input is valid UTF-8;
 *   - text_escape and text_sanitize (agent/base/text.c): printable UTF-8, no control bytes,
 *     within the buffer;
 *   - text_label_value (Prometheus label values): no raw newline, and it unescapes back to
 *     the input;
 *   - pyroscope_ingest_name (agent/delivery/pyroscope.c): the service and label values,
 *     split from the input at newlines, can add no label and cannot end the name. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/text.h"
#include "delivery/pyroscope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What f wrote, as a malloc'd string; f is closed. */
struct mem {
	char *buf;
	size_t len;
	FILE *f;
};

static FILE *mem_open(struct mem *m)
{
	m->buf = NULL;
	m->len = 0;
	m->f = open_memstream(&m->buf, &m->len);
	if (!m->f)
		abort();
	return m->f;
}

static void mem_close(struct mem *m)
{
	fclose(m->f);
}

/* Is s valid UTF-8 (each character as text_utf8_len accepts it)? */
static bool utf8(const char *s)
{
	int n;

	for (; *s; s += n)
		if ((n = text_utf8_len((const unsigned char *)s)) <= 0)
			return false;
	return true;
}

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Appends code point cp to out as UTF-8. */
static size_t put_utf8(char *out, unsigned cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Reads the 4 hex digits of a \u escape at s; -1 if they are not there. */
static long u_escape(const char *s)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int d = hex(s[i]);

		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* Decodes the JSON string literal lit (RFC 8259, section 7) into out (as large as lit);
 * aborts if lit is not exactly one literal. */
static void json_decode(const char *lit, char *out)
{
	const char *s = lit;
	size_t o = 0;
	long cp, lo;

	if (*s++ != '"')
		abort();
	while (*s != '"') {
		if ((unsigned char)*s < 0x20)
			abort(); /* a raw control character, or the end without a closing quote */
		if (*s != '\\') {
			out[o++] = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case '"':
		case '\\':
		case '/':
			out[o++] = *s;
			break;
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'u':
			if ((cp = u_escape(s + 1)) < 0)
				abort();
			s += 4;
			if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
				if (s[1] != '\\' || s[2] != 'u' ||
				    (lo = u_escape(s + 3)) < 0xdc00 || lo >= 0xe000)
					abort();
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				s += 6;
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				abort();
			}
			o += put_utf8(out + o, (unsigned)cp);
			break;
		default:
			abort();
		}
		s++;
	}
	if (s[1] != '\0')
		abort();
	out[o] = '\0';
}

static void check_json(const char *s)
{
	struct mem m;
	char *back;

	json_write_string(mem_open(&m), s);
	mem_close(&m);
	if (!utf8(m.buf))
		abort();
	back = malloc(m.len + 1);
	if (!back)
		abort();
	json_decode(m.buf, back);
	if (utf8(s) && strcmp(back, s))
		abort();
	free(back);
	free(m.buf);
}

static void check_escape(const char *s, size_t len)
{
	static const size_t sizes[] = { 1, 2, 5, 16, 129, 4096 };
	char *out, *copy;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		out = malloc(sizes[i]);
		if (!out)
			abort();
		text_escape(out, sizes[i], s);
		if (!memchr(out, '\0', sizes[i]) || !printable(out) || !utf8(out))
			abort();
		free(out);
	}
	copy = strdup(s);
	if (!copy)
		abort();
	text_sanitize(copy);
	if (strlen(copy) != len || !printable(copy) || !utf8(copy))
		abort();
	free(copy);
}

static void check_label_value(const char *s)
{
	struct mem m;
	size_t o = 0;
	char *back;

	text_label_value(mem_open(&m), s);
	mem_close(&m);
	if (memchr(m.buf, '\n', m.len))
		abort();
	back = malloc(m.len + 1);
	if (!back)
		abort();
	for (size_t i = 0; i < m.len; i++) {
		if (m.buf[i] == '"')
			abort(); /* an unescaped quote ends the value */
		if (m.buf[i] != '\\') {
			back[o++] = m.buf[i];
			continue;
		}
		switch (m.buf[++i]) {
		case '\\':
			back[o++] = '\\';
			break;
		case '"':
			back[o++] = '"';
			break;
		case 'n':
			back[o++] = '\n';
			break;
		default:
			abort();
		}
	}
	back[o] = '\0';
	if (strcmp(back, s))
		abort();
	free(back);
	free(m.buf);
}

static size_t count(const char *s, char c)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

static void check_ingest_name(const char *s)
{
	static const char *const names[] = { "service_name",	"host",	  "container_id", "pod_uid",
					     EXPORT_KIND_LABEL, "thread", "version",	  "x" };
	struct export_profile e = { 0 };
	char name[1024];
	size_t labels = 0, n;
	const char *p = s;

	while (e.n_labels < EXPORT_MAX_LABELS) {
		struct export_label *l = &e.labels[e.n_labels];

		n = strcspn(p, "\n");
		snprintf(l->name, sizeof(l->name), "%s", names[e.n_labels]);
		snprintf(l->value, sizeof(l->value), "%.*s", (int)n, p);
		labels += e.n_labels > 0 && strcmp(l->name, EXPORT_KIND_LABEL);
		e.n_labels++;
		if (!p[n])
			break;
		p += n + 1;
	}
	if (pyroscope_ingest_name(&e, name, sizeof(name)))
		return;
	n = strlen(name);
	if (count(name, '{') != 1 || count(name, '}') != 1 || name[n - 1] != '}' ||
	    count(name, '=') != labels || count(name, ',') != (labels ? labels - 1 : 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_json(s);
	check_escape(s, strlen(s));
	check_label_value(s);
	check_ingest_name(s);
	free(s);
	return 0;
}
