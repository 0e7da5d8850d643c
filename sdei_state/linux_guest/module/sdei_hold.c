// SPDX-License-Identifier: GPL-2.0
/*
 * sdei_hold: the guest side of sdei-state's stock-vmm selftest (QEMU migrations with an SDEI
 * handler running).
 *
 * It registers SDEI event 0 (SW_SIGNALED) through the kernel's own SDEI driver and then, in
 * a kernel thread, runs `rounds` rounds. Each round loads x4..x17 with values that name the
 * round and the register, signals event 0 to its own CPU (EVENT_SIGNAL by MPIDR, an HVC), and
 * spins until the handler has run. The handler holds the CPU for `hold_ms` milliseconds, so
 * a VMM that stops the VM at a random moment most likely stops it inside the handler: the
 * interrupted x0..x17, PC and PSTATE are then in the SDEI_CONTEXT registers that the VMM
 * migrates. After the handler completes, the round checks that x4..x17 came back unchanged
 * (KVM restores them from that context on COMPLETE) and prints one line:
 *   "sdei-hold: round N intact" or "sdei-hold: round N CORRUPT xR=... (want ...)".
 * A VMM (or a test reading QEMU's stream) finds the round a stopped handler belongs to in
 * SDEI_CONTEXT(0, 4): 0x53440000_00000000 | round << 8 | 4.
 *
 * The kernel's sdei_event_* functions are not exported to modules: sdei_api.h finds them.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/kthread.h>
#include <linux/delay.h>
#include <asm/cputype.h>

#include "sdei_api.h"

#define EV_SW		0x00000000u
#define FN_EVENT_SIGNAL	0xC400002Fu	/* SDEI v1.1, DEN0054C 5.1.17 */
#define PATTERN(round, r)	(0x5344000000000000ul | ((unsigned long)(round) << 8) | (r))

static int rounds = 1000;
module_param(rounds, int, 0444);
MODULE_PARM_DESC(rounds, "how many signal-and-hold rounds to run");
static int hold_ms = 1500;
module_param(hold_ms, int, 0444);
MODULE_PARM_DESC(hold_ms, "how long the handler holds the CPU, in milliseconds");

static struct sdei_api api;
static struct task_struct *runner;
static int handled;	/* set by the handler, polled by the round's spin loop */

static int hold_handler(u32 event, struct pt_regs *regs, void *arg)
{
	mdelay(hold_ms);
	WRITE_ONCE(handled, 1);
	return 0;
}

/*
 * One round on this CPU (preemption off): returns the HVC's result; seen[] gets x4..x17.
 * The handler is entered when KVM next enters the guest after the HVC, so it interrupts the
 * spin loop (or the instruction after the HVC) with x4..x17 holding PATTERN(round, r); the
 * loop itself uses only x19, which is not part of an SDEI context.
 */
static long signal_and_spin(int round, unsigned long *seen)
{
	unsigned long mpidr = read_cpuid_mpidr() & MPIDR_HWID_BITMASK;

	asm volatile("mov	x0, %[fn]\n"
		     "	mov	x1, %[ev]\n"
		     "	mov	x2, %[mpidr]\n"
		     "	add	x4, %[base], #4\n"
		     "	add	x5, %[base], #5\n"
		     "	add	x6, %[base], #6\n"
		     "	add	x7, %[base], #7\n"
		     "	add	x8, %[base], #8\n"
		     "	add	x9, %[base], #9\n"
		     "	add	x10, %[base], #10\n"
		     "	add	x11, %[base], #11\n"
		     "	add	x12, %[base], #12\n"
		     "	add	x13, %[base], #13\n"
		     "	add	x14, %[base], #14\n"
		     "	add	x15, %[base], #15\n"
		     "	add	x16, %[base], #16\n"
		     "	add	x17, %[base], #17\n"
		     "	hvc	#0\n"
		     "	str	x0, [%[seen], #112]\n"
		     "1:	ldr	w19, [%[flag]]\n"
		     "	cbz	w19, 1b\n"
		     "	stp	x4, x5, [%[seen]]\n"
		     "	stp	x6, x7, [%[seen], #16]\n"
		     "	stp	x8, x9, [%[seen], #32]\n"
		     "	stp	x10, x11, [%[seen], #48]\n"
		     "	stp	x12, x13, [%[seen], #64]\n"
		     "	stp	x14, x15, [%[seen], #80]\n"
		     "	stp	x16, x17, [%[seen], #96]\n"
		     :
		     : [fn] "r"((unsigned long)FN_EVENT_SIGNAL), [ev] "r"((unsigned long)EV_SW),
		       [mpidr] "r"(mpidr), [base] "r"(PATTERN(round, 0)), [flag] "r"(&handled),
		       [seen] "r"(seen)
		     : "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11",
		       "x12", "x13", "x14", "x15", "x16", "x17", "x19", "memory", "cc");
	return (long)seen[14];
}

static int run_rounds(void *unused)
{
	unsigned long seen[15];
	int n, r;

	for (n = 1; n <= rounds && !kthread_should_stop(); n++) {
		long rc;

		WRITE_ONCE(handled, 0);
		preempt_disable();
		rc = signal_and_spin(n, seen);
		preempt_enable();
		for (r = 4; r <= 17; r++)
			if (seen[r - 4] != PATTERN(n, r))
				break;
		if (rc != 0 || r <= 17)
			pr_notice("sdei-hold: round %d CORRUPT rc=%ld x%d=%#lx (want %#lx)\n", n, rc,
				  r, r <= 17 ? seen[r - 4] : 0, r <= 17 ? PATTERN(n, r) : 0);
		else
			pr_notice("sdei-hold: round %d intact\n", n);
		msleep(100);
	}
	while (!kthread_should_stop())
		msleep(100);
	return 0;
}

static int __init hold_init(void)
{
	int err;

	if (sdei_api_find(&api)) {
		pr_notice("sdei-hold: the kernel's sdei_event_* functions were not found\n");
		return -ENOENT;
	}
	err = api.event_register(EV_SW, hold_handler, NULL);
	if (!err)
		err = api.event_enable(EV_SW);
	if (err) {
		pr_notice("sdei-hold: register/enable of event 0 failed: %d\n", err);
		return err;
	}
	runner = kthread_run(run_rounds, NULL, "sdei-hold");
	if (IS_ERR(runner)) {
		api.event_disable(EV_SW);
		api.event_unregister(EV_SW);
		return PTR_ERR(runner);
	}
	pr_notice("sdei-hold: event 0 registered, %d rounds holding %d ms\n", rounds, hold_ms);
	return 0;
}

static void __exit hold_exit(void)
{
	kthread_stop(runner);
	api.event_disable(EV_SW);
	while (api.event_unregister(EV_SW) == -EINPROGRESS)
		msleep(10);
}

module_init(hold_init);
module_exit(hold_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sdei-state stock-vmm: SDEI handlers that stay running across a migration");
