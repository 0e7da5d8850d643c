"""Whole-VM live migration on real arm64 KVM: a VM with an in-kernel vGICv3 runs one of the
project's guest programs, is stopped while an SDEI handler runs, saved as a ``VmSnapshot``
(every register, the SDEI block, the timer, the vGIC, memory), restored into a fresh VM (and
once into a fresh process) and resumed; the run must equal the reference model's
uninterrupted run, and the vGIC and timer state must be what was saved."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdei_state.guest.doorbell import BellKind
from sdei_state.kvm import Kvm
from sdei_state.kvm import vgic as uapi
from sdei_state.migration import VmSnapshot, save_vgic
from sdei_state.migration.vgic import VgicState
from sdei_state.migration.vm import vcpu_mpidrs
from sdei_state.regs.ids import sys_reg
from sdei_state.selftest.host import Driver, Migration, simulate
from sdei_state.selftest.programs.catalog import PROGRAMS
from sdei_state.selftest.scenarios import MigrateStep, RunStep, Step, at_bell, execute
from sdei_state.selftest.trace import VcpuRun, compare

from .vmstate_engine import GicEngine

pytestmark = pytest.mark.usefixtures("smccc_filter")

CNTV_CTL, CNTV_CVAL, CNTVCT = (sys_reg(3, 3, 14, 3, 1), sys_reg(3, 3, 14, 0, 2),
                               sys_reg(3, 3, 14, 3, 2))
STOPS = {  # program -> where it is stopped (inside a handler)
    "dispatch-complete": (BellKind.HANDLER_CALL, 0, 9),
    "nested": (BellKind.HANDLER_CALL, 1, 5),
}


def _dress(eng: GicEngine) -> None:
    """Give the vGIC and the timer state a guest could have left, none of it deliverable
    (the programs run with interrupts unmasked): SPI 40 enabled, routed, prioritised and
    level-triggered but idle; SPI 41 pending but disabled; SPI 42 active; a PPI of vCPU 0
    pending but disabled; the CPU interface's mask and group enable; the distributor
    enabled; the virtual timer enabled with its output masked and a far compare value."""
    dev = eng.gic.device
    mp = vcpu_mpidrs(eng.transports())
    dist = uapi.GRP_DIST_REGS
    dev.set_attr(dist, uapi.regs_attr(0, 0x0104), 1 << 8, 32)  # ISENABLER1: SPI 40
    dev.set_attr(dist, uapi.regs_attr(0, 0x0204), 1 << 9, 32)  # ISPENDR1: SPI 41
    dev.set_attr(dist, uapi.regs_attr(0, 0x0304), 1 << 10, 32)  # ISACTIVER1: SPI 42
    dev.set_attr(dist, uapi.regs_attr(0, 0x0428), 0x00A0_B0C0, 32)  # IPRIORITYR10
    dev.set_attr(dist, uapi.regs_attr(0, 0x0C0C), 0xAAAA_0000, 32)  # ICFGR3
    dev.set_attr(dist, uapi.regs_attr(0, 0x6000 + 8 * 40), mp[0] & 0xFF_FFFF, 32)
    dev.set_attr(dist, uapi.regs_attr(0, 0x0000), 0x2, 32)  # GICD_CTLR.EnableGrp1A
    dev.set_attr(uapi.GRP_REDIST_REGS, uapi.regs_attr(mp[0], 0x1_0200), 1 << 20, 32)
    dev.set_attr(uapi.GRP_CPU_SYSREGS, uapi.sysreg_attr(mp[0], 3, 0, 4, 6, 0), 0xF0)
    dev.set_attr(uapi.GRP_CPU_SYSREGS, uapi.sysreg_attr(mp[0], 3, 0, 12, 12, 7), 1)
    v = eng.vcpus[0]
    v.set_reg(CNTV_CVAL, (1 << 62) + 0x1234)
    v.set_reg(CNTV_CTL, 0x3)  # ENABLE, IMASK


def _run_to_stop(kvm: Kvm, name: str) -> tuple[GicEngine, Driver, VcpuRun, int]:
    """A dressed engine running ``name`` until its stop; the reference run; the trace mark."""
    programs = (PROGRAMS[name](),)
    eng = GicEngine(kvm, programs)
    _dress(eng)
    kind, slot, index = STOPS[name]
    drv, _, _ = execute(eng, programs, [RunStep(0, until=at_bell(kind, slot, index))])
    return eng, drv, simulate(programs[0]), drv.mark(0)


@dataclass
class _Seen:
    """What the source and the destination held around one migration."""

    snap: VmSnapshot | None = None
    cntvct: int = 0
    dest_vgic: VgicState | None = None
    dest_timer: tuple[int, ...] = ()


@pytest.mark.parametrize("name", sorted(STOPS))
def test_live_migration_mid_handler(kvm: Kvm, name: str) -> None:
    programs = (PROGRAMS[name](),)
    expected = simulate(programs[0])
    eng = GicEngine(kvm, programs)
    _dress(eng)
    kind, slot, index = STOPS[name]
    steps: list[Step] = [RunStep(0, until=at_bell(kind, slot, index)), MigrateStep(),
                         RunStep(0)]
    seen = _Seen()
    orig_migrate = eng.migrate

    def migrate() -> tuple[GicEngine, Migration]:
        # What the source holds at the stop, and the destination right after the restore.
        seen.snap = eng.snapshot()
        seen.cntvct = eng.vcpus[0].get_reg(CNTVCT)
        dest, m = orig_migrate()
        seen.dest_vgic = save_vgic(dest.gic.device, vcpu_mpidrs(dest.transports()))
        seen.dest_timer = tuple(dest.vcpus[0].get_regs([CNTV_CTL, CNTV_CVAL, CNTVCT]))
        return dest, m

    eng.migrate = migrate  # type: ignore[method-assign]
    drv, _, migrations = execute(eng, programs, steps)
    dest = drv.engine
    try:
        assert isinstance(dest, GicEngine) and dest is not eng
        diffs = compare(expected, drv.result(0), dest.sees)
        assert not diffs, diffs
        assert drv.result(0).finished
        snap = seen.snap
        assert snap is not None and snap.vgic is not None and seen.dest_vgic is not None
        assert seen.dest_vgic == snap.vgic, snap.vgic.diff(seen.dest_vgic)
        named = dict(snap.vgic.named())
        assert named["GICD_ISPENDR1 (INTID 32-63)"] == 1 << 9
        assert named["ICC_PMR_EL1 of vCPU 0"] == 0xF0
        ctl, cval, cnt = seen.dest_timer
        assert (ctl & 0x3, cval) == (0x3, (1 << 62) + 0x1234)
        assert cnt >= seen.cntvct, "the virtual counter carries on from the saved value"
        m = migrations[0]
        print(f"\n{name}: pause to resume {m.seconds * 1e3:.1f} ms, blob {m.blob_bytes} bytes "
              f"({m.registers} registers per vCPU, {m.memory_bytes} bytes of memory, "
              f"{len(snap.vgic.values)} vGIC attributes)")
    finally:
        dest.close()


def test_live_migration_into_a_fresh_process(kvm: Kvm, tmp_path: Path) -> None:
    name = "nested"
    eng, drv, expected, mark = _run_to_stop(kvm, name)
    try:
        t0 = time.perf_counter()
        data = eng.snapshot().to_bytes()
        saved = time.perf_counter() - t0
        st = drv._st[0]  # the trigger bookkeeping the new process goes on with
        (tmp_path / "vm.snap").write_bytes(data)
        (tmp_path / "state.json").write_text(json.dumps(
            {"program": name, "seen": st.seen, "fired": st.fired}))
        sees = eng.sees
        before = [repr(t) for t in drv.result(0).trace[:mark]]
    finally:
        eng.close()
    script = Path(__file__).with_name("vmstate_engine.py")
    r = subprocess.run([sys.executable, "-P", str(script), str(tmp_path / "vm.snap"),
                        str(tmp_path / "state.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.splitlines()[-1])
    want = [repr(t) for t in expected.trace if sees(t)]
    assert want[:mark] == before, "the run up to the stop is the model's"
    assert got["trace"] == want[mark:], "the new process carries on as the model predicts"
    assert got["memory"] == hashlib.sha256(expected.memory).hexdigest()
    assert got["regs"] == {str(k): v for k, v in expected.regs.items()}
    assert got["finished"] and got["vgic_equal"]
    print(f"\nfresh process: save {saved * 1e3:.1f} ms, restore in the new process "
          f"{got['restore_seconds'] * 1e3:.1f} ms, blob {len(data)} bytes")
