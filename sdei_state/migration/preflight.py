"""Preflight: can this blob be restored on that destination? Every problem, before any write.

The rules (DESIGN section 4, with the upstream facts of KVM-FW-REGS sections 2, 3 and 5):

- A register the source has and the destination lacks may be dropped only if its saved value
  is the value the destination behaves as if it had (``droppable_value``): an SDEI register's
  reset value; VENDOR_HYP_BMAP_2's reset 0 ("This is reset to 0"; QEMU tolerates exactly this
  for backward migration from 6.15); a WORKAROUND level of 0 (NOT_AVAIL: a kernel without the
  register answers ARCH_FEATURES for that workaround with NOT_SUPPORTED, which a guest reads as
  "not available"). Anything else (core and system registers, PSCI_VERSION, the other bitmaps,
  whose reset depends on the host) is never dropped.
- WORKAROUND_1/2/3: the destination host's level must be at least as safe as the saved one
  (upstream compares levels numerically after WA2's narrowing; ``firmware.wa_level_ok``).
- PSCI_VERSION: one the destination accepts for the vCPU's PSCI_0_2 feature.
- A bitmap bit the destination does not know is refused (SET would be EINVAL); a bitmap change
  on a destination VM that has already run is refused (EBUSY).
- A saved core register value the destination's ``SET_ONE_REG`` would refuse (a PSTATE whose
  mode KVM's ``set_core_reg()`` refuses: EL2 without nested virtualization, EL3, reserved or
  AArch32 privileged modes; ``vcpu.core_rules``) is refused.
- The SDEI block of each vCPU passes ``regs.sdei.vcpu_problems`` (per-register checks and the
  cross-register facts the model could never produce).
- Every saved value is an unsigned integer that fits its register (``KVM_REG_SIZE(id)``
  bytes, U8 .. U2048; ``blob.value_problem``). A blob guarantees it; a plain mapping given to
  ``restore_vcpu`` may not, and a write must never be the first to find out.
- VM-wide registers (PSCI_VERSION, the bitmaps) hold one value across the blob's vCPUs, and the
  blob has as many vCPUs as the destination.

A register the destination has and the source lacks keeps the destination's value (as QEMU:
"anything we know about but the incoming data doesn't specify retains its current (reset)
value"); the report lists those as ``added``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..errors import KvmError, RegError
from ..regs import firmware, ids
from ..regs import sdei as sdei_regs
from ..vcpu.core_rules import core_value_problem
from ..vcpu.transport import RegTransport, host_facts
from .blob import Blob, VcpuRegisters, value_problem
from .wire import picker

VM_WIDE: Final = frozenset((firmware.PSCI_VERSION, *firmware.BITMAPS))
"""Firmware registers that are one value per VM, whatever vCPU fd they are accessed through."""


def reg_label(reg_id: int) -> str:
    """``SDEI_EVENT_STATE(0) (0x6030000000140110)``: name and id, for messages."""
    return f"{ids.short_name(reg_id)} ({reg_id:#018x})"


def droppable_value(reg_id: int) -> int | None:
    """The saved value at which a destination lacking ``reg_id`` loses nothing, or None if the
    register can never be dropped (see the module docstring for the reasons)."""
    reg = sdei_regs.SDEI_REG_BY_ID.get(reg_id)
    if reg is not None:
        return reg.reset
    decl = firmware.FIRMWARE_BY_ID.get(reg_id)
    if decl is None:
        return None
    if decl.kind is firmware.FwKind.WORKAROUND:
        return int(firmware.WaLevel.NOT_AVAIL)
    if decl.kind is firmware.FwKind.BITMAP and not decl.reset_known:
        return 0
    return None


@dataclass(frozen=True, slots=True)
class PreflightProblem:
    """One reason a restore would fail: where (vCPU, register) and why."""

    reason: str
    reg_id: int | None = None
    vcpu: int | None = None
    """None when the problem concerns the whole VM (or every vCPU alike)."""

    def __str__(self) -> str:
        where = [] if self.vcpu is None else [f"vCPU {self.vcpu}"]
        if self.reg_id is not None:
            where.append(reg_label(self.reg_id))
        return ": ".join([*where, self.reason])

    def as_json(self) -> dict[str, Any]:
        return {"vcpu": self.vcpu,
                "register": None if self.reg_id is None else f"{self.reg_id:#018x}",
                "name": None if self.reg_id is None else ids.short_name(self.reg_id),
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Destination:
    """What preflight needs to know about a destination VM: the registers its vCPUs list, its
    host firmware, and the VM facts that change SET results."""

    reg_ids: frozenset[int]
    host: firmware.HostFirmware
    nr_vcpus: int | None = None
    """None: any number of vCPUs."""
    psci_0_2: bool = True
    has_run: bool = False
    """The destination VM has run (bitmaps locked). A fresh destination has not."""
    current: tuple[tuple[int, int], ...] = ()
    """Present values of its VM-wide firmware registers (for the EBUSY check)."""

    @classmethod
    def of_vcpus(
        cls, vcpus: Sequence[RegTransport], *, host: firmware.HostFirmware | None = None
    ) -> Destination:
        """Describe a destination from its vCPUs (reads registers, writes nothing). The host
        is ``host``, else the vCPU's own when it declares ``HostFacts`` (the simulated vCPU
        does), else inferred from a fresh vCPU's firmware registers (``infer_host``); PSCI 0.2
        and "has run" come from ``HostFacts`` too (a real vCPU: created with PSCI 0.2, fresh)."""
        if not vcpus:
            raise ValueError("the destination has no vCPU")
        first = vcpus[0]
        listed = _listed(tuple(first.reg_list()))
        facts = host_facts(first)
        psci_0_2 = facts.psci_0_2 if facts is not None else True
        has_run = facts.has_run if facts is not None else False
        if host is None:
            if facts is None:
                # One read of the firmware registers serves the inference and ``current``.
                values = tuple(first.get_regs(listed.firmware))
                host = _inferred(listed, values, "destination")
                current = tuple((r, values[listed.firmware.index(r)]) for r in listed.vm_wide)
                return cls(listed.ids, host, len(vcpus), psci_0_2, has_run, current)
            host = facts.host
        current = tuple(zip(listed.vm_wide, first.get_regs(listed.vm_wide), strict=True))
        return cls(listed.ids, host, len(vcpus), psci_0_2, has_run, current)


@dataclass(frozen=True, slots=True)
class _Listed:
    """What a vCPU's register list says about its firmware, found once per list."""

    ids: frozenset[int]
    firmware: tuple[int, ...]
    """The firmware registers listed, in ``firmware.FIRMWARE_REGS`` order."""
    vm_wide: tuple[int, ...]
    """The VM-wide ones listed, ascending."""


@functools.lru_cache(maxsize=64)
def _listed(reg_list: tuple[int, ...]) -> _Listed:
    reg_ids = frozenset(reg_list)
    return _Listed(reg_ids, tuple(r.id for r in firmware.FIRMWARE_REGS if r.id in reg_ids),
                   tuple(sorted(r for r in VM_WIDE if r in reg_ids)))


def infer_host(t: RegTransport, name: str = "destination") -> firmware.HostFirmware:
    """The ``HostFirmware`` of a freshly created vCPU's kernel, read from its registers: the
    WORKAROUND levels are what GET returns (always the host's), PSCI_VERSION and the bitmaps
    read their reset values on a VM nobody has written to (a bitmap resets to every bit the
    host knows; VENDOR_HYP_BMAP_2 resets to 0, so its known bits are taken as upstream's)."""
    listed = _listed(tuple(t.reg_list()))
    return _inferred(listed, tuple(t.get_regs(listed.firmware)), name)


@functools.lru_cache(maxsize=64)
def _inferred(listed: _Listed, read: tuple[int, ...], name: str) -> firmware.HostFirmware:
    """``infer_host`` from the values of ``listed.firmware`` (a ``HostFirmware`` is
    immutable: one is checked and built once per distinct set of values)."""
    values = dict(zip(listed.firmware, read, strict=True))
    psci = values.get(firmware.PSCI_VERSION, int(firmware.PsciVersion.V1_0))
    try:
        psci_max = max(firmware.PsciVersion(psci), firmware.PsciVersion.V0_2)
    except ValueError:
        psci_max = firmware.PsciVersion.V1_0
    fw = [firmware.FIRMWARE_BY_ID[r] for r in listed.firmware]
    wa = tuple((r.id, values[r.id]) for r in fw if r.kind is firmware.FwKind.WORKAROUND)
    bm = tuple((r.id, values[r.id] if r.reset_known else r.upstream_mask)
               for r in fw if r.kind is firmware.FwKind.BITMAP)
    return firmware.HostFirmware(f"{name} (inferred)", psci_max, wa, bm)


@dataclass(frozen=True, slots=True)
class PreflightReport:
    """The verdict on restoring one blob on one destination, with every problem found."""

    problems: tuple[PreflightProblem, ...]
    dropped: tuple[int, ...] = ()
    """Registers the destination lacks, saved at their droppable value: not written."""
    added: tuple[int, ...] = ()
    """Registers the destination has and the blob lacks: they keep the destination's value."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> Literal["ok", "refused"]:
        return "ok" if self.ok else "refused"

    def __str__(self) -> str:
        lines = [f"preflight: {self.verdict} ({len(self.problems)} problem(s))"]
        lines += [f"  {p}" for p in self.problems]
        for what, regs in (("dropped (destination lacks them, saved at reset value)",
                            self.dropped),
                           ("not in the blob (destination values kept)", self.added)):
            if regs:
                names = ", ".join(ids.short_name(r) for r in regs)
                lines.append(f"  {what}: {len(regs)}: {names}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict,
                "problems": [p.as_json() for p in self.problems],
                "dropped": [f"{r:#018x}" for r in self.dropped],
                "added": [f"{r:#018x}" for r in self.added]}


@dataclass
class _Findings:
    problems: list[PreflightProblem] = field(default_factory=list)
    _at: list[int] = field(default_factory=list)

    def add(self, reason: str, reg_id: int | None = None, vcpu: int | None = None,
            *, at: int = 0) -> None:
        """One problem; ``at`` orders it (a register's position in its vCPU's mapping)."""
        self.problems.append(PreflightProblem(reason, reg_id, vcpu))
        self._at.append(at)

    def in_order(self) -> list[PreflightProblem]:
        """The problems by ``at``, those of one position in the order they were found."""
        if not self.problems:
            return []
        order = sorted(range(len(self.problems)), key=self._at.__getitem__)
        return [self.problems[i] for i in order]


def _check_firmware(
    out: _Findings, values: Sequence[tuple[int, int]], dest: Destination, vcpu: int | None,
    *, at: Sequence[int] | None = None,
) -> None:
    """The destination host's SET rule for saved firmware (id, value) pairs: a problem for
    each refused (``at``: their positions, for the order of problems)."""
    for k, (reg_id, value, current, err) in enumerate(_fw_refusals(
            tuple(values), dest.host, tuple(dest.current), dest.has_run, dest.psci_0_2)):
        out.add(firmware.firmware_refusal(reg_id, value, dest.host, current=current,
                                          errno_=err, psci_0_2=dest.psci_0_2), reg_id, vcpu,
                at=0 if at is None else at[k])


@functools.lru_cache(maxsize=256)
def _fw_refusals(values: tuple[tuple[int, int], ...], host: firmware.HostFirmware,
                 present: tuple[tuple[int, int], ...], has_run: bool,
                 psci_0_2: bool) -> tuple[tuple[int, int, int, int], ...]:
    """(id, value, current, errno) of each (id, value) ``firmware.check_set`` refuses, asked
    once per distinct question: every vCPU of a VM, and every restore onto the same host,
    asks the same one (the values are checked u64s by then)."""
    now = dict(present)
    out = []
    for reg_id, value in values:
        current = now.get(reg_id, value)
        err = firmware.check_set(reg_id, value, host=host, current=current, has_run=has_run,
                                 psci_0_2=psci_0_2)
        if err is not None:
            out.append((reg_id, value, current, err))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one register table meets one destination's register list: each column's rule,
    found once per (table, destination list) instead of once per register per restore."""

    missing: tuple[tuple[int, int], ...]
    """(column, id) of registers the destination lacks: dropped or refused by value."""
    firmware: tuple[tuple[int, int], ...]
    """(column, id) of firmware registers that are not VM-wide."""
    vm_wide: tuple[tuple[int, int], ...]
    """(column, id) of VM-wide firmware registers (judged once per VM by ``preflight``)."""
    core: tuple[tuple[int, int], ...]
    """(column, id) of every other register present (``core_value_problem`` judges it), their
    ids and a picker of their values from a row."""
    core_ids: tuple[int, ...]
    core_values: Callable[[Sequence[int]], tuple[int, ...]]
    sdei_present: bool
    """The destination lists some of the table's SDEI registers: the block is judged as a
    whole (as it is when one is dropped)."""
    sdei_ids: tuple[int, ...]
    """The table's SDEI ids, and a picker of their values from a row."""
    sdei_values: Callable[[Sequence[int]], tuple[int, ...]]
    added: tuple[int, ...]
    """Ids the destination lists and the table lacks, ascending."""


@functools.lru_cache(maxsize=64)
def _plan(reg_ids: tuple[int, ...], dest_ids: frozenset[int]) -> _Plan:
    missing: list[tuple[int, int]] = []
    fw: list[tuple[int, int]] = []
    wide: list[tuple[int, int]] = []
    core: list[tuple[int, int]] = []
    sdei: list[tuple[int, int]] = []
    for col, rid in enumerate(reg_ids):
        if rid in sdei_regs.SDEI_REG_BY_ID:
            sdei.append((col, rid))
        if rid not in dest_ids:
            missing.append((col, rid))
        elif rid in sdei_regs.SDEI_REG_BY_ID:
            continue
        elif firmware.is_firmware_reg(rid):
            (wide if rid in VM_WIDE else fw).append((col, rid))
        else:
            core.append((col, rid))
    present = frozenset(reg_ids)
    return _Plan(tuple(missing), tuple(fw), tuple(wide), tuple(core),
                 tuple(rid for _, rid in core), picker([col for col, _ in core]),
                 any(rid in dest_ids for _, rid in sdei), tuple(rid for _, rid in sdei),
                 picker([col for col, _ in sdei]),
                 tuple(sorted(r for r in dest_ids if r not in present)))


def _checked_row(
    out: _Findings, regs: Mapping[int, int], vcpu: int | None
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], set[int]]:
    """(ids, values, their positions in ``regs``, refused ids) of a saved vCPU. A
    ``VcpuRegisters`` (what ``save_vcpu`` and a blob give) checked its ids and values when it
    was built; any other mapping is judged here, register by register, in its order, and what
    it refuses is left out of the rest."""
    if isinstance(regs, VcpuRegisters):
        return regs.reg_ids, regs.row, (), set()
    reg_ids: list[int] = []
    row: list[int] = []
    where: list[int] = []
    unfit: set[int] = set()
    for pos, (rid, value) in enumerate(regs.items()):
        if isinstance(rid, bool) or not isinstance(rid, int) or not 0 <= rid <= ids.U64_MAX:
            out.add(f"{rid!r} is not a register id (an unsigned 64-bit integer)", None, vcpu,
                    at=pos)
            continue
        problem = value_problem(rid, value)
        if problem is not None:
            out.add(f"saved value {problem}", rid, vcpu, at=pos)
            unfit.add(rid)
            continue
        reg_ids.append(rid)
        row.append(value)
        where.append(pos)
    return tuple(reg_ids), tuple(row), tuple(where), unfit


def check_vcpu(
    regs: Mapping[int, int], dest: Destination, vcpu: int | None = None,
    *, firmware_checked: bool = False,
) -> tuple[list[PreflightProblem], tuple[int, ...], tuple[int, ...]]:
    """(problems, dropped, added) for restoring one vCPU's saved registers on ``dest``.
    ``firmware_checked``: the VM-wide firmware values were already judged (once per VM).
    Problems come in the order of ``regs``, then those of the SDEI block as a whole."""
    out = _Findings()
    reg_ids, row, where, unfit = _checked_row(out, regs, vcpu)
    plan = _plan(reg_ids, frozenset(dest.reg_ids))  # (a frozenset is returned as it is)
    dropped: list[int] = []
    for col, rid in plan.missing:
        value = row[col]
        reset = droppable_value(rid)
        if reset is None:
            out.add("the destination does not have this register, and it cannot be "
                    "dropped (only registers with a host-independent reset value can)",
                    rid, vcpu, at=where[col] if where else col)
        elif value != reset:
            out.add(f"the destination does not have this register; it may be dropped only "
                    f"at its reset value {reset:#x}, saved {value:#x}", rid, vcpu,
                    at=where[col] if where else col)
        else:
            dropped.append(rid)
    fw = plan.firmware if firmware_checked else plan.firmware + plan.vm_wide
    if fw:
        _check_firmware(out, [(rid, row[col]) for col, rid in fw], dest, vcpu,
                        at=[where[col] if where else col for col, _ in fw])
    refusals = list(map(core_value_problem, plan.core_ids, plan.core_values(row)))
    if any(refusals):
        for (col, rid), refusal in zip(plan.core, refusals, strict=True):
            if refusal is not None:
                out.add(refusal, rid, vcpu, at=where[col] if where else col)
    problems = out.in_order()
    if plan.sdei_present or any(r in sdei_regs.SDEI_REG_BY_ID for r in dropped):
        block = (dict(zip(plan.sdei_ids, plan.sdei_values(row), strict=True))
                 if isinstance(regs, VcpuRegisters) else regs)
        problems += [PreflightProblem(reason, rid, vcpu)
                     for rid, reason in sdei_regs.vcpu_problems(block) if rid not in unfit]
    added = plan.added if not unfit else tuple(r for r in plan.added if r not in unfit)
    return problems, tuple(dropped), added


def preflight(
    source: Blob,
    destination: Sequence[RegTransport] | Destination,
    *,
    host: firmware.HostFirmware | None = None,
) -> PreflightReport:
    """Check, without writing anything, whether ``source`` can be restored on
    ``destination`` (its vCPUs, or a ``Destination`` description). ``host`` overrides the
    destination host when vCPUs are given. Every problem names the register and the reason."""
    if isinstance(destination, Destination):
        dest = destination
    else:
        try:
            dest = Destination.of_vcpus(destination, host=host)
            lists = {frozenset(t.reg_list()) for t in destination}
        except (RegError, KvmError) as e:
            return PreflightReport((PreflightProblem(f"cannot read the destination: {e}"),))
        if len(lists) > 1:
            return PreflightReport((PreflightProblem(
                "the destination vCPUs list different registers; "
                "one blob restores one register table"),))
    out = _Findings()
    if dest.nr_vcpus is not None and dest.nr_vcpus != source.nr_vcpus:
        out.add(f"the blob holds {source.nr_vcpus} vCPU(s), the destination has "
                f"{dest.nr_vcpus}")
    # VM-wide registers: one value in every row, judged once.
    for col, rid in enumerate(source.reg_ids):
        if rid not in VM_WIDE:
            continue
        values = {row[col] for row in source.rows}
        if len(values) > 1:
            shown = ", ".join(f"{v:#x}" for v in sorted(values))
            out.add(f"a VM-wide register holds different values across vCPUs ({shown})", rid)
        elif rid in dest.reg_ids:
            _check_firmware(out, [(rid, next(iter(values)))], dest, None)
    # Registers are dropped for the whole VM or not at all: one register table.
    dropped = {r for r in source.reg_ids if r not in dest.reg_ids}
    added: tuple[int, ...] = ()
    for i, regs in enumerate(source.vcpus()):
        problems, drop, added = check_vcpu(regs, dest, i, firmware_checked=True)
        out.problems.extend(problems)
        dropped.intersection_update(drop)
    return PreflightReport(tuple(out.problems), tuple(sorted(dropped)), added)
