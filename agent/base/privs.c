// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "base/privs.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/log.h"

static const struct {
	uint64_t bit;
	const char *name;
} cap_names[] = {
	{ PRIV_SYS_PTRACE, "CAP_SYS_PTRACE" },
	{ PRIV_SYS_ADMIN, "CAP_SYS_ADMIN" },
	{ PRIV_PERFMON, "CAP_PERFMON" },
	{ PRIV_BPF, "CAP_BPF" },
	{ PRIV_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH" },
	{ PRIV_CHECKPOINT_RESTORE, "CAP_CHECKPOINT_RESTORE" },
};

static int effective_caps(uint64_t *caps)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	*caps = (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
	return 0;
}

static void append_names(char *buf, size_t len, uint64_t set)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++) {
		if (!(set & cap_names[i].bit))
			continue;
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? ", " : "",
			 cap_names[i].name);
	}
}

int privs_require_quiet(uint64_t needed)
{
	uint64_t have = 0;

	if (effective_caps(&have))
		return -EPERM;
	return (have & needed) == needed ? 0 : -EPERM;
}

int privs_require(uint64_t needed, const char *command)
{
	char all[128], missing[128];
	uint64_t have = 0;

	if (effective_caps(&have))
		have = 0;
	if ((have & needed) == needed)
		return 0;
	append_names(all, sizeof(all), needed);
	append_names(missing, sizeof(missing), needed & ~have);
	log_error("'%s' needs root or %s (missing: %s)", command, all, missing);
	return -EPERM;
}

int privs_keep_only(uint64_t keep)
{
	cap_value_t kept[64];
	int n = 0, err = 0;
	cap_t caps;

	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++) {
		if (keep & (1ULL << c))
			kept[n++] = c;
		else if (CAP_IS_SUPPORTED(c) && cap_get_bound(c) == 1 && cap_drop_bound(c))
			/* needs CAP_SETPCAP; harmless without: we never exec, and no_new_privs */
			log_debug("cannot drop capability %d from the bounding set: %s", c,
				  strerror(errno));
	}
	caps = cap_init(); /* all clear */
	if (!caps)
		return -ENOMEM;
	if (err || cap_set_flag(caps, CAP_PERMITTED, n, kept, CAP_SET) ||
	    cap_set_flag(caps, CAP_EFFECTIVE, n, kept, CAP_SET) || cap_set_proc(caps) ||
	    cap_reset_ambient() || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		err = err ? err : -errno;
	cap_free(caps);
	if (err)
		log_error("cannot drop capabilities: %s", strerror(-err));
	return err;
}
