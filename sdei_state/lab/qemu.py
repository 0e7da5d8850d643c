"""Boot the arm64 KVM host under QEMU (TCG, EL2 emulated) and run one command in it.

The command's output reaches the host twice: live on the serial console (between two markers
``init.sh`` prints, streamed to our stdout as it comes) and exactly, in the run directory's
``out`` file, which is what ``RunResult.output`` holds.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .cache import atomic_write, write_text
from .config import LabConfig

BEGIN, END = "@@sdei-lab begin@@", "@@sdei-lab end@@"


@dataclass(frozen=True)
class RunResult:
    """What a lab run produced."""

    returncode: int  # the guest command's exit status
    output: str  # its stdout and stderr
    kernel: str  # uname -r of the guest
    kvm: str  # KVM's initialisation line from the guest's dmesg
    boot_seconds: float  # QEMU start -> command start (host wall clock)
    command_seconds: float  # command start -> end
    total_seconds: float  # QEMU start -> QEMU exit
    console: str  # everything the serial console printed


def qemu_argv(cfg: LabConfig, kdir: Path, initrd: Path, run_dir: Path, share: Path) -> list[str]:
    return [
        cfg.qemu, "-M", "virt,virtualization=on,gic-version=3", "-cpu", cfg.cpu,
        "-accel", "tcg,thread=multi", "-smp", str(cfg.smp), "-m", str(cfg.mem_mb),
        "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(kdir / "Image"), "-initrd", str(initrd),
        "-append", cfg.kernel_cmdline,
        "-virtfs", f"local,path={run_dir},mount_tag=lab,security_model=none",
        "-virtfs", f"local,path={share},mount_tag=host,security_model=none,readonly=on",
    ]


def combined_initrd(cfg: LabConfig, parts: list[Path]) -> Path:
    """userspace + kernel modules + library, concatenated (the kernel unpacks each archive in
    turn); cached by the parts' names and mtimes."""
    key = "-".join(f"{p.stem}{int(p.stat().st_mtime)}" for p in parts)
    bootdir = cfg.cache / "boot"
    bootdir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    out = bootdir / f"initrd-{cfg.kernel}-{digest}.cpio"
    stamp = out.with_suffix(".key")
    if out.is_file() and stamp.is_file() and stamp.read_text() == key:
        return out
    for old in bootdir.glob(f"initrd-{cfg.kernel}-*"):
        old.unlink()
    with atomic_write(out) as f:
        for p in parts:
            with p.open("rb") as src:
                shutil.copyfileobj(src, f, 1 << 22)
    write_text(stamp, key)
    return out


def boot(cfg: LabConfig, kdir: Path, initrd: Path, share: Path, command: str | None,
         stream: IO[str] | None = sys.stdout, console_log: IO[str] | None = None) -> RunResult:
    """Run ``command`` (a shell command line) in the guest, or an interactive shell when it is
    None. Raises TimeoutError after ``cfg.timeout`` seconds, FileNotFoundError without QEMU."""
    if shutil.which(cfg.qemu) is None:
        raise FileNotFoundError(2, f"{cfg.qemu} not found (run `sdei-state lab setup` as root)")
    runs = cfg.cache / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    try:
        if command is not None:
            (run_dir / "cmd").write_text(command + "\n")
        argv = qemu_argv(cfg, kdir, initrd, run_dir, share)
        if command is None:
            t0 = time.monotonic()
            rc = subprocess.run(argv).returncode
            dt = time.monotonic() - t0
            return RunResult(rc, "", "", "", 0.0, 0.0, dt, "")
        return _batch(cfg, argv, run_dir, stream, console_log)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _batch(cfg: LabConfig, argv: list[str], run_dir: Path, stream: IO[str] | None,
           console_log: IO[str] | None) -> RunResult:
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    console: list[str] = []
    marks: dict[str, float] = {}

    def reader() -> None:
        assert proc.stdout is not None
        inside = False
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n").replace("\r", "")
            console.append(line)
            if console_log is not None:
                console_log.write(line + "\n")
                console_log.flush()
            if line == BEGIN:
                inside, marks["begin"] = True, time.monotonic()
            elif line == END:
                inside, marks["end"] = False, time.monotonic()
            elif inside and stream is not None:
                stream.write(line + "\n")
                stream.flush()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    try:
        proc.wait(timeout=cfg.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        th.join(5)
        tail = "\n".join(console[-15:])
        raise TimeoutError(f"the guest did not finish within {cfg.timeout:.0f} s "
                           f"(--timeout); last console lines:\n{tail}") from None
    th.join(10)
    t_end = time.monotonic()
    rc_file = run_dir / "rc"
    text = "\n".join(console)
    if proc.returncode != 0 and not rc_file.exists():
        raise RuntimeError(f"QEMU exited with status {proc.returncode} before the command "
                           f"ran; console:\n" + "\n".join(console[-20:]))
    if (run_dir / "nokvm").exists():
        kvm_lines = [ln for ln in console if ln.startswith("init:   ")]
        raise RuntimeError("KVM did not come up in the guest (no /dev/kvm), so the command "
                           "was not run; the guest's kvm dmesg lines:\n"
                           + ("\n".join(kvm_lines) or "(none)"))
    if not rc_file.exists():
        raise RuntimeError("the guest powered off without recording the command's exit "
                           "status; console:\n" + "\n".join(console[-20:]))
    kvm = _read(run_dir / "kvm")
    kernel = next((ln.split("; ", 1)[1].split()[0] for ln in console
                   if ln.startswith("init: userspace up at") and "; " in ln), "")
    begin = marks.get("begin", t0)
    return RunResult(
        returncode=int(_read(run_dir / "rc") or 125),
        output=_read(run_dir / "out"),
        kernel=kernel,
        kvm=kvm,
        boot_seconds=begin - t0,
        command_seconds=marks.get("end", t_end) - begin,
        total_seconds=t_end - t0,
        console=text,
    )


def _read(p: Path) -> str:
    try:
        return p.read_text(errors="replace").strip() if p.name != "out" else \
            p.read_text(errors="replace")
    except FileNotFoundError:
        return ""
