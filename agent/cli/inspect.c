// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer inspect FILE...: what pyrometer makes of an interpreter binary, without a
 * process: version, USDT probes, capabilities and every layout offset it would use. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "python/elf_file.h"
#include "base/json.h"
#include "base/log.h"
#include "python/py_binary.h"
#include "python/describe.h"

static const char inspect_usage[] =
	"usage: pyrometer inspect FILE...\n"
	"       pyrometer inspect --bpf\n"
	"\n"
	"Describes each python executable or libpython*.so as pyrometer sees it, one JSON object\n"
	"per line: CPython version and where it was read from, USDT probes, capabilities and the\n"
	"struct offsets used to walk and symbolize its stacks.\n"
	"\n"
	"With --bpf, loads every BPF program as the daemon does with every capability on, and\n"
	"prints what each cost this kernel's verifier: one JSON object per program with\n"
	"verified_insns and load_us, or per object the kernel lacks a feature for (status\n"
	"unavailable) or refused (status refused, exit status 1). Needs root.\n";

static int inspect_one(const char *path)
{
	struct elf_file *ef = NULL;
	struct py_binary b;
	struct json j;
	/* O_NONBLOCK: a FIFO must not be waited on; only regular files are read */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), err;
	struct stat st;

	if (fd < 0) {
		err = -errno;
		log_error("inspect: %s: %s", path, strerror(-err));
		return err;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		log_error("inspect: %s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	err = elf_file_open_fd(fd, &ef);
	close(fd);
	if (!err)
		err = py_binary_inspect(ef, &b);
	elf_file_free(ef);
	if (err) {
		log_error("inspect: %s: %s", path,
			  err == -ENOEXEC ? "not a 64-bit ELF file" : strerror(-err));
		return err;
	}
	json_begin(&j, stdout);
	json_obj_open(&j, NULL);
	json_str(&j, "path", path);
	json_bool(&j, "python", b.is_python);
	if (b.is_python) {
		json_str(&j, "version", b.version[0] ? b.version : NULL);
		json_str(&j, "version_source", describe_version_source(&b));
		describe_binary(&j, &b);
		describe_layout(&j, &b.layout);
	}
	json_obj_close(&j);
	fputc('\n', stdout);
	py_binary_clear(&b);
	return 0;
}

int cmd_inspect(int argc, char **argv)
{
	int i, failed = 0;

	if (argc < 2) {
		fputs(inspect_usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(inspect_usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--bpf")) {
		if (argc > 2) {
			log_error("inspect: --bpf takes no files");
			return 2;
		}
		return inspect_bpf_programs();
	}
	for (i = 1; i < argc; i++)
		failed |= inspect_one(argv[i]) != 0;
	return failed;
}
