"""The guest's device tree, written with pylibfdt (the Python binding of upstream libfdt's
sequential-write API, ``FdtSw``), never by packing bytes here.

What Linux needs to boot this machine and find SDEI (bindings from the kernel's
Documentation/devicetree/bindings):

- ``/cpus``: one ``cpu@N`` per vCPU, ``reg`` = its MPIDR affinity, brought up through PSCI;
- ``/memory``, ``/chosen`` (bootargs, the initramfs range, the console);
- ``/psci`` (``method = "hvc"``): KVM itself serves PSCI (CPU_ON/OFF, SYSTEM_OFF);
- ``/timer``: the architected timer's PPIs (KVM emulates the timer with the vGIC);
- ``/intc``: the in-kernel GICv3, distributor and one redistributor region;
- ``/apb-pclk`` and ``/pl011``: the console UART and the clock the AMBA bus asks for;
- ``/firmware/sdei``: ``compatible = "arm,sdei-1.0"``, ``method = "hvc"``, which makes
  drivers/firmware/arm_sdei.c probe and call SDEI_VERSION through the HVC conduit.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from . import layout

PHANDLE_GIC: Final = 1
PHANDLE_CLK: Final = 2
GIC_SPI: Final = 0
GIC_PPI: Final = 1
IRQ_LEVEL_HIGH: Final = 4
# The architected timer's PPIs (the Arm Base System Architecture numbering Linux's timer
# binding lists in this order): secure physical, non-secure physical, virtual, hypervisor.
TIMER_PPIS: Final = (13, 14, 11, 10)
GIC_MAINTENANCE_PPI: Final = 9
UART_CLOCK_HZ: Final = 24_000_000


class FdtUnavailable(RuntimeError):
    """pylibfdt is not installed; the message says how to get it."""


@dataclass(frozen=True)
class MachineSpec:
    """What the device tree describes."""

    mpidrs: Sequence[int]
    ram_size: int
    bootargs: str
    gic_reg: tuple[int, int, int, int]
    """Distributor base and size, redistributor region base and size (``GicLayout.reg``)."""
    initrd: tuple[int, int] | None = None
    """Guest-physical [start, end) of the initramfs, or None."""


def _libfdt() -> Any:
    try:
        import libfdt
    except ImportError:
        raise FdtUnavailable("the reference VMM writes its device tree with pylibfdt: "
                             "`pip install pylibfdt` (Debian: apt-get install python3-libfdt)"
                             ) from None
    return libfdt


def _cells(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def _u64s(*values: int) -> bytes:
    """``<hi lo>`` cell pairs (the tree's #address-cells = #size-cells = 2)."""
    return b"".join(_cells(v >> 32, v & 0xFFFF_FFFF) for v in values)


def _strings(*values: str) -> bytes:
    return b"".join(v.encode() + b"\0" for v in values)


def build(spec: MachineSpec) -> bytes:
    """The flattened device tree (DTB) for ``spec``."""
    sw = _libfdt().FdtSw()
    sw.finish_reservemap()
    with sw.add_node(""):
        sw.property("compatible", _strings("linux,dummy-virt"))
        sw.property_u32("#address-cells", 2)
        sw.property_u32("#size-cells", 2)
        sw.property_u32("interrupt-parent", PHANDLE_GIC)
        with sw.add_node("chosen"):
            sw.property_string("bootargs", spec.bootargs)
            sw.property_string("stdout-path", f"/pl011@{layout.UART_BASE:x}")
            if spec.initrd is not None:
                sw.property("linux,initrd-start", _u64s(spec.initrd[0]))
                sw.property("linux,initrd-end", _u64s(spec.initrd[1]))
        with sw.add_node(f"memory@{layout.RAM_BASE:x}"):
            sw.property_string("device_type", "memory")
            sw.property("reg", _u64s(layout.RAM_BASE, spec.ram_size))
        with sw.add_node("cpus"):
            sw.property_u32("#address-cells", 2)
            sw.property_u32("#size-cells", 0)
            for mpidr in spec.mpidrs:
                with sw.add_node(f"cpu@{mpidr:x}"):
                    sw.property_string("device_type", "cpu")
                    sw.property("compatible", _strings("arm,armv8"))
                    sw.property("reg", _u64s(mpidr))
                    sw.property_string("enable-method", "psci")
        with sw.add_node("psci"):
            sw.property("compatible", _strings("arm,psci-1.0", "arm,psci-0.2"))
            sw.property_string("method", "hvc")
        with sw.add_node("timer"):
            sw.property("compatible", _strings("arm,armv8-timer"))
            sw.property("interrupts", b"".join(_cells(GIC_PPI, n, IRQ_LEVEL_HIGH)
                                               for n in TIMER_PPIS))
            sw.property("always-on", b"")
        with sw.add_node(f"intc@{spec.gic_reg[0]:x}"):
            sw.property("compatible", _strings("arm,gic-v3"))
            sw.property_u32("#interrupt-cells", 3)
            sw.property("interrupt-controller", b"")
            sw.property_u32("#redistributor-regions", 1)
            sw.property("reg", _u64s(*spec.gic_reg))
            sw.property("interrupts", _cells(GIC_PPI, GIC_MAINTENANCE_PPI, IRQ_LEVEL_HIGH))
            sw.property_u32("phandle", PHANDLE_GIC)
        with sw.add_node("apb-pclk"):
            sw.property("compatible", _strings("fixed-clock"))
            sw.property_u32("#clock-cells", 0)
            sw.property_u32("clock-frequency", UART_CLOCK_HZ)
            sw.property_string("clock-output-names", "clk24mhz")
            sw.property_u32("phandle", PHANDLE_CLK)
        with sw.add_node(f"pl011@{layout.UART_BASE:x}"):
            sw.property("compatible", _strings("arm,pl011", "arm,primecell"))
            sw.property("reg", _u64s(layout.UART_BASE, layout.UART_SIZE))
            sw.property("interrupts", _cells(GIC_SPI, layout.UART_SPI, IRQ_LEVEL_HIGH))
            sw.property("clocks", _cells(PHANDLE_CLK, PHANDLE_CLK))
            sw.property("clock-names", _strings("uartclk", "apb_pclk"))
        with sw.add_node("firmware"), sw.add_node("sdei"):
            sw.property("compatible", _strings("arm,sdei-1.0"))
            sw.property_string("method", "hvc")
    return bytes(sw.as_fdt().as_bytearray())
