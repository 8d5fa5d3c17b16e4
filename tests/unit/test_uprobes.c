// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* USDT argument specs become BPF cookies that bpf/usdt_arg.bpf.h decodes; the layout is
 * bpf/pyrometer.h's PYRO_ARG_*. The broker refuses what is not a site of the binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <linux/types.h>

#include "pyrometer.h"
#include "usdt/uprobes.h"
#include "python/usdt_notes.h"

static uint64_t cookie_of(const char *spec)
{
	struct usdt_probe p = { 0 };
	uint64_t c = 0;

	p.nargs = usdt_notes_parse_args(spec, p.args, USDT_ARGS_MAX);
	assert_true(p.nargs >= 1);
	assert_int_equal(uprobes_arg_cookie(&p, 0, &c), 0);
	return c;
}

static void encodes_3_11_gc_start(void **state)
{
	uint64_t c = cookie_of("-4@112(%rsp)"); /* Debian's 3.11 gc__start */
	(void)state;

	assert_int_equal(c & 3, PYRO_ARG_DEREF);
	assert_int_equal((c >> PYRO_ARG_REG_SHIFT) & 15, 7); /* rsp */
	assert_int_equal((c >> PYRO_ARG_SIZE_SHIFT) & 15, 4);
	assert_true(c & PYRO_ARG_SIGNED);
	assert_int_equal((int32_t)(c >> PYRO_ARG_VAL_SHIFT), 112);
}

static void encodes_registers_of_every_width(void **state)
{
	(void)state;
	assert_int_equal((cookie_of("-8@%r12") >> PYRO_ARG_REG_SHIFT) & 15, 12);
	assert_int_equal((cookie_of("-4@%eax") >> PYRO_ARG_REG_SHIFT) & 15, 0);
	assert_int_equal((cookie_of("4@%edi") >> PYRO_ARG_REG_SHIFT) & 15, 5);
	assert_int_equal((cookie_of("1@%sil") >> PYRO_ARG_REG_SHIFT) & 15, 4);
	assert_int_equal((cookie_of("1@%dl") >> PYRO_ARG_REG_SHIFT) & 15, 3);
	assert_int_equal((cookie_of("2@%r9w") >> PYRO_ARG_REG_SHIFT) & 15, 9);
	assert_int_equal(cookie_of("-4@%ebp") & 3, PYRO_ARG_REG);
	assert_false(cookie_of("8@%rbx") & PYRO_ARG_SIGNED);
}

static void encodes_constants_and_negative_displacements(void **state)
{
	uint64_t c = cookie_of("-4@$-7");
	(void)state;

	assert_int_equal(c & 3, PYRO_ARG_CONST);
	assert_int_equal((int32_t)(c >> PYRO_ARG_VAL_SHIFT), -7);
	c = cookie_of("8@-16(%rbp)");
	assert_int_equal((int32_t)(c >> PYRO_ARG_VAL_SHIFT), -16);
}

static void refuses_what_it_cannot_fetch(void **state)
{
	struct usdt_probe p = { 0 };
	uint64_t c;
	(void)state;

	p.nargs = usdt_notes_parse_args("8@8(%rax,%rbx,8)", p.args, USDT_ARGS_MAX);
	assert_int_equal(uprobes_arg_cookie(&p, 0, &c), -EINVAL); /* scale-index-base */
	assert_int_equal(uprobes_arg_cookie(&p, 1, &c), -EINVAL); /* no such argument */
}

/* The broker's loop, in a thread of ours over a socket pair: a request for an offset that
 * is not a USDT site of the file it is given is refused, and nothing is opened. */
static void broker_refuses_offsets_that_are_not_sites(void **state)
{
	struct {
		uint32_t kind, pad;
		uint64_t offset, ref_ctr_offset;
	} q = { .kind = 1, .offset = 0x1000 };
	int sv[2], fd, reply = 0;
	pid_t pid;
	(void)state;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		_exit(uprobes_serve(sv[1]) ? 1 : 0);
	}
	close(sv[1]);
	fd = open("/proc/self/exe", O_RDONLY); /* an ELF with no python USDT notes */
	{
		char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov = { .iov_base = &q, .iov_len = sizeof(q) };
		struct msghdr m = { .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl,
				    .msg_controllen = sizeof(ctl) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
		assert_int_equal(sendmsg(sv[0], &m, 0), sizeof(q));
	}
	assert_int_equal(recv(sv[0], &reply, sizeof(reply), 0), sizeof(reply));
	assert_true(reply < 0);
	close(fd);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(encodes_3_11_gc_start),
		cmocka_unit_test(encodes_registers_of_every_width),
		cmocka_unit_test(encodes_constants_and_negative_displacements),
		cmocka_unit_test(refuses_what_it_cannot_fetch),
		cmocka_unit_test(broker_refuses_offsets_that_are_not_sites),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
