"""A selftest KVM engine with an in-kernel vGICv3 that migrates whole-VM snapshots, and the
child-process side of a migration into a fresh process.

``GicEngine`` is ``runner_kvm.KvmEngine`` (real KVM, the SDEI range forwarded to the
userspace provider) plus a vGICv3 at ``GicLayout.default``; its ``migrate`` saves a
``VmSnapshot`` (every vCPU register with the provider's SDEI block, the vGIC, the memslots),
goes through the binary form, restores into a fresh engine made the same way and closes the
source. Run as a script (``python3 -P vmstate_engine.py SNAPSHOT STATE``) it is the fresh
process: it restores the snapshot into a new VM, continues the run there with the driver
state it is given, and prints the rest of the run as JSON.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdei_state.kvm import Kvm
from sdei_state.migration import VmSnapshot, restore_vm_snapshot, save_vm_snapshot
from sdei_state.selftest.host import Driver, Migration
from sdei_state.selftest.programs.catalog import PROGRAMS
from sdei_state.selftest.runner_kvm import KvmEngine, Loadable
from sdei_state.vmm.gic import GicLayout, VgicV3


class GicEngine(KvmEngine):
    """``KvmEngine`` with a vGICv3 (created once the vCPUs exist, initialised before any
    runs) whose migrations carry the whole VM."""

    def __init__(self, kvm: Kvm, programs: Sequence[Loadable], *,
                 load: bool = True) -> None:
        super().__init__(kvm, programs, load=load)
        try:
            self.gic = VgicV3.create(self.vm, GicLayout.default(self.nr_vcpus))
            self.gic.init()
        except BaseException:
            self.vm.close()
            raise
        self.name = "arm64 KVM + vGICv3 + userspace provider"
        self.last: VmSnapshot | None = None
        self.pause_to_resume = 0.0

    def snapshot(self) -> VmSnapshot:
        return save_vm_snapshot(self.transports(), gic=self.gic.device, memory=self.vm.memory)

    def restore(self, data: bytes) -> VmSnapshot:
        snap = VmSnapshot.from_bytes(data)
        restore_vm_snapshot(self.transports(), snap, gic=self.gic.device,
                            memory=self.vm.memory)
        return snap

    def migrate(self) -> tuple[GicEngine, Migration]:
        t0 = time.perf_counter()
        data = self.snapshot().to_bytes()
        dest = type(self)(self.kvm, self.programs, load=False)
        try:
            snap = dest.restore(data)
        except BaseException:
            dest.close()
            raise
        dest.pause_to_resume = time.perf_counter() - t0
        dest.last = snap
        self.close()
        return dest, Migration(len(snap.vcpus.reg_ids), len(data), snap.memory_bytes,
                               dest.pause_to_resume, snap.vcpus)


def run_summary(drv: Driver, start: int) -> dict[str, Any]:
    """vCPU 0's run from trace item ``start`` on, as comparable JSON."""
    r = drv.result(0)
    return {"trace": [repr(t) for t in r.trace[start:]],
            "memory": hashlib.sha256(r.memory).hexdigest(),
            "regs": {str(k): v for k, v in r.regs.items()}, "finished": r.finished}


def child(snapshot: Path, state: Path) -> dict[str, Any]:
    """The fresh process: restore, continue vCPU 0 with the parent's driver state, report."""
    st = json.loads(state.read_text())
    programs = (PROGRAMS[st["program"]](),)
    with Kvm() as kvm:
        t0 = time.perf_counter()
        eng = GicEngine(kvm, programs, load=False)
        try:
            snap = eng.restore(snapshot.read_bytes())
            restored = time.perf_counter() - t0
            again = eng.snapshot().vgic
            drv = Driver(eng, programs)
            vst = drv._st[0]  # carry the parent's trigger bookkeeping (which fired, seen)
            vst.seen = {int(k): v for k, v in st["seen"].items()}
            vst.fired = list(st["fired"])
            drv.run(0)
            out = run_summary(drv, 0)
            out["vgic_equal"] = again == snap.vgic
            out["restore_seconds"] = restored
            return out
        finally:
            eng.close()


if __name__ == "__main__":
    print(json.dumps(child(Path(sys.argv[1]), Path(sys.argv[2]))))
