"""The reference VMM: a real Linux guest with SDEI on stock KVM, in small pieces.

- ``layout``: the guest-physical memory map and where the boot loader places things;
- ``fdt``: the device tree (pylibfdt), ``/firmware/sdei`` included;
- ``boot``: the arm64 Image boot protocol;
- ``pl011``, ``doorbell``, ``mmio``, ``console``: the devices and their dispatch;
- ``record``: the provider with a log of every SDEI call and dispatch (replayed through the
  reference model by ``sdei_state.scenario.recorded``);
- ``vmm``: ``ReferenceVmm``, which puts them together with one thread per vCPU.

``sdei-state vmm`` boots a kernel in it. See docs/vmm-guide.md.
"""

from __future__ import annotations

from .console import Console
from .doorbell import Doorbell
from .layout import BootLayout
from .mmio import MmioBus
from .pl011 import Pl011
from .record import RecordingProvider, tally

__all__ = ["BootLayout", "Console", "Doorbell", "MmioBus", "Pl011", "RecordingProvider",
           "tally"]
