// SPDX-License-Identifier: GPL-2.0
/*
 * sdei_test: the guest side of sdei-state's linux-guest selftest.
 *
 * It registers SDEI event 0 (SW_SIGNALED, normal priority) and the KVM vendor event
 * 0x40400000 (ASYNC_PF, critical priority) through the kernel's own SDEI driver
 * (drivers/firmware/arm_sdei.c), so every call the VMM sees is the one Linux makes, and
 * then runs rounds that exercise the VMM's SDEI provider:
 *
 *   1 self_irq_on      each CPU signals itself with IRQs enabled
 *   2 self_irq_masked  the same with IRQs masked (Linux then completes with COMPLETE)
 *   3 cross_cpu        each CPU signals the next one by MPIDR
 *   4 bad_mpidr        a signal to an MPIDR no CPU has: INVALID_PARAMETERS
 *   5 critical         the normal handler rings the doorbell, the VMM injects ASYNC_PF,
 *                      whose critical handler must run inside the normal one
 *   6 hotplug          the last CPU goes offline (Linux unregisters and masks it: a signal
 *                      to it is refused) and online again (re-registered: handled)
 *   7 suspend          with suspend=1: suspend-to-idle (at the pm_test level the init
 *                      script set), then a signal. Linux 6.12 makes no SDEI call around
 *                      s2idle (its CPU PM notifier masks only on the deep-suspend syscore
 *                      path), so this checks that SDEI still works after it.
 *   8 unreg_pending    with states=1: the last CPU signals itself and its handler calls
 *                      EVENT_UNREGISTER on its own running event: PENDING (the event is
 *                      unregister-pending until the handler completes; checkpoint kind 3
 *                      rings there). Afterwards a signal to that CPU is refused. Linux's
 *                      SDEI driver does not know the event went, so the CPU is taken
 *                      offline and online again: Linux's CPU hotplug callbacks re-register
 *                      and re-enable it there (its unregister on the way down fails, which
 *                      it logs and ignores), and a signal is handled again.
 *   9 masked_pending   with states=1: CPU 0 masks itself (PE_MASK), signals itself (the
 *                      event stays pending: no handler runs), rings checkpoint kind 4, and
 *                      unmasks (PE_UNMASK): the handler runs before the hvc returns to C.
 *
 * Rounds 1-5 (and 8-9) repeat `rounds` times; 6 and 7 run once, at the end. Results go to the
 * console as one line per round and per CPU ("sdei-test: ..."), which the VMM parses.
 * Inside a handler nothing may print, so handlers ring the VMM's doorbell (two 64-bit
 * registers at the `doorbell` physical address): INJECT asks for an event on this vCPU,
 * CHECKPOINT tells the VMM where the guest is, so it can pause (and migrate) it there.
 * On unload both events are disabled and unregistered.
 *
 * The kernel's sdei_event_* functions are not exported to modules: sdei_api.h finds them.
 */
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/arm-smccc.h>
#include <linux/cpu.h>
#include <linux/delay.h>
#include <linux/io.h>
#include <linux/percpu.h>
#include <linux/smp.h>
#include <linux/suspend.h>
#include <linux/workqueue.h>
#include <asm/cputype.h>

#include "sdei_api.h"

#define EV_SW		0x00000000u
#define EV_ASYNC_PF	0x40400000u
#define FN_EVENT_SIGNAL	0xC400002Fu	/* SDEI v1.1, DEN0054C 5.1.17 */
#define FN_EVENT_UNREGISTER	0xC4000027u
#define FN_PE_MASK	0xC400002Bu
#define FN_PE_UNMASK	0xC400002Cu
#define MPIDR_NOBODY	0xFFul		/* Aff0 255: no vCPU of a VM below 256 CPUs */
#define SDEI_INVALID	(-2L)		/* SDEI_INVALID_PARAMETERS */
#define SDEI_PENDING	(-5L)		/* SDEI_PENDING */
#define DB_INJECT	0x0
#define DB_CHECKPOINT	0x8
#define DB_MAGIC	0x53444549u

static unsigned long doorbell;
module_param(doorbell, ulong, 0444);
MODULE_PARM_DESC(doorbell, "guest-physical address of the VMM's doorbell (0: none)");
static int rounds = 3;
module_param(rounds, int, 0444);
MODULE_PARM_DESC(rounds, "how many times rounds 1-5 run");
static int suspend;
module_param(suspend, int, 0444);
MODULE_PARM_DESC(suspend, "run round 7 (only with /sys/power/pm_test set: else s2idle waits "
		 "for a wakeup this VM never sends)");
static int states;
module_param(states, int, 0444);
MODULE_PARM_DESC(states, "also run rounds 8 and 9 (an event unregister-pending, an event "
		 "pending while masked) in every iteration");

static struct sdei_api api;

static void __iomem *bell;
static DEFINE_PER_CPU(unsigned long, entered);	/* event 0 handler entries */
static DEFINE_PER_CPU(unsigned long, crit_entered);
static DEFINE_PER_CPU(unsigned long, signalled);	/* successful signals aimed here */
static DEFINE_PER_CPU(int, in_normal);
static DEFINE_PER_CPU(int, crit_saw_normal);
static int mode_critical;	/* round 5: the normal handler asks for ASYNC_PF */
static int mode_unreg;		/* round 8: the normal handler unregisters its own event */
static long unreg_rc;		/* what that EVENT_UNREGISTER returned */
static unsigned long point;	/* the checkpoint id rung next (iteration, round) */
static int passed, failed;

static void ring(unsigned int reg, u64 value)
{
	if (bell)
		writeq(value, bell + reg);
}

static int sw_handler(u32 event, struct pt_regs *regs, void *arg)
{
	this_cpu_write(in_normal, 1);
	this_cpu_inc(entered);
	ring(DB_CHECKPOINT, point | 1);
	if (READ_ONCE(mode_critical))
		ring(DB_INJECT, EV_ASYNC_PF);	/* taken before the next instruction */
	if (READ_ONCE(mode_unreg)) {
		struct arm_smccc_res res;

		arm_smccc_1_1_hvc(FN_EVENT_UNREGISTER, EV_SW, &res);
		WRITE_ONCE(unreg_rc, (long)res.a0);
		ring(DB_CHECKPOINT, point | 3);	/* unregister-pending, handler running */
	}
	this_cpu_write(in_normal, 0);
	return 0;
}

static int critical_handler(u32 event, struct pt_regs *regs, void *arg)
{
	this_cpu_inc(crit_entered);
	if (this_cpu_read(in_normal))
		this_cpu_inc(crit_saw_normal);
	ring(DB_CHECKPOINT, point | 2);
	return 0;
}

static long signal_mpidr(u64 mpidr)
{
	struct arm_smccc_res res;

	arm_smccc_1_1_hvc(FN_EVENT_SIGNAL, EV_SW, mpidr, &res);
	return (long)res.a0;
}

static void read_mpidr(void *out)
{
	*(u64 *)out = read_cpuid_mpidr() & MPIDR_HWID_BITMASK;
}

static u64 mpidr_of(int cpu)
{
	u64 m = 0;

	smp_call_function_single(cpu, read_mpidr, &m, 1);
	return m;
}

struct sig { u64 target; int target_cpu; int mask; long rc; };

/* Runs on the signalling CPU (work_on_cpu: process context, IRQs on unless masked here). */
static long do_signal(void *p)
{
	struct sig *s = p;
	unsigned long flags = 0;

	if (s->mask)
		local_irq_save(flags);
	s->rc = signal_mpidr(s->target);
	if (s->rc == 0 && s->target_cpu >= 0)
		per_cpu(signalled, s->target_cpu)++;
	if (s->mask)
		local_irq_restore(flags);
	return 0;
}

static long signal_from(int cpu, int target_cpu, u64 target, int mask)
{
	struct sig s = { target, target_cpu, mask, -1 };

	work_on_cpu(cpu, do_signal, &s);
	return s.rc;
}

static bool wait_entered(int cpu, unsigned long want)
{
	int i;

	for (i = 0; i < 2000; i++) {
		if (READ_ONCE(per_cpu(entered, cpu)) >= want)
			return true;
		usleep_range(500, 1000);
	}
	return false;
}

static void report(int iter, const char *name, bool ok, const char *fmt, ...)
{
	struct va_format vaf;
	va_list args;

	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	pr_info("sdei-test: iteration=%d round=%s result=%s %pV\n", iter, name,
		ok ? "pass" : "fail", &vaf);
	va_end(args);
	if (ok)
		passed++;
	else
		failed++;
}

static void round_self(int iter, int mask)
{
	int cpu, bad = 0;

	for_each_online_cpu(cpu) {
		unsigned long before = per_cpu(entered, cpu);
		long rc = signal_from(cpu, cpu, mpidr_of(cpu), mask);

		/* the handler runs at the VMM's next entry, before the hvc returns to C */
		if (rc != 0 || per_cpu(entered, cpu) != before + 1)
			bad++;
	}
	report(iter, mask ? "self_irq_masked" : "self_irq_on", !bad, "cpus=%u bad=%d",
	       num_online_cpus(), bad);
}

static void round_cross(int iter)
{
	int cpu, bad = 0;

	for_each_online_cpu(cpu) {
		int dst = cpumask_next(cpu, cpu_online_mask);
		unsigned long before;
		long rc;

		if (dst >= nr_cpu_ids)
			dst = cpumask_first(cpu_online_mask);
		before = per_cpu(entered, dst);
		rc = signal_from(cpu, dst, mpidr_of(dst), 0);
		if (rc != 0 || !wait_entered(dst, before + 1))
			bad++;
	}
	report(iter, "cross_cpu", !bad, "cpus=%u bad=%d", num_online_cpus(), bad);
}

static void round_bad_mpidr(int iter)
{
	long rc = signal_from(0, -1, MPIDR_NOBODY, 0);

	report(iter, "bad_mpidr", rc == SDEI_INVALID, "rc=%ld", rc);
}

static void round_critical(int iter)
{
	unsigned long crit = per_cpu(crit_entered, 0), saw = per_cpu(crit_saw_normal, 0);
	long rc;

	WRITE_ONCE(mode_critical, 1);
	rc = signal_from(0, 0, mpidr_of(0), 0);
	WRITE_ONCE(mode_critical, 0);
	report(iter, "critical", rc == 0 && per_cpu(crit_entered, 0) == crit + 1 &&
	       per_cpu(crit_saw_normal, 0) == saw + 1, "rc=%ld critical=%lu inside_normal=%lu",
	       rc, per_cpu(crit_entered, 0) - crit, per_cpu(crit_saw_normal, 0) - saw);
}

static void round_hotplug(void)
{
	int cpu = cpumask_last(cpu_online_mask);
	u64 mpidr;
	long off_rc, on_rc;
	int err;
	unsigned long before;

	if (cpu == 0) {
		report(0, "hotplug", true, "skipped=one_cpu");
		return;
	}
	mpidr = mpidr_of(cpu);
	err = remove_cpu(cpu);
	if (err) {
		report(0, "hotplug", false, "remove_cpu=%d", err);
		return;
	}
	off_rc = signal_from(0, -1, mpidr, 0);	/* unregistered there now: refused */
	err = add_cpu(cpu);
	before = per_cpu(entered, cpu);
	on_rc = err ? -1 : signal_from(0, cpu, mpidr, 0);
	report(0, "hotplug", !err && off_rc == SDEI_INVALID && on_rc == 0 &&
	       wait_entered(cpu, before + 1), "cpu=%d offline_rc=%ld add_cpu=%d online_rc=%ld",
	       cpu, off_rc, err, on_rc);
}

static void round_suspend(void)
{
	unsigned long before = per_cpu(entered, 0);
	int err = pm_suspend(PM_SUSPEND_TO_IDLE);
	long rc = signal_from(0, 0, mpidr_of(0), 0);

	report(0, "suspend", !err && rc == 0 && per_cpu(entered, 0) == before + 1,
	       "pm_suspend=%d rc=%ld", err, rc);
}

static void round_unreg_pending(int iter)
{
	int cpu = cpumask_last(cpu_online_mask);
	unsigned long before, again;
	long rc, gone_rc, back_rc;
	u64 mpidr;
	int err;

	if (cpu == 0) {
		report(iter, "unreg_pending", true, "skipped=one_cpu");
		return;
	}
	mpidr = mpidr_of(cpu);
	before = per_cpu(entered, cpu);
	WRITE_ONCE(unreg_rc, 1);
	WRITE_ONCE(mode_unreg, 1);
	rc = signal_from(cpu, cpu, mpidr, 0);
	WRITE_ONCE(mode_unreg, 0);
	gone_rc = signal_from(0, -1, mpidr, 0);	/* unregistered when the handler completed */
	err = remove_cpu(cpu);
	if (!err)
		err = add_cpu(cpu);
	again = per_cpu(entered, cpu);
	back_rc = err ? -1 : signal_from(0, cpu, mpidr, 0);
	report(iter, "unreg_pending", rc == 0 && per_cpu(entered, cpu) >= before + 1 &&
	       READ_ONCE(unreg_rc) == SDEI_PENDING && gone_rc == SDEI_INVALID && !err &&
	       back_rc == 0 && wait_entered(cpu, again + 1),
	       "cpu=%d rc=%ld unregister=%ld after_rc=%ld hotplug=%d again_rc=%ld", cpu, rc,
	       READ_ONCE(unreg_rc), gone_rc, err, back_rc);
}

struct masked { long sig_rc, unmask_rc; unsigned long held, after; };

/* On CPU 0 (work_on_cpu), preemption off so the PE masked is the one signalled. */
static long do_masked(void *p)
{
	struct masked *m = p;
	struct arm_smccc_res res;
	unsigned long before;
	int cpu;

	preempt_disable();
	cpu = smp_processor_id();
	before = per_cpu(entered, cpu);
	arm_smccc_1_1_hvc(FN_PE_MASK, &res);
	m->sig_rc = signal_mpidr(read_cpuid_mpidr() & MPIDR_HWID_BITMASK);
	if (m->sig_rc == 0)
		per_cpu(signalled, cpu)++;
	ring(DB_CHECKPOINT, point | 4);	/* pending while masked */
	m->held = per_cpu(entered, cpu) - before;
	arm_smccc_1_1_hvc(FN_PE_UNMASK, &res);
	m->unmask_rc = (long)res.a0;
	m->after = per_cpu(entered, cpu) - before;
	preempt_enable();
	return 0;
}

static void round_masked_pending(int iter)
{
	struct masked m = { -1, -1, 0, 0 };

	work_on_cpu(0, do_masked, &m);
	report(iter, "masked_pending", m.sig_rc == 0 && m.held == 0 && m.unmask_rc == 0 &&
	       m.after == 1, "rc=%ld held=%lu unmask=%ld delivered=%lu", m.sig_rc, m.held,
	       m.unmask_rc, m.after);
}

static int __init sdei_test_init(void)
{
	int err, iter, cpu;

	if (sdei_api_find(&api)) {
		pr_err("sdei-test: error=no_symbols (kprobes/kallsyms missing?)\n");
		return -ENOENT;
	}
	if (doorbell) {
		bell = ioremap(doorbell, 0x1000);
		if (!bell || readq(bell + DB_INJECT) != DB_MAGIC) {
			pr_err("sdei-test: error=no_doorbell at %#lx\n", doorbell);
			if (bell)
				iounmap(bell);
			return -ENODEV;
		}
	}
	err = api.event_register(EV_SW, sw_handler, NULL);
	if (!err)
		err = api.event_enable(EV_SW);
	if (!err)
		err = api.event_register(EV_ASYNC_PF, critical_handler, NULL);
	if (!err)
		err = api.event_enable(EV_ASYNC_PF);
	pr_info("sdei-test: registered=%d cpus=%u doorbell=%#lx\n", err, num_online_cpus(),
		doorbell);
	if (err) {
		if (bell)
			iounmap(bell);
		return err;
	}
	for (iter = 1; iter <= rounds; iter++) {
		point = (unsigned long)iter << 16 | 1 << 8;
		round_self(iter, 0);
		point = (unsigned long)iter << 16 | 2 << 8;
		round_self(iter, 1);
		point = (unsigned long)iter << 16 | 3 << 8;
		round_cross(iter);
		round_bad_mpidr(iter);
		point = (unsigned long)iter << 16 | 5 << 8;
		round_critical(iter);
		if (states) {
			point = (unsigned long)iter << 16 | 8 << 8;
			round_unreg_pending(iter);
			point = (unsigned long)iter << 16 | 9 << 8;
			round_masked_pending(iter);
		}
		ring(DB_CHECKPOINT, (unsigned long)iter << 16);
	}
	point = 6 << 8;
	round_hotplug();
	point = 7 << 8;
	if (suspend)
		round_suspend();
	for_each_possible_cpu(cpu)
		pr_info("sdei-test: cpu=%d signalled=%lu entered=%lu critical=%lu\n", cpu,
			per_cpu(signalled, cpu), per_cpu(entered, cpu), per_cpu(crit_entered, cpu));
	pr_info("sdei-test: done passed=%d failed=%d\n", passed, failed);
	return 0;
}

static void __exit sdei_test_exit(void)
{
	int d0 = api.event_disable(EV_SW), u0 = api.event_unregister(EV_SW);
	int d1 = api.event_disable(EV_ASYNC_PF), u1 = api.event_unregister(EV_ASYNC_PF);

	pr_info("sdei-test: unload disable=%d,%d unregister=%d,%d\n", d0, d1, u0, u1);
	if (bell)
		iounmap(bell);
}

module_init(sdei_test_init);
module_exit(sdei_test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sdei-state linux-guest selftest: SDEI client rounds");
