// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer: a system-wide profiler for CPython processes. main() only dispatches.
 *
 * How the agent is laid out and written (checked by make lint, tests/lint/layers.py):
 * - a folder per layer (README, "Layout"); a file includes its own folder and folders
 *   below it only, so base/ knows nothing of Python and only cli/ and daemon/ see it all;
 * - a public function is named after its file or the header declaring it (spool.c:
 *   spool_put); an object is opaque, made by name_new and ended by name_free (NULL is
 *   fine); command entry points are cmd_NAME;
 * - functions return 0 or a negative errno, and the caller that handles a failure logs it
 *   once; what comes from another process or the network is untrusted and escaped
 *   (base/text.h) before it reaches a log, a label or JSON;
 * - no file over 600 lines. */
#include <stdio.h>
#include <string.h>

#include "base/version.h"
#include "cli/commands.h"
#include "daemon/run.h"
#include "base/log.h"

static const char usage[] =
	"usage: pyrometer COMMAND [OPTIONS]\n"
	"\n"
	"Profiles every CPython process on this host with eBPF, without touching them.\n"
	"\n"
	"commands:\n"
	"  run       the daemon: profile every Python process, ship a profile per service\n"
	"            per interval to the local store or Grafana Pyroscope\n"
	"  ps        list the Python processes on this host and what pyrometer can do with each\n"
	"  record    record a CPU profile (pprof, folded stacks or flame graph)\n"
	"  gc        trace garbage-collection pauses (USDT gc__start/gc__done)\n"
	"  inspect   describe a python executable or libpython as pyrometer sees it\n"
	"  version   print pyrometer's version\n"
	"  help      print this help\n"
	"\n"
	"'pyrometer COMMAND --help' describes a command's options.\n";

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("pyrometer %s\n", PYROMETER_VERSION);
	return 0;
}

/* clang-format off */
static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "run", cmd_run },
	{ "ps", cmd_ps },
	{ "record", cmd_record },
	{ "gc", cmd_gc },
	{ "inspect", cmd_inspect },
	{ "version", cmd_version },
	{ "--version", cmd_version },
};
/* clang-format on */

int main(int argc, char **argv)
{
	size_t i;

	log_hook_libbpf();
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	log_error("unknown command '%s' (see 'pyrometer --help')", argv[1]);
	return 2;
}
