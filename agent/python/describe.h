/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* JSON descriptions of interpreter binaries, shared by `ps` and `inspect`. */
#ifndef PYRO_REPORT_H
#define PYRO_REPORT_H

#include "base/json.h"
#include "python/py_binary.h"

/* What pyrometer can do with b's processes on this kernel: the binary's own capabilities,
 * less those the kernel lacks (base/kernel.h), with the kernel's reason. */
void describe_caps_here(const struct py_binary *b, struct py_caps *out);
/* Members "usdt", "usdt_sites", "capabilities" and "unavailable" (on this kernel) of the
 * open object. */
void describe_binary(struct json *j, const struct py_binary *b);
/* Member "layout": every offset the frame walker and the symbolizer use. */
void describe_layout(struct json *j, const struct py_layout *l);
const char *describe_version_source(const struct py_binary *b);

#endif
