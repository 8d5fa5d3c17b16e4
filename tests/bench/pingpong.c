// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* make bench: two C processes passing a byte back and forth through pipes, so that every
 * round trip is four context switches of tasks that are not Python: what pyrometer's
 * off-CPU program costs the rest of the host. Usage: pingpong ROUND_TRIPS; prints the
 * seconds it took. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int there[2], back[2];
	long n, i;
	char c = 'x';
	struct timespec a, b;

	if (argc != 2 || (n = atol(argv[1])) <= 0) {
		fprintf(stderr, "usage: pingpong ROUND_TRIPS\n");
		return 2;
	}
	if (pipe(there) || pipe(back))
		return 1;
	if (fork() == 0) {
		for (i = 0; i < n; i++)
			if (read(there[0], &c, 1) != 1 || write(back[1], &c, 1) != 1)
				return 1;
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < n; i++)
		if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1)
			return 1;
	clock_gettime(CLOCK_MONOTONIC, &b);
	wait(NULL);
	printf("%.6f\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
	return 0;
}
