/* An embedding host: the interpreter (and its USDT probes) live in libpython3.11.so, not here.
 * Usage: pyembed SCRIPT [ARGS...] runs SCRIPT with sys.argv = [SCRIPT, ARGS...]. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	PyConfig config;
	PyStatus status;

	if (argc < 2) {
		fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
		return 2;
	}
	PyConfig_InitPythonConfig(&config);
	/* sys.argv is exactly [SCRIPT, ARGS...], not parsed as a python command line. */
	config.parse_argv = 0;
	config.run_filename = Py_DecodeLocale(argv[1], NULL);
	status = PyConfig_SetBytesArgv(&config, argc - 1, argv + 1);
	if (PyStatus_Exception(status))
		goto fail;
	status = Py_InitializeFromConfig(&config);
	if (PyStatus_Exception(status))
		goto fail;
	PyConfig_Clear(&config);
	return Py_RunMain();
fail:
	PyConfig_Clear(&config);
	Py_ExitStatusException(status);
}
