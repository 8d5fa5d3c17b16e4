/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* USDT arguments at plain uprobes: the site's spec comes in the BPF cookie
 * (bpf/pyrometer.h, PYRO_ARG_*), put there by agent/usdt/uprobes.c. Cheaper than libbpf's USDT
 * support (no spec map lookup), and the uprobe may come from a broker process, which
 * libbpf's USDT attach cannot use. Include after vmlinux.h, the libbpf headers and
 * pyrometer.h. */
#ifndef USDT_ARG_BPF_H
#define USDT_ARG_BPF_H

/* The registers in the order user space numbers them. Copied to the stack with constant-
 * offset loads: a switch compiles to a computed context offset, which the verifier refuses. */
static __always_inline void regs_of(struct pt_regs *ctx, __u64 *v)
{
	v[0] = ctx->ax;
	v[1] = ctx->bx;
	v[2] = ctx->cx;
	v[3] = ctx->dx;
	v[4] = ctx->si;
	v[5] = ctx->di;
	v[6] = ctx->bp;
	v[7] = ctx->sp;
	v[8] = ctx->r8;
	v[9] = ctx->r9;
	v[10] = ctx->r10;
	v[11] = ctx->r11;
	v[12] = ctx->r12;
	v[13] = ctx->r13;
	v[14] = ctx->r14;
	v[15] = ctx->r15;
	asm volatile("" ::: "memory"); /* keep the copies */
}

/* Fetches the argument the cookie describes into *out, truncated and extended as its size
 * and sign say. Returns 0, or -1 when the spec is bad or the memory cannot be read. */
static __always_inline int usdt_arg(struct pt_regs *ctx, __u64 c, long *out)
{
	__u32 kind = c & 3, reg = (c >> PYRO_ARG_REG_SHIFT) & 15;
	__u32 size = (c >> PYRO_ARG_SIZE_SHIFT) & 15;
	__s64 val = (__s32)(c >> PYRO_ARG_VAL_SHIFT);
	__u64 v[16], x = 0;

	if (kind == PYRO_ARG_CONST) {
		*out = val;
		return 0;
	}
	if (size == 0 || size > 8 || (kind != PYRO_ARG_REG && kind != PYRO_ARG_DEREF))
		return -1;
	regs_of(ctx, v);
	x = v[reg & 15];
	if (kind == PYRO_ARG_DEREF && bpf_probe_read_user(&x, size, (void *)(x + val)))
		return -1;
	if (size < 8) {
		__u32 shift = 64 - size * 8;

		x <<= shift;
		x = (c & PYRO_ARG_SIGNED) ? (__u64)((__s64)x >> shift) : x >> shift;
	}
	*out = (long)x;
	return 0;
}

#endif /* USDT_ARG_BPF_H */
