/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Read-only access to an ELF file's sections, symbols and initialised data. libelf reads the
 * file lazily with pread (ELF_C_READ), never mmap: a binary from another root may be truncated
 * by its owner while we read it, and a truncated mmap would kill the agent with SIGBUS. Only
 * the headers and the sections asked for are read, so checking every exec'd binary is cheap. */
#ifndef PYRO_ELF_FILE_H
#define PYRO_ELF_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct elf_file;

/* Takes a reference of its own on fd (dup). */
int elf_file_open_fd(int fd, struct elf_file **out);
/* Parses a copy of buf (used by the fuzz target and tests). */
int elf_file_from_memory(const void *buf, size_t len, struct elf_file **out);
void elf_file_free(struct elf_file *ef);

/* Address (st_value) and size of a defined symbol, from .dynsym then .symtab. -ENOENT if
 * absent. */
int elf_file_symbol(struct elf_file *ef, const char *name, uint64_t *addr, uint64_t *size);
/* Copies len bytes of the file's initialised data at virtual address vaddr (from the
 * allocated section holding it). -ERANGE if not entirely inside one section's data. */
int elf_file_read(struct elf_file *ef, uint64_t vaddr, void *buf, size_t len);
/* Contents and address of the named section; -ENOENT if absent. */
int elf_file_section(struct elf_file *ef, const char *name, const void **data, size_t *len,
		     uint64_t *addr);
/* The size the section header claims, without reading the section. -ENOENT if absent. */
int elf_file_section_size(struct elf_file *ef, const char *name, uint64_t *size);
/* p_vaddr - p_offset of the PT_LOAD segment containing file offset off: with a mapping of the
 * file at file offset off starting at address start, the load bias is
 * start - off - result. */
int elf_file_vaddr_delta(struct elf_file *ef, uint64_t off, int64_t *delta);
/* The file offset of virtual address vaddr (through its PT_LOAD segment), as uprobes and
 * their reference counters want them. */
int elf_file_vaddr_to_offset(struct elf_file *ef, uint64_t vaddr, uint64_t *off);
/* The same, for an address that must lie in the file-backed part of an executable PT_LOAD
 * segment (where a uprobe may go); -ENOEXEC otherwise. */
int elf_file_vaddr_to_exec_offset(struct elf_file *ef, uint64_t vaddr, uint64_t *off);
/* Does the dynamic section name a DT_NEEDED library whose name starts with prefix? */
bool elf_file_needs(struct elf_file *ef, const char *prefix);
/* Calls cb for each NUL-terminated string inside the named section's contents, with the
 * string's virtual address. */
int elf_file_for_each_string(struct elf_file *ef, const char *section,
			     int (*cb)(const char *s, size_t n, uint64_t addr, void *ctx),
			     void *ctx);

#endif
