"""Conformance scenario: the calls a Linux guest's SDEI client makes, from boot to CPU
hot-unplug, with a migration in between."""

from __future__ import annotations

from typing import Final

from .oracle import EV0, INVALID, SUCCESS, VERSION_1_1_KVM
from .steps import Conformance, Script

_LINUX_VBAR: Final = 0xFFFF_8000_0801_0000
_LINUX_ENTRY: Final = 0xFFFF_8000_0802_0000  # __sdei_asm_handler


def _linux_arg(cpu: int) -> int:
    return 0xFFFF_0000_7F00_0000 + 0x10000 * cpu  # the per-CPU registered-event pointer


def linux_boot() -> Conformance:
    n = 4
    s = Script(n)
    for v in range(n):
        s.cpu(v, vbar_el1=_LINUX_VBAR, pc=0xFFFF_8000_0810_0000 + 0x100 * v)
    s.call(0, "VERSION", ret=VERSION_1_1_KVM, note="sdei_probe")
    for v in range(n):
        s.call(v, "PRIVATE_RESET", ret=SUCCESS, note="sdei_platform_reset on each CPU")
    s.call(0, "SHARED_RESET", ret=SUCCESS)
    for v in range(n):
        s.call(v, "PE_UNMASK", ret=SUCCESS, note="sdei_cpuhp_up")
    s.call(0, "EVENT_GET_INFO", EV0, 2, ret=0, note="sdei_event_register: priority")
    s.call(0, "EVENT_GET_INFO", EV0, 0, ret=0, note="type: private")
    for v in range(n):
        s.call(v, "EVENT_REGISTER", EV0, _LINUX_ENTRY, _linux_arg(v), 0, 0, ret=SUCCESS)
    for v in range(n):
        s.call(v, "EVENT_ENABLE", EV0, ret=SUCCESS)
    # CPU 2 runs the kernel with IRQs unmasked (Z and C set).
    s.cpu(2, pc=0xFFFF_8000_0810_1234, pstate=0x6000_0005,
          x={0: 0xF0, 1: 0xF1, 2: 0xF2, 3: 0xF3})
    s.call(0, "EVENT_SIGNAL", EV0, 2, ret=SUCCESS)
    s.dispatch(2, EV0, pc=_LINUX_ENTRY, pstate=0x6000_03C5, x1=_linux_arg(2),
               x2=0xFFFF_8000_0810_1234, x3=0x6000_0005)
    s.migrate(note="the VM migrates while CPU 2 is in the handler")
    for r in range(4):
        s.call(2, "EVENT_CONTEXT", r, ret=0xF0 + r, note="do_sdei_event recovers x0-x3")
    s.complete(2, "EVENT_COMPLETE_AND_RESUME", _LINUX_VBAR + 0x280, x=(0xF0, 0xF1, 0xF2, 0xF3),
               note="IRQs were unmasked: resume at the IRQ vector (vbar + 0x280)")
    s.no_dispatch(2, pc=_LINUX_VBAR + 0x280, pstate=0x6000_03C5)
    s.call(3, "EVENT_UNREGISTER", EV0, ret=SUCCESS, note="hot-unplug CPU 3: sdei_cpuhp_down")
    s.call(3, "PE_MASK", ret=1)
    s.call(0, "EVENT_SIGNAL", EV0, 3, ret=INVALID, note="CPU 3 is gone")
    s.call(3, "EVENT_REGISTER", EV0, _LINUX_ENTRY, _linux_arg(3), 0, 0, ret=SUCCESS,
           note="re-plug: sdei_cpuhp_up")
    s.call(3, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(3, "PE_UNMASK", ret=SUCCESS)
    s.cpu(3, pc=0xFFFF_8000_0810_5678, pstate=0x8000_0085,
          x={0: 0xE0, 1: 0xE1, 2: 0xE2, 3: 0xE3}, note="IRQs masked (I set)")
    s.call(1, "EVENT_SIGNAL", EV0, 3, ret=SUCCESS)
    s.dispatch(3, EV0, pc=_LINUX_ENTRY, pstate=0x8000_03C5, x1=_linux_arg(3),
               x2=0xFFFF_8000_0810_5678, x3=0x8000_0085)
    for r in range(4):
        s.call(3, "EVENT_CONTEXT", r, ret=0xE0 + r)
    s.complete(3, "EVENT_COMPLETE", 0, x=(0xE0, 0xE1, 0xE2, 0xE3),
               note="interrupted with IRQs masked: SDEI_EV_HANDLED")
    s.no_dispatch(3, pc=0xFFFF_8000_0810_5678, pstate=0x8000_0085)
    final: dict[str, int] = {}
    for v in range(n):
        final[f"vcpu{v}:SDEI_EVENT_STATE(0)"] = 3
        final[f"vcpu{v}:SDEI_VCPU_STATE"] = 0
        final[f"vcpu{v}:SDEI_EVENT_EP_ADDR(0)"] = _LINUX_ENTRY
        final[f"vcpu{v}:SDEI_EVENT_EP_ARG(0)"] = _linux_arg(v)
    final |= {"vcpu2:cpu.elr_el1": 0xFFFF_8000_0810_1234, "vcpu2:cpu.spsr_el1": 0x6000_0005,
              "vcpu2:cpu.pc": _LINUX_VBAR + 0x280, "vcpu3:cpu.elr_el1": 0,
              "vcpu0:cpu.pc": 0xFFFF_8000_0810_0000}
    return s.build(
        "linux-boot",
        "the Linux client: VERSION, PRIVATE_RESET per CPU, SHARED_RESET, PE_UNMASK per CPU, "
        "GET_INFO, REGISTER+ENABLE per CPU, signal, CONTEXT 0-3, COMPLETE_AND_RESUME to the "
        "IRQ vector, migration, hot-unplug and re-plug, COMPLETE",
        final)
