"""A doorbell the guest-side test module rings from inside an SDEI handler, where it cannot
print (printk from NMI-like context is deferred) and must not wait for the console.

Two 64-bit registers, each a store that leaves ``KVM_RUN`` on the ringing vCPU's own thread:

- ``INJECT`` (offset 0): inject event ``value`` on this vCPU (the hypervisor-injected
  ASYNC_PF of the critical-preempts-normal round). The next entry check takes it, before the
  guest runs another instruction of the handler that rang.
- ``CHECKPOINT`` (offset 8): the guest reached point ``value`` (a round number and where in
  it); the VMM may pause the VM there (the migration driver does).

A load of offset 0 returns ``MAGIC`` so the module can tell the doorbell is there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

INJECT: Final = 0x0
CHECKPOINT: Final = 0x8
SIZE: Final = 0x1000
MAGIC: Final = 0x5344_4549  # "SDEI"


class Doorbell:
    """``on_inject(vcpu, event)`` and ``on_checkpoint(vcpu, point)`` run on the ringing
    vCPU's thread; they must not block (ask for a pause instead)."""

    def __init__(self, on_inject: Callable[[int, int], object],
                 on_checkpoint: Callable[[int, int], None]) -> None:
        self.on_inject = on_inject
        self.on_checkpoint = on_checkpoint
        self.rings = 0

    def read(self, vcpu: int, offset: int, size: int) -> int:
        return MAGIC if offset == INJECT else 0

    def write(self, vcpu: int, offset: int, size: int, value: int) -> None:
        self.rings += 1
        if offset == INJECT:
            self.on_inject(vcpu, value)
        elif offset == CHECKPOINT:
            self.on_checkpoint(vcpu, value)
