/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* JSON descriptions of interpreter binaries, shared by `ps` and `inspect`. */
#ifndef PYRO_REPORT_H
#define PYRO_REPORT_H

#include "base/json.h"
#include "python/py_binary.h"

/* Members "usdt", "usdt_sites", "capabilities" and "unavailable" of the open object. */
void describe_binary(struct json *j, const struct py_binary *b);
/* Member "layout": every offset the frame walker and the symbolizer use. */
void describe_layout(struct json *j, const struct py_layout *l);
const char *describe_version_source(const struct py_binary *b);

#endif
