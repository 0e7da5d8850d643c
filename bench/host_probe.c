/*
 * The host probe of bench/run.py: what one vCPU ioctl costs the user code that runs after it.
 *
 * bench_after(call, work, fd, request, arg, n, m) does, n times: the call `call` (PROBE_NONE,
 * PROBE_GETPPID: a syscall that does not leave the guest kernel, PROBE_IOCTL: ioctl(fd,
 * request, arg)), then m steps of the workload `work`:
 *
 * - PROBE_BRANCHES: m calls through a table of 16 functions in a fixed pseudo-random order,
 *   which is what an interpreter's dispatch loop does all the time;
 * - PROBE_LOADS: m loads from distinct 64-byte lines of a 32 KiB buffer (it fits in the L1
 *   data cache of the CPUs this runs on).
 *
 * The order repeats every 256 calls, so the predictors learn it when nothing disturbs them:
 * comparing "call, then workload" with each run on its own shows what the call leaves cold.
 * Returns 0, or -errno of the first failing ioctl.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { PROBE_NONE, PROBE_GETPPID, PROBE_IOCTL };
enum { PROBE_BRANCHES, PROBE_LOADS };

#define ORDER_LEN 256
#define LOAD_LINES 512

typedef long (*step_fn)(long);

#define STEP(k) static long step##k(long x) { return x * 3 + k; }
STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
STEP(8) STEP(9) STEP(10) STEP(11) STEP(12) STEP(13) STEP(14) STEP(15)

static step_fn const steps[16] = {
	step0, step1, step2, step3, step4, step5, step6, step7,
	step8, step9, step10, step11, step12, step13, step14, step15,
};

static unsigned char order[ORDER_LEN];
static volatile char lines[LOAD_LINES * 64];
static volatile long sink;	/* keeps each workload's result, so none is optimised away */

static void fill_order(void)
{
	unsigned int s = 12345;

	for (size_t i = 0; i < ORDER_LEN; i++) {
		s = s * 1103515245u + 12345u;	/* the C standard's example rand() */
		order[i] = (s >> 16) & 15;
	}
}

static long workload(int work, long m)
{
	long x = 0;

	if (work == PROBE_BRANCHES) {
		for (long j = 0; j < m; j++)
			x = steps[order[j % ORDER_LEN]](x);
	} else {
		for (long j = 0; j < m; j++)
			x += lines[(j % LOAD_LINES) * 64];
	}
	return x;
}

long bench_after(int call, int work, int fd, unsigned long request, void *arg, long n, long m)
{
	static int filled;

	if (!filled) {
		fill_order();
		filled = 1;
	}
	for (long i = 0; i < n; i++) {
		if (call == PROBE_GETPPID)
			syscall(SYS_getppid);
		else if (call == PROBE_IOCTL && ioctl(fd, request, arg) < 0)
			return -(long)errno;
		sink = workload(work, m);
	}
	return 0;
}
