"""``python -m sdei_state.vmm.reference``: boot a Linux Image in the reference VMM.

    python -m sdei_state.vmm.reference --kernel Image --initrd rootfs.cpio --vcpus 2 \\
        --console console.log [--mem 256] [--timeout 120] [--append "..."]

The guest's console goes to ``--console`` (stdout by default); the run ends when the guest
powers off (exit status 0), after ``--timeout`` seconds (124) or when a vCPU fails (1).
The test module's doorbell is wired up: a guest that rings INJECT gets the event injected.
Afterwards the SDEI record is replayed through the reference model and the count printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .console import Console
from .doorbell import Doorbell
from .layout import DOORBELL_BASE
from .record import replay
from .vmm import DEFAULT_BOOTARGS, ReferenceVmm, VmmConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sdei_state.vmm.reference",
                                description="Boot a Linux Image with SDEI on stock KVM.")
    p.add_argument("--kernel", type=Path, required=True, help="arm64 Image (raw or gzip)")
    p.add_argument("--initrd", type=Path, help="initramfs (cpio)")
    p.add_argument("--vcpus", type=int, default=1)
    p.add_argument("--mem", type=int, default=256, metavar="MIB")
    p.add_argument("--console", type=Path, help="file for the guest console (default stdout)")
    p.add_argument("--append", default="", help="extra kernel command line words")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        cfg = VmmConfig(a.vcpus, a.mem)
        kernel = a.kernel.read_bytes()
        initrd = a.initrd.read_bytes() if a.initrd else b""
        out = a.console.open("wb") if a.console else None
    except (ValueError, OSError) as e:
        print(f"vmm: {e}", file=sys.stderr)
        return 2
    dest = out if out is not None else sys.stdout.buffer

    def sink(data: bytes) -> None:
        dest.write(data)
        dest.flush()

    holder: list[ReferenceVmm] = []
    bell = Doorbell(lambda v, ev: holder[0].provider.inject(v, ev), lambda _v, _p: None)
    try:
        vmm = ReferenceVmm(cfg, Console(sink), doorbell=bell)
        holder.append(vmm)
        bootargs = f"{DEFAULT_BOOTARGS} sdei_doorbell={DOORBELL_BASE:#x} {a.append}".strip()
        vmm.boot(kernel, initrd, bootargs)
        t0 = time.monotonic()
        vmm.start()
        finished = vmm.done.wait(a.timeout)
        vmm.close()
    except (ValueError, OSError, RuntimeError) as e:
        print(f"vmm: {e}", file=sys.stderr)
        return 2
    finally:
        if out is not None:
            out.close()
    compared, bad = replay(cfg.vcpus, vmm.provider.records)
    print(f"vmm: {vmm.ended_by or 'timed out'} after {time.monotonic() - t0:.1f} s; "
          f"{compared} SDEI steps replayed through the model, {len(bad)} differ",
          file=sys.stderr)
    for m in bad[:5]:
        print(f"vmm: {m}", file=sys.stderr)
    if not finished:
        return 124
    return 1 if vmm.errors or bad else 0
