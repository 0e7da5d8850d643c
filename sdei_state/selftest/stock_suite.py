"""The ``stock-vmm`` suite (opt-in: ``--suite stock-vmm``): software nobody on this project
wrote migrates SDEI, and one blob moves between the in-kernel and the userspace modes.

- ``stock_qemu``: Debian's unmodified QEMU, run inside the lab with ``-accel kvm`` on the
  kernel with in-kernel SDEI, boots Linux with a ``/firmware/sdei`` node added to QEMU's own
  device tree, migrates through its own stream, and the stream's cpreg arrays carry the 47
  SDEI registers per vCPU;
- ``stock_cross``: provider-served state restored where KVM serves SDEI, and back, with the
  project's own guest programs;
- ``stock_linux``: the same with the Linux guest of the linux-guest suite, live-migrated
  between the reference VMM's two SDEI modes;
- ``stock_compat``: ``preflight``'s verdicts for a stock 6.12 destination.

Every case skips with its reason where QEMU, the kernel or the guest assets are missing.
"""

from __future__ import annotations

from typing import Final

from . import stock_compat, stock_cross, stock_linux, stock_qemu
from .core import Suite

NAME: Final = "stock-vmm"


def suite() -> Suite:
    return Suite(NAME, "an unmodified QEMU migrates SDEI through its own stream; one blob "
                 "moves between in-kernel and userspace SDEI; preflight for a stock 6.12 "
                 "destination", (*stock_qemu.cases(), *stock_cross.cases(),
                                 *stock_linux.cases(), *stock_compat.cases()),
                 frozenset({"kvm"}))
