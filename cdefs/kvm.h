/*
 * cdefs/kvm.h - the KVM uapi declarations sdei_state's cffi bindings read.
 *
 * One place for every struct layout the library passes to or reads from the kernel.  The text
 * is both valid C (compiled into the API-mode module) and valid cffi cdef (parsed in ABI mode),
 * so it uses only fixed-width types and no preprocessor.  Layouts follow the uapi headers
 * (include/uapi/linux/kvm.h, arch/arm64/include/uapi/asm/kvm.h); tests/test_kvm_ioctls.py
 * compares sizes and offsets with the real headers.  Ioctl numbers live in
 * sdei_state/kvm/ioctls.py, computed from _IOC with the sizes declared here.
 */

/* ONE_REG / REG_LIST (generic) */
struct kvm_one_reg {
	uint64_t id;
	uint64_t addr;                  /* user address of a KVM_REG_SIZE(id)-byte value */
};

struct kvm_reg_list {
	uint64_t n;                     /* in: capacity of reg[]; out: number of ids */
	uint64_t reg[];
};

/* KVM_{GET,SET}_MP_STATE (vCPU fd): KVM_MP_STATE_* (arm64: RUNNABLE, STOPPED, SUSPENDED) */
struct kvm_mp_state {
	uint32_t mp_state;
};

/* KVM_SET_USER_MEMORY_REGION */
struct kvm_userspace_memory_region {
	uint32_t slot;
	uint32_t flags;
	uint64_t guest_phys_addr;
	uint64_t memory_size;           /* bytes */
	uint64_t userspace_addr;        /* start of the userspace allocated memory */
};

/* KVM_{SET,GET,HAS}_DEVICE_ATTR (also on the VM fd) */
struct kvm_device_attr {
	uint32_t flags;                 /* no flags currently defined */
	uint32_t group;
	uint64_t attr;
	uint64_t addr;                  /* userspace address of attr data */
};

/* KVM_CREATE_DEVICE (on the VM fd): in type and flags, out the new device's fd */
struct kvm_create_device {
	uint32_t type;                  /* enum kvm_device_type, e.g. KVM_DEV_TYPE_ARM_VGIC_V3 */
	uint32_t fd;                    /* out: the device fd */
	uint32_t flags;                 /* KVM_CREATE_DEVICE_TEST: only ask whether it could be */
};

/* arm64: KVM_ARM_VCPU_INIT / KVM_ARM_PREFERRED_TARGET */
struct kvm_vcpu_init {
	uint32_t target;
	uint32_t features[7];
};

/* arm64: KVM_ARM_VM_SMCCC_CTRL / KVM_ARM_VM_SMCCC_FILTER attribute data (Linux >= 6.4) */
struct kvm_smccc_filter {
	uint32_t base;
	uint32_t nr_functions;
	uint8_t action;                 /* enum kvm_smccc_filter_action */
	uint8_t pad[15];                /* must be zero */
};

/*
 * arm64 core registers: KVM_REG_ARM_CORE_REG(name) = offsetof(struct kvm_regs, name) / 4.
 * Declared so the core-register ids can be checked against a layout; the fp/simd part after
 * spsr[] is not used here and is left out (in the kernel it starts 16-byte aligned at 336).
 */
struct user_pt_regs {
	uint64_t regs[31];
	uint64_t sp;                    /* SP_EL0 */
	uint64_t pc;
	uint64_t pstate;
};

struct kvm_regs_core {
	struct user_pt_regs regs;
	uint64_t sp_el1;
	uint64_t elr_el1;
	uint64_t spsr[5];               /* KVM_NR_SPSR; KVM_SPSR_EL1 = 0 */
};

/* struct kvm_run: the mapped vCPU page.  Only the fields the library reads are declared; the
 * exit union is padded to its uapi size (256 bytes) so later offsets stay right. */
struct kvm_run_mmio {
	uint64_t phys_addr;
	uint8_t data[8];
	uint32_t len;
	uint8_t is_write;
};

struct kvm_run_hypercall {
	uint64_t nr;                    /* arm64: the SMCCC function id */
	uint64_t args[6];
	uint64_t ret;
	uint64_t flags;                 /* arm64: KVM_HYPERCALL_EXIT_SMC, KVM_HYPERCALL_EXIT_16BIT */
};

struct kvm_run_system_event {
	uint32_t type;
	uint32_t ndata;
	uint64_t data[16];              /* data[0] is the older 'flags' */
};

struct kvm_run_fail_entry {
	uint64_t hardware_entry_failure_reason;
	uint32_t cpu;
};

struct kvm_run_internal {
	uint32_t suberror;
	uint32_t ndata;
	uint64_t data[16];
};

struct kvm_run_arm_nisv {
	uint64_t esr_iss;
	uint64_t fault_ipa;
};

struct kvm_run {
	uint8_t request_interrupt_window;
	uint8_t immediate_exit;
	uint8_t padding1[6];
	uint32_t exit_reason;
	uint8_t ready_for_interrupt_injection;
	uint8_t if_flag;
	uint16_t flags;
	uint64_t cr8;
	uint64_t apic_base;
	union {
		uint64_t hardware_exit_reason;
		struct kvm_run_fail_entry fail_entry;
		struct kvm_run_mmio mmio;
		struct kvm_run_hypercall hypercall;
		struct kvm_run_internal internal;
		struct kvm_run_system_event system_event;
		struct kvm_run_arm_nisv arm_nisv;
		char padding[256];
	};
};

/* libc */
int ioctl(int fd, unsigned long request, ...);
void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
int munmap(void *addr, size_t length);
