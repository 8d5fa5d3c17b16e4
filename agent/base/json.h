/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* A minimal JSON writer for one-object-per-line output. Strings from other processes (comm,
 * paths) are untrusted: every byte that is not printable ASCII or valid UTF-8 is escaped. */
#ifndef PYRO_JSON_H
#define PYRO_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *out;
	int depth;
	bool need_comma[16]; /* per nesting level: has this container got a member yet */
};

void json_begin(struct json *j, FILE *out);
void json_obj_open(struct json *j, const char *key); /* key NULL inside arrays/top level */
void json_obj_close(struct json *j);
void json_arr_open(struct json *j, const char *key);
void json_arr_close(struct json *j);
void json_str(struct json *j, const char *key, const char *val); /* val NULL writes null */
void json_u64(struct json *j, const char *key, uint64_t val);
void json_i64(struct json *j, const char *key, int64_t val);
void json_bool(struct json *j, const char *key, bool val);
/* Writes s as a JSON string literal (with quotes) to out. */
void json_write_string(FILE *out, const char *s);

#endif
