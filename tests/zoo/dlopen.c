/* A plugin host: the interpreter arrives by dlopen, late, as uWSGI's python3 plugin, mod_wsgi
 * or plpython3u bring it. Nothing of Python is linked in; after PYDLOPEN_DELAY_MS (default
 * 1500 ms) it dlopens LIBPYTHON (a path or soname) and runs it as `python ARGS...` would.
 * Usage: pydlopen LIBPYTHON ARGS... */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
	const char *delay = getenv("PYDLOPEN_DELAY_MS");
	long ms = delay ? atol(delay) : 1500;
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
	int (*bytes_main)(int, char **);
	void *lib;

	if (argc < 2) {
		fprintf(stderr, "usage: %s LIBPYTHON ARGS...\n", argv[0]);
		return 2;
	}
	nanosleep(&ts, NULL);
	lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	if (!lib) {
		fprintf(stderr, "pydlopen: %s\n", dlerror());
		return 1;
	}
	*(void **)&bytes_main = dlsym(lib, "Py_BytesMain");
	if (!bytes_main) {
		fprintf(stderr, "pydlopen: %s\n", dlerror());
		return 1;
	}
	argv[1] = argv[0]; /* Python's argv[0] */
	return bytes_main(argc - 1, argv + 1);
}
