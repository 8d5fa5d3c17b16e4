// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "python/usdt_notes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NT_STAPSDT 3
#define NOTE_ALIGN 4 /* stapsdt notes are 4-byte aligned, also in ELF64 */

static size_t align_up(size_t v)
{
	return (v + NOTE_ALIGN - 1) & ~(size_t)(NOTE_ALIGN - 1);
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* x86-64 register names as they appear in GNU as operands (the width is the spec's). */
static const char *const x86_regs[] = {
	"rax",	"eax",	"ax",	"al",	"rbx",	"ebx",	"bx",	"bl",	"rcx",	"ecx",	"cx",
	"cl",	"rdx",	"edx",	"dx",	"dl",	"rsi",	"esi",	"si",	"sil",	"rdi",	"edi",
	"di",	"dil",	"rbp",	"ebp",	"bp",	"bpl",	"rsp",	"esp",	"sp",	"spl",	"rip",
	"eip",	"r8",	"r8d",	"r8w",	"r8b",	"r9",	"r9d",	"r9w",	"r9b",	"r10",	"r10d",
	"r10w", "r10b", "r11",	"r11d", "r11w", "r11b", "r12",	"r12d", "r12w", "r12b", "r13",
	"r13d", "r13w", "r13b", "r14",	"r14d", "r14w", "r14b", "r15",	"r15d", "r15w", "r15b",
};

/* Reads "%name" at *s into reg; advances *s. */
static int parse_reg(const char **s, char reg[8])
{
	const char *p = *s;
	size_t n = 0, i;

	if (*p++ != '%')
		return -EINVAL;
	while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9'))
		n++;
	if (n == 0 || n >= 8)
		return -EINVAL;
	for (i = 0; i < sizeof(x86_regs) / sizeof(x86_regs[0]); i++) {
		if (strlen(x86_regs[i]) == n && memcmp(x86_regs[i], p, n) == 0) {
			memcpy(reg, p, n);
			reg[n] = '\0';
			*s = p + n;
			return 0;
		}
	}
	return -EINVAL;
}

/* Reads an optionally signed decimal or 0x-hex integer; advances *s. */
static int parse_int(const char **s, int64_t *v)
{
	const char *p = *s;
	char *end;
	long long x;

	if (!(*p == '-' || *p == '+' || (*p >= '0' && *p <= '9')))
		return -EINVAL;
	errno = 0;
	x = strtoll(p, &end, 0);
	if (errno || end == p)
		return -EINVAL;
	*v = x;
	*s = end;
	return 0;
}

/* One operand: $imm | %reg | [off](%reg) | [off](%base,%index[,scale]) */
static int parse_operand(const char **s, struct usdt_arg *a)
{
	const char *p = *s;
	char index[8];
	int64_t scale = 1;

	a->val = 0;
	if (*p == '$') {
		p++;
		a->kind = USDT_ARG_CONST;
		if (parse_int(&p, &a->val))
			return -EINVAL;
	} else if (*p == '%') {
		a->kind = USDT_ARG_REG;
		if (parse_reg(&p, a->reg))
			return -EINVAL;
	} else {
		if (*p != '(' && parse_int(&p, &a->val))
			return -EINVAL;
		if (*p++ != '(' || parse_reg(&p, a->reg))
			return -EINVAL;
		a->kind = USDT_ARG_REG_DEREF;
		if (*p == ',') {
			p++;
			a->kind = USDT_ARG_SIB;
			if (parse_reg(&p, index))
				return -EINVAL;
			if (*p == ',') {
				p++;
				if (parse_int(&p, &scale) ||
				    (scale != 1 && scale != 2 && scale != 4 && scale != 8))
					return -EINVAL;
			}
		}
		if (*p++ != ')')
			return -EINVAL;
	}
	*s = p;
	return 0;
}

int usdt_notes_parse_args(const char *spec, struct usdt_arg *args, int max)
{
	const char *p = spec;
	int n = 0;

	for (;;) {
		struct usdt_arg *a;
		const char *at;
		int64_t size;

		while (*p == ' ')
			p++;
		if (!*p)
			return n;
		if (n == max)
			return -EINVAL;
		a = &args[n];
		memset(a, 0, sizeof(*a));
		/* "[-]SIZE@operand"; old notes may give the operand alone. */
		at = strchr(p, '@');
		if (at && (!strchr(p, ' ') || at < strchr(p, ' '))) {
			if (parse_int(&p, &size) || p != at)
				return -EINVAL;
			a->is_signed = size < 0;
			a->size = (int)(size < 0 ? -size : size);
			if (a->size != 1 && a->size != 2 && a->size != 4 && a->size != 8)
				return -EINVAL;
			p = at + 1;
		}
		if (parse_operand(&p, a) || (*p && *p != ' '))
			return -EINVAL;
		n++;
	}
}

/* Copies the NUL-terminated string at desc[*off] (bounded by end) into dst. */
static int take_str(const unsigned char *desc, size_t end, size_t *off, char *dst, size_t cap)
{
	const unsigned char *nul;
	size_t n;

	if (*off >= end)
		return -EINVAL;
	nul = memchr(desc + *off, '\0', end - *off);
	if (!nul)
		return -EINVAL;
	n = (size_t)(nul - (desc + *off));
	if (n >= cap)
		return -EINVAL;
	memcpy(dst, desc + *off, n + 1);
	*off += n + 1;
	return 0;
}

static int parse_one(const unsigned char *desc, size_t descsz, uint64_t base_addr,
		     struct usdt_probe *p)
{
	size_t off = 24;
	uint64_t note_base;

	memset(p, 0, sizeof(*p));
	if (descsz < 24 + 3)
		return -EINVAL;
	p->pc = get_u64(desc);
	note_base = get_u64(desc + 8);
	p->semaphore = get_u64(desc + 16);
	/* Prelink moves sections after the notes were written: the difference between where
	 * .stapsdt.base is now and where it was then shifts the probe address. */
	if (base_addr && note_base)
		p->pc += base_addr - note_base;
	if (take_str(desc, descsz, &off, p->provider, sizeof(p->provider)) ||
	    take_str(desc, descsz, &off, p->name, sizeof(p->name)) ||
	    take_str(desc, descsz, &off, p->args_spec, sizeof(p->args_spec)))
		return -EINVAL;
	if (!p->provider[0] || !p->name[0])
		return -EINVAL;
	p->nargs = usdt_notes_parse_args(p->args_spec, p->args, USDT_ARGS_MAX);
	return p->nargs < 0 ? -EINVAL : 0;
}

int usdt_notes_for_each(const void *data, size_t len, uint64_t base_addr,
			int (*cb)(const struct usdt_probe *p, void *ctx), void *ctx)
{
	const unsigned char *d = data;
	struct usdt_probe p;
	size_t off = 0;
	int err;

	while (off < len) {
		uint32_t namesz, descsz, type;
		size_t name_at, desc_at, next;

		if (len - off < 12)
			return -EINVAL;
		namesz = get_u32(d + off);
		descsz = get_u32(d + off + 4);
		type = get_u32(d + off + 8);
		name_at = off + 12;
		/* Sizes are 32-bit and len is bounded by the section: no size_t overflow. */
		desc_at = name_at + align_up(namesz);
		next = desc_at + align_up(descsz);
		if (desc_at > len || desc_at + descsz > len)
			return -EINVAL;
		if (type == NT_STAPSDT && namesz == sizeof("stapsdt") &&
		    memcmp(d + name_at, "stapsdt", sizeof("stapsdt")) == 0) {
			if (parse_one(d + desc_at, descsz, base_addr, &p))
				return -EINVAL;
			if ((err = cb(&p, ctx)))
				return err;
		}
		off = next > len ? len : next;
	}
	return 0;
}

struct collected {
	struct usdt_probe *probes;
	size_t n, cap;
};

static int collect(const struct usdt_probe *p, void *ctx)
{
	struct collected *c = ctx;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct usdt_probe *grown = realloc(c->probes, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		c->probes = grown;
		c->cap = cap;
	}
	c->probes[c->n++] = *p;
	return 0;
}

int usdt_notes_parse(const void *data, size_t len, uint64_t base_addr, struct usdt_probe **out)
{
	struct collected c = { 0 };
	int err = usdt_notes_for_each(data, len, base_addr, collect, &c);

	*out = NULL;
	if (err) {
		free(c.probes);
		return err;
	}
	*out = c.probes;
	return (int)c.n;
}

bool usdt_notes_attachable(const struct usdt_probe *p)
{
	int i;

	for (i = 0; i < p->nargs; i++)
		if (p->args[i].kind == USDT_ARG_SIB)
			return false;
	return true;
}
