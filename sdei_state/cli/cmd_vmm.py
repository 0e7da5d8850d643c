"""``sdei-state vmm``: boot a Linux Image in the reference VMM (SDEI on stock KVM).

SDEI is served by the library's provider (``--sdei provider``, the default) or, on a kernel
with the in-kernel SDEI series, by KVM itself (``--sdei kernel``). The guest's console goes
to ``--console`` (stdout by default). The run ends when the guest
powers off (exit status 0), after ``--timeout`` seconds (124) or when a vCPU fails (1). The
test module's doorbell is wired up, so a guest that rings INJECT gets the event injected.
Afterwards the SDEI record is replayed through the reference model and the count printed; a
step the model answers differently is a failure (1). With ``--sdei kernel`` the record is
empty (KVM serves and dispatches without leaving ``KVM_RUN``), which the summary says.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import IO, Any

from .common import UserError, int_arg

_ANY = 1 << 20
"""Bounds for parsing only; the machine's limits are checked by ``VmmConfig`` (not imported
here, so that ``sdei-state --help`` stays quick)."""


def _read_image(path: str, what: str, limit: int) -> bytes:
    """The file's bytes; a file that cannot fit the guest's RAM is refused before it is read."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise UserError(f"--{what} {path}: larger than the guest's RAM "
                                f"({limit >> 20} MiB, --mem)")
            return f.read(limit + 1)
    except OSError as e:
        raise UserError(f"--{what} {path}: {e.strerror or e}") from None


def cmd_vmm(a: argparse.Namespace) -> int:
    from ..errors import SdeiStateError
    from ..scenario.recorded import replay
    from ..vmm.reference.console import Console
    from ..vmm.reference.doorbell import Doorbell
    from ..vmm.reference.layout import DOORBELL_BASE
    from ..vmm.reference.vmm import DEFAULT_BOOTARGS, ReferenceVmm, VmmConfig

    try:
        cfg = VmmConfig(a.vcpus, a.mem)
    except ValueError as e:
        raise UserError(f"vmm: {e}") from None
    kernel = _read_image(a.kernel, "kernel", cfg.ram_size)
    initrd = _read_image(a.initrd, "initrd", cfg.ram_size) if a.initrd else b""
    holder: list[ReferenceVmm] = []
    bell = Doorbell(lambda v, ev: holder[0].inject(v, ev), lambda _v, _p: None)
    with contextlib.ExitStack() as stack:
        try:
            dest: IO[bytes] = stack.enter_context(open(a.console, "wb")) if a.console \
                else sys.stdout.buffer
        except OSError as e:
            raise UserError(f"--console {a.console}: {e.strerror or e}") from None

        def sink(data: bytes) -> None:
            dest.write(data)
            dest.flush()

        try:
            vmm = ReferenceVmm(cfg, Console(sink), doorbell=bell, sdei=a.sdei)
        except (ValueError, OSError, RuntimeError, SdeiStateError) as e:
            raise UserError(f"vmm: {e}") from None
        holder.append(vmm)
        bootargs = f"{DEFAULT_BOOTARGS} sdei_doorbell={DOORBELL_BASE:#x} {a.append}".strip()
        try:
            vmm.boot(kernel, initrd, bootargs)
            t0 = time.monotonic()
            vmm.start()
            finished = vmm.done.wait(a.timeout)
        except (ValueError, OSError, RuntimeError, SdeiStateError) as e:
            raise UserError(f"vmm: {e}") from None
        finally:
            vmm.close()  # the vCPU threads leave KVM_RUN before the VM goes
    compared, bad = replay(cfg.vcpus, vmm.records)
    seen = (f"{compared} SDEI steps replayed through the model, {len(bad)} differ"
            if vmm.sdei == "provider" else "SDEI served by the kernel: no calls or "
            "dispatches recorded")
    print(f"vmm: {vmm.ended_by or 'timed out'} after {time.monotonic() - t0:.1f} s; {seen}",
          file=sys.stderr)
    for m in bad[:5]:
        print(f"vmm: {m}", file=sys.stderr)
    if not finished:
        return 124
    return 1 if vmm.errors or bad else 0


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "vmm", help="boot a Linux Image with SDEI on stock KVM (the reference VMM)",
        description="Boot an arm64 Linux Image in the reference VMM: SDEI served to the "
                    "guest by the library's provider over the SMCCC filter (Linux 6.4+), "
                    "then the record of every SDEI call replayed through the model.",
        epilog="exit status: 0 the guest powered off and the model agrees, 1 a vCPU failed "
               "or the model differs, 2 unusable input or no usable KVM, 124 timed out")
    s.add_argument("--kernel", required=True, help="arm64 Image (raw or gzip)")
    s.add_argument("--initrd", help="initramfs (cpio)")
    s.add_argument("--vcpus", type=int_arg(1, _ANY), default=1,
                   help="vCPUs, 1..123 (the redistributors must fit below the UART); default 1")
    s.add_argument("--mem", type=int_arg(1, _ANY), default=256, metavar="MIB",
                   help="guest RAM in MiB, a multiple of 2 in 64..16384; default 256")
    s.add_argument("--sdei", choices=("provider", "kernel"), default="provider",
                   help="who serves SDEI: the library's provider through the SMCCC filter "
                        "(default; on a kernel with in-kernel SDEI, that is gated off first) "
                        "or KVM itself (needs the in-kernel SDEI series)")
    s.add_argument("--console", help="file for the guest console (default stdout)")
    s.add_argument("--append", default="", help="extra kernel command line words")
    s.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                   help="end the run after this long (exit status 124); default 120")
    s.set_defaults(func=cmd_vmm)
