/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Reading another process's memory (process_vm_readv). Everything read is untrusted. */
#ifndef PYRO_PROCMEM_H
#define PYRO_PROCMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads exactly len bytes at addr. -EFAULT for a partial or failed read, -ESRCH when the
 * process is gone. */
int procmem_read(pid_t pid, uint64_t addr, void *buf, size_t len);

#endif
