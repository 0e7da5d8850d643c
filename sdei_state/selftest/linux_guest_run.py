"""One run of the linux-guest selftest: a Debian kernel booted in the reference VMM with the
SDEI test module, optionally live-migrated at checkpoints the module rings.

The main thread starts the VMM and waits. The module's doorbell rings on vCPU threads:
INJECT injects the event it names on the ringing vCPU; CHECKPOINT, when ``plan`` picks that
point, asks every vCPU thread to pause and hands the point to the main thread, which waits
for them to park, migrates (``migrator``: save, restore into a new VMM) and starts the new
VMM's threads. The run ends when the guest powers off (its init does once the module is
unloaded), after ``timeout``, or when a vCPU fails.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ..kvm import Kvm
from ..linux_guest import results
from ..vmm.reference import Console, Doorbell
from ..vmm.reference.layout import DOORBELL_BASE
from ..vmm.reference.record import Record
from ..vmm.reference.vmm import DEFAULT_BOOTARGS, ReferenceVmm, VmmConfig

UP: Final = r"guest-init: userspace up at ([0-9.]+)s"
DONE: Final = r"guest-init: done at"
KINDS: Final = {0: "between rounds", 1: "normal handler running",
                2: "critical handler preempting the normal one",
                3: "handler running with its event unregister-pending",
                4: "event pending while the PE is masked"}
"""Checkpoint kinds (``sdei_test.c``: point = iteration << 16 | round << 8 | kind)."""
RAM_MB: Final = 256
"""The nested guest's RAM (every migration saves and scans all of it): Debian's kernel takes
44 MiB with bss, and with 128 MiB its boot runs out of memory (ip_rt_init's hash tables)."""


@dataclass(frozen=True)
class Migration:
    """One live migration: where, how long from the pause request to the resumed run, and
    how much was saved."""

    point: int
    vcpu: int
    seconds: float
    saved_bytes: int
    new_process: bool = False
    problem: str = ""
    """Empty when the VM was restored and resumed; else what went wrong."""
    console_lines: int = 0
    """Console lines printed before it (the guest carried on if more came after)."""

    sides: tuple[str, str] = ("provider", "provider")
    """Who served SDEI before and after it (``sdei_mode``): a cross-mode migration changes."""
    kernel_gate: int | None = None
    """On a kernel with in-kernel SDEI: its STD_BMAP bit 1 on the destination after the
    restore (1: the kernel serves, 0: gated off for the provider); None elsewhere."""

    @property
    def kind(self) -> int:
        """Where in a round (``KINDS``)."""
        return self.point & 0xFF

    @property
    def in_handler(self) -> bool:
        """Stopped with a handler running (checkpoint kinds 1: normal, 2: critical, 3: the
        normal one with its event unregister-pending)."""
        return self.kind in (1, 2, 3)

    @property
    def label(self) -> str:
        return (f"iteration {self.point >> 16} round {(self.point >> 8) & 0xFF}, "
                f"{KINDS.get(self.kind, '?')}, vCPU {self.vcpu}")


@dataclass(frozen=True)
class MigrationCost:
    """What a migrator reports: pause-to-resume time, bytes saved, and any problem."""

    seconds: float
    saved_bytes: int
    new_process: bool = False
    problem: str = ""
    sides: tuple[str, str] = ("provider", "provider")
    kernel_gate: int | None = None


Migrator = Callable[[ReferenceVmm], tuple[ReferenceVmm, MigrationCost]]
"""Pause ``old`` (``ReferenceVmm.pause``), save it, restore into a new VMM and close ``old``;
returns the new VMM unstarted (or ``old``, still paused, if it could not migrate)."""


@dataclass
class GuestRun:
    nr_vcpus: int
    console: list[str]
    parsed: results.GuestResults
    records: list[Record]
    mpidrs: tuple[int, ...]
    ended_by: str
    errors: list[str]
    boot_seconds: float | None
    """VMM start to the nested init's first line (host wall clock)."""
    guest_boot_seconds: float | None
    """The same, in the guest's own uptime."""
    total_seconds: float
    final_pending: tuple[tuple[int, ...], ...] = ()
    """Per vCPU, the events still pending at the end."""
    final_sdei: tuple[dict[int, int], ...] = ()
    """Per vCPU, the 47 SDEI registers at the end (empty after a handoff)."""
    migrations: list[Migration] = field(default_factory=list)

    def vcpu_of_mpidr(self, mpidr: int) -> int | None:
        aff = mpidr & 0xFF_00FF_FFFF
        return self.mpidrs.index(aff) if aff in self.mpidrs else None


def bootargs(rounds: int, suspend: bool, kpti: bool = False, states: bool = False) -> str:
    """The nested kernel's command line; ``kpti`` forces page-table isolation (``kpti=1``),
    so SDEI events enter through Linux's trampoline (``__sdei_asm_entry_trampoline``);
    ``states`` adds the module's rounds 8 and 9 (unregister-pending, pending while masked)."""
    return (f"{DEFAULT_BOOTARGS} quiet{' kpti=1' if kpti else ''} "
            f"sdei_doorbell={DOORBELL_BASE:#x} sdei_rounds={rounds} sdei_suspend={int(suspend)}"
            + (" sdei_states=1" if states else ""))


def run_guest(kvm: Kvm, assets: Path, *, vcpus: int = 2, rounds: int = 3,
              suspend: bool = True, timeout: float = 300.0,
              plan: Callable[[int, int], bool] | None = None,
              migrator: Migrator | None = None, handoff_point: int | None = None,
              workdir: Path | None = None, kpti: bool = False, sdei: str = "provider",
              states: bool = False) -> GuestRun:
    """Boot and run the guest to its power-off; see the module docstring. At checkpoint
    ``handoff_point`` the rest of the run moves to a new process (``linux_guest_handoff``,
    snapshot in ``workdir``). ``sdei``: who serves SDEI at boot (``ReferenceVmm``)."""
    from .linux_guest_handoff import handoff

    console = Console()
    holder: list[ReferenceVmm] = []
    wanted: queue.Queue[tuple[int, int, float, bool]] = queue.Queue()
    handed: list[int] = []

    def on_inject(vcpu: int, event: int) -> None:
        holder[-1].inject(vcpu, event)

    def on_checkpoint(vcpu: int, point: int) -> None:
        if point == handoff_point and workdir is not None and not handed:
            handed.append(point)
            holder[-1].request_pause()
            wanted.put((vcpu, point, time.monotonic(), True))
        elif migrator is not None and plan is not None and plan(vcpu, point):
            holder[-1].request_pause()  # parks every thread at its next check
            wanted.put((vcpu, point, time.monotonic(), False))

    bell = Doorbell(on_inject, on_checkpoint)
    cfg = VmmConfig(vcpus, RAM_MB)
    vmm = ReferenceVmm(cfg, console, kvm=kvm, doorbell=bell, sdei=sdei)
    holder.append(vmm)
    vmm.boot((assets / "Image").read_bytes(), (assets / "initramfs.cpio").read_bytes(),
             bootargs(rounds, suspend, kpti, states))
    t0 = time.monotonic()
    vmm.start()
    migrations: list[Migration] = []
    lines = console.lines
    end = t0 + timeout
    rest = None
    while not holder[-1].done.is_set() and time.monotonic() < end:
        try:
            vcpu, point, asked, to_process = wanted.get(timeout=0.2)
        except queue.Empty:
            continue
        if to_process:
            assert workdir is not None
            rest = handoff(holder[-1], workdir, max(10.0, end - time.monotonic()))
            migrations.append(Migration(point, vcpu, rest.resumed_at - asked, rest.saved_bytes,
                                        True, rest.problem, len(lines)))
            break
        assert migrator is not None
        new, cost = migrator(holder[-1])
        if new is not holder[-1]:
            holder.append(new)  # before it runs: its doorbell rings must reach it
            new.start()
        else:
            new.resume()
        migrations.append(Migration(point, vcpu, time.monotonic() - asked, cost.saved_bytes,
                                    cost.new_process, cost.problem, len(lines), cost.sides,
                                    cost.kernel_gate))
        if cost.problem:
            break
    last = holder[-1]
    if rest is None and not last.done.is_set():
        last.shutdown(f"the guest did not power off within {timeout:.0f} s")
    last.join()
    up = console.find(UP)
    final_sdei: tuple[dict[int, int], ...] = ()
    if rest is not None:
        all_lines = [*lines, *rest.console]
        records, ended_by, pending = rest.records, rest.ended_by or rest.problem, rest.pending
        errors = [e for v in holder for e in v.errors] + rest.errors
    else:
        all_lines = list(lines)
        records, ended_by = list(last.records), last.ended_by
        pending = tuple(last.pending(i) for i in range(vcpus))
        final_sdei = tuple(last.sdei_registers(i) for i in range(vcpus))
        errors = [e for v in holder for e in v.errors]
    run = GuestRun(
        nr_vcpus=vcpus, console=all_lines, parsed=results.parse(all_lines), records=records,
        mpidrs=last.mpidrs, ended_by=ended_by, errors=errors,
        boot_seconds=None if up is None else console.times[up[0]] - t0,
        guest_boot_seconds=None if up is None else float(up[1].group(1)),
        total_seconds=time.monotonic() - t0, final_pending=pending, final_sdei=final_sdei,
        migrations=migrations)
    if rest is None:
        last.close()
    return run
