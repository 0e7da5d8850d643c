"""Typed ``KVM_RUN`` exits: one frozen dataclass per exit reason the library decodes.

``decode_exit(run)`` (called by ``Vcpu.run``, the only reader of the mapped
``struct kvm_run``) reads it once and returns a value that no longer refers to it, so an exit
can be kept after the next ``KVM_RUN``. These values are the one exit vocabulary of the
package: the VMM loop (``sdei_state.vmm``) gets them from a real vCPU and from the simulated
guest alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any


class ExitReason(IntEnum):
    """``KVM_EXIT_*`` from ``<linux/kvm.h>``."""

    UNKNOWN = 0
    EXCEPTION = 1
    IO = 2
    HYPERCALL = 3
    DEBUG = 4
    HLT = 5
    MMIO = 6
    IRQ_WINDOW_OPEN = 7
    SHUTDOWN = 8
    FAIL_ENTRY = 9
    INTR = 10
    SET_TPR = 11
    TPR_ACCESS = 12
    S390_SIEIC = 13
    S390_RESET = 14
    DCR = 15
    NMI = 16
    INTERNAL_ERROR = 17
    OSI = 18
    PAPR_HCALL = 19
    S390_UCONTROL = 20
    WATCHDOG = 21
    S390_TSCH = 22
    EPR = 23
    SYSTEM_EVENT = 24
    S390_STSI = 25
    IOAPIC_EOI = 26
    HYPERV = 27
    ARM_NISV = 28
    X86_RDMSR = 29
    X86_WRMSR = 30
    DIRTY_RING_FULL = 31
    AP_RESET_HOLD = 32
    X86_BUS_LOCK = 33
    XEN = 34
    RISCV_SBI = 35
    RISCV_CSR = 36
    NOTIFY = 37


class HypercallFlags(IntFlag):
    """arm64 ``kvm_run.hypercall.flags``."""

    SMC = 1 << 0  # KVM_HYPERCALL_EXIT_SMC: the guest used SMC, not HVC
    BIT16 = 1 << 1  # KVM_HYPERCALL_EXIT_16BIT: a 16-bit (T32) instruction; never on AArch64


class SystemEventType(IntEnum):
    """``KVM_SYSTEM_EVENT_*``."""

    SHUTDOWN = 1
    RESET = 2
    CRASH = 3
    WAKEUP = 4
    SUSPEND = 5
    SEV_TERM = 6


@dataclass(frozen=True)
class Exit:
    """Base of every typed exit; ``reason`` is the raw ``exit_reason``."""

    reason: int


@dataclass(frozen=True)
class MmioExit(Exit):
    """``KVM_EXIT_MMIO``: an access outside every memslot; PC still points at the load or
    store, which KVM completes at the next ``KVM_RUN`` (``run(immediate_exit=True)`` completes
    it without entering the guest). For a read, give the data with ``Vcpu.set_mmio_data``
    first."""

    phys_addr: int
    data: bytes  # the ``len`` bytes written (all zero for a read)
    is_write: bool

    @property
    def value(self) -> int:
        """``data`` as a little-endian unsigned integer."""
        return int.from_bytes(self.data, "little")


@dataclass(frozen=True)
class HypercallExit(Exit):
    """``KVM_EXIT_HYPERCALL``; on arm64 from the SMCCC filter (``FWD_TO_USER``). ``nr`` is the
    function id; the arguments are in x1.. (read them with ONE_REG), PC is already past the
    HVC/SMC."""

    nr: int
    args: tuple[int, ...]
    flags: int

    @property
    def smc(self) -> bool:
        """The guest used the SMC conduit."""
        return bool(self.flags & HypercallFlags.SMC)


@dataclass(frozen=True)
class SystemEventExit(Exit):
    """``KVM_EXIT_SYSTEM_EVENT`` (PSCI SYSTEM_OFF, RESET, SUSPEND ...)."""

    type: int
    data: tuple[int, ...]  # ``ndata`` words; data[0] is the flags word of older kernels


@dataclass(frozen=True)
class FailEntryExit(Exit):
    """``KVM_EXIT_FAIL_ENTRY``."""

    hardware_entry_failure_reason: int
    cpu: int


@dataclass(frozen=True)
class InternalErrorExit(Exit):
    """``KVM_EXIT_INTERNAL_ERROR``."""

    suberror: int
    data: tuple[int, ...]


@dataclass(frozen=True)
class ArmNisvExit(Exit):
    """``KVM_EXIT_ARM_NISV``: a data abort without valid syndrome."""

    esr_iss: int
    fault_ipa: int


@dataclass(frozen=True)
class OtherExit(Exit):
    """Any exit this module does not decode further (HLT, SHUTDOWN, DEBUG, ...)."""

    @property
    def name(self) -> str:
        try:
            return ExitReason(self.reason).name
        except ValueError:
            return f"exit reason {self.reason}"


def decode_exit(run: Any) -> Exit:
    """The typed exit of a ``struct kvm_run *`` just after ``KVM_RUN`` returned."""
    reason = int(run.exit_reason)
    if reason == ExitReason.MMIO:
        m = run.mmio
        n = min(int(m.len), 8)
        return MmioExit(reason, int(m.phys_addr), bytes(m.data[0:n]), bool(m.is_write))
    if reason == ExitReason.HYPERCALL:
        h = run.hypercall
        return HypercallExit(reason, int(h.nr), tuple(int(a) for a in h.args), int(h.flags))
    if reason == ExitReason.SYSTEM_EVENT:
        s = run.system_event
        n = min(int(s.ndata), 16)
        return SystemEventExit(reason, int(s.type), tuple(int(d) for d in s.data[0:max(n, 1)]))
    if reason == ExitReason.FAIL_ENTRY:
        f = run.fail_entry
        return FailEntryExit(reason, int(f.hardware_entry_failure_reason), int(f.cpu))
    if reason == ExitReason.INTERNAL_ERROR:
        e = run.internal
        n = min(int(e.ndata), 16)
        return InternalErrorExit(reason, int(e.suberror), tuple(int(d) for d in e.data[0:n]))
    if reason == ExitReason.ARM_NISV:
        a = run.arm_nisv
        return ArmNisvExit(reason, int(a.esr_iss), int(a.fault_ipa))
    return OtherExit(reason)
