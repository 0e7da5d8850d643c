"""Cross-mode migration of the running Linux guest (stock-vmm suite, cases ``linux-*``).

On a kernel with in-kernel SDEI (``--kernel sdei`` in the lab) the reference VMM can serve
SDEI either way (``vmm.reference.sdei_mode``): by the userspace provider, the kernel's SDEI
gated off and the SMCCC filter installed, or by KVM itself. Two boots of the linux-guest
suite's nested Debian guest with its test module (``sdei_test.c`` with ``states=1``, so the
module also leaves an event unregister-pending and one pending while masked):

- ``linux-unmigrated``: booted with the provider serving, never migrated: the reference;
- ``linux-cross``: booted the same way and live-migrated (``linux_guest_migrate
  .cross_migrate``: one whole-VM blob, restored into a VMM of the other mode) at each of the
  4 points (``POINTS``) of two iterations, the direction alternating (``PLAN``), so that each
  point is crossed once provider -> kernel and once kernel -> provider, and each migration's
  destination runs the guest on to the next (the last finishes the run).

Then one case per (direction, point) checks that migration, and ``linux-results`` that the
module's round lines, its per-CPU counters, and the 47 SDEI registers of every vCPU at the
end equal the unmigrated run's. The kernel side sees no SDEI call or dispatch (it serves
them), so the comparison is on what the guest reports and what both sides' registers hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

from ..linux_guest import missing_reason
from ..regs import sdei as sdei_regs
from .core import Case, CheckFailed, Skip
from .linux_guest_run import KINDS
from .stock_qemu import ASSETS as QEMU_ASSETS

ASSETS: Final = QEMU_ASSETS / "linux-guest"
"""The nested guest for these cases: the Debian 6.12 kernel and the linux-guest suite's
module built for it, which the lab's ``--with-qemu`` layer puts here (the ``sdei`` kernel
the lab boots has no module support, so the linux-guest layer of that boot has no module)."""
VCPUS: Final = 2
ROUNDS: Final = 2
MEMO: Final = "stock-linux"
NEEDS: Final = frozenset({"in-kernel-sdei", "smccc-filter"})
POINTS: Final = {1: (1, "handler-running"), 2: (5, "nested"), 3: (8, "unregister-pending"),
                 4: (9, "masked-pending")}
"""Checkpoint kind -> (the module's round that rings it, the case name's part)."""
PLAN: Final = tuple((it << 16 | rnd << 8 | kind)
                    for it in (1, 2) for rnd, kind in ((1, 1), (5, 2), (8, 3), (9, 4), (0, 0)))
"""Where the cross run migrates, in the order the guest gets there: each iteration's 4
points and its end; with the mode flipping every time, iteration 1 crosses the points
provider -> kernel, kernel -> provider, ... and its end moves the parity, so iteration 2
crosses each point the other way. 10 migrations, 5 each way; the run ends on the provider."""
DIRECTIONS: Final = (("provider", "kernel"), ("kernel", "provider"))


def _missing(backend: Any) -> str | None:
    why = backend.missing(NEEDS)
    if why:
        return str(why)
    if not (ASSETS / "STATUS").is_file():
        return (f"no Linux guest in {ASSETS} (run in the lab with `sdei-state lab run --kernel "
                "sdei --with-qemu`)")
    why = missing_reason(ASSETS)
    if why is not None:
        return why
    try:
        import libfdt  # noqa: F401
    except ImportError:
        return "pylibfdt is not installed (pip install pylibfdt; Debian: python3-libfdt)"
    return None


def _plan() -> Callable[[int, int], bool]:
    """``PLAN``'s points, each once, in order (rung on the vCPU threads)."""
    todo = list(PLAN)
    lock = threading.Lock()

    def plan(_vcpu: int, point: int) -> bool:
        with lock:
            if todo and todo[0] == point:
                todo.pop(0)
                return True
            return False

    return plan


def _boot(name: str, migrate: bool) -> Callable[[Any], None]:
    def run(backend: Any) -> None:
        from .linux_guest_migrate import cross_migrate
        from .linux_guest_run import run_guest

        runs = backend.memo.setdefault(MEMO, {})
        why = _missing(backend)
        if why is not None:
            runs[name] = why
            raise Skip(why)
        t0 = time.monotonic()
        runs[name] = f"the {name} case failed before the guest ran"
        got = run_guest(backend.kvm, ASSETS, vcpus=VCPUS, rounds=ROUNDS, states=True,
                        plan=_plan() if migrate else None,
                        migrator=cross_migrate if migrate else None)
        runs[name] = got
        backend.memo.setdefault("notes", []).append(
            f"stock-vmm {name}: the nested Linux guest ran in {time.monotonic() - t0:.1f} s "
            f"({len(got.migrations)} cross-mode migrations)")
        if got.errors:
            raise CheckFailed("; ".join(got.errors))
        if got.parsed.done is None:
            tail = " | ".join(got.console[-8:])
            raise CheckFailed(f"the module did not finish ({got.ended_by}); console: {tail}")
        bad = [r.label for r in got.parsed.rounds if not r.passed]
        if bad:
            raise CheckFailed(f"rounds failed in the guest: {', '.join(bad)}")

    return run


def _run(backend: Any, name: str) -> Any:
    got = backend.memo.get(MEMO, {}).get(name)
    if got is None:
        raise Skip(f"the {name} case did not run (select it too: --case 'stock-vmm/{name}')")
    if isinstance(got, str):
        raise Skip(got)
    if got.parsed.done is None:
        raise Skip(f"the guest of {name} did not finish its rounds (see that case)")
    return got


def _crossing(sides: tuple[str, str], kind: int) -> Case:
    rnd, part = POINTS[kind]
    name = f"linux-{sides[0]}-to-{sides[1]}-{part}"

    def run(backend: Any) -> None:
        got = _run(backend, "linux-cross")
        ms = [m for m in got.migrations if m.sides == sides and m.kind == kind]
        if not ms:
            raise CheckFailed(f"no migration {' -> '.join(sides)} at {KINDS[kind]} happened "
                              f"(the run made {len(got.migrations)})")
        m = ms[0]
        if m.problem:
            raise CheckFailed(f"{m.label}: {m.problem}")
        if len(got.console) <= m.console_lines:
            raise CheckFailed(f"{m.label}: the guest did not carry on")
        if m.kernel_gate != int(sides[1] == "kernel"):
            raise CheckFailed(f"{m.label}: the kernel's STD_BMAP bit 1 on the {sides[1]} side "
                              f"after the restore is {m.kernel_gate}: the kernel side must "
                              "serve SDEI, the provider side must have it off")

    return Case(name, run, f"the Linux guest migrated {sides[0]} -> {sides[1]} with "
                f"{KINDS[kind]} (module round {rnd}), finishing on the other side")


def _results(backend: Any) -> None:
    ref, got = _run(backend, "linux-unmigrated"), _run(backend, "linux-cross")
    diffs = []
    rounds = [(r.label, r.passed, r.detail) for r in ref.parsed.rounds]
    moved = [(r.label, r.passed, r.detail) for r in got.parsed.rounds]
    if rounds != moved:
        first = next((f"{a} vs {b}" for a, b in zip(rounds, moved, strict=False) if a != b),
                     f"{len(rounds)} vs {len(moved)} round lines")
        diffs.append(f"round lines differ: {first}")
    if ref.parsed.cpus != got.parsed.cpus:
        diffs.append(f"counters differ: {ref.parsed.cpus} vs {got.parsed.cpus}")
    for v, (a, b) in enumerate(zip(ref.final_sdei, got.final_sdei, strict=True)):
        diffs += [f"vCPU {v}: {sdei_regs.SDEI_REG_BY_ID[r].name} = {b[r]:#x} after the "
                  f"migrations, {a[r]:#x} unmigrated" for r in a if a[r] != b.get(r)][:1]
    if len(ref.final_sdei) != VCPUS or len(got.final_sdei) != VCPUS:
        diffs.append("the SDEI registers at the end were not read on every vCPU")
    if diffs:
        raise CheckFailed("; ".join(diffs))
    notes: list[str] = backend.memo.setdefault("notes", [])
    for sides in DIRECTIONS:
        ms = [m for m in got.migrations if m.sides == sides and not m.problem]
        at = ", ".join(f"{sum(m.kind == k for m in ms)} {POINTS[k][1]}" for k in POINTS)
        notes.append(f"stock-vmm: {len(ms)} Linux-guest cross-mode migrations "
                     f"{sides[0]}->{sides[1]}: {at}, {sum(m.kind == 0 for m in ms)} "
                     "between iterations")
    notes.append(f"stock-vmm: the Linux guest's results equal an unmigrated run: "
                 f"{len(moved)} round lines, {len(got.parsed.cpus)} CPUs' counters, "
                 f"{len(sdei_regs.SDEI_REG_IDS)} SDEI registers per vCPU at the end")
    secs = sorted(m.seconds for m in got.migrations)
    if secs:
        notes.append(f"stock-vmm: one Linux-guest cross-mode migration took "
                     f"{secs[len(secs) // 2]:.2f} s median, {secs[-1]:.2f} s max, "
                     f"{got.migrations[0].saved_bytes} bytes")


def cases() -> list[Case]:
    out = [Case("linux-unmigrated", _boot("linux-unmigrated", False), "boot the Linux guest "
                "with the provider serving SDEI on a kernel that has it (gated off), run "
                "the module's rounds unmigrated: the reference"),
           Case("linux-cross", _boot("linux-cross", True), "the same run, live-migrated "
                "between the provider and in-kernel SDEI at every point, both ways")]
    out += [_crossing(s, k) for s in DIRECTIONS for k in POINTS]
    out.append(Case("linux-results", _results, "the guest's round lines, counters and the 47 "
                    "SDEI registers per vCPU at the end equal the unmigrated run's"))
    return out
