/*
 * cdefs/kvm_api.h - helpers that exist only in the compiled (API-mode) module
 * (sdei_state.kvm._api, built by sdei_state/kvm/_build.py).  In ABI mode the same operations are
 * done in Python over libc's ioctl(); sdei_state/kvm/ffi.py gives both one interface.
 */

/* ioctl(fd, request, arg); returns the result, or -errno on failure. */
long sdei_kvm_ioctl(int fd, unsigned long request, void *arg);

/*
 * ioctl(fd, request, &regs[i]) for i = 0 .. n-1 (KVM_GET_ONE_REG or KVM_SET_ONE_REG), in
 * order, stopping at the first failure.  Returns 0 or the errno of the failing call; *done is
 * the number of calls that succeeded.
 */
int sdei_kvm_one_reg_batch(int fd, unsigned long request, struct kvm_one_reg *regs, size_t n,
                           size_t *done);
