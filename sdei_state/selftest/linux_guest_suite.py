"""The ``linux-guest`` suite: Linux's own SDEI driver as the client, on stock KVM.

One case (``boot``) boots the lab's Debian kernel in the reference VMM
(``sdei_state.vmm.reference``) with the test module in its initramfs
(``sdei_state.linux_guest``), optionally live-migrating it at checkpoints the module rings;
the other cases check what that run left (kept in the backend's memo):

- ``sdei-detected``: Linux's probe line names SDEI v1.1 and the project's vendor id;
- ``<round>-<n>``: each round of the module, as the module judged it on the console;
- ``model``: every SDEI call and dispatch the VMM recorded equals what the reference
  model gives for the same sequence (``record.replay``);
- ``counters``: per vCPU, the module's counters equal the host's record (signals aimed at
  the vCPU = handler entries + still pending; critical entries = ASYNC_PF dispatches);
- ``unload``: the module disabled and unregistered both events;
- ``migration-<n>``: each live migration, and the guest carried on after it.

It runs only when named (``--suite linux-guest``): a boot takes about a minute in the lab.
Pieces that are missing (the assets the lab builds, pylibfdt, arm64 KVM with the SMCCC
filter) make every case skip with the reason.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ..events import ASYNC_PF, SW_SIGNALED
from ..linux_guest import assets_dir, missing_reason
from ..spec import KVM_VENDOR
from .core import Case, CheckFailed, Skip, Suite, expect_eq

NAME: Final = "linux-guest"
VCPUS: Final = 2
ROUNDS: Final = 3
PER_ITERATION: Final = ("self_irq_on", "self_irq_masked", "cross_cpu", "bad_mpidr",
                        "critical")
ONCE: Final = ("hotplug", "suspend")
# Where the module's checkpoints let the VMM migrate: (round, kind) per iteration, kind 1 =
# inside the normal handler, 2 = inside the critical handler that preempted it, 0 = between
# iterations (sdei_test.c: point = iteration << 16 | round << 8 | kind).
MIGRATION_POINTS: Final = frozenset(
    {i << 16 | r << 8 | k for i in (1, 2) for r, k in ((1, 1), (3, 1), (5, 2), (0, 0))}
    | {1 << 16 | 2 << 8 | 1, 3 << 16 | 1 << 8 | 1, 3 << 16 | 3 << 8 | 1})
HANDOFF_POINT: Final = 3 << 16 | 5 << 8 | 1
"""Where the run moves into a VM in a new process: inside the normal handler of the last
critical round, before it rings for ASYNC_PF (the rest of the run happens there)."""
MIGRATIONS: Final = len(MIGRATION_POINTS) + 1
MEMO: Final = "linux-guest"


def _run(backend: Any) -> Any:
    """The run of this selftest (made by ``boot``); Skip/CheckFailed as ``boot`` ended."""
    got = backend.memo.get(MEMO)
    if got is None:
        raise Skip("the boot case did not run (select it too: --case 'linux-guest/boot')")
    if isinstance(got, str):
        raise Skip(got)
    if got.parsed.done is None:
        raise Skip("the guest did not finish its rounds (see the boot case)")
    return got


def _boot(backend: Any) -> None:
    from .linux_guest_run import run_guest

    d = assets_dir()
    why = missing_reason(d)
    if why is None:
        try:
            import libfdt  # noqa: F401
        except ImportError:
            why = "pylibfdt is not installed (pip install pylibfdt; Debian: python3-libfdt)"
    if why is not None:
        backend.memo[MEMO] = why
        raise Skip(why)
    from .linux_guest_migrate import migrate

    t0 = time.monotonic()
    backend.memo[MEMO] = "the boot case failed before the guest ran"
    with tempfile.TemporaryDirectory(prefix="sdei-linux-guest-") as work:
        run = run_guest(backend.kvm, d, vcpus=VCPUS, rounds=ROUNDS, plan=_plan(),
                        migrator=migrate, handoff_point=HANDOFF_POINT, workdir=Path(work),
                        kpti=_host_is_cortex_a72())
    backend.memo[MEMO] = run
    notes = backend.memo.setdefault("notes", [])
    if run.boot_seconds is None:
        notes.append("linux-guest: the nested Linux never reached userspace")
    else:
        notes.append(f"linux-guest: nested Linux reached userspace {run.boot_seconds:.1f} s "
                     f"after the VMM started ({run.guest_boot_seconds or 0:.1f} s guest "
                     f"uptime); the whole run took {time.monotonic() - t0:.1f} s")
    notes.append("linux-guest: the guest kernel " + ("uses" if run.parsed.kpti else
                 "does not use") + " page-table isolation (SDEI entry through the KPTI "
                 "trampoline)")
    notes.append(f"linux-guest: {len(run.migrations)} live migrations, "
                 f"{sum(m.in_handler for m in run.migrations)} with a handler running, "
                 f"{sum(m.new_process for m in run.migrations)} into a new process")
    for n, m in enumerate(run.migrations, 1):
        notes.append(f"linux-guest: migration-{n:02d} at {m.label}"
                     + (" into a new process" if m.new_process else "")
                     + f": {m.seconds:.2f} s, {m.saved_bytes} bytes"
                     + (f"; {m.problem}" if m.problem else ""))
    if run.migrations:
        secs = sorted(m.seconds for m in run.migrations)
        notes.append(f"linux-guest: one live migration (pause request to resumed run) took "
                     f"{secs[len(secs) // 2]:.2f} s median, {secs[-1]:.2f} s max; it saved "
                     f"{run.migrations[0].saved_bytes} bytes (one whole-VM blob: registers "
                     "with the SDEI block, vGIC, the non-zero pages of RAM)")
    if run.errors:
        raise CheckFailed("; ".join(run.errors))
    if run.parsed.done is None:
        tail = " | ".join(run.console[-8:])
        raise CheckFailed(f"the module did not finish ({run.ended_by}); console: {tail}")


MIDR: Final = Path("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1")
CORTEX_A72: Final = (0x41, 0xD08)  # MIDR_EL1 implementer, part number


def _host_is_cortex_a72() -> bool:
    """The host CPU (the lab's ``--cpu``) is a Cortex-A72. Linux 6.12 would not turn on
    page-table isolation by itself there (the A72 is on its Meltdown-safe list and the guest
    has no KASLR seed), so the suite forces it (``kpti=1``): SDEI then enters through the
    KPTI trampoline, which is what a run on that CPU is for."""
    try:
        midr = int(MIDR.read_text(), 16)
    except (OSError, ValueError):
        return False
    return (midr >> 24 & 0xFF, midr >> 4 & 0xFFF) == CORTEX_A72


def _plan() -> Callable[[int, int], bool]:
    """The checkpoints to migrate at (``MIGRATION_POINTS``), each once, in the order the
    guest reaches them."""
    taken: set[int] = set()
    lock = threading.Lock()

    def plan(_vcpu: int, point: int) -> bool:
        with lock:
            if point in MIGRATION_POINTS and point not in taken:
                taken.add(point)
                return True
            return False

    return plan


def _migration(n: int) -> Case:
    def run(backend: Any) -> None:
        r = _run(backend)
        if len(r.migrations) < n:
            raise CheckFailed(f"only {len(r.migrations)} live migrations happened, not {n}")
        m = r.migrations[n - 1]
        if m.problem:
            raise CheckFailed(f"migration {n} ({m.label}): {m.problem}")
        if len(r.console) <= m.console_lines or r.parsed.done is None:
            raise CheckFailed(f"migration {n} ({m.label}): the guest did not carry on")

    return Case(f"migration-{n:02d}", run, f"live migration {n} of the running guest; it "
                "carries on" + (" (into a new process)" if n == MIGRATIONS else ""))


def _detected(backend: Any) -> None:
    run = _run(backend)
    if run.parsed.detected is None:
        raise CheckFailed("no 'sdei: SDEIv.. detected in firmware' line in the guest's dmesg")
    expect_eq("SDEI version and vendor Linux detected", run.parsed.detected, (1, 1, KVM_VENDOR))


def _round(name: str, iteration: int) -> Case:
    label = f"{name}-{iteration}" if iteration else name

    def run(backend: Any) -> None:
        got = [r for r in _run(backend).parsed.rounds
               if r.name == name and r.iteration == iteration]
        if not got:
            raise CheckFailed(f"the module printed no result for round {label}")
        r = got[0]
        if r.detail.get("skipped"):
            raise Skip(f"round {label}: {r.detail['skipped']}")
        if not r.passed:
            raise CheckFailed(f"round {label} failed in the guest: {r.detail}")

    return Case(label, run, f"module round {name}" + (f", iteration {iteration}"
                                                       if iteration else ""))


def _model(backend: Any) -> None:
    from ..scenario.recorded import replay

    run = _run(backend)
    compared, bad = replay(run.nr_vcpus, run.records)
    if not compared:
        raise CheckFailed("the VMM recorded no SDEI call")
    if bad:
        raise CheckFailed(f"{len(bad)} of {compared} recorded steps differ from the model; "
                          f"first: {bad[0]}")
    backend.memo.setdefault("notes", []).append(
        f"linux-guest: {compared} recorded SDEI calls and dispatches equal the model's")


def _counters(backend: Any) -> None:
    from ..vmm.reference.record import tally

    run = _run(backend)
    t = tally(run.nr_vcpus, run.records, run.vcpu_of_mpidr)
    guest = {c.cpu: c for c in run.parsed.cpus}
    for v in range(run.nr_vcpus):
        pending = int(SW_SIGNALED.number in run.final_pending[v])
        entered = t.entered[v][SW_SIGNALED.number]
        expect_eq(f"vCPU {v}: event 0 made pending = handler entries + still pending",
                  t.signalled[v], entered + pending)
        c = guest.get(v)
        if c is None:
            raise CheckFailed(f"the module printed no counters for CPU {v}")
        expect_eq(f"CPU {v}: signals the guest counted vs the host's record", c.signalled,
                  t.signalled[v])
        expect_eq(f"CPU {v}: handler entries the guest counted vs dispatches recorded",
                  c.entered, entered)
        expect_eq(f"CPU {v}: critical entries vs ASYNC_PF dispatches recorded", c.critical,
                  t.entered[v][ASYNC_PF.number])


def _unload(backend: Any) -> None:
    run = _run(backend)
    if run.parsed.unload is None:
        raise CheckFailed("the module printed no unload line")
    expect_eq("unload: disable(0), disable(ASYNC_PF), unregister(0), unregister(ASYNC_PF)",
              run.parsed.unload, (0, 0, 0, 0))


def suite() -> Suite:
    cases = [Case("boot", _boot, "boot the nested Linux guest in the reference VMM and run "
                  "the SDEI test module"),
             Case("sdei-detected", _detected, "Linux detects SDEI v1.1 from the project")]
    cases += [_round(n, i) for i in range(1, ROUNDS + 1) for n in PER_ITERATION]
    cases += [_round(n, 0) for n in ONCE]
    cases += [Case("model", _model, "every recorded call and dispatch equals the model's"),
              Case("counters", _counters, "guest counters equal the host's record"),
              Case("unload", _unload, "the module disables and unregisters on unload")]
    cases += [_migration(n) for n in range(1, MIGRATIONS + 1)]
    return Suite(NAME, "Linux's own SDEI driver as the client: the lab's kernel booted in the "
                 "reference VMM with the test module", tuple(cases), frozenset({"kvm", "sdei"}))
