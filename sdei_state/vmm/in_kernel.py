"""A kernel that serves SDEI itself (the DESIGN section 4 ABI in KVM, ``--kernel sdei`` in
the lab), seen from a VMM: whether it does, how a VMM turns it off to serve SDEI in
userspace instead, and how the hypervisor injects an event there.

- ``kernel_serves_sdei(vcpu)``: the vCPU lists the SDEI registers (``KVM_GET_REG_LIST``);
- ``KernelSdeiOff``: a vCPU of such a kernel as the userspace provider must see it. Its
  ``gate_off`` clears bit 1 of ``KVM_REG_ARM_STD_BMAP`` (VM-wide, before the first run), so
  the kernel neither serves nor dispatches SDEI; with the SMCCC filter installed the calls
  then reach the provider, because Linux's ``kvm_smccc_get_action()`` consults the filter
  before the firmware bitmaps. Its register list leaves out the kernel's SDEI block, so the
  provider's view (which adds its own) is the same 47 registers the kernel lists;
- ``inject_pending``: injection where the kernel serves: PENDING set in the event's
  ``SDEI_EVENT_STATE``; the kernel dispatches it at its next guest entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..events import by_number
from ..regs import firmware
from ..regs import sdei as sdei_regs
from ..vcpu.transport import RegTransport, VcpuPassThrough

SDEI_IDS: Final = frozenset(sdei_regs.SDEI_REG_IDS)
SDEI_BIT: Final = 1 << firmware.STD_BIT_SDEI
_REGISTERED: Final = 1 << 0
_PENDING: Final = 1 << 3


def kernel_serves_sdei(vcpu: RegTransport) -> bool:
    """The kernel implements the SDEI registers (it lists them for ``vcpu``)."""
    return not SDEI_IDS.isdisjoint(vcpu.reg_list())


class KernelSdeiOff(VcpuPassThrough):
    """A vCPU of a kernel with in-kernel SDEI as the provider must see it: the kernel's
    registers without its SDEI block (the provider adds its own). Everything else passes
    through."""

    def gate_off(self) -> None:
        """Clear STD_BMAP bit 1 in the kernel (VM-wide; before the first run)."""
        self.vcpu.set_reg(firmware.STD_BMAP, self.vcpu.get_reg(firmware.STD_BMAP) & ~SDEI_BIT)

    def reg_list(self) -> tuple[int, ...]:
        return tuple(r for r in self.vcpu.reg_list() if r not in SDEI_IDS)


def inject_pending(regs: RegTransport, number: int) -> bool:
    """Hypervisor injection on a kernel that serves SDEI: set PENDING in the event's
    ``SDEI_EVENT_STATE``. Refused (False, nothing written), as by the model, for an unknown
    event, an unregistered one, or with the SDEI bit of STD_BMAP clear."""
    ev = by_number(number)
    if ev is None:
        return False
    rid = sdei_regs.event_state_id(ev.index)
    bmap, state = regs.get_regs((firmware.STD_BMAP, rid))
    if not bmap >> firmware.STD_BIT_SDEI & 1 or not state & _REGISTERED:
        return False
    regs.set_reg(rid, state | _PENDING)
    return True


def sdei_registers(regs: RegTransport) -> dict[int, int]:
    """The 47 SDEI registers of one vCPU, by id, through any view that lists them (the
    kernel's vCPU, or the provider's ``ProviderVcpu``)."""
    ids: Sequence[int] = sdei_regs.SDEI_REG_IDS
    return dict(zip(ids, regs.get_regs(ids), strict=True))
