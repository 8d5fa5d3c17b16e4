// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "python/elf_file.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct elf_file {
	Elf *elf;
	int fd;	     /* -1 for in-memory files */
	char *image; /* in-memory files only */
};

static int finish_open(struct elf_file *ef, struct elf_file **out)
{
	if (!ef->elf || elf_kind(ef->elf) != ELF_K_ELF || gelf_getclass(ef->elf) != ELFCLASS64) {
		elf_file_free(ef);
		return -ENOEXEC;
	}
	*out = ef;
	return 0;
}

int elf_file_open_fd(int fd, struct elf_file **out)
{
	struct elf_file *ef;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	ef = calloc(1, sizeof(*ef));
	if (!ef)
		return -ENOMEM;
	ef->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (ef->fd < 0) {
		int err = -errno;

		free(ef);
		return err;
	}
	ef->elf = elf_begin(ef->fd, ELF_C_READ, NULL);
	return finish_open(ef, out);
}

int elf_file_from_memory(const void *buf, size_t len, struct elf_file **out)
{
	struct elf_file *ef;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	ef = calloc(1, sizeof(*ef));
	if (!ef)
		return -ENOMEM;
	ef->fd = -1;
	ef->image = malloc(len ? len : 1);
	if (!ef->image) {
		free(ef);
		return -ENOMEM;
	}
	memcpy(ef->image, buf, len);
	ef->elf = elf_memory(ef->image, len);
	return finish_open(ef, out);
}

void elf_file_free(struct elf_file *ef)
{
	if (!ef)
		return;
	if (ef->elf)
		elf_end(ef->elf);
	if (ef->fd >= 0)
		close(ef->fd);
	free(ef->image);
	free(ef);
}

static Elf_Scn *find_section(struct elf_file *ef, const char *name, GElf_Shdr *shdr)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(ef->elf, &shstrndx))
		return NULL;
	while ((scn = elf_nextscn(ef->elf, scn))) {
		const char *n;

		if (!gelf_getshdr(scn, shdr))
			continue;
		n = elf_strptr(ef->elf, shstrndx, shdr->sh_name);
		if (n && strcmp(n, name) == 0)
			return scn;
	}
	return NULL;
}

int elf_file_section(struct elf_file *ef, const char *name, const void **data, size_t *len,
		     uint64_t *addr)
{
	GElf_Shdr shdr;
	Elf_Scn *scn = find_section(ef, name, &shdr);
	Elf_Data *d;

	if (!scn)
		return -ENOENT;
	if (shdr.sh_type == SHT_NOBITS)
		return -ENODATA;
	d = elf_getdata(scn, NULL);
	if (!d || !d->d_buf)
		return -EINVAL;
	*data = d->d_buf;
	*len = d->d_size;
	if (addr)
		*addr = shdr.sh_addr;
	return 0;
}

int elf_file_section_size(struct elf_file *ef, const char *name, uint64_t *size)
{
	GElf_Shdr shdr;

	if (!find_section(ef, name, &shdr))
		return -ENOENT;
	*size = shdr.sh_size;
	return 0;
}

static int lookup_in(struct elf_file *ef, Elf64_Word type, const char *name, uint64_t *addr,
		     uint64_t *size)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;

	while ((scn = elf_nextscn(ef->elf, scn))) {
		Elf_Data *d;
		size_t i, count;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != type || !shdr.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d)
			continue;
		count = d->d_size / shdr.sh_entsize;
		for (i = 0; i < count; i++) {
			GElf_Sym sym;
			const char *n;

			if (!gelf_getsym(d, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
				continue;
			n = elf_strptr(ef->elf, shdr.sh_link, sym.st_name);
			if (n && strcmp(n, name) == 0) {
				*addr = sym.st_value;
				if (size)
					*size = sym.st_size;
				return 0;
			}
		}
	}
	return -ENOENT;
}

int elf_file_symbol(struct elf_file *ef, const char *name, uint64_t *addr, uint64_t *size)
{
	if (lookup_in(ef, SHT_DYNSYM, name, addr, size) == 0)
		return 0;
	return lookup_in(ef, SHT_SYMTAB, name, addr, size);
}

int elf_file_read(struct elf_file *ef, uint64_t vaddr, void *buf, size_t len)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;

	while ((scn = elf_nextscn(ef->elf, scn))) {
		Elf_Data *d;
		uint64_t at;

		if (!gelf_getshdr(scn, &shdr) || !(shdr.sh_flags & SHF_ALLOC) ||
		    shdr.sh_type == SHT_NOBITS || vaddr < shdr.sh_addr ||
		    vaddr - shdr.sh_addr >= shdr.sh_size)
			continue;
		at = vaddr - shdr.sh_addr;
		if (ef->fd >= 0) {
			/* just these bytes: loading the section would read all of .rodata (2 MiB
			 * in 3.11) for a 4-byte Py_Version, while a new process waits for its
			 * probes */
			if (len > shdr.sh_size - at)
				return -ERANGE;
			return pread(ef->fd, buf, len, (off_t)(shdr.sh_offset + at)) == (ssize_t)len
				       ? 0
				       : -ERANGE;
		}
		d = elf_getdata(scn, NULL);
		if (!d || !d->d_buf || at > d->d_size || len > d->d_size - at)
			return -ERANGE;
		memcpy(buf, (const char *)d->d_buf + at, len);
		return 0;
	}
	return -ERANGE;
}

bool elf_file_needs(struct elf_file *ef, const char *prefix)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;

	while ((scn = elf_nextscn(ef->elf, scn))) {
		Elf_Data *d;
		size_t i;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNAMIC || !shdr.sh_entsize)
			continue;
		d = elf_getdata(scn, NULL);
		for (i = 0; d && i < d->d_size / shdr.sh_entsize; i++) {
			GElf_Dyn dyn;
			const char *n;

			if (!gelf_getdyn(d, (int)i, &dyn) || dyn.d_tag != DT_NEEDED)
				continue;
			n = elf_strptr(ef->elf, shdr.sh_link, dyn.d_un.d_val);
			if (n && strncmp(n, prefix, strlen(prefix)) == 0)
				return true;
		}
	}
	return false;
}

/* The first PT_LOAD segment for which in(ph, x) holds. */
static int find_load(struct elf_file *ef, bool (*in)(const GElf_Phdr *ph, uint64_t x), uint64_t x,
		     GElf_Phdr *out)
{
	size_t i, nph;

	if (elf_getphdrnum(ef->elf, &nph))
		return -EINVAL;
	for (i = 0; i < nph; i++)
		if (gelf_getphdr(ef->elf, (int)i, out) && out->p_type == PT_LOAD && in(out, x))
			return 0;
	return -ENOENT;
}

/* Mappings start at page-aligned file offsets at or below p_offset. */
static bool holds_offset(const GElf_Phdr *ph, uint64_t off)
{
	return ph->p_align && off >= (ph->p_offset & ~(ph->p_align - 1)) &&
	       off < ph->p_offset + ph->p_filesz;
}

static bool holds_vaddr(const GElf_Phdr *ph, uint64_t vaddr)
{
	return vaddr >= ph->p_vaddr && vaddr < ph->p_vaddr + ph->p_memsz;
}

int elf_file_vaddr_delta(struct elf_file *ef, uint64_t off, int64_t *delta)
{
	GElf_Phdr ph;
	int err = find_load(ef, holds_offset, off, &ph);

	if (!err)
		*delta = (int64_t)(ph.p_vaddr - ph.p_offset);
	return err;
}

int elf_file_vaddr_to_offset(struct elf_file *ef, uint64_t vaddr, uint64_t *off)
{
	GElf_Phdr ph;
	int err = find_load(ef, holds_vaddr, vaddr, &ph);

	if (!err)
		*off = vaddr - ph.p_vaddr + ph.p_offset;
	return err;
}

int elf_file_vaddr_to_exec_offset(struct elf_file *ef, uint64_t vaddr, uint64_t *off)
{
	GElf_Phdr ph;
	int err = find_load(ef, holds_vaddr, vaddr, &ph);

	if (err)
		return err;
	/* inside the file's bytes of an executable segment, not its zero-filled tail */
	if (!(ph.p_flags & PF_X) || vaddr - ph.p_vaddr >= ph.p_filesz)
		return -ENOEXEC;
	*off = vaddr - ph.p_vaddr + ph.p_offset;
	return 0;
}

int elf_file_for_each_string(struct elf_file *ef, const char *section,
			     int (*cb)(const char *s, size_t n, uint64_t addr, void *ctx),
			     void *ctx)
{
	const void *data;
	const char *p, *end, *nul;
	size_t len;
	uint64_t addr;
	int err = elf_file_section(ef, section, &data, &len, &addr);

	if (err)
		return err;
	p = data;
	end = p + len;
	while (p < end) {
		nul = memchr(p, '\0', (size_t)(end - p));
		if (!nul)
			break;
		if (nul > p && (err = cb(p, (size_t)(nul - p),
					 addr + (uint64_t)(p - (const char *)data), ctx)))
			return err;
		p = nul + 1;
	}
	return 0;
}
