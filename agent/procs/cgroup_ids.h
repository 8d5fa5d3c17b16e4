/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Container id and Kubernetes pod uid of a process, from the paths in /proc/PID/cgroup:
 * Docker, containerd and CRI-O name the container by a 64-hex-digit id, and the kubelet names
 * the pod's cgroup "pod<uid>" (with '_' for '-' under the systemd cgroup driver). */
#ifndef PYRO_CGROUP_IDS_H
#define PYRO_CGROUP_IDS_H

#include <stddef.h>
#include <sys/types.h>

#define CONTAINER_ID_LEN 64
#define POD_UID_LEN 36

/* From the text of a cgroup file; each out is "" when not found. */
void cgroup_ids_parse(const char *text, char container[CONTAINER_ID_LEN + 1],
		      char pod[POD_UID_LEN + 1]);
/* Reads /proc/PID/cgroup. */
void cgroup_ids_of(pid_t pid, char container[CONTAINER_ID_LEN + 1], char pod[POD_UID_LEN + 1]);

#endif
