"""Compatibility rules, measured (stock-vmm suite): a guest saved on a kernel with in-kernel
SDEI, offered to a stock 6.12 destination that has no userspace provider.

The destination is described, not booted: its register list is this kernel's minus the 47
SDEI registers (the series adds exactly those; a stock kernel lists the rest), and its firmware
is ``HOST_LINUX_6_12`` (measured in the lab on Debian's 6.12: STD_BMAP knows bit 0 only).
DESIGN section 4's migration rules then say:

- SDEI in use (a handler running): refused, for the STD_BMAP bit the destination does not know
  and for every SDEI register away from its reset value;
- SDEI on but never used: refused for the bit alone (the registers are at reset, droppable);
- SDEI turned off by the VMM before the first run (bit 1 cleared, so every SDEI call of the
  guest gets NOT_SUPPORTED and every SDEI register keeps its reset value): accepted, the 47
  registers dropped.

Each case runs a real guest (the ``dispatch-complete`` program) on this kernel, saves with
``save_vm``, runs ``preflight`` and records the verdict and messages in the report's notes.
"""

from __future__ import annotations

from typing import Any, Final

from ..guest.doorbell import BellKind
from ..kvm import Kvm, MmioExit
from ..migration import Blob, Destination, PreflightReport, preflight, save_vm
from ..regs import firmware
from ..regs import sdei as sdei_regs
from ..vmm.in_kernel import SDEI_BIT, SDEI_IDS, KernelSdeiOff
from .core import Case, CheckFailed, Skip, expect_eq
from .host import Driver
from .programs.catalog import PROGRAMS
from .runner_kvm import InKernelEngine
from .scenarios import at_bell

PROGRAM: Final = "dispatch-complete"
MAX_RUNS: Final = 50


def stock_destination(blob: Blob) -> Destination:
    """A stock 6.12 destination for ``blob``'s VM: its registers without the SDEI block."""
    return Destination(frozenset(r for r in blob.reg_ids if r not in SDEI_IDS),
                       firmware.HOST_LINUX_6_12, nr_vcpus=blob.nr_vcpus)


def _in_use(kvm: Kvm) -> Blob:
    prog = PROGRAMS[PROGRAM]()
    eng = InKernelEngine(kvm, [prog])
    try:
        Driver(eng, [prog]).run(0, until=at_bell(BellKind.HANDLER_CALL, 0, 0))
        return save_vm(eng.transports())
    finally:
        eng.close()


def _unused(kvm: Kvm) -> Blob:
    eng = InKernelEngine(kvm, [PROGRAMS[PROGRAM]()])
    try:
        return save_vm(eng.transports())
    finally:
        eng.close()


def _gated_off(kvm: Kvm) -> Blob:
    """SDEI off before the first run; the guest then runs (its SDEI calls answered
    NOT_SUPPORTED by the kernel) for a bounded number of exits."""
    eng = InKernelEngine(kvm, [PROGRAMS[PROGRAM]()])
    try:
        KernelSdeiOff(eng.vcpus[0]).gate_off()
        for _ in range(MAX_RUNS):
            if not isinstance(eng.vcpus[0].run(), MmioExit):
                break
        return save_vm(eng.transports())
    finally:
        eng.close()


def _sdei_away_from_reset(blob: Blob) -> list[str]:
    regs = blob.vcpu(0)
    return [sdei_regs.SDEI_REG_BY_ID[r].name for r in sdei_regs.SDEI_REG_IDS
            if regs[r] != sdei_regs.SDEI_REG_BY_ID[r].reset]


def _note(backend: Any, what: str, rep: PreflightReport) -> None:
    notes: list[str] = backend.memo.setdefault("notes", [])
    notes.append(f"stock-vmm {what}: preflight {rep.verdict}; "
                 + ("; ".join(str(p) for p in rep.problems[:3])
                    + (f" (+{len(rep.problems) - 3} more)" if len(rep.problems) > 3 else "")
                    if rep.problems else f"{len(rep.dropped)} SDEI registers dropped at reset"))


def _refused_in_use(backend: Any) -> None:
    blob = _in_use(_kvm(backend))
    away = _sdei_away_from_reset(blob)
    if not away:
        raise CheckFailed("the guest stopped in its handler but every SDEI register is at "
                          "reset: the blob does not show SDEI in use")
    rep = preflight(blob, stock_destination(blob))
    _note(backend, "SDEI in use -> stock 6.12", rep)
    text = [str(p) for p in rep.problems]
    if not any("STD_BMAP" in t for t in text):
        raise CheckFailed(f"preflight did not name STD_BMAP's SDEI bit: {rep}")
    for name in away:
        if not any(name in t for t in text):
            raise CheckFailed(f"{name} is away from reset but preflight does not name it: {rep}")


def _refused_unused(backend: Any) -> None:
    blob = _unused(_kvm(backend))
    expect_eq("SDEI registers away from reset on a VM that never ran",
              _sdei_away_from_reset(blob), [])
    rep = preflight(blob, stock_destination(blob))
    _note(backend, "SDEI on, never used -> stock 6.12", rep)
    expect_eq("preflight problems (only the STD_BMAP bit)",
              [p.reg_id for p in rep.problems], [firmware.STD_BMAP])


def _accepted_gated_off(backend: Any) -> None:
    blob = _gated_off(_kvm(backend))
    expect_eq("saved STD_BMAP bit 1", blob.vcpu(0)[firmware.STD_BMAP] & SDEI_BIT, 0)
    expect_eq("SDEI registers away from reset after the guest ran with SDEI off",
              _sdei_away_from_reset(blob), [])
    rep = preflight(blob, stock_destination(blob))
    _note(backend, "SDEI off before first run -> stock 6.12", rep)
    if not rep.ok:
        raise CheckFailed(f"preflight refused a VM whose SDEI was off: {rep}")
    expect_eq("registers dropped", sorted(rep.dropped), sorted(SDEI_IDS))


def _kvm(backend: Any) -> Kvm:
    why = backend.missing(frozenset({"in-kernel-sdei"}))
    if why:
        raise Skip(why)
    kvm: Kvm = backend.kvm
    return kvm


def cases() -> list[Case]:
    return [
        Case("compat-refused-sdei-in-use", _refused_in_use,
             "saved with a handler running: a stock 6.12 destination is refused for the "
             "STD_BMAP SDEI bit and every SDEI register away from reset"),
        Case("compat-refused-sdei-unused", _refused_unused,
             "SDEI on but never used: refused for the STD_BMAP bit alone"),
        Case("compat-accepted-sdei-off", _accepted_gated_off,
             "SDEI turned off before the first run: accepted, the 47 registers dropped"),
    ]
