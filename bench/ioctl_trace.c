/*
 * The C baseline of bench/run.py: a recorded sequence of vCPU ioctls, replayed in a plain loop.
 *
 * bench_trace(fd, requests, args, n, reps) issues ioctl(fd, requests[i], args[i]) for
 * i = 0 .. n-1, reps times, which is what a C VMM making the same calls does.  It is built
 * with cc -O2 -shared into a temporary directory and called in-process (cffi), so it is timed
 * with the same CPU clock, on the same vCPU fd, interleaved with the Python variants.
 * Returns 0, or -errno of the first failing call.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/ioctl.h>

long bench_trace(int fd, const unsigned long *requests, void *const *args, size_t n, long reps)
{
	for (long r = 0; r < reps; r++) {
		for (size_t i = 0; i < n; i++) {
			if (ioctl(fd, requests[i], args[i]) < 0)
				return -(long)errno;
		}
	}
	return 0;
}
