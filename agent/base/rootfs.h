/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Opening a file a process maps, through that process's own root (containers, chroots). */
#ifndef PYRO_ROOTFS_H
#define PYRO_ROOTFS_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/procfs.h"

/* The path of mapping m as the process itself sees it: the kernel shows us paths from our
 * root, so a chroot's prefix (root, from procfs_read_root) is removed. */
void rootfs_path_in_root(const char *root, const struct map_entry *m, char *out, size_t len);

/* Puts into m the device its file has when opened, which is what the other functions here
 * check. /proc/PID/maps shows the device of the layer an overlayfs file comes from, while
 * opening it through the overlay (containers' roots) shows the overlay's device; the inode
 * numbers agree. Read from /proc/PID/map_files (CAP_CHECKPOINT_RESTORE); left as it is if
 * that cannot be read or names another file. */
void rootfs_visible_identity(pid_t pid, struct map_entry *m);

/* Opens path inside /proc/PID/root (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), read-only,
 * if it is a regular file with this device and inode; -ESTALE if it is another file. */
int rootfs_open_verified(pid_t pid, const char *path, uint32_t dev_major, uint32_t dev_minor,
			 uint64_t inode);

/* Opens the file behind mapping m of pid, read-only. The path is resolved inside
 * /proc/PID/root with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so no symlink can
 * lead outside that root; the result must be a regular file with the device and inode the
 * process maps. If the path no longer names that file (deleted or replaced, e.g. by a
 * package upgrade), the mapping itself is opened through /proc/PID/map_files instead.
 * Returns an fd or a negative errno (-ESTALE: nothing matching the mapping was found). */
int rootfs_open_mapped(pid_t pid, const char *path_in_root, const struct map_entry *m);

#endif
