"""Save and restore vCPUs over any ``RegTransport`` (the simulated vCPU or real KVM).

Save: every register the vCPU's own KVM_GET_REG_LIST reports, in that order.

Restore, for one vCPU or a whole VM, in three phases:

1. Check everything before writing anything (``preflight``): registers the destination lacks
   (dropped only at their reset value), each firmware value against the destination host's
   SET rules, each vCPU's SDEI block with ``regs.sdei.vcpu_problems`` (per-register checks and
   the cross-register facts). The first problem refuses the restore with ``RestoreError``
   naming the register (name and id) and the reason; nothing has been written.
2. Write the architected timer first, in ``TIMER_ORDER`` (counters, compare values, controls),
   then everything else in ascending id order (``restore_order``). The SDEI registers need no
   order (every check is per register, so any intermediate of a valid final state passes,
   whatever the vCPU held before); ascending makes a partial failure easy to reason about. The
   timer does: see ``TIMER_ORDER``. A write the transport still refuses raises
   ``RestoreError`` with the count written.
3. Read every written register back and compare, except the WORKAROUND registers (checks
   that store nothing; GET returns the host's level), the registers that move by themselves
   between the SET and the GET (``SELF_CHANGING``: the counters, and the timer values that
   count down from them) and the timer controls' ISTATUS bit (``VERIFY_IGNORES``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import KvmError, RegError, RestoreError
from ..regs import firmware
from ..regs.firmware import HostFirmware
from ..regs.ids import sys_reg
from ..vcpu.transport import RegTransport
from .blob import Blob, VcpuRegisters
from .preflight import Destination, PreflightReport, check_vcpu, preflight, reg_label
from .wire import picker

SELF_CHANGING: frozenset[int] = frozenset(sys_reg(*e) for e in (
    (3, 3, 14, 3, 2),  # KVM_REG_ARM_TIMER_CNT: the virtual counter (KVM's swapped encoding)
    (3, 3, 14, 0, 1),  # CNTPCT_EL0 = KVM_REG_ARM_PTIMER_CNT (6.12 lists it)
    (3, 3, 14, 3, 0),  # CNTV_TVAL_EL0: counts down
    (3, 3, 14, 2, 0),  # CNTP_TVAL_EL0: counts down
    (3, 3, 9, 13, 0),  # PMCCNTR_EL0: the cycle counter
))
"""Registers a read-back cannot verify: their value moves between a SET and the next GET."""
NOT_VERIFIED: frozenset[int] = SELF_CHANGING | frozenset(firmware.WORKAROUNDS)

_ISTATUS = 1 << 2
VERIFY_IGNORES: dict[int, int] = {
    sys_reg(3, 3, 14, 3, 1): _ISTATUS,  # CNTV_CTL_EL0
    sys_reg(3, 3, 14, 2, 1): _ISTATUS,  # CNTP_CTL_EL0
}
"""Bits a read-back does not compare: a timer's ISTATUS is computed at each read from the
counter and CVAL (Linux ``read_timer_ctl()``: "Set ISTATUS bit if it's expired"), so a timer
that was about to fire when saved reads back as fired once the restored counter passes CVAL."""

TIMER_ORDER: tuple[int, ...] = tuple(sys_reg(*e) for e in (
    (3, 3, 14, 3, 2),  # KVM_REG_ARM_TIMER_CNT (CNTVCT_EL0): sets the virtual counter offset
    (3, 3, 14, 0, 1),  # KVM_REG_ARM_PTIMER_CNT (CNTPCT_EL0): the physical one
    (3, 3, 14, 0, 2),  # KVM_REG_ARM_TIMER_CVAL (CNTV_CVAL_EL0)
    (3, 3, 14, 2, 2),  # KVM_REG_ARM_PTIMER_CVAL (CNTP_CVAL_EL0)
    (3, 3, 14, 3, 1),  # KVM_REG_ARM_TIMER_CTL (CNTV_CTL_EL0)
    (3, 3, 14, 2, 1),  # KVM_REG_ARM_PTIMER_CTL (CNTP_CTL_EL0)
))
"""The timer registers, written before all others and in this order. Linux 6.12
``kvm_arm_timer_set_reg()``: a SET of a counter sets that timer's offset from the host's
counter (``timer_set_offset(timer, kvm_phys_timer_read() - value)``, unless the VMM fixed the
offset with ``KVM_ARM_SET_COUNTER_OFFSET``); CVAL is an absolute value of that counter, and
``kvm_arm_timer_write()`` of CVAL or CTL re-evaluates the timer (ISTATUS, its interrupt line)
against it. So the counter comes first, or the compare value and the enable are judged against
the fresh VM's counter for a moment; then the compare value, then the control (enable last).
Ascending ids would get the virtual timer wrong: KVM's swapped encodings put TIMER_CVAL
(``...df02``) before TIMER_CNT (``...df1a``)."""


def restore_order(reg_ids: Iterable[int]) -> list[int]:
    """The order restore writes ``reg_ids`` in: those of ``TIMER_ORDER`` first, in its order,
    then the others ascending."""
    present = set(reg_ids)
    return [r for r in TIMER_ORDER if r in present] + sorted(present - set(TIMER_ORDER))


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore did on one vCPU."""

    written: tuple[int, ...]
    """Ids written and verified, in the order written (``restore_order``)."""
    dropped: tuple[int, ...] = ()
    """Saved registers the destination lacks, at their reset value: not written."""
    added: tuple[int, ...] = ()
    """Registers the destination has and the saved set lacks: left as they were."""


def save_vcpu(t: RegTransport) -> VcpuRegisters:
    """Every register the vCPU lists, in its KVM_GET_REG_LIST order, read in one batch."""
    reg_ids = tuple(t.reg_list())
    return VcpuRegisters(reg_ids, tuple(t.get_regs(reg_ids)))


def save_vm(vcpus: Sequence[RegTransport]) -> Blob:
    """Save every vCPU of a VM into one blob (they must list the same registers)."""
    return Blob.from_vcpus([save_vcpu(t) for t in vcpus])


def _refuse(problems: Sequence[object], reg_id: int | None) -> RestoreError:
    first = str(problems[0])
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return RestoreError(f"restore refused, nothing written: {first}{more}", reg_id=reg_id)


def restore_vcpu(
    t: RegTransport, regs: Mapping[int, int], *, host: HostFirmware | None = None
) -> RestoreResult:
    """Restore one vCPU's saved registers (a ``VcpuRegisters`` or any id -> value mapping).

    Refuses (``RestoreError``, nothing written) unless every check passes; ``host`` is the
    destination's firmware (default: the transport's own ``host``, else inferred from it)."""
    try:
        dest = Destination.of_vcpus([t], host=host)
    except (RegError, KvmError) as e:
        raise RestoreError(f"restore refused, nothing written: cannot read the destination "
                           f"vCPU: {e}", reg_id=getattr(e, "reg_id", None)) from None
    problems, dropped, added = check_vcpu(regs, dest)
    if problems:
        raise _refuse(problems, problems[0].reg_id)
    return _write(t, regs, dropped, added, where="")


def restore_vm(
    vcpus: Sequence[RegTransport], blob: Blob, *, host: HostFirmware | None = None
) -> tuple[RestoreResult, ...]:
    """Restore a blob into a VM's vCPUs (as many as the blob holds): ``preflight`` first,
    and nothing is written unless it finds no problem."""
    report: PreflightReport = preflight(blob, vcpus, host=host)
    if not report.ok:
        raise _refuse(report.problems, report.problems[0].reg_id)
    return tuple(
        _write(t, blob.vcpu(i), report.dropped, report.added, where=f"vCPU {i}: ")
        for i, t in enumerate(vcpus)
    )


def _write(
    t: RegTransport,
    regs: Mapping[int, int],
    dropped: Sequence[int],
    added: Sequence[int],
    *,
    where: str,
) -> RestoreResult:
    ids_, values = _in_restore_order(regs, dropped)
    items = list(zip(ids_, values, strict=True))
    try:
        t.set_regs(items)
    except RegError as e:
        done = next((i for i, rid in enumerate(ids_) if rid == e.reg_id), 0)
        raise RestoreError(
            f"{where}restore failed writing {reg_label(e.reg_id)}: {e.errname}: {e.reason} "
            f"({done} of {len(items)} registers were written, the timer first, then in "
            "ascending id order)",
            reg_id=e.reg_id, written=done,
        ) from e
    back = t.get_regs(ids_)
    if list(back) != list(values):  # one C-speed comparison; the walk only to name the first
        for rid, want, got in zip(ids_, values, back, strict=True):
            ignore = VERIFY_IGNORES.get(rid, 0)
            if (got ^ want) & ~ignore and rid not in NOT_VERIFIED:
                raise RestoreError(
                    f"{where}restore failed verifying {reg_label(rid)}: wrote {want:#x}, read "
                    f"back {got:#x} (all {len(items)} registers were written)",
                    reg_id=rid, written=len(items),
                )
    return RestoreResult(ids_, tuple(sorted(dropped)), tuple(added))


def _in_restore_order(regs: Mapping[int, int], dropped: Sequence[int]) -> tuple[
        tuple[int, ...], tuple[int, ...]]:
    """The ids to write in ``restore_order`` (``dropped`` left out), and their values."""
    if isinstance(regs, VcpuRegisters):
        ids_, pick = _write_order(regs.reg_ids, frozenset(dropped))
        return ids_, pick(regs.row)
    skip = set(dropped)
    ids_ = tuple(restore_order(r for r in regs if r not in skip))
    return ids_, tuple(regs[r] for r in ids_)


@functools.lru_cache(maxsize=64)
def _write_order(reg_ids: tuple[int, ...], dropped: frozenset[int]) -> tuple[
        tuple[int, ...], Callable[[Sequence[int]], tuple[int, ...]]]:
    """For a register table (every vCPU of a VM shares one): the ids to write in
    ``restore_order`` and a picker of their values from a row, found once."""
    column = {rid: c for c, rid in enumerate(reg_ids)}
    order = restore_order(rid for rid in reg_ids if rid not in dropped)
    return tuple(order), picker([column[rid] for rid in order])
