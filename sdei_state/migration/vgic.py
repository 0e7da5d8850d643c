"""Save and restore of an in-kernel vGICv3 through its device attributes, derived from the
table of ``vgic_table`` (what to carry, in which order, and why that order).

``save_vgic(device, mpidrs)`` reads the layout (addresses, interrupt count) and every attribute
of the table into a ``VgicState``; ``restore_vgic(device, state, mpidrs)`` restores one into a
freshly created and initialised vGIC of the same layout. Restore works like the vCPUs'
(``save``): check everything, write nothing on a problem (layout, vCPU MPIDRs, the
identification registers); then write in table order; then read every written attribute back.
The device is anything with ``has_attr``/``get_attr``/``set_attr`` (``sdei_state.kvm.Device``,
or a fake in the tests).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Protocol

from ..errors import BlobError, KvmError, RestoreError
from ..kvm import vgic as uapi
from ..kvm.gic_layout import GicLayout, read_layout
from .vgic_table import GICD_TYPER, GICD_TYPER_LPIS, Access, Role, accesses

_ALL_ONES = 0xFFFF_FFFF


class AttrDevice(Protocol):
    """A device's attribute calls, as ``sdei_state.kvm.Device`` offers them."""

    def has_attr(self, group: int, attr: int) -> bool: ...

    def get_attr(self, group: int, attr: int, width: Literal[32, 64] = 64) -> int: ...

    def set_attr(self, group: int, attr: int, value: int = 0,
                 width: Literal[0, 32, 64] = 64) -> None: ...


@lru_cache(maxsize=16)
def _table(nr_irqs: int, mpidrs: tuple[int, ...]) -> dict[tuple[int, int], Access]:
    return {(a.group, a.attr): a for a in accesses(nr_irqs, mpidrs)}


@dataclass(frozen=True, slots=True)
class VgicState:
    """A vGICv3's saved state: its layout, the MPIDR of each vCPU (which redistributor is
    whose), and (group, attr, value) of every attribute, in restore order."""

    layout: GicLayout
    mpidrs: tuple[int, ...]
    values: tuple[tuple[int, int, int], ...]
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.layout, GicLayout):
            raise BlobError("VgicState.layout is not a GicLayout")
        if not isinstance(self.mpidrs, tuple) or len(self.mpidrs) != self.layout.nr_vcpus:
            raise BlobError(f"the vGIC state names {len(self.mpidrs)} vCPU MPIDRs for a "
                            f"layout of {self.layout.nr_vcpus} vCPUs")
        for i, m in enumerate(self.mpidrs):
            if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m < 1 << 64:
                raise BlobError(f"vGIC: MPIDR of vCPU {i} = {m!r} is not a u64")
        if len(set(map(uapi.attr_mpidr, self.mpidrs))) != len(self.mpidrs):
            raise BlobError("vGIC: two vCPUs share one affinity (MPIDR)")
        table = _table(self.layout.nr_irqs, self.mpidrs)
        order = {key: i for i, key in enumerate(table)}
        names: list[str] = []
        last = -1
        for group, attr, value in self.values:
            a = table.get((group, attr))
            if a is None:
                raise BlobError(f"vGIC: group {group} attr {attr:#x} is not a register this "
                                "library saves for this layout")
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 0 <= value < 1 << a.width:
                raise BlobError(f"vGIC: {a.name} = {value!r} is not a u{a.width}")
            if order[(group, attr)] <= last:
                raise BlobError(f"vGIC: {a.name} is out of restore order (or twice)")
            last = order[(group, attr)]
            names.append(a.name)
        present = {(g, t) for g, t, _ in self.values}
        missing = [a.name for key, a in table.items()
                   if not a.reg.optional and key not in present]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise BlobError(f"vGIC: the state lacks {missing[0]}{more}")
        object.__setattr__(self, "_names", tuple(names))

    def named(self) -> tuple[tuple[str, int], ...]:
        """(register name, value) of every saved attribute, in restore order."""
        return tuple(zip(self._names, (v for _, _, v in self.values), strict=True))

    def diff(self, other: VgicState) -> list[str]:
        """What differs from ``other``, one line per register (empty when equal)."""
        out = [f"{f}: {getattr(self, f)!r} != {getattr(other, f)!r}"
               for f in ("layout", "mpidrs") if getattr(self, f) != getattr(other, f)]
        mine = dict(self.named())
        theirs = dict(other.named())
        for name in dict.fromkeys([*mine, *theirs]):
            a, b = mine.get(name), theirs.get(name)
            if a != b:
                shown = [("absent" if v is None else f"{v:#x}") for v in (a, b)]
                out.append(f"{name}: {shown[0]} != {shown[1]}")
        return out


def save_vgic(device: AttrDevice, mpidrs: Sequence[int], *, has_its: bool = False
              ) -> VgicState:
    """Every attribute of the table, read from ``device`` for vCPUs with ``mpidrs`` (in vCPU
    index order; read them from each vCPU's MPIDR_EL1). The vCPUs must not be running
    (KVM answers ``EBUSY`` otherwise). With an ITS, ``KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES``
    first writes the LPI pending bits into guest memory, which the memory save then carries;
    this library's VMs have no ITS."""
    mp = tuple(mpidrs)
    layout = read_layout(device, len(mp))
    if has_its:
        device.set_attr(uapi.GRP_CTRL, uapi.KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES, 0, 0)
    lpis = bool(device.get_attr(uapi.GRP_DIST_REGS, uapi.regs_attr(0, GICD_TYPER), 32)
                & GICD_TYPER_LPIS)
    values: list[tuple[int, int, int]] = []
    for a in _table(layout.nr_irqs, mp).values():
        if a.reg.lpis and not lpis:
            continue
        try:
            values.append((a.group, a.attr, device.get_attr(a.group, a.attr, a.width)))
        except KvmError as e:
            if a.reg.optional and e.errno in (errno.EINVAL, errno.ENXIO):  # not implemented
                continue
            raise KvmError(e.errno or 0, f"vGIC save: reading {a.name}: {e}") from None
    return VgicState(layout, mp, tuple(values))


def restore_problems(device: AttrDevice, state: VgicState,
                     mpidrs: Sequence[int]) -> list[str]:
    """Why ``state`` cannot be restored into ``device`` (a created and initialised vGICv3 of
    vCPUs with ``mpidrs``), reading only: another layout, other MPIDRs, an identification
    register that differs. Empty when it can."""
    try:
        layout = read_layout(device, len(mpidrs))
    except (KvmError, ValueError) as e:
        return [f"vGIC: cannot read the destination's layout: {e}"]
    out: list[str] = []
    if layout != state.layout:
        for f in ("dist_base", "redist_base", "nr_vcpus", "nr_irqs"):
            want, got = getattr(state.layout, f), getattr(layout, f)
            if want != got:
                out.append(f"vGIC: the destination's {f} is {got:#x}, the saved GIC's {want:#x}")
        return out
    if tuple(mpidrs) != state.mpidrs:
        return [f"vGIC: the destination's vCPU MPIDRs {[hex(m) for m in mpidrs]} are not the "
                f"saved {[hex(m) for m in state.mpidrs]}"]
    table = _table(state.layout.nr_irqs, state.mpidrs)
    for group, attr, value in state.values:
        a = table[(group, attr)]
        if a.reg.role is not Role.IDENT:
            continue
        try:
            got = device.get_attr(group, attr, a.width)
        except KvmError as e:
            out.append(f"vGIC: {a.name}: cannot read the destination's: {e}")
            continue
        if got != value:
            out.append(f"vGIC: {a.name} is {got:#x} on the destination, {value:#x} saved: "
                       "not the same GIC")
    return out


def restore_vgic(device: AttrDevice, state: VgicState, mpidrs: Sequence[int]) -> int:
    """Restore ``state`` into ``device``: refuse (``RestoreError``, nothing written) on any
    ``restore_problems``; write in table order (clear twins first); read back. Returns the
    number of attributes written."""
    problems = restore_problems(device, state, mpidrs)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise RestoreError(f"vGIC restore refused, nothing written: {problems[0]}{more}")
    table = _table(state.layout.nr_irqs, state.mpidrs)
    written: list[tuple[Access, int]] = []
    for group, attr, value in state.values:
        a = table[(group, attr)]
        if a.reg.role is Role.IDENT:
            continue
        try:
            if a.clear_attr is not None:
                device.set_attr(group, a.clear_attr, _ALL_ONES, 32)
            device.set_attr(group, attr, value, a.width)
        except KvmError as e:
            raise RestoreError(f"vGIC restore failed writing {a.name} = {value:#x}: {e} "
                               f"({len(written)} attributes were written, in table order)",
                               written=len(written)) from None
        written.append((a, value))
    for a, want in written:
        got = device.get_attr(a.group, a.attr, a.width)
        if got != want:
            raise RestoreError(f"vGIC restore failed verifying {a.name}: wrote {want:#x}, read "
                               f"back {got:#x}", written=len(written))
    return len(written)
