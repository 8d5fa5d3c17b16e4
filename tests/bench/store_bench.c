// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* make bench: the local store's cost per write as it fills. Writes N 1 KiB profiles of one
 * service (start-up import profiles, as short-lived Pythons leave them) into a fresh store
 * under a cap they never reach, and prints the time per write over each thousand and the
 * process's peak RSS. Args: DIR N. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "delivery/store.h"

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static uint8_t data[1024];
	struct store_opts o = { .cap_bytes = 1ull << 40 };
	struct export_profile e = { .n_labels = 2, .data = data, .len = sizeof(data) };
	uint64_t start_ms = (uint64_t)time(NULL) * 1000 - 3600 * 1000;
	struct rusage ru;
	struct store *s;
	double t0, worst = 0;
	int n;

	if (argc != 3 || (n = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: store_bench DIR N\n");
		return 2;
	}
	o.dir = argv[1];
	snprintf(e.labels[0].name, sizeof(e.labels[0].name), "service_name");
	snprintf(e.labels[0].value, sizeof(e.labels[0].value), "cron");
	snprintf(e.labels[1].name, sizeof(e.labels[1].name), EXPORT_KIND_LABEL);
	snprintf(e.labels[1].value, sizeof(e.labels[1].value), EXPORT_KIND_IMPORT);
	if (store_open(&o, &s))
		return 1;
	t0 = now_s();
	for (int i = 1; i <= n; i++) {
		e.from_ns = (start_ms + (uint64_t)i * 100) * 1000000;
		e.until_ns = e.from_ns + 50000000;
		if (store_put(s, &e))
			return 1;
		if (i % 1000 == 0) {
			double per = (now_s() - t0) / 1000 * 1e6;

			if (per > worst)
				worst = per;
			if (i % (n / 4 > 1000 ? n / 4 / 1000 * 1000 : 1000) == 0)
				printf("  %6d files: %8.1f us per write\n", i, per);
			t0 = now_s();
		}
	}
	store_close(s);
	getrusage(RUSAGE_SELF, &ru);
	printf("  slowest thousand: %.1f us per write; peak RSS %.1f MiB\n", worst,
	       (double)ru.ru_maxrss / 1024);
	return 0;
}
