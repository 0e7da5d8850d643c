"""The guest stub a scenario runs in on real arm64 KVM: memory, exits, and what the VMM hides.

A scenario (DESIGN section 7) names register values, not guest code, so the real-KVM replay
backends (``kvm_replay``) give every vCPU the same tiny guest: any address it may be asked to
run at holds ``hvc #0``, and the VMM forwards to userspace every SMCCC function id that KVM
does not reserve for itself or serve as SDEI. Running a vCPU then always stops at the next
instruction it would execute, whatever PC, PSTATE and registers the scenario gave it:

- the MMU is on with one 2 MiB block of ``hvc`` aliased at every virtual address (TTBR0 and
  TTBR1, 48-bit VA, 4 KiB granule; every entry of the level 0 and 1 tables points at the one
  next-level table, every level 2 entry at the block), so a PC such as Linux's
  0xffff800008100000 or a relative entry point past the top of memory is fetchable;
- the hvc is forwarded (``KVM_EXIT_HYPERCALL``) with PC past it: the vCPU stopped at PC - 4;
- if the guest cannot execute the hvc where it is (EL0, an illegal-state PSTATE), it takes an
  exception to EL1 and the vector's hvc exits instead: ESR_EL1 (zeroed before every entry) is
  then non-zero and the vCPU stopped at ELR_EL1 with PSTATE SPSR_EL1, which the VMM puts back
  with the ELR_EL1/SPSR_EL1 the guest had.

The MMU's enable bit is the VMM's, not the scenario's: ``StubRegs`` shows SCTLR_EL1.M as the
scenario last wrote it and keeps it set in the vCPU (KVM reads SCTLR_EL1 at dispatch for the
entry PSTATE rule, which does not use M). ``StubRegs`` can hide more bits the same way (the
in-kernel backend's PE mask).

A call is made at ``STUB_PC`` with the stub's own PSTATE (EL1h, DAIF masked): a real guest
calls from EL1, and no SDEI call reads the caller's PSTATE.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import KvmError, ScenarioError
from ..kvm.exits import HypercallExit
from ..regs.ids import REG_ELR_EL1, REG_PC, REG_PSTATE, REG_SPSR_EL1, sys_reg
from ..vcpu.transport import RegTransport

if TYPE_CHECKING:
    from ..kvm import Kvm, Vcpu, Vm

HVC: Final = 0xD400_DE02
"""``hvc #0x6f0``: an hvc in A64 (KVM ignores the immediate) whose first halfword is T32
``udf #2``, and in A32 a store (``strle r13, [r0], #-0xe02``) to the read-only alias. So an
interrupted AArch32 context the guest resumes at traps too, to the EL1 vector (a store whose
condition fails would not: such a context is the one case the stub cannot stop at once)."""
BLOCK: Final = 2 << 20
"""The 2 MiB of ``HVC`` every virtual address maps to."""
TABLES: Final = BLOCK
"""Physical address of the three translation tables (L0, L1, L2), after the block."""
MEM_SIZE: Final = BLOCK + 3 * 4096
STUB_PC: Final = 0x0000_7FFF_FFE0_0000
"""Where a call's ``hvc`` is made: a virtual address no scenario uses."""
STUB_PSTATE: Final = 0x3C5
"""EL1h, DAIF masked."""
EXIT_TIMEOUT: Final = 5.0
"""Seconds a vCPU may run before the stub gives up on it (it always exits at once: a guard)."""

SCTLR_EL1: Final = sys_reg(3, 0, 1, 0, 0)
TTBR0_EL1: Final = sys_reg(3, 0, 2, 0, 0)
TTBR1_EL1: Final = sys_reg(3, 0, 2, 0, 1)
TCR_EL1: Final = sys_reg(3, 0, 2, 0, 2)
ESR_EL1: Final = sys_reg(3, 0, 5, 2, 0)
MAIR_EL1: Final = sys_reg(3, 0, 10, 2, 0)
SCTLR_M: Final = 1
_U64: Final = (1 << 64) - 1
_TCR: Final = (16 | 1 << 8 | 1 << 10 | 3 << 12            # T0SZ 16, WB, inner shareable, 4K
               | 16 << 16 | 1 << 24 | 1 << 26 | 3 << 28  # T1SZ 16, the same for TTBR1
               | 2 << 30 | 2 << 32)                        # TG1 4K, IPS 40 bits
_BLOCK_DESC: Final = 0x1 | 3 << 6 | 3 << 8 | 1 << 10
"""A 2 MiB block at PA 0: read-only at EL0 and EL1 (so EL1 may execute it), AF set."""

FORWARDED: Final = ((0x0000_0000, 0x8000_0000), (0x8001_0000, 0xC000_0000),
                    (0xC001_0000, 0xC400_0020), (0xC400_0040, 0x1_0000_0000))
"""[start, end) of the function ids forwarded to userspace: all but KVM's reserved
architecture ranges (0x8000xxxx, 0xC000xxxx) and the SDEI block."""


def memory_image() -> bytes:
    """The stub's memory: the block of ``HVC`` and the translation tables."""
    def table(nxt: int) -> bytes:  # every entry: a table descriptor of the next level
        return (nxt | 0x3).to_bytes(8, "little") * 512

    return (HVC.to_bytes(4, "little") * (BLOCK // 4) + table(TABLES + 4096)
            + table(TABLES + 8192) + _BLOCK_DESC.to_bytes(8, "little") * 512)


def new_stub_vm(kvm: Kvm, nr_vcpus: int) -> tuple[Vm, list[Vcpu]]:
    """A VM of ``nr_vcpus`` vCPUs running the stub, the MMU on, every function id but KVM's
    own and the SDEI block forwarded (a provider forwards the SDEI block itself)."""
    from ..kvm import SmcccFilterAction, VcpuFeature

    vm = kvm.create_vm()
    try:
        vm.add_memory(0, 0, MEM_SIZE).write(0, memory_image())
        for start, end in FORWARDED:
            vm.set_smccc_filter(start, end - start, SmcccFilterAction.FWD_TO_USER)
        vcpus = []
        for i in range(nr_vcpus):
            v = vm.create_vcpu(i)
            v.init((VcpuFeature.PSCI_0_2,))
            sctlr = v.get_reg(SCTLR_EL1)
            v.set_regs(((MAIR_EL1, 0xFF), (TCR_EL1, _TCR), (TTBR0_EL1, TABLES),
                        (TTBR1_EL1, TABLES), (SCTLR_EL1, sctlr | SCTLR_M)))
            vcpus.append(v)
    except BaseException:
        vm.close()
        raise
    return vm, vcpus


class StubRegs:
    """A vCPU's registers as the scenario sees them: ``hidden`` maps a register id to the
    bits the VMM keeps set in the vCPU; the scenario reads back the values it last wrote
    there (initially what the vCPU held), every other bit is the vCPU's own."""

    def __init__(self, base: RegTransport, hidden: Mapping[int, int]) -> None:
        self.base = base
        self.hidden = dict(hidden)
        self.shown: dict[int, int] = {}
        for rid, bits in self.hidden.items():
            v = base.get_reg(rid)
            self.shown[rid] = v & bits
            if v & bits != bits:
                base.set_reg(rid, v | bits)

    def reg_list(self) -> tuple[int, ...]:
        return self.base.reg_list()

    def get_reg(self, reg_id: int) -> int:
        return self.get_regs((reg_id,))[0]

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        vals = self.base.get_regs(reg_ids)
        return [(v & ~self.hidden[r]) | self.shown[r] if r in self.hidden else v
                for r, v in zip(reg_ids, vals, strict=True)]

    def set_reg(self, reg_id: int, value: int) -> None:
        self.set_regs(((reg_id, value),))

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        """In order; the vCPU judges each value with the hidden bits set (they are valid in
        every register that hides them), so a refused one changes nothing."""
        for rid, v in items:
            bits = self.hidden.get(rid)
            if bits is None or not isinstance(v, int) or isinstance(v, bool):
                self.base.set_reg(rid, v)
                continue
            self.base.set_reg(rid, v | bits)
            self.shown[rid] = v & bits

    def real(self, reg_id: int) -> int:
        """The vCPU's own value, hidden bits as they are."""
        return self.base.get_reg(reg_id)


@dataclass(frozen=True, slots=True)
class Stop:
    """Where a vCPU stopped: the PC of the instruction it would execute next, and the
    forwarded call (its ``nr``) when it stopped there at an hvc."""

    pc: int
    nr: int
    trapped: bool
    """The guest could not execute the hvc at ``pc`` (it took an exception, undone)."""


def enter(vcpu: Vcpu, what: str) -> Stop:
    """Run ``vcpu`` to its next exit and put it back at the instruction it stopped at (see
    the module docstring). ``what`` names the step for errors."""
    elr, spsr = vcpu.get_regs((REG_ELR_EL1, REG_SPSR_EL1))
    vcpu.set_reg(ESR_EL1, 0)
    with _alarm(EXIT_TIMEOUT):
        try:
            ex = vcpu.run()
        except KvmError as e:
            if e.errno == errno.EINTR:
                raise ScenarioError(f"{what}: the vCPU did not exit within {EXIT_TIMEOUT} s"
                                    ) from None
            raise ScenarioError(f"{what}: KVM_RUN: {e}") from None
    if not isinstance(ex, HypercallExit):
        raise ScenarioError(f"{what}: unexpected exit {ex!r} (the stub only makes hvc calls)")
    esr, pc, elr_now, spsr_now = vcpu.get_regs((ESR_EL1, REG_PC, REG_ELR_EL1, REG_SPSR_EL1))
    if esr:
        vcpu.set_regs(((REG_PC, elr_now), (REG_PSTATE, spsr_now), (REG_ELR_EL1, elr),
                       (REG_SPSR_EL1, spsr), (ESR_EL1, 0)))
        return Stop(elr_now, ex.nr, True)
    at = (pc - 4) & _U64  # an hvc at the top of the address space returns to 0
    vcpu.set_reg(REG_PC, at)
    return Stop(at, ex.nr, False)


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """SIGALRM after ``seconds``: interrupts ``KVM_RUN`` (EINTR) if the guest never exits."""
    previous = signal.signal(signal.SIGALRM, lambda _s, _f: None)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
