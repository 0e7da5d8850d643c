/*
 * C baseline for bench/bench_kvm.py: the cost of one KVM_GET_ONE_REG in a plain ioctl loop.
 *
 *   bench_kvm_get_one_reg <reg-id> <iterations> <repetitions>
 *
 * Creates a VM and vCPU 0, then for each repetition times <iterations> KVM_GET_ONE_REG calls
 * of <reg-id> and prints the nanoseconds per call, one line per repetition.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s REG_ID ITERATIONS REPETITIONS\n", argv[0]);
		return 2;
	}
	uint64_t id = strtoull(argv[1], NULL, 0);
	long n = strtol(argv[2], NULL, 0), reps = strtol(argv[3], NULL, 0);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	int vcpu = vm < 0 ? -1 : ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		fprintf(stderr, "setup failed: %s\n", strerror(errno));
		return 1;
	}
	uint64_t value = 0;
	struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)&value };
	for (long r = 0; r < reps; r++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++) {
			if (ioctl(vcpu, KVM_GET_ONE_REG, &reg) < 0) {
				fprintf(stderr, "KVM_GET_ONE_REG %#llx: %s\n",
					(unsigned long long)id, strerror(errno));
				return 1;
			}
		}
		printf("%.1f\n", (now_ns() - t0) / n);
	}
	return 0;
}
