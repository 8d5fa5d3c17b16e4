// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* make bench: a CPU-bound C process that sums the gaps in its own timeline, the time its CPU
 * spent elsewhere (interrupts, steal). pyrometer's sampler skips it (it is not Python), so
 * next to a Python target it shows what a sample interrupt costs before any stack walk.
 * Usage: gaps SECONDS THRESHOLD_NS; prints "gap_ns gaps". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	long long end, prev, gap_ns = 0, gaps = 0, threshold;

	if (argc != 3) {
		fprintf(stderr, "usage: gaps SECONDS THRESHOLD_NS\n");
		return 2;
	}
	threshold = atoll(argv[2]);
	prev = now_ns();
	end = prev + (long long)(atof(argv[1]) * 1e9);
	while (prev < end) {
		long long t = now_ns();

		if (t - prev > threshold) {
			gap_ns += t - prev;
			gaps++;
		}
		prev = t;
	}
	printf("%lld %lld\n", gap_ns, gaps);
	return 0;
}
