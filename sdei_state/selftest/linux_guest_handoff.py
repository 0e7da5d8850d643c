"""Live migration of the running Linux guest into a VM in a new process.

At its handoff point the suite pauses the VMM, writes a ``linux_guest_migrate.Snapshot`` to
a directory (the registers in the blob format, the vGIC, RAM, the SDEI record) and closes its
VM. A new Python process (``python -m sdei_state.selftest.linux_guest_handoff DIR``) restores
the snapshot into a fresh VM (``preflight`` first), runs the guest to its power-off, and
leaves in ``DIR/out``: the console lines it printed, the SDEI record (the parent's carried
on), and how the run ended. The parent then reads them as the rest of its run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..vmm.reference import Console, Doorbell
from ..vmm.reference.record import Record, from_json, to_json
from ..vmm.reference.vmm import ReferenceVmm
from .linux_guest_migrate import Snapshot, restore, save

CHILD_TIMEOUT: Final = 600.0


@dataclass(frozen=True)
class Handoff:
    """What the new process did."""

    console: list[str]
    records: list[Record]
    ended_by: str
    errors: list[str]
    pending: tuple[tuple[int, ...], ...]
    resumed_at: float
    """``time.monotonic()`` (system-wide on Linux) when the child's vCPUs started."""
    saved_bytes: int
    problem: str = ""


def handoff(old: ReferenceVmm, workdir: Path, timeout: float = CHILD_TIMEOUT) -> Handoff:
    """Pause ``old``, save it to ``workdir``, close it, and run the rest in a new process."""
    if not old.pause(30):
        return Handoff([], [], "", [], (), time.monotonic(), 0, "the vCPUs did not park")
    snap = save(old)
    snap.write(workdir)
    old.shutdown("migrated to a new process")
    old.close()
    cmd = [sys.executable, "-P", "-m", "sdei_state.selftest.linux_guest_handoff", str(workdir)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Handoff([], [], "", [], (), time.monotonic(), snap.size,
                       f"the new process did not finish within {timeout:.0f} s")
    out = workdir / "out"
    if res.returncode != 0 or not (out / "result.json").is_file():
        why = " | ".join((res.stderr or res.stdout).strip().splitlines()[-4:])
        return Handoff([], [], "", [], (), time.monotonic(), snap.size,
                       f"the new process failed (status {res.returncode}): {why}")
    r = json.loads((out / "result.json").read_text())
    return Handoff(
        (out / "console.txt").read_text().splitlines(),
        from_json(json.loads((out / "records.json").read_text())), r["ended_by"], r["errors"],
        tuple(tuple(p) for p in r["pending"]), r["resumed_at"], snap.size, r.get("problem", ""))


def child(workdir: Path, timeout: float = CHILD_TIMEOUT) -> int:
    """The new process: restore, run to power-off, write ``out/``."""
    snap = Snapshot.read(workdir)
    console = Console()
    holder: list[ReferenceVmm] = []
    bell = Doorbell(lambda v, ev: holder[0].inject(v, ev), lambda _v, _p: None)
    new = restore(snap, console, doorbell=bell)
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    if isinstance(new, str):
        (out / "result.json").write_text(json.dumps({
            "ended_by": "", "errors": [], "pending": [], "resumed_at": time.monotonic(),
            "problem": new}))
        (out / "console.txt").write_text("")
        (out / "records.json").write_text("[]")
        return 0
    holder.append(new)
    new.start()
    resumed = time.monotonic()
    if not new.done.wait(timeout):
        new.shutdown(f"the guest did not power off within {timeout:.0f} s")
    new.join()
    pending = [list(new.pending(i)) for i in range(new.cfg.vcpus)]
    (out / "console.txt").write_text("".join(ln + "\n" for ln in console.lines))
    (out / "records.json").write_text(json.dumps(to_json(new.records)))
    (out / "result.json").write_text(json.dumps({
        "ended_by": new.ended_by, "errors": new.errors, "pending": pending,
        "resumed_at": resumed}))
    new.close()
    return 0


if __name__ == "__main__":
    sys.exit(child(Path(sys.argv[1])))
