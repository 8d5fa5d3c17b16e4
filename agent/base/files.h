/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* File helpers for the store and the spool. */
#ifndef PYRO_FILES_H
#define PYRO_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* mkdir -p with this mode for the directories it creates. */
int files_mkdirs(const char *path, mode_t mode);
/* Writes the pieces to path.tmp, then renames it to path, so that readers (and a restart
 * after a crash) see the whole file or none. durable: fsync the file and its directory. */
int files_write_atomic(const char *path, const struct iovec *iov, int n, mode_t mode, bool durable);
/* Reads a whole regular file of at most max bytes, not through a symlink; *out is malloc'd
 * (with a NUL after the data). -EINVAL if it is not a regular file (a FIFO, a device, a
 * directory: never waited on), -EFBIG if larger than max. */
int files_read(const char *path, size_t max, unsigned char **out, size_t *len);
/* The same; follow: through symlinks too (a config file in a Kubernetes ConfigMap is one). */
int files_read_regular(const char *path, size_t max, bool follow, unsigned char **out, size_t *len);
/* The same for a secret (followed through symlinks): -EPERM, and nothing kept, if group or
 * others may read it: a token readable by others has leaked already. */
int files_read_private(const char *path, size_t max, unsigned char **out, size_t *len);
/* Secret files (token, password) hold one line: anything larger is refused, not cut. */
#define SECRET_FILE_MAX 4096
/* Says why files_read* failed, for people. */
const char *files_why(int err);

#endif
