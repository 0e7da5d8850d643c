"""Debian's unmodified QEMU migrates SDEI (stock-vmm suite).

Inside the lab (``sdei-state lab run --kernel sdei --with-qemu``) this runs
``qemu-system-aarch64 -accel kvm -M virt -cpu host`` on the kernel with in-kernel SDEI,
booting the lab's Debian 6.12 kernel with a tiny initramfs (``stock_vmm_init.sh``). QEMU's
device tree has no SDEI node, so it is dumped (``-machine dumpdtb=``), given
``/firmware/sdei`` (``compatible = "arm,sdei-1.0"``, ``method = "hvc"``) with Debian's
``fdtput``, and passed back with ``-dtb``. QEMU is driven through QMP (``qmp.Qmp``).

The guest is then migrated five times through QEMU's own stream (``migrate`` to
``exec:cat > FILE``; a new QEMU with ``-incoming exec:cat FILE``): the first restored QEMU is
migrated again while still paused, so the second stream holds what the kernel reports after
QEMU wrote the first one's values, and each later one after the guest ran on. Every stream
is parsed (``qemu_stream``) for each vCPU's register list: all 47 SDEI registers must be
there, the read-back equal to what was written, and ``preflight`` must accept the set for a
fresh vCPU of this kernel. The guest's ticks must go on after every ``-incoming``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..errors import KvmError
from ..kvm import Kvm, VcpuFeature
from ..migration import Blob, VcpuRegisters, preflight
from ..regs import sdei as sdei_regs
from .core import Case, CheckFailed, Skip
from .qemu_stream import CpuRegs, cpu_sections
from .qmp import Qmp

ASSETS: Final = Path(os.environ.get("SDEI_STATE_STOCK_VMM", "/usr/share/sdei-state/stock-vmm"))
QEMU: Final = "qemu-system-aarch64"
SMP: Final = 2
MEM_MB: Final = 192
MIGRATIONS: Final = 5
BOOT_TIMEOUT: Final = 240.0
STEP_TIMEOUT: Final = 120.0
TICK = re.compile(r"stock-guest: tick (\d+)")
DETECTED = re.compile(r"sdei: SDEIv(\d+)\.(\d+) \(0x[0-9a-f]+\) detected in firmware")
RUNNING_BIT: Final = 1 << 2
HOLD_MAGIC: Final = 0x5344 << 48


def missing() -> str | None:
    """Why the QEMU cases cannot run here (None when they can)."""
    if shutil.which(QEMU) is None:
        return (f"no {QEMU} here (run in the lab with `sdei-state lab run --kernel sdei "
                "--with-qemu -- sdei-state selftest --suite stock-vmm`)")
    if shutil.which("fdtput") is None:
        return "no fdtput (Debian's device-tree-compiler) here"
    status = ASSETS / "STATUS"
    if not status.is_file():
        return f"no QEMU guest assets in {ASSETS} (the lab's --with-qemu layer puts them there)"
    text = status.read_text().strip()
    if not text.startswith("ok"):
        return text.removeprefix("skip ").strip()
    return None


@dataclass
class Stream:
    name: str
    cpus: list[CpuRegs]
    ticks_before: int
    running: int
    """vCPUs with a handler running (an SDEI_EVENT_STATE with RUNNING) in the stream."""
    held: list[tuple[int, list[str]]] = field(default_factory=list)
    """(round, problems) of each running normal handler of ``sdei_hold``: the round named
    by its interrupted x4, and how SDEI_CONTEXT(0, 4..17) differs from that round's
    pattern (empty: all 14 as the guest loaded them)."""


@dataclass
class QemuRun:
    """What one QEMU session showed."""

    dmesg: list[str] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    ticks_after: list[int] = field(default_factory=list)
    """The guest's last tick seen on each restored QEMU after ``cont``."""
    completions: list[str] = field(default_factory=list)
    """For each held round of a stream: the guest's line about it after ``-incoming``."""
    preflight: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Qemu:
    """One QEMU process with its QMP socket and console file."""

    def __init__(self, work: Path, name: str, base: list[str], extra: list[str]) -> None:
        self.console = work / f"{name}.console"
        sock = work / f"{name}.qmp"
        self.proc = subprocess.Popen(
            [*base, "-serial", f"file:{self.console}", "-qmp", f"unix:{sock},server=on,wait=off",
             *extra], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            self.qmp = Qmp(sock)
        except Exception:
            self.kill()
            raise

    def text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def last_tick(self) -> int:
        ticks = TICK.findall(self.text())
        return int(ticks[-1]) if ticks else 0

    def wait_tick(self, above: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CheckFailed(f"QEMU exited with status {self.proc.returncode}: "
                                  f"{self._output()}; console tail: {self.text()[-300:]!r}")
            t = self.last_tick()
            if t > above:
                return t
            time.sleep(0.5)
        raise CheckFailed(f"no guest tick above {above} within {timeout:.0f} s; console "
                          f"tail: {self.text()[-300:]!r}")

    def wait_line(self, what: re.Pattern[str], timeout: float) -> str:
        """The first console line ``what`` matches (CheckFailed after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ln in self.text().splitlines():
                if what.search(ln):
                    return ln.strip()
            time.sleep(0.5)
        raise CheckFailed(f"no console line matching {what.pattern!r} within {timeout:.0f} "
                          f"s; console tail: {self.text()[-300:]!r}")

    def wait_status(self, *want: str, timeout: float = STEP_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = str(self.qmp.command("query-status")["status"])
            if status in want:
                return status
            time.sleep(0.3)
        raise CheckFailed(f"QEMU status stayed out of {want} for {timeout:.0f} s")

    def migrate_to(self, path: Path) -> None:
        self.qmp.command("migrate", uri=f"exec:cat > {path}")
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            info = self.qmp.command("query-migrate")
            if info.get("status") == "completed":
                return
            if info.get("status") in ("failed", "cancelled"):
                raise CheckFailed(f"migrate to {path.name}: {info.get('error-desc', info)}")
            time.sleep(0.3)
        raise CheckFailed(f"migrate to {path.name} did not complete in {STEP_TIMEOUT:.0f} s")

    def _output(self) -> str:
        if self.proc.stdout is None:
            return ""
        return self.proc.stdout.read(2000).decode(errors="replace").strip()

    def quit(self) -> None:
        try:
            self.qmp.command("quit")
            self.qmp.close()
            self.proc.wait(30)
        except Exception:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _base(work: Path) -> list[str]:
    """QEMU's argv with the SDEI device tree (dumped, edited, passed back)."""
    machine = "virt,gic-version=3"
    common = [QEMU, "-accel", "kvm", "-cpu", "host", "-smp", str(SMP), "-m", str(MEM_MB),
              "-nodefaults", "-display", "none", "-no-reboot",
              "-kernel", str(ASSETS / "Image"), "-initrd", str(ASSETS / "initramfs.cpio"),
              "-append", "console=ttyAMA0 rdinit=/init panic=-1 quiet loglevel=6"]
    dtb = work / "virt-sdei.dtb"
    _run([*common, "-M", f"{machine},dumpdtb={dtb}"])
    _run(["fdtput", "-p", "-t", "s", str(dtb), "/firmware/sdei", "compatible", "arm,sdei-1.0"])
    _run(["fdtput", "-t", "s", str(dtb), "/firmware/sdei", "method", "hvc"])
    return [*common, "-M", machine, "-dtb", str(dtb)]


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    if r.returncode != 0:
        raise CheckFailed(f"{' '.join(argv[:3])} ... exited with {r.returncode}: "
                          f"{(r.stderr or r.stdout).strip()[:300]}")


def pattern(round_: int, r: int) -> int:
    """What ``sdei_hold`` loads into x``r`` in round ``round_`` (its PATTERN)."""
    return HOLD_MAGIC | round_ << 8 | r


def held_round(regs: dict[int, int]) -> tuple[int, list[str]] | None:
    """(round, problems) when this vCPU is inside an ``sdei_hold`` handler, else None."""
    if not regs.get(sdei_regs.event_state_id(0), 0) & RUNNING_BIT:
        return None
    x4 = regs[sdei_regs.SDEI_REG_BY_NAME["SDEI_CONTEXT(0, 4)"].id]
    if x4 & ~0xFFFFFF00 != pattern(0, 4):
        return None  # some other handler of event 0 (Linux's own users)
    n = x4 >> 8 & 0xFFFF
    bad = []
    for r in range(4, 18):
        v = regs[sdei_regs.SDEI_REG_BY_NAME[f"SDEI_CONTEXT(0, {r})"].id]
        if v != pattern(n, r):
            bad.append(f"SDEI_CONTEXT(0, {r}) = {v:#x}, the guest loaded {pattern(n, r):#x}")
    return n, bad


def _stream(path: Path, ticks: int) -> Stream:
    cpus = cpu_sections(path.read_bytes())
    running = sum(1 for c in cpus for i in range(2)
                  if c.as_dict().get(sdei_regs.event_state_id(i), 0) & RUNNING_BIT)
    held = [h for c in cpus if (h := held_round(c.as_dict())) is not None]
    return Stream(path.name, cpus, ticks, running, held)


_PSCI, _PMU, _SVE = VcpuFeature.PSCI_0_2, VcpuFeature.PMU_V3, VcpuFeature.SVE
_PAUTH = (VcpuFeature.PTRAUTH_ADDRESS, VcpuFeature.PTRAUTH_GENERIC)
FEATURE_SETS: Final = ((_PSCI, _PMU, _SVE, *_PAUTH), (_PSCI, _PMU, *_PAUTH), (_PSCI, _PMU),
                       (_PSCI,))
"""What QEMU's ``-cpu host`` may have turned on, most first (it enables SVE, PMU and pointer
authentication when the host has them); the first set this kernel accepts is the
destination."""


def _preflight_note(kvm: Kvm, s: Stream) -> str:
    """preflight of the stream's register set against fresh vCPUs of this kernel with the
    features QEMU's ``-cpu host`` turns on here."""
    blob = Blob.from_vcpus([VcpuRegisters(c.ids, c.values) for c in s.cpus])
    why = "no vCPU feature set was accepted by KVM_ARM_VCPU_INIT"
    for features in FEATURE_SETS:
        with kvm.create_vm() as vm:
            vcpus = [vm.create_vcpu(i) for i in range(len(s.cpus))]
            try:
                for v in vcpus:
                    v.init(features)
                    if _SVE in features:
                        v.finalize(_SVE)
            except KvmError as e:
                why = f"KVM_ARM_VCPU_INIT with {[f.name for f in features]}: {e}"
                continue
            rep = preflight(blob, vcpus)
            names = "+".join(f.name for f in features)
            if rep.ok:
                return (f"{s.name}: preflight ok for a fresh {names} vCPU "
                        f"({len(rep.added)} registers not in the stream keep their values)")
            return f"{s.name}: preflight refused for a fresh {names} vCPU: {rep.problems[0]}"
    return f"{s.name}: {why}"


def session(kvm: Kvm) -> QemuRun:
    """Boot, then ``MIGRATIONS`` migrations, each into a new QEMU that goes on; the cases
    check what it recorded."""
    out = QemuRun()
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="stock-vmm-"))
    live: list[_Qemu] = []
    try:
        base = _base(work)
        q = _Qemu(work, "q0", base, [])
        live.append(q)
        ticks = q.wait_tick(2, BOOT_TIMEOUT)  # sdei_hold's rounds have begun
        out.dmesg = [ln for ln in q.text().splitlines() if "stock-guest-dmesg" in ln]
        n = 0
        while n < MIGRATIONS:
            first = len(out.streams)  # the streams of this round, continued by one QEMU
            q.qmp.command("stop")
            n += 1
            path = work / f"m{n}.stream"
            q.migrate_to(path)
            out.streams.append(_stream(path, ticks))
            q.quit()
            live.remove(q)
            q = _Qemu(work, f"q{n}", base, ["-incoming", f"exec:cat {path}"])
            live.append(q)
            q.wait_status("paused")
            path.unlink()  # guest RAM: do not keep it in the lab's memory
            if n == 1:  # still paused: the next stream is what the kernel reports back
                n += 1
                path = work / f"m{n}.stream"
                q.migrate_to(path)
                out.streams.append(_stream(path, ticks))
                path.unlink()
            q.qmp.command("cont")
            ticks = q.wait_tick(ticks, STEP_TIMEOUT)
            out.ticks_after.append(ticks)
            for n_held in sorted({h[0] for s in out.streams[first:] for h in s.held}):
                out.completions.append(q.wait_line(
                    re.compile(rf"sdei-hold: round {n_held} (intact|CORRUPT.*)"),
                    STEP_TIMEOUT))
        q.quit()
        live.remove(q)
        for s in out.streams:
            out.preflight.append(_preflight_note(kvm, s))
    finally:
        for q in live:
            q.kill()
        shutil.rmtree(work, ignore_errors=True)
    out.seconds = time.monotonic() - t0
    return out


def _session(backend: Any) -> QemuRun:
    why = backend.missing(frozenset({"in-kernel-sdei"})) or missing()
    if why:
        raise Skip(why)
    memo: dict[str, Any] = backend.memo
    got = memo.get("stock-vmm:qemu")
    if isinstance(got, BaseException):
        raise got
    if isinstance(got, QemuRun):
        return got
    try:
        got = session(backend.kvm)
    except Exception as e:
        memo["stock-vmm:qemu"] = e
        raise
    memo["stock-vmm:qemu"] = got
    return got


def _boot(backend: Any) -> None:
    run = _session(backend)
    versions = [m.groups() for ln in run.dmesg if (m := DETECTED.search(ln))]
    if versions != [("1", "1")]:
        raise CheckFailed(f"the guest's boot log does not show SDEI v1.1 detected: {run.dmesg}")
    notes: list[str] = backend.memo.setdefault("notes", [])
    notes.extend(f"stock-vmm guest: {ln.split(': ', 1)[1]}" for ln in run.dmesg)


def _carried(backend: Any) -> None:
    run = _session(backend)
    if len(run.streams) < MIGRATIONS:
        raise CheckFailed(f"{len(run.streams)} migrations, {MIGRATIONS} wanted")
    for s in run.streams:
        if len(s.cpus) != SMP:
            raise CheckFailed(f"{s.name}: {len(s.cpus)} vCPU register lists, {SMP} wanted")
        for c in s.cpus:
            lacking = [r for r in sdei_regs.SDEI_REG_IDS if r not in c.as_dict()]
            if lacking:
                raise CheckFailed(f"{s.name} vCPU {c.vcpu}: {len(lacking)} SDEI registers "
                                  f"missing, first {sdei_regs.SDEI_REG_BY_ID[lacking[0]].name}")
    notes: list[str] = backend.memo.setdefault("notes", [])
    handler = sum(1 for s in run.streams if s.running)
    notes.extend(f"stock-vmm {ln}" for ln in run.completions)
    notes.append(f"stock-vmm: {len(run.streams)} QEMU migrations, {handler} with a handler "
                 f"running; {len(run.streams[0].cpus[0].ids)} registers per vCPU in QEMU's "
                 f"cpreg list, 47 of them SDEI; {run.seconds:.0f} s")


def _read_back(backend: Any) -> None:
    run = _session(backend)
    a, b = run.streams[0], run.streams[1]
    for ca, cb in zip(a.cpus, b.cpus, strict=True):
        da, db = ca.as_dict(), cb.as_dict()
        for r in sdei_regs.SDEI_REG_IDS:
            if da[r] != db[r]:
                raise CheckFailed(f"vCPU {ca.vcpu}: {sdei_regs.SDEI_REG_BY_ID[r].name} was "
                                  f"{da[r]:#x} in {a.name}, the kernel reports {db[r]:#x} "
                                  "after QEMU restored it")
    first = a.cpus[0].as_dict()
    shown = (sdei_regs.VCPU_STATE_ID, sdei_regs.event_state_id(0), sdei_regs.event_state_id(1))
    notes: list[str] = backend.memo.setdefault("notes", [])
    notes.append("stock-vmm: " + "; ".join(
        f"vCPU {c.vcpu} " + ", ".join(f"{sdei_regs.SDEI_REG_BY_ID[r].name} = "
                                      f"{c.as_dict()[r]:#x}" for r in shown) for c in b.cpus)
                 + f" in {a.name} and {b.name}")
    if first[sdei_regs.VCPU_STATE_ID] != 0:
        raise CheckFailed("vCPU 0's SDEI_VCPU_STATE is masked after Linux booted with SDEI "
                          f"({first[sdei_regs.VCPU_STATE_ID]:#x}): SDEI was not in use")


def _guest_went_on(backend: Any) -> None:
    run = _session(backend)
    before = [s.ticks_before for s in run.streams if s.name != "m2.stream"]
    if len(run.ticks_after) != len(before) or any(
            t <= b for t, b in zip(run.ticks_after, before, strict=True)):
        raise CheckFailed(f"guest ticks before each migration {before}, after "
                          f"{run.ticks_after}: the guest did not carry on")


def _preflight(backend: Any) -> None:
    run = _session(backend)
    notes: list[str] = backend.memo.setdefault("notes", [])
    notes.extend(f"stock-vmm {p}" for p in run.preflight)
    bad = [p for p in run.preflight if "preflight ok" not in p]
    if bad:
        raise CheckFailed(bad[0])


def _handler_running(backend: Any) -> None:
    run = _session(backend)
    held = [s for s in run.streams if s.held]
    if len(held) < 2:
        raise CheckFailed(f"{len(held)} of {len(run.streams)} QEMU migrations caught an "
                          "sdei_hold handler running, 2 wanted (is sdei_hold.ko in the "
                          f"guest? {(ASSETS / 'STATUS').read_text().strip()})")
    for s in held:
        for n, bad in s.held:
            if bad:
                raise CheckFailed(f"{s.name}: round {n}'s interrupted context: {bad[0]}")
    corrupt = [c for c in run.completions if "intact" not in c]
    if corrupt or not run.completions:
        raise CheckFailed(f"after -incoming: {corrupt[0] if corrupt else 'no round completed'}")


def cases() -> list[Case]:
    return [
        Case("qemu-boot-sdei", _boot, "Debian's QEMU (-accel kvm -M virt -cpu host) boots "
             "Linux with /firmware/sdei added to its own device tree; Linux detects SDEI v1.1"),
        Case("qemu-stream-sdei-registers", _carried, f"{MIGRATIONS} migrations through QEMU's "
             "stream; every stream's cpreg list holds the 47 SDEI registers of each vCPU"),
        Case("qemu-stream-read-back", _read_back, "a restored, still paused QEMU saves the "
             "SDEI values it was given: the kernel took and reports them unchanged"),
        Case("qemu-guest-carries-on", _guest_went_on, "after each -incoming the guest goes "
             "on ticking"),
        Case("qemu-stream-preflight", _preflight, "preflight accepts each stream's register "
             "set for a fresh vCPU of this kernel"),
        Case("qemu-handler-running", _handler_running, "at least 2 migrations caught an SDEI "
             "handler running; its interrupted x4..x17 in the stream's SDEI_CONTEXT are what "
             "the guest loaded, and after -incoming the handler completes and the guest finds "
             "them intact"),
    ]
