// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "base/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

void rootfs_path_in_root(const char *root, const struct map_entry *m, char *out, size_t len)
{
	size_t rl = strlen(root);

	/* A process in another mount namespace shows up with its own paths already; only a
	 * root that is a prefix of the path (a chroot in our namespace) is stripped. */
	if (rl > 1 && strncmp(m->path, root, rl) == 0 && m->path[rl] == '/')
		snprintf(out, len, "%s", m->path + rl);
	else
		snprintf(out, len, "%s", m->path);
}

static int check_same_file(int fd, uint32_t dev_major, uint32_t dev_minor, uint64_t inode)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_ino != inode || major(st.st_dev) != dev_major || minor(st.st_dev) != dev_minor)
		return -ESTALE;
	return 0;
}

/* Opens for reading the file that the O_PATH descriptor pathfd names, once it is known to
 * be the regular file expected. Opening is an action on devices and FIFOs (a tape rewinds,
 * a FIFO waits for a writer, some devices block), so nothing is opened before its type is
 * known. Closes pathfd. */
static int reopen_checked(int pathfd, uint32_t dev_major, uint32_t dev_minor, uint64_t inode)
{
	char self[64];
	int fd, err = check_same_file(pathfd, dev_major, dev_minor, inode);

	if (err) {
		close(pathfd);
		return err;
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", pathfd);
	fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	err = fd < 0 ? -errno : 0;
	close(pathfd);
	if (err)
		return err;
	/* the same inode still: a reopen follows the descriptor, not a path */
	err = check_same_file(fd, dev_major, dev_minor, inode);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int rootfs_open_verified(pid_t pid, const char *path, uint32_t dev_major, uint32_t dev_minor,
			 uint64_t inode)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	char root[64];
	int dirfd, fd, err;

	snprintf(root, sizeof(root), "/proc/%d/root", pid);
	dirfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	err = fd < 0 ? -errno : 0;
	close(dirfd);
	if (err)
		return err;
	return reopen_checked(fd, dev_major, dev_minor, inode);
}

static void map_file_name(pid_t pid, const struct map_entry *m, char *out, size_t len)
{
	snprintf(out, len, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, m->start, m->end);
}

/* /proc/PID/map_files/START-END is the mapped file itself, whatever its path now says. */
static int open_map_file(pid_t pid, const struct map_entry *m)
{
	char name[96];
	int fd;

	map_file_name(pid, m, name, sizeof(name));
	fd = open(name, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return reopen_checked(fd, m->dev_major, m->dev_minor, m->inode);
}

int rootfs_open_mapped(pid_t pid, const char *path_in_root, const struct map_entry *m)
{
	int fd = -ENOENT;

	if (!m->deleted)
		fd = rootfs_open_verified(pid, path_in_root, m->dev_major, m->dev_minor, m->inode);
	if (fd >= 0)
		return fd;
	/* deleted, replaced, or something else planted at the path (a FIFO, a device) */
	return open_map_file(pid, m);
}

void rootfs_visible_identity(pid_t pid, struct map_entry *m)
{
	char name[96];
	struct stat st;

	map_file_name(pid, m, name, sizeof(name));
	if (stat(name, &st) || !S_ISREG(st.st_mode) || st.st_ino != m->inode)
		return; /* gone, not permitted, or remapped since: keep what maps said */
	m->dev_major = major(st.st_dev);
	m->dev_minor = minor(st.st_dev);
}
