/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's own SDEI client API (drivers/firmware/arm_sdei.c), found at load time.
 *
 * The sdei_event_* functions are not exported to modules (Module.symvers of 6.12 lists no
 * sdei_* symbol). kallsyms_lookup_name() is not exported either since 5.7, but a kprobe on
 * it reports its address (register_kprobe() is exported and fills in kp.addr): that is how
 * the functions are found. This is test code: it relies on CONFIG_KPROBES and
 * CONFIG_KALLSYMS, which Debian's kernels have.
 */
#ifndef SDEI_STATE_SDEI_API_H
#define SDEI_STATE_SDEI_API_H

#include <linux/arm_sdei.h>
#include <linux/errno.h>
#include <linux/kprobes.h>

struct sdei_api {
	int (*event_register)(u32 event, sdei_event_callback *cb, void *arg);
	int (*event_enable)(u32 event);
	int (*event_disable)(u32 event);
	int (*event_unregister)(u32 event);
};

static unsigned long sdei_api_lookup(const char *name)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	unsigned long (*kln)(const char *name);

	if (register_kprobe(&kp) < 0)
		return 0;
	kln = (void *)kp.addr;
	unregister_kprobe(&kp);
	return kln ? kln(name) : 0;
}

/* Fills @api; -ENOENT when any of the four functions cannot be found. */
static int sdei_api_find(struct sdei_api *api)
{
	api->event_register = (void *)sdei_api_lookup("sdei_event_register");
	api->event_enable = (void *)sdei_api_lookup("sdei_event_enable");
	api->event_disable = (void *)sdei_api_lookup("sdei_event_disable");
	api->event_unregister = (void *)sdei_api_lookup("sdei_event_unregister");
	if (!api->event_register || !api->event_enable || !api->event_disable ||
	    !api->event_unregister)
		return -ENOENT;
	return 0;
}

#endif
