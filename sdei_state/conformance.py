"""Conformance scenarios for the SDEI model, as data.

Each ``Conformance`` is a scenario document (DESIGN section 7) with hand-written expectations:
for every step that yields a result, the exact values DEN0054C and DESIGN sections 4-5 require
(a partial result object per step), and optionally final register values by name. Nothing here
is computed by the model: return codes, register ids, PSTATE values and event numbers are
written out below so that a wrong constant in ``spec.py`` or ``regs`` cannot make its own
expectation. ``check`` compares a replay result with them; ``run_one`` replays and checks.

The scenarios are built with a small script builder (``_Script``) so that each step and its
expectation sit on one line, and the step index of an expectation cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

# -- constants, written out from the spec (independent of spec.py / regs) -------------------

SUCCESS: Final = 0
NOT_SUPPORTED: Final = -1
INVALID: Final = -2
DENIED: Final = -3
PENDING: Final = -5
OUT_OF_RESOURCE: Final = -10
"""DEN0054C Table 6 return codes."""

EV0: Final = 0x0000_0000
"""SW_SIGNALED: private, normal, signalable (DESIGN section 3, index 0)."""
EV1: Final = 0x4040_0000
"""ASYNC_PF: private, critical, not signalable (DESIGN section 3, index 1)."""

VERSION_1_1_KVM: Final = 0x0001_0001_564B_CAA9
"""SDEI_VERSION result: major 1 (bits[62:48]), minor 1 (bits[47:32]), vendor 0x564bcaa9."""

U64_MAX: Final = (1 << 64) - 1
EL1H: Final = 0x5
"""PSTATE of a fresh vCPU (EL1h, DAIF clear)."""
EL1H_DAIF: Final = 0x3C5
"""Handler-entry PSTATE from an EL1h/EL1t/EL0t context without other bits: EL1h + DAIF."""

FW: Final = 0x6030_0000_0014_0000
"""KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW: firmware regno 0."""
BMAP: Final = 0x6030_0000_0016_0000
"""KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW_FEAT_BMAP: bitmap regno 0."""
U32_SIZE_FW: Final = 0x6020_0000_0014_0000
U128_SIZE_FW: Final = 0x6040_0000_0014_0000

NR_EVENTS: Final = 2
CONTEXT_REGS: Final = 20  # x0..x17, PC, PSTATE


def _sdei_ids() -> dict[str, int]:
    """The 47 SDEI register names of DESIGN section 4 and their ids."""
    out = {"SDEI_VCPU_STATE": FW | 0x100}
    for i in range(NR_EVENTS):
        out[f"SDEI_EVENT_STATE({i})"] = FW | (0x110 + i)
    for i in range(NR_EVENTS):
        out[f"SDEI_EVENT_EP_ADDR({i})"] = FW | (0x120 + 2 * i)
        out[f"SDEI_EVENT_EP_ARG({i})"] = FW | (0x121 + 2 * i)
    for c in range(2):
        for r in range(CONTEXT_REGS):
            out[f"SDEI_CONTEXT({c}, {r})"] = FW | (0x140 + 0x20 * c + r)
    return out


SDEI_IDS: Final[Mapping[str, int]] = MappingProxyType(_sdei_ids())
"""SDEI register name -> ONE_REG id, ascending by id (DESIGN section 4)."""

FIRMWARE_IDS: Final[Mapping[str, int]] = MappingProxyType({
    "KVM_REG_ARM_PSCI_VERSION": FW | 0,
    "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1": FW | 1,
    "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2": FW | 2,
    "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3": FW | 3,
    "KVM_REG_ARM_STD_BMAP": BMAP | 0,
    "KVM_REG_ARM_STD_HYP_BMAP": BMAP | 1,
    "KVM_REG_ARM_VENDOR_HYP_BMAP": BMAP | 2,
    "KVM_REG_ARM_VENDOR_HYP_BMAP_2": BMAP | 3,
})
"""The upstream firmware registers (uapi names) and their ids."""

SYSTEM_IDS: Final[Mapping[str, int]] = MappingProxyType({
    "SCTLR_EL1": 0x6030_0000_0013_C080,  # ARM64_SYS_REG(3, 0, 1, 0, 0)
})
"""System registers the scenarios read (the model reads SCTLR_EL1 at dispatch)."""

REG_IDS: Final[Mapping[str, int]] = MappingProxyType({**SDEI_IDS, **FIRMWARE_IDS, **SYSTEM_IDS})
_NAME_BY_ID: Final[Mapping[int, str]] = MappingProxyType({v: k for k, v in REG_IDS.items()})

CPU_KEYS: Final = (*(f"x{n}" for n in range(31)), "sp", "pc", "pstate", "elr_el1", "spsr_el1",
                   "vbar_el1")
"""The fields of a result's ``final[].cpu`` object, as ``final_expect`` names them."""


def reg_name(reg_id: int) -> str:
    """Name of a register these scenarios know, else the id in hex."""
    return _NAME_BY_ID.get(reg_id, f"{reg_id:#018x}")


# -- the value type ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Conformance:
    """One named conformance scenario with its hand-written expectations.

    ``expect`` maps a step index to the fields its result must have (a partial result object);
    ``final_expect`` maps ``[vcpuN:]NAME`` to a value, NAME being a register name of
    ``REG_IDS`` (or a hex id) read from ``final[N].registers``, or ``cpu.<field>`` read from
    ``final[N].cpu``; N defaults to 0.
    """

    name: str
    doc: str
    """One line: what the scenario covers."""
    scenario: Mapping[str, Any]
    """The scenario document (``sdei-state/scenario/1``)."""
    expect: Mapping[int, Mapping[str, Any]]
    final_expect: Mapping[str, int]


# -- the builder ------------------------------------------------------------------------------

RegRef = str | int


def _rid(reg: RegRef) -> int:
    return REG_IDS[reg] if isinstance(reg, str) else reg


class _Script:
    """Collects steps and, with each, its expectation."""

    def __init__(self, vcpus: int = 1) -> None:
        self.vcpus = vcpus
        self.steps: list[dict[str, Any]] = []
        self.expect: dict[int, dict[str, Any]] = {}

    def _add(self, step: dict[str, Any], want: dict[str, Any], note: str | None) -> None:
        if note:
            step["comment"] = note
        self.expect[len(self.steps)] = want
        self.steps.append(step)

    def cpu(self, v: int, *, x: Mapping[int, int] | None = None, note: str | None = None,
            **regs: int) -> None:
        """Set emulated CPU registers (``x`` by number; sp, pc, pstate, ... by keyword)."""
        body: dict[str, Any] = dict(regs)
        if x:
            body["x"] = {str(k): val for k, val in sorted(x.items())}
        self._add({"vcpu": v, "cpu": body}, {}, note)

    def call(self, v: int, fn: str | int, *args: int, ret: int, note: str | None = None) -> None:
        """An SDEI call that returns: x0 = ``ret`` (signed), x1..x3 = 0 (DESIGN section 5)."""
        step: dict[str, Any] = {"vcpu": v, "call": fn}
        if args:
            step["args"] = list(args)
        self._add(step, {"x0": ret, "x1": 0, "x2": 0, "x3": 0}, note)

    def complete(self, v: int, fn: str, *args: int, x: tuple[int, int, int, int],
                 note: str | None = None) -> None:
        """A successful COMPLETE / COMPLETE_AND_RESUME: x0..x3 of the restored context."""
        step: dict[str, Any] = {"vcpu": v, "call": fn}
        if args:
            step["args"] = list(args)
        x0 = x[0] - (1 << 64) if x[0] >> 63 else x[0]
        self._add(step, {"x0": x0, "x1": x[1], "x2": x[2], "x3": x[3]}, note)

    def dispatch(self, v: int, taken: int, *, pc: int, pstate: int, x1: int, x2: int, x3: int,
                 note: str | None = None) -> None:
        """A dispatch check that enters a handler: x0 = event number, x1 = ep_arg, x2/x3 =
        interrupted PC/PSTATE, PC = entry point, PSTATE = handler-entry PSTATE."""
        self._add({"vcpu": v, "dispatch": True},
                  {"taken": taken, "pc": pc, "pstate": pstate, "x0": taken, "x1": x1, "x2": x2,
                   "x3": x3}, note)

    def no_dispatch(self, v: int, *, pc: int, pstate: int, x0: int | None = None,
                    note: str | None = None) -> None:
        """A dispatch check that takes nothing: PC and PSTATE (and x0 if given) unchanged."""
        want: dict[str, Any] = {"taken": None, "pc": pc, "pstate": pstate}
        if x0 is not None:
            want["x0"] = x0
        self._add({"vcpu": v, "dispatch": True}, want, note)

    def inject(self, v: int, number: int, *, ok: bool, note: str | None = None) -> None:
        self._add({"vcpu": v, "inject": number}, {"ok": ok}, note)

    def set_reg(self, v: int, reg: RegRef, value: int, *, errno: str | None = None,
                note: str | None = None) -> None:
        self._add({"vcpu": v, "set_reg": {"id": f"{_rid(reg):#018x}", "value": value}},
                  {"errno": errno}, note)

    def get_reg(self, v: int, reg: RegRef, value: int | None = None, *,
                errno: str | None = None, note: str | None = None) -> None:
        if (value is None) == (errno is None):
            raise ValueError("get_reg expects exactly one of value and errno")
        want: dict[str, Any] = {"value": value} if errno is None else {"errno": errno}
        self._add({"vcpu": v, "get_reg": f"{_rid(reg):#018x}"}, want, note)

    def migrate(self, note: str | None = None) -> None:
        self._add({"migrate": True}, {}, note)

    def build(self, name: str, doc: str, final: Mapping[str, int] | None = None) -> Conformance:
        doc_obj = {"format": "sdei-state/scenario/1", "description": doc, "vcpus": self.vcpus,
                   "steps": self.steps}
        return Conformance(name, doc, doc_obj, MappingProxyType(dict(self.expect)),
                           MappingProxyType(dict(final or {})))


_BUILDERS: list[Callable[[], Conformance]] = []


def _scenario(fn: Callable[[], Conformance]) -> Callable[[], Conformance]:
    _BUILDERS.append(fn)
    return fn


# Common setup: register (absolute), enable, and unmask on one vCPU.
def _arm(s: _Script, v: int, event: int, ep: int, arg: int, *, unmask: bool = True,
         flags: int = 0) -> None:
    s.call(v, "EVENT_REGISTER", event, ep, arg, flags, 0, ret=SUCCESS)
    s.call(v, "EVENT_ENABLE", event, ret=SUCCESS)
    if unmask:
        s.call(v, "PE_UNMASK", ret=SUCCESS)


# =============================================================================================
# Calls and their parameter checks
# =============================================================================================

@_scenario
def _version_features() -> Conformance:
    s = _Script()
    s.cpu(0, x={1: 11, 2: 22, 3: 33, 6: 66, 17: 1717, 18: 1818})
    s.call(0, "VERSION", ret=VERSION_1_1_KVM, note="1.1, KVM vendor; x1..x3 cleared")
    s.call(0, 0xC4000020, ret=VERSION_1_1_KVM, note="the same call by raw function id")
    s.call(0, "FEATURES", 0, ret=0, note="BIND_SLOTS: none")
    s.call(0, "FEATURES", 1, ret=1, note="RELATIVE_MODE supported")
    s.call(0, "FEATURES", 2, ret=INVALID)
    s.call(0, "FEATURES", 1 | 1 << 32, ret=INVALID, note="32-bit parameter: upper bits count")
    s.call(0, 0x84000020, ret=NOT_SUPPORTED, note="SMC32 VERSION")
    s.call(0, 0x84000030, ret=NOT_SUPPORTED, note="SMC32 FEATURES")
    s.call(0, 0xC4000033, ret=NOT_SUPPORTED, note="unassigned id in the SDEI block")
    s.call(0, 0xC400003F, ret=NOT_SUPPORTED, note="last id of the SDEI block")
    s.call(0, "FEATURES", 1, 2, 3, 4, 5, ret=1, note="x4, x5 are loaded with args 4 and 5")
    return s.build(
        "version-features",
        "VERSION value, FEATURES selectors, SMC32 and unassigned ids NOT_SUPPORTED, raw ids; "
        "a call clears x1-x3 and keeps x6-x30",
        {"cpu.x4": 4, "cpu.x5": 5, "cpu.x6": 66, "cpu.x17": 1717, "cpu.x18": 1818,
         "cpu.pc": 0, "cpu.pstate": EL1H, "SDEI_VCPU_STATE": 1})


@_scenario
def _get_info() -> Conformance:
    s = _Script()
    s.call(0, "EVENT_GET_INFO", EV0, 0, ret=0, note="EV_TYPE: private")
    s.call(0, "EVENT_GET_INFO", EV0, 1, ret=0, note="EV_SIGNALED: 0 = can be signalled")
    s.call(0, "EVENT_GET_INFO", EV0, 2, ret=0, note="EV_PRIORITY: normal")
    s.call(0, "EVENT_GET_INFO", EV0, 3, ret=INVALID, note="EV_ROUTING_MODE: private event")
    s.call(0, "EVENT_GET_INFO", EV0, 4, ret=INVALID, note="EV_ROUTING_AFF: private event")
    s.call(0, "EVENT_GET_INFO", EV0, 5, ret=INVALID, note="reserved selector")
    s.call(0, "EVENT_GET_INFO", EV0, 1 << 32, ret=INVALID, note="selector upper bits")
    s.call(0, "EVENT_GET_INFO", EV1, 0, ret=0, note="ASYNC_PF: private")
    s.call(0, "EVENT_GET_INFO", EV1, 1, ret=1, note="ASYNC_PF cannot be signalled")
    s.call(0, "EVENT_GET_INFO", EV1, 2, ret=1, note="ASYNC_PF: critical")
    s.call(0, "EVENT_GET_INFO", EV1, 3, ret=INVALID)
    s.call(0, "EVENT_GET_INFO", 1, 0, ret=INVALID, note="unknown standard event")
    s.call(0, "EVENT_GET_INFO", 0x40000000, 0, ret=INVALID, note="unknown vendor event")
    s.call(0, "EVENT_GET_INFO", 1 << 32, 0, ret=INVALID, note="event 0 with upper bits")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_GET_INFO", EV0, 3, ret=INVALID, note="routing of a registered private")
    s.call(0, "EVENT_STATUS", EV0, ret=1)
    s.call(0, "EVENT_STATUS", 2, ret=INVALID)
    return s.build(
        "get-info",
        "EVENT_GET_INFO: every selector on both events (EV_SIGNALED spec polarity), routing "
        "selectors and unknown events INVALID_PARAMETERS",
        {"SDEI_EVENT_STATE(0)": 1, "SDEI_EVENT_EP_ADDR(0)": 0x10000})


@_scenario
def _register_checks() -> Conformance:
    s = _Script()
    s.call(0, "EVENT_REGISTER", 1, 0x10000, 0, 0, 0, ret=INVALID, note="unknown event")
    s.call(0, "EVENT_REGISTER", 1 << 32, 0x10000, 0, 0, 0, ret=INVALID, note="upper bits")
    s.call(0, "EVENT_REGISTER", EV0, 0, 0, 0, 0, ret=INVALID, note="entry point 0")
    s.call(0, "EVENT_REGISTER", EV0, 0x10002, 0, 0, 0, ret=INVALID, note="unaligned")
    s.call(0, "EVENT_REGISTER", EV0, 0x10001, 0, 0, 0, ret=INVALID, note="unaligned")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 4, 0, ret=INVALID, note="flags bit 2")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 1 << 63, 0, ret=INVALID, note="flags bit 63")
    s.call(0, "EVENT_REGISTER", EV0, 0, 0, 2, 0, ret=INVALID, note="relative offset 0")
    s.call(0, "EVENT_REGISTER", EV0, 0x802, 0, 2, 0, ret=INVALID, note="relative unaligned")
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 42, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=1, note="registered, disabled")
    s.call(0, "EVENT_REGISTER", EV0, 0x20000, 43, 0, 0, ret=DENIED, note="already registered")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0x10000, note="the first registration stands")
    s.get_reg(0, "SDEI_EVENT_EP_ARG(0)", 42)
    s.call(0, "EVENT_REGISTER", EV1, 0x30000, U64_MAX, 1, 0xFF00FFFFFF, ret=SUCCESS,
           note="RM_PE and any affinity: ignored for a private event")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 1)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(1)", 0x30000)
    s.get_reg(0, "SDEI_EVENT_EP_ARG(1)", U64_MAX)
    s.call(0, "EVENT_STATUS", EV1, ret=1)
    return s.build(
        "register-checks",
        "EVENT_REGISTER argument checks (event, entry point 0/unaligned, reserved flags, "
        "relative), DENIED when registered, routing ignored for private events",
        {"SDEI_EVENT_STATE(0)": 1, "SDEI_EVENT_EP_ADDR(0)": 0x10000, "SDEI_EVENT_EP_ARG(0)": 42,
         "SDEI_EVENT_STATE(1)": 1, "SDEI_EVENT_EP_ADDR(1)": 0x30000,
         "SDEI_EVENT_EP_ARG(1)": U64_MAX})


@_scenario
def _enable_disable_unregister() -> Conformance:
    s = _Script()
    s.call(0, "EVENT_ENABLE", EV0, ret=DENIED, note="not registered")
    s.call(0, "EVENT_DISABLE", EV0, ret=DENIED)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=DENIED)
    s.call(0, "EVENT_ENABLE", 5, ret=INVALID)
    s.call(0, "EVENT_DISABLE", 5, ret=INVALID)
    s.call(0, "EVENT_UNREGISTER", 5, ret=INVALID)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 7, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS, note="idempotent")
    s.call(0, "EVENT_STATUS", EV0, ret=3)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 3)
    s.call(0, "EVENT_DISABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_DISABLE", EV0, ret=SUCCESS, note="idempotent")
    s.call(0, "EVENT_STATUS", EV0, ret=1)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=SUCCESS, note="from enabled")
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0, note="canonical: cleared on unregister")
    s.get_reg(0, "SDEI_EVENT_EP_ARG(0)", 0)
    s.call(0, "EVENT_REGISTER", EV0, 0x20000, 8, 0, 0, ret=SUCCESS, note="register again")
    s.call(0, "EVENT_UNREGISTER", EV0, ret=SUCCESS, note="from registered")
    s.call(0, "EVENT_UNREGISTER", EV0, ret=DENIED)
    s.call(0, "EVENT_REGISTER", EV1, 0x30000, 9, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    return s.build(
        "enable-disable-unregister",
        "ENABLE/DISABLE idempotent and DENIED unless registered; UNREGISTER from registered "
        "and enabled clears the entry point",
        {"SDEI_EVENT_STATE(0)": 0, "SDEI_EVENT_EP_ADDR(0)": 0, "SDEI_EVENT_EP_ARG(0)": 0,
         "SDEI_EVENT_STATE(1)": 3, "SDEI_EVENT_EP_ADDR(1)": 0x30000,
         "SDEI_EVENT_EP_ARG(1)": 9})


@_scenario
def _handler_states() -> Conformance:
    s = _Script()
    s.cpu(0, pc=0x1000)
    s.call(0, "EVENT_STATUS", EV0, ret=0, note="handler-unregistered (0,0,0)")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 42, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=1, note="handler-registered (1,0,0)")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=3, note="handler-enabled (1,1,0)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 3)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="to self (MPIDR 0)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011, note="PENDING")
    s.cpu(0, x={0: 100, 1: 101, 2: 102, 3: 103})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=42, x2=0x1000, x3=EL1H)
    s.call(0, "EVENT_STATUS", EV0, ret=7, note="handler-enabled and running (1,1,1)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 7)
    s.call(0, "EVENT_DISABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=5, note="handler-registered and running (1,0,1)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 5)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING)
    s.call(0, "EVENT_STATUS", EV0, ret=4, note="handler-unregister-pending (0,0,1)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 4)
    s.complete(0, "EVENT_COMPLETE", 0, x=(100, 101, 102, 103))
    s.call(0, "EVENT_STATUS", EV0, ret=0, note="unregistered once the handler completes")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0)
    return s.build(
        "handler-states",
        "all six handler states of DEN0054C Table 13 through EVENT_STATUS and "
        "SDEI_EVENT_STATE, plus PENDING",
        {"SDEI_EVENT_STATE(0)": 0, "SDEI_CONTEXT(0, 0)": 0, "SDEI_CONTEXT(0, 18)": 0,
         "SDEI_CONTEXT(0, 19)": 0, "cpu.pc": 0x1000, "cpu.pstate": EL1H})


@_scenario
def _pending_and_mask() -> Conformance:
    s = _Script()
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 1, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="registered but disabled")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1001, note="registered + pending")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="edge-triggered: merges")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1001)
    s.no_dispatch(0, pc=0, pstate=EL1H, x0=0, note="disabled and masked")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.no_dispatch(0, pc=0, pstate=EL1H, note="masked: every vCPU starts masked")
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.call(0, "PE_MASK", ret=0, note="was already masked")
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.get_reg(0, "SDEI_VCPU_STATE", 0)
    s.call(0, "PE_UNMASK", ret=SUCCESS, note="unmask when unmasked")
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=1, x2=0, x3=EL1H)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 7, note="PENDING cleared on dispatch")
    s.no_dispatch(0, pc=0x10000, pstate=EL1H_DAIF, x0=EV0, note="nothing pending")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="retrigger while running")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1111)
    s.no_dispatch(0, pc=0x10000, pstate=EL1H_DAIF, note="same class is running")
    s.call(0, "PE_MASK", ret=1, note="this call masked the PE")
    s.call(0, "PE_MASK", ret=0)
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0, pstate=EL1H, note="masked: the retrigger stays pending")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=1, x2=0, x3=EL1H,
               note="the retrigger runs the handler again")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    return s.build(
        "pending-and-mask",
        "PENDING while disabled or masked, edge-triggered merging, PE_MASK/PE_UNMASK results "
        "and SDEI_VCPU_STATE, retrigger during a handler runs it again",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_VCPU_STATE": 0, "cpu.pc": 0, "cpu.pstate": EL1H})


@_scenario
def _dispatch_entry() -> Conformance:
    s = _Script()
    _arm(s, 0, EV0, 0x10000, 0xABCDEF)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    # Interrupted: EL0t with Z, C, PAN, SS, IL, BTYPE=0b10 and I set.
    s.cpu(0, pc=0x80000, pstate=0x6070_0880, sp=0x7000, vbar_el1=0x400000,
          x={**{n: 0x1000 + n for n in range(18)}, 18: 0x18, 30: 0x30})
    s.dispatch(0, EV0, pc=0x10000, pstate=0x6040_03C5, x1=0xABCDEF, x2=0x80000,
               x3=0x6070_0880, note="EL1h, DAIF set; SS, IL, BTYPE cleared; NZCV, PAN kept")
    s.get_reg(0, "SDEI_CONTEXT(0, 0)", 0x1000)
    s.get_reg(0, "SDEI_CONTEXT(0, 17)", 0x1011)
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0x80000)
    s.get_reg(0, "SDEI_CONTEXT(0, 19)", 0x6070_0880)
    s.get_reg(0, "SDEI_CONTEXT(1, 18)", 0, note="no critical handler: zero")
    s.call(0, "EVENT_CONTEXT", 0, ret=0x1000)
    s.call(0, "EVENT_CONTEXT", 3, ret=0x1003)
    s.call(0, "EVENT_CONTEXT", 17, ret=0x1011)
    s.call(0, "EVENT_CONTEXT", 18, ret=INVALID)
    s.call(0, "EVENT_CONTEXT", 1 << 32, ret=INVALID)
    return s.build(
        "dispatch-entry",
        "handler entry: x0-x3, PC, PSTATE (mode, DAIF, SS/IL/BTYPE cleared, flags kept), "
        "x4-x30/SP kept, context saved in SDEI_CONTEXT(0, *) and read by EVENT_CONTEXT",
        {"SDEI_EVENT_STATE(0)": 7, "SDEI_CONTEXT(0, 6)": 0x1006, "SDEI_CONTEXT(0, 1)": 0x1001,
         "SDEI_CONTEXT(0, 19)": 0x6070_0880, "cpu.x6": 0x1006, "cpu.x17": 0x1011,
         "cpu.x18": 0x18, "cpu.x30": 0x30, "cpu.sp": 0x7000, "cpu.pc": 0x10000,
         "cpu.pstate": 0x6040_03C5, "cpu.elr_el1": 0, "cpu.spsr_el1": 0,
         "cpu.vbar_el1": 0x400000})


@_scenario
def _complete() -> Conformance:
    s = _Script()
    _arm(s, 0, EV0, 0x10000, 5)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x2000, pstate=0x8000_0005,
          x={0: 0xA0, 1: 0xA1, 2: 0xA2, 3: 0xA3, 4: 0xA4, 5: 0xA5, 6: 0xA6, 17: 0xB1, 18: 0xC0})
    s.dispatch(0, EV0, pc=0x10000, pstate=0x8000_03C5, x1=5, x2=0x2000, x3=0x8000_0005)
    s.cpu(0, pc=0x10400, pstate=0x3C4, x={4: 2, 5: 3, 6: 4, 17: 5, 18: 0xD0},
          note="the handler clobbers x0-x17 and x18 (it should preserve x18)")
    s.complete(0, "EVENT_COMPLETE", 1, x=(0xA0, 0xA1, 0xA2, 0xA3),
               note="EV_FAILED is treated as handled")
    s.no_dispatch(0, pc=0x2000, pstate=0x8000_0005, x0=0xA0)
    s.get_reg(0, "SDEI_CONTEXT(0, 0)", 0, note="COMPLETE clears the class's context")
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0)
    s.get_reg(0, "SDEI_CONTEXT(0, 19)", 0)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 3)
    return s.build(
        "complete",
        "EVENT_COMPLETE restores x0-x17, PC and PSTATE (not x18+, not ELR/SPSR), EV_FAILED "
        "acts as handled, clears the context registers",
        {"cpu.x4": 0xA4, "cpu.x5": 0xA5, "cpu.x6": 0xA6, "cpu.x17": 0xB1, "cpu.x18": 0xD0,
         "cpu.pc": 0x2000, "cpu.pstate": 0x8000_0005, "cpu.elr_el1": 0, "cpu.spsr_el1": 0,
         "SDEI_EVENT_STATE(0)": 3, "SDEI_CONTEXT(0, 17)": 0})


@_scenario
def _complete_and_resume() -> Conformance:
    s = _Script()
    _arm(s, 0, EV0, 0x10000, 5)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    # Interrupted: EL1t with C and SS set.
    s.cpu(0, pc=0x3000, pstate=0x2020_0004, elr_el1=0x1234, spsr_el1=0x5,
          x={0: 0xB0, 1: 0xB1, 2: 0xB2, 3: 0xB3, 17: 0xBF})
    s.dispatch(0, EV0, pc=0x10000, pstate=0x2000_03C5, x1=5, x2=0x3000, x3=0x2020_0004)
    s.call(0, "EVENT_COMPLETE_AND_RESUME", 0x5002, ret=INVALID, note="unaligned resume")
    s.call(0, "EVENT_STATUS", EV0, ret=7, note="still running")
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x5000, x=(0xB0, 0xB1, 0xB2, 0xB3))
    s.no_dispatch(0, pc=0x5000, pstate=0x2000_03C5, x0=0xB0,
                  note="PC = resume address, PSTATE as on handler entry")
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0)
    s.call(0, "EVENT_COMPLETE_AND_RESUME", 0x5002, ret=DENIED,
           note="nothing running: DENIED before the address check")
    return s.build(
        "complete-and-resume",
        "EVENT_COMPLETE_AND_RESUME: unaligned address INVALID_PARAMETERS while running, "
        "ELR/SPSR = interrupted PC/PSTATE, PC = resume address, entry PSTATE",
        {"cpu.pc": 0x5000, "cpu.pstate": 0x2000_03C5, "cpu.elr_el1": 0x3000,
         "cpu.spsr_el1": 0x2020_0004, "cpu.x17": 0xBF, "SDEI_EVENT_STATE(0)": 3,
         "SDEI_CONTEXT(0, 19)": 0, "cpu.x0": U64_MAX - 2})


@_scenario
def _context_and_complete_denied() -> Conformance:
    s = _Script()
    s.call(0, "EVENT_CONTEXT", 0, ret=DENIED, note="no handler running")
    s.call(0, "EVENT_CONTEXT", 17, ret=DENIED)
    s.call(0, "EVENT_CONTEXT", 18, ret=INVALID, note="parameter checked first")
    s.call(0, "EVENT_CONTEXT", U64_MAX, ret=INVALID)
    s.call(0, "EVENT_COMPLETE", 0, ret=DENIED)
    s.call(0, "EVENT_COMPLETE", 1, ret=DENIED)
    s.call(0, "EVENT_COMPLETE_AND_RESUME", 0x1000, ret=DENIED)
    s.call(0, "EVENT_COMPLETE_AND_RESUME", 0x1001, ret=DENIED)
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 0, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.call(0, "EVENT_CONTEXT", 0, ret=DENIED, note="enabled but not running")
    s.call(0, "EVENT_COMPLETE", 0, ret=DENIED)
    return s.build(
        "context-complete-denied",
        "EVENT_CONTEXT (parameter checked before DENIED), COMPLETE and COMPLETE_AND_RESUME "
        "DENIED with no running handler",
        {"SDEI_EVENT_STATE(1)": 3, "cpu.pc": 0})


@_scenario
def _interrupt_bind_routing() -> Conformance:
    s = _Script()
    for intid, ret, note in ((0, INVALID, "SGI"), (15, INVALID, "SGI"),
                             (16, OUT_OF_RESOURCE, "first PPI"), (29, OUT_OF_RESOURCE, "PPI"),
                             (31, OUT_OF_RESOURCE, "last PPI"), (32, OUT_OF_RESOURCE, "SPI"),
                             (1019, OUT_OF_RESOURCE, "last SPI"), (1020, INVALID, "special"),
                             (1023, INVALID, "spurious"), (8192, INVALID, "LPI"),
                             (16 | 1 << 32, INVALID, "upper bits")):
        s.call(0, "INTERRUPT_BIND", intid, ret=ret, note=note)
    s.call(0, "INTERRUPT_RELEASE", EV0, ret=INVALID, note="nothing is bound")
    s.call(0, "INTERRUPT_RELEASE", 0x40000000, ret=INVALID)
    s.call(0, "INTERRUPT_RELEASE", EV1, ret=INVALID)
    s.call(0, "EVENT_ROUTING_SET", EV0, 0, 0, ret=INVALID, note="private event")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ROUTING_SET", EV0, 1, 0, ret=INVALID, note="registered private event")
    s.call(0, "EVENT_ROUTING_SET", EV1, 0, 0, ret=INVALID)
    s.call(0, "EVENT_ROUTING_SET", 3, 0, 0, ret=INVALID, note="unknown event")
    s.call(0, "SHARED_RESET", ret=SUCCESS, note="no shared events, no bindings")
    return s.build(
        "bind-release-routing",
        "INTERRUPT_BIND: SGI/special/LPI INVALID_PARAMETERS, PPI/SPI OUT_OF_RESOURCE (no "
        "slots); INTERRUPT_RELEASE and ROUTING_SET INVALID_PARAMETERS; SHARED_RESET",
        {"SDEI_EVENT_STATE(0)": 1})


# =============================================================================================
# Priority classes, relative mode, masking, unregister-pending, reset, signals, injection
# =============================================================================================

@_scenario
def _nested_critical() -> Conformance:
    s = _Script()
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0xA, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    _arm(s, 0, EV1, 0x20000, 0xB)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1000, x={0: 0x100, 1: 0x101, 2: 0x102, 3: 0x103, 17: 0x117})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0xA, x2=0x1000, x3=EL1H)
    s.cpu(0, pc=0x10040, x={0: 0x200, 1: 0x201, 2: 0x202, 3: 0x203, 17: 0x217},
          note="inside the normal handler")
    s.inject(0, EV1, ok=True)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0xB, x2=0x10040, x3=EL1H_DAIF,
               note="critical preempts the running normal handler")
    s.get_reg(0, "SDEI_CONTEXT(1, 0)", 0x200)
    s.get_reg(0, "SDEI_CONTEXT(1, 18)", 0x10040)
    s.get_reg(0, "SDEI_CONTEXT(1, 19)", EL1H_DAIF)
    s.get_reg(0, "SDEI_CONTEXT(0, 0)", 0x100)
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0x1000)
    s.call(0, "EVENT_CONTEXT", 0, ret=0x200, note="innermost: the critical context")
    s.call(0, "EVENT_STATUS", EV0, ret=7)
    s.call(0, "EVENT_STATUS", EV1, ret=7)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.no_dispatch(0, pc=0x20000, pstate=EL1H_DAIF, note="normal cannot preempt")
    s.inject(0, EV1, ok=True)
    s.no_dispatch(0, pc=0x20000, pstate=EL1H_DAIF, note="critical cannot preempt critical")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1111)
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1111)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x200, 0x201, 0x202, 0x203),
               note="back in the normal handler")
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0xB, x2=0x10040, x3=EL1H_DAIF,
               note="the pending critical event runs again over the normal handler")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x200, 0x201, 0x202, 0x203))
    s.no_dispatch(0, pc=0x10040, pstate=EL1H_DAIF, note="normal still running")
    s.call(0, "EVENT_CONTEXT", 1, ret=0x101, note="innermost: the normal context")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x100, 0x101, 0x102, 0x103))
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0xA, x2=0x1000, x3=EL1H,
               note="the normal signal that waited")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x100, 0x101, 0x102, 0x103))
    s.no_dispatch(0, pc=0x1000, pstate=EL1H)
    return s.build(
        "nested-critical",
        "a critical handler nested on a normal one: both contexts, innermost EVENT_CONTEXT "
        "and COMPLETE, no preemption within a class, waiting triggers run afterwards",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_STATE(1)": 3, "SDEI_CONTEXT(0, 18)": 0,
         "SDEI_CONTEXT(1, 18)": 0, "SDEI_CONTEXT(1, 19)": 0, "cpu.pc": 0x1000,
         "cpu.pstate": EL1H, "cpu.x17": 0x117})


@_scenario
def _critical_first() -> Conformance:
    s = _Script()
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 1, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 2, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.inject(0, EV1, ok=True)
    s.no_dispatch(0, pc=0, pstate=EL1H, note="masked")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1011)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.cpu(0, pc=0x4000)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=2, x2=0x4000, x3=EL1H,
               note="critical first")
    s.no_dispatch(0, pc=0x20000, pstate=EL1H_DAIF, note="no normal while critical runs")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=1, x2=0x4000, x3=EL1H)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x4000, pstate=EL1H)
    return s.build(
        "critical-first",
        "with both events pending the critical one is taken first; the normal one waits "
        "until no handler runs",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_STATE(1)": 3, "cpu.pc": 0x4000})


@_scenario
def _relative_mode() -> Conformance:
    s = _Script()
    s.call(0, "FEATURES", 1, ret=1)
    s.cpu(0, vbar_el1=0x400000)
    s.call(0, "EVENT_REGISTER", EV0, 0x800, 9, 2, 0, ret=SUCCESS, note="relative")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b10001, note="REGISTERED + RELATIVE")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0x800, note="the offset, not an address")
    s.call(0, "EVENT_STATUS", EV0, ret=1, note="RELATIVE is not part of the status")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b11011)
    s.cpu(0, vbar_el1=0x600000, pc=0x1000, note="VBAR_EL1 moved after REGISTER")
    s.dispatch(0, EV0, pc=0x600800, pstate=EL1H_DAIF, x1=9, x2=0x1000, x3=EL1H,
               note="VBAR_EL1 at dispatch + offset")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b10111)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.cpu(0, vbar_el1=0xFFFF_FFFF_FFFF_F000)
    s.call(0, "EVENT_REGISTER", EV1, 0x2000, 3, 3, 0, ret=SUCCESS, note="relative, RM_PE")
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.inject(0, EV1, ok=True)
    s.dispatch(0, EV1, pc=0x1000, pstate=EL1H_DAIF, x1=3, x2=0x1000, x3=EL1H,
               note="VBAR_EL1 + offset wraps modulo 2^64")
    s.call(0, "EVENT_UNREGISTER", EV0, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0, note="RELATIVE cleared with the registration")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0)
    return s.build(
        "relative-mode",
        "REGISTER relative mode: RELATIVE bit, offset stored, entry = VBAR_EL1 at dispatch + "
        "offset (mod 2^64), cleared by UNREGISTER",
        {"SDEI_EVENT_STATE(1)": 0b10111, "SDEI_EVENT_EP_ADDR(1)": 0x2000,
         "SDEI_EVENT_EP_ARG(1)": 3, "SDEI_CONTEXT(1, 18)": 0x1000, "cpu.pc": 0x1000,
         "cpu.vbar_el1": 0xFFFF_FFFF_FFFF_F000})


@_scenario
def _masked_vcpu() -> Conformance:
    s = _Script(2)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0x33, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(1, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="vCPU 1 signals vCPU 0")
    s.no_dispatch(0, pc=0, pstate=EL1H, note="vCPU 0 masked")
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.get_reg(1, "SDEI_VCPU_STATE", 1)
    s.call(1, "PE_UNMASK", ret=SUCCESS, note="unmasks vCPU 1 only")
    s.get_reg(1, "SDEI_VCPU_STATE", 0)
    s.no_dispatch(0, pc=0, pstate=EL1H)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.cpu(0, pc=0x700)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x33, x2=0x700, x3=EL1H)
    s.call(0, "PE_MASK", ret=1, note="mask from inside the handler")
    s.call(1, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x700, pstate=EL1H, note="masked: stays pending")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x33, x2=0x700, x3=EL1H)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    return s.build(
        "masked-vcpu",
        "per-vCPU mask: a signal to a masked vCPU stays pending, unmasking another vCPU does "
        "not help, PE_MASK inside a handler holds the retrigger until PE_UNMASK",
        {"vcpu0:SDEI_VCPU_STATE": 0, "vcpu1:SDEI_VCPU_STATE": 0, "SDEI_EVENT_STATE(0)": 3,
         "vcpu1:SDEI_EVENT_STATE(0)": 0, "cpu.pc": 0x700})


@_scenario
def _unregister_pending() -> Conformance:
    s = _Script()
    _arm(s, 0, EV0, 0x10000, 0x42)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1000, x={0: 0x10, 1: 0x11, 2: 0x12, 3: 0x13})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x42, x2=0x1000, x3=EL1H)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="a trigger pending during the run")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1111)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b100, note="pending trigger cleared")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0, note="entry point cleared at once")
    s.get_reg(0, "SDEI_EVENT_EP_ARG(0)", 0)
    s.call(0, "EVENT_STATUS", EV0, ret=4)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING, note="again: PENDING")
    s.call(0, "EVENT_ENABLE", EV0, ret=DENIED)
    s.call(0, "EVENT_DISABLE", EV0, ret=DENIED)
    s.call(0, "EVENT_REGISTER", EV0, 0x20000, 1, 0, 0, ret=DENIED)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=INVALID, note="not registered on the target")
    s.inject(0, EV0, ok=False)
    s.call(0, "EVENT_CONTEXT", 0, ret=0x10, note="the context is still readable")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x10, 0x11, 0x12, 0x13))
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.call(0, "EVENT_REGISTER", EV0, 0x20000, 1, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.no_dispatch(0, pc=0x1000, pstate=EL1H, note="no stale trigger")
    return s.build(
        "unregister-pending",
        "UNREGISTER while running: PENDING, state (0,0,1), entry point and pending trigger "
        "cleared, calls DENIED, context readable, unregistered on COMPLETE",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_EP_ADDR(0)": 0x20000, "SDEI_EVENT_EP_ARG(0)": 1,
         "SDEI_CONTEXT(0, 0)": 0})


@_scenario
def _private_reset() -> Conformance:
    s = _Script(2)
    _arm(s, 0, EV0, 0x10000, 1)
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 2, 0, 0, ret=SUCCESS)
    s.call(1, "EVENT_REGISTER", EV0, 0x30000, 3, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x900, x={0: 0x90, 1: 0x91, 2: 0x92, 3: 0x93})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=1, x2=0x900, x3=EL1H)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.inject(0, EV1, ok=True, note="registered, disabled: pending")
    s.call(0, "PRIVATE_RESET", ret=DENIED, note="a handler is running")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b100, note="unregister-pending")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0, note="unregistered, pending cleared")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(1)", 0)
    s.get_reg(0, "SDEI_EVENT_EP_ARG(1)", 0)
    s.call(1, "EVENT_STATUS", EV0, ret=1, note="vCPU 1 untouched")
    s.call(0, "PRIVATE_RESET", ret=DENIED, note="still running")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x90, 0x91, 0x92, 0x93))
    s.call(0, "PRIVATE_RESET", ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.call(0, "SHARED_RESET", ret=SUCCESS)
    s.call(1, "PRIVATE_RESET", ret=SUCCESS)
    s.call(1, "EVENT_STATUS", EV0, ret=0)
    return s.build(
        "private-reset",
        "PRIVATE_RESET: DENIED with a running handler (left unregister-pending), other events "
        "and pending triggers cleared, only the calling vCPU, mask unchanged",
        {"vcpu0:SDEI_EVENT_STATE(0)": 0, "vcpu0:SDEI_EVENT_STATE(1)": 0,
         "vcpu1:SDEI_EVENT_STATE(0)": 0, "vcpu1:SDEI_EVENT_EP_ADDR(0)": 0,
         "vcpu0:SDEI_VCPU_STATE": 0, "vcpu1:SDEI_VCPU_STATE": 1})


@_scenario
def _signal_by_mpidr() -> Conformance:
    s = _Script(17)
    _arm(s, 16, EV0, 0x16000, 16)
    _arm(s, 1, EV0, 0x11000, 1)
    s.call(0, "EVENT_SIGNAL", EV0, 0x100, ret=SUCCESS, note="Aff1=1, Aff0=0: vCPU 16")
    s.get_reg(16, "SDEI_EVENT_STATE(0)", 0b1011)
    s.get_reg(1, "SDEI_EVENT_STATE(0)", 0b11, note="vCPU 1 (Aff0=1) not signalled")
    s.dispatch(16, EV0, pc=0x16000, pstate=EL1H_DAIF, x1=16, x2=0, x3=EL1H)
    s.call(0, "EVENT_SIGNAL", EV0, 0x8000_0001, ret=SUCCESS, note="RES1 bit 31 ignored")
    s.call(0, "EVENT_SIGNAL", EV0, 0x4000_0001, ret=SUCCESS, note="U bit ignored; merges")
    s.call(0, "EVENT_SIGNAL", EV0, 0x11, ret=INVALID, note="Aff0=17: no such vCPU")
    s.call(0, "EVENT_SIGNAL", EV0, 0x200, ret=INVALID, note="vCPU 32 does not exist")
    s.call(0, "EVENT_SIGNAL", EV0, 1 << 32 | 1, ret=INVALID, note="Aff3=1")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=INVALID, note="vCPU 0 has no registration")
    s.call(0, "EVENT_SIGNAL", EV1, 1, ret=INVALID, note="ASYNC_PF is not signalable")
    s.call(0, "EVENT_SIGNAL", 1 << 32, 1, ret=INVALID, note="event upper bits")
    s.dispatch(1, EV0, pc=0x11000, pstate=EL1H_DAIF, x1=1, x2=0, x3=EL1H)
    s.call(1, "EVENT_SIGNAL", EV0, 1, ret=SUCCESS, note="to self, while running")
    s.complete(1, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.dispatch(1, EV0, pc=0x11000, pstate=EL1H_DAIF, x1=1, x2=0, x3=EL1H)
    return s.build(
        "signal-by-mpidr",
        "EVENT_SIGNAL by target MPIDR across vCPUs (Aff1 routing, bits 31/30 ignored, Aff3, "
        "missing vCPU or registration, non-signalable event), signal to self",
        {"vcpu1:SDEI_EVENT_STATE(0)": 7, "vcpu16:SDEI_EVENT_STATE(0)": 7,
         "vcpu0:SDEI_EVENT_STATE(0)": 0, "vcpu1:cpu.pc": 0x11000, "vcpu16:cpu.pc": 0x16000,
         "vcpu16:SDEI_CONTEXT(0, 19)": EL1H})


@_scenario
def _inject() -> Conformance:
    s = _Script(2)
    s.inject(0, EV1, ok=False, note="not registered")
    s.inject(0, 0x40000000, ok=False, note="unknown event")
    s.inject(0, 1 << 32, ok=False, note="upper bits")
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 0x77, 0, 0, ret=SUCCESS)
    s.inject(1, EV1, ok=False, note="registered on vCPU 0 only")
    s.inject(0, EV1, ok=True)
    s.inject(0, EV1, ok=True, note="merges into the pending trigger")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1001)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0x66, 0, 0, ret=SUCCESS)
    s.inject(0, EV0, ok=True, note="the hypervisor may inject event 0")
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.cpu(0, pc=0x5554)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0x77, x2=0x5554, x3=EL1H)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x66, x2=0x5554, x3=EL1H)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x5554, pstate=EL1H, note="one dispatch per trigger")
    return s.build(
        "inject",
        "hypervisor injection: refused for unknown or unregistered events (per vCPU), "
        "pending while disabled, merging, event 0 injectable",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_STATE(1)": 3, "vcpu1:SDEI_EVENT_STATE(1)": 0})


@_scenario
def _disable_while_running() -> Conformance:
    s = _Script()
    _arm(s, 0, EV0, 0x10000, 0x55)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x2220)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x55, x2=0x2220, x3=EL1H)
    s.call(0, "EVENT_DISABLE", EV0, ret=SUCCESS, note="no effect on the running handler")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1101, note="registered, running, pending")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1001)
    s.no_dispatch(0, pc=0x2220, pstate=EL1H, note="disabled: the trigger waits")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x55, x2=0x2220, x3=EL1H)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS, note="enable while running: no change")
    s.call(0, "EVENT_STATUS", EV0, ret=7)
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x3330, x=(0, 0, 0, 0))
    return s.build(
        "disable-while-running",
        "DISABLE and ENABLE inside a handler: the running handler goes on, a trigger that "
        "arrives while disabled waits for ENABLE",
        {"SDEI_EVENT_STATE(0)": 3, "cpu.pc": 0x3330, "cpu.elr_el1": 0x2220,
         "cpu.spsr_el1": EL1H, "cpu.pstate": EL1H_DAIF})


@_scenario
def _aarch32_and_el2() -> Conformance:
    s = _Script()
    _arm(s, 0, EV0, 0x10000, 0x32)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x8000, pstate=0x9, note="the guest is at EL2h (nested virtualization)")
    s.no_dispatch(0, pc=0x8000, pstate=0x9, note="never save a context that returns to EL2")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011, note="still pending")
    s.cpu(0, pc=0x8000, pstate=0xD, note="EL3h")
    s.no_dispatch(0, pc=0x8000, pstate=0xD)
    # AArch32 User with N, Z and T (bit 5): an AArch32 SPSR layout. NZCV keep their place;
    # T has no AArch64 meaning (bit 5 is RES0 there) and is dropped.
    s.cpu(0, pc=0x8002, pstate=0xC000_0030)
    s.dispatch(0, EV0, pc=0x10000, pstate=0xC000_03C5, x1=0x32, x2=0x8002, x3=0xC000_0030,
               note="EL1h, DAIF set, NZCV kept, AArch32 T dropped")
    s.get_reg(0, "SDEI_CONTEXT(0, 19)", 0xC000_0030)
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x9000, x=(0, 0, 0, 0))
    return s.build(
        "aarch32-and-el2",
        "no dispatch while the guest is at EL2/EL3 (event stays pending); interrupting "
        "AArch32 User: entry PSTATE, COMPLETE_AND_RESUME ELR/SPSR",
        {"cpu.pc": 0x9000, "cpu.pstate": 0xC000_03C5, "cpu.elr_el1": 0x8002,
         "cpu.spsr_el1": 0xC000_0030, "SDEI_EVENT_STATE(0)": 3})


# =============================================================================================
# The register ABI: set/get of every register, checks, unknown ids, the feature bitmap
# =============================================================================================

def _all_sdei_reset(s: _Script, v: int) -> None:
    for name in SDEI_IDS:
        s.get_reg(v, name, 1 if name == "SDEI_VCPU_STATE" else 0)


@_scenario
def _reset_values() -> Conformance:
    s = _Script(2)
    _all_sdei_reset(s, 0)
    _all_sdei_reset(s, 1)
    return s.build(
        "reset-values",
        "every one of the 47 SDEI registers reads its reset value on two fresh vCPUs "
        "(SDEI_VCPU_STATE 1, all others 0)",
        {"vcpu0:SDEI_VCPU_STATE": 1, "vcpu1:SDEI_VCPU_STATE": 1})


@_scenario
def _set_reg_state() -> Conformance:
    s = _Script()
    st = "SDEI_VCPU_STATE"
    s.set_reg(0, st, 2, errno="EINVAL", note="RES0 bit 1")
    s.set_reg(0, st, 1 << 63, errno="EINVAL", note="RES0 bit 63")
    s.set_reg(0, st, 3, errno="EINVAL")
    s.get_reg(0, st, 1, note="unchanged")
    s.set_reg(0, st, 0)
    s.get_reg(0, st, 0)
    s.set_reg(0, st, 2, errno="EINVAL")
    s.get_reg(0, st, 0, note="unchanged")
    es = "SDEI_EVENT_STATE(0)"
    for value, note in ((0b010, "ENABLED without REGISTERED"), (0b110, "(0,1,1) undefined"),
                        (0b1000, "PENDING without REGISTERED"),
                        (0b1100, "PENDING on unregister-pending"),
                        (0b10000, "RELATIVE without REGISTERED"),
                        (0b10100, "RELATIVE on unregister-pending"), (0b100000, "RES0 bit 5"),
                        (1 << 63 | 1, "RES0 bit 63")):
        s.set_reg(0, es, value, errno="EINVAL", note=note)
    s.get_reg(0, es, 0, note="unchanged")
    for value in (0b001, 0b011, 0b101, 0b111, 0b100, 0b1001, 0b11011, 0b11111):
        s.set_reg(0, es, value)
        s.get_reg(0, es, value)
    s.set_reg(0, es, 0b100011, errno="EINVAL")
    s.get_reg(0, es, 0b11111, note="unchanged")
    s.set_reg(0, es, 0b1011)
    s.set_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0x4_0000)
    s.set_reg(0, "SDEI_EVENT_EP_ARG(0)", 0x1234)
    s.set_reg(0, "SDEI_EVENT_STATE(1)", 0b10, errno="EINVAL")
    s.set_reg(0, "SDEI_EVENT_STATE(1)", 0b1011, note="enabled with a trigger pending")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1011)
    s.set_reg(0, "SDEI_EVENT_EP_ADDR(1)", 0x5_0000)
    s.cpu(0, pc=0x6000)
    s.dispatch(0, EV1, pc=0x5_0000, pstate=EL1H_DAIF, x1=0, x2=0x6000, x3=EL1H,
               note="the state written by SET_ONE_REG drives the model")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.dispatch(0, EV0, pc=0x4_0000, pstate=EL1H_DAIF, x1=0x1234, x2=0x6000, x3=EL1H)
    s.call(0, "EVENT_STATUS", EV0, ret=7)
    return s.build(
        "set-reg-state",
        "SET_ONE_REG of SDEI_VCPU_STATE and SDEI_EVENT_STATE: RES0 bits and undefined states "
        "EINVAL (value unchanged), every legal state accepted, written state dispatches",
        {"SDEI_VCPU_STATE": 0, "SDEI_EVENT_STATE(0)": 7, "SDEI_EVENT_STATE(1)": 3,
         "SDEI_CONTEXT(0, 18)": 0x6000})


@_scenario
def _set_reg_entry_points() -> Conformance:
    s = _Script()
    for i in range(NR_EVENTS):
        s.set_reg(0, f"SDEI_EVENT_STATE({i})", 1)
        addr, arg = f"SDEI_EVENT_EP_ADDR({i})", f"SDEI_EVENT_EP_ARG({i})"
        s.set_reg(0, addr, 0x10001, errno="EINVAL", note="not 4-byte aligned")
        s.set_reg(0, addr, 0x10002, errno="EINVAL")
        s.get_reg(0, addr, 0, note="unchanged")
        s.set_reg(0, addr, 0xFFFF_FFFF_FFFF_FFFC - 0x1000 * i)
        s.set_reg(0, addr, 3, errno="EINVAL")
        s.get_reg(0, addr, 0xFFFF_FFFF_FFFF_FFFC - 0x1000 * i, note="unchanged")
        s.set_reg(0, arg, U64_MAX - i, note="any value")
        s.get_reg(0, arg, U64_MAX - i)
    s.call(0, "EVENT_STATUS", EV0, ret=1)
    s.call(0, "EVENT_REGISTER", EV1, 0x8000, 0, 0, 0, ret=DENIED, note="written registered")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.dispatch(0, EV0, pc=0xFFFF_FFFF_FFFF_FFFC, pstate=EL1H_DAIF, x1=U64_MAX, x2=0, x3=EL1H)
    s.call(0, "EVENT_UNREGISTER", EV1, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(1)", 0)
    s.get_reg(0, "SDEI_EVENT_EP_ARG(1)", 0)
    return s.build(
        "set-reg-entry-points",
        "SET_ONE_REG of SDEI_EVENT_EP_ADDR (unaligned EINVAL, unchanged after) and "
        "SDEI_EVENT_EP_ARG (any value) for both events; written values used by dispatch",
        {"SDEI_EVENT_STATE(0)": 7, "SDEI_EVENT_EP_ADDR(0)": 0xFFFF_FFFF_FFFF_FFFC,
         "SDEI_EVENT_EP_ARG(0)": U64_MAX, "SDEI_EVENT_STATE(1)": 0,
         "cpu.pc": 0xFFFF_FFFF_FFFF_FFFC})


def _ctx_value(c: int, r: int) -> int:
    """A distinct test value for SDEI_CONTEXT(c, r), r < 19 (x0..x17 and PC)."""
    return 0xC0DE_0000_0000_0000 | c << 16 | r << 4


@_scenario
def _set_reg_contexts() -> Conformance:
    s = _Script()
    s.set_reg(0, "SDEI_EVENT_STATE(0)", 0b101, note="a normal handler is running")
    s.set_reg(0, "SDEI_EVENT_STATE(1)", 0b101, note="a critical handler is running")
    for i in range(2):  # a registered event has an entry point: restore refuses 0
        s.set_reg(0, f"SDEI_EVENT_EP_ADDR({i})", 0x10000 * (i + 1))
    pstates = {0: 0x6000_0004, 1: 0x8000_0005}
    for c in range(2):
        for r in range(19):
            s.set_reg(0, f"SDEI_CONTEXT({c}, {r})", _ctx_value(c, r))
        s.set_reg(0, f"SDEI_CONTEXT({c}, 19)", pstates[c])
    for c in range(2):
        for r in range(19):
            s.get_reg(0, f"SDEI_CONTEXT({c}, {r})", _ctx_value(c, r))
        s.get_reg(0, f"SDEI_CONTEXT({c}, 19)", pstates[c])
    ps = "SDEI_CONTEXT(0, 19)"
    for value, note in ((0x8, "EL2t"), (0x9, "EL2h"), (0xC, "EL3t"), (0xD, "EL3h"),
                        (0x1, "reserved AArch64 mode"), (0x13, "AArch32 Supervisor"),
                        (0x1A, "AArch32 Hyp"), (0x3C9, "EL2h with DAIF")):
        s.set_reg(0, ps, value, errno="EINVAL", note=note)
    s.get_reg(0, ps, 0x6000_0004, note="unchanged")
    for value in (0x0, 0x4, 0x10, 0xF000_03C5, 0xFFFF_FFFF_FFFF_FFE5):
        s.set_reg(0, ps, value, note="mode checked, other bits stored as given")
        s.get_reg(0, ps, value)
    s.set_reg(0, ps, 0x6000_0004)
    s.set_reg(0, "SDEI_CONTEXT(1, 19)", 0x9, errno="EINVAL")
    s.call(0, "EVENT_CONTEXT", 5, ret=_ctx_value(1, 5) - (1 << 64),
           note="innermost = critical")
    s.complete(0, "EVENT_COMPLETE", 0,
               x=(_ctx_value(1, 0), _ctx_value(1, 1), _ctx_value(1, 2), _ctx_value(1, 3)))
    s.no_dispatch(0, pc=_ctx_value(1, 18), pstate=0x8000_0005)
    s.call(0, "EVENT_CONTEXT", 17, ret=_ctx_value(0, 17) - (1 << 64))
    s.complete(0, "EVENT_COMPLETE", 0,
               x=(_ctx_value(0, 0), _ctx_value(0, 1), _ctx_value(0, 2), _ctx_value(0, 3)))
    s.no_dispatch(0, pc=_ctx_value(0, 18), pstate=0x6000_0004)
    return s.build(
        "set-reg-contexts",
        "SET/GET of all 40 SDEI_CONTEXT registers; PSTATE modes EL2/EL3/AArch32 non-User "
        "EINVAL, other bits stored; written contexts are what CONTEXT and COMPLETE use",
        {"SDEI_EVENT_STATE(0)": 1, "SDEI_EVENT_STATE(1)": 1, "SDEI_EVENT_EP_ADDR(0)": 0x10000,
         "SDEI_EVENT_EP_ADDR(1)": 0x20000, "SDEI_CONTEXT(0, 18)": 0,
         "SDEI_CONTEXT(1, 19)": 0, "cpu.x17": _ctx_value(0, 17), "cpu.x16": _ctx_value(0, 16),
         "cpu.pc": _ctx_value(0, 18), "cpu.pstate": 0x6000_0004})


@_scenario
def _unknown_ids() -> Conformance:
    s = _Script()
    unknown = (
        (FW | 0x101, "gap after SDEI_VCPU_STATE"),
        (FW | 0x112, "SDEI_EVENT_STATE(2): no third event"),
        (FW | 0x124, "SDEI_EVENT_EP_ADDR(2)"),
        (FW | 0x154, "SDEI_CONTEXT(0, 20)"),
        (FW | 0x174, "SDEI_CONTEXT(1, 20)"),
        (FW | 0x180, "SDEI_CONTEXT(2, 0): no third class"),
        (FW | 0x1FF, "end of the SDEI block"),
        (FW | 0x4, "firmware regno 4"),
        (U32_SIZE_FW | 0x100, "SDEI_VCPU_STATE with size U32"),
        (U128_SIZE_FW | 0x110, "SDEI_EVENT_STATE(0) with size U128"),
        (U32_SIZE_FW | 0x0, "PSCI_VERSION with size U32"),
        (BMAP | 0x4, "bitmap regno 4"),
    )
    for reg_id, note in unknown:
        s.get_reg(0, reg_id, errno="ENOENT", note=note)
        s.set_reg(0, reg_id, 0, errno="ENOENT", note=note)
    s.get_reg(0, "SDEI_VCPU_STATE", 1, note="nothing changed")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0)
    return s.build(
        "unknown-ids",
        "GET/SET of ids the vCPU does not list (gaps in the SDEI block, absent events and "
        "classes, other sizes, firmware and bitmap regnos past the end): ENOENT",
        {"SDEI_VCPU_STATE": 1})


@_scenario
def _feature_gate_off() -> Conformance:
    s = _Script()
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1, note="SDEI (bit 1) off before the first run")
    s.get_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1)
    s.call(0, "VERSION", ret=NOT_SUPPORTED)
    s.call(0, "FEATURES", 1, ret=NOT_SUPPORTED)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 0, 0, ret=NOT_SUPPORTED)
    s.call(0, "EVENT_STATUS", EV0, ret=NOT_SUPPORTED)
    s.call(0, "PE_UNMASK", ret=NOT_SUPPORTED)
    s.call(0, "PRIVATE_RESET", ret=NOT_SUPPORTED)
    s.call(0, "EVENT_COMPLETE", 0, ret=NOT_SUPPORTED)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0, note="nothing changed")
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x3, errno="EBUSY", note="the VM has run")
    s.get_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1)
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1, note="writing the same value is allowed")
    return s.build(
        "feature-gate-off",
        "KVM_REG_ARM_STD_BMAP bit 1 clear: every SDEI call NOT_SUPPORTED and nothing changes; "
        "turning it back on after the first run EBUSY",
        {"KVM_REG_ARM_STD_BMAP": 0x1, "SDEI_VCPU_STATE": 1})


PSCI_1_1: Final = 0x10001
"""KVM_ARM_PSCI_1_1 = PSCI_VERSION(1, 1): what the default simulated host (6.12 + SDEI) has."""


@_scenario
def _firmware_registers() -> Conformance:
    s = _Script(2)
    # The default simulated host: Linux 6.12 on QEMU -cpu max (measured in the lab) plus the
    # SDEI ABI; it has no VENDOR_HYP_BMAP_2 (6.15+).
    for v, (name, value) in enumerate((("KVM_REG_ARM_PSCI_VERSION", PSCI_1_1),
                                       ("KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1", 2),
                                       ("KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2", 0),
                                       ("KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3", 0),
                                       ("KVM_REG_ARM_STD_BMAP", 0x3),
                                       ("KVM_REG_ARM_STD_HYP_BMAP", 0x1),
                                       ("KVM_REG_ARM_VENDOR_HYP_BMAP", 0x3))):
        s.get_reg(v % 2, name, value)
    s.get_reg(0, "KVM_REG_ARM_VENDOR_HYP_BMAP_2", errno="ENOENT", note="a 6.15+ register")
    s.set_reg(0, "KVM_REG_ARM_VENDOR_HYP_BMAP_2", 0, errno="ENOENT")
    psci = "KVM_REG_ARM_PSCI_VERSION"
    s.set_reg(1, psci, 0x10000, note="PSCI 1.0, through vCPU 1")
    s.get_reg(0, psci, 0x10000, note="VM-wide")
    s.set_reg(0, psci, 0x2, note="PSCI 0.2")
    s.set_reg(0, psci, 0x1, errno="EINVAL", note="0.1 on a PSCI_0_2 vCPU")
    s.set_reg(0, psci, 0x10002, errno="EINVAL", note="1.2 is newer than the host's 1.1")
    s.set_reg(0, psci, 0x30000, errno="EINVAL", note="no such version")
    s.get_reg(1, psci, 0x2, note="unchanged")
    wa1, wa2, wa3 = (f"KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_{n}" for n in (1, 2, 3))
    s.set_reg(0, wa1, 1, note="AVAIL on a NOT_REQUIRED host: at least as safe")
    s.get_reg(0, wa1, 2, note="a check only: nothing stored")
    s.set_reg(0, wa1, 3, errno="EINVAL", note="undefined level")
    s.set_reg(0, wa1, 0x12, errno="EINVAL", note="bits above the level field")
    s.set_reg(0, wa2, 0, note="NOT_AVAIL")
    s.set_reg(0, wa2, 1, note="UNKNOWN narrows to NOT_AVAIL")
    s.set_reg(0, wa2, 3, errno="EINVAL", note="NOT_REQUIRED: the host is NOT_AVAIL")
    s.set_reg(0, wa2, 0x10, errno="EINVAL", note="ENABLED without AVAIL")
    s.set_reg(0, wa3, 0)
    s.set_reg(0, wa3, 1, errno="EINVAL", note="AVAIL: the host is NOT_AVAIL")
    s.call(0, "VERSION", ret=VERSION_1_1_KVM, note="the VM runs")
    s.set_reg(1, psci, PSCI_1_1, note="PSCI_VERSION has no run-once lock")
    s.get_reg(0, psci, PSCI_1_1)
    return s.build(
        "firmware-registers",
        "every upstream firmware register read on the default host; PSCI_VERSION VM-wide "
        "and checked; WORKAROUND writes are checks (never stored); absent registers ENOENT",
        {"KVM_REG_ARM_PSCI_VERSION": PSCI_1_1, "vcpu1:KVM_REG_ARM_PSCI_VERSION": PSCI_1_1,
         "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1": 2, "KVM_REG_ARM_STD_BMAP": 0x3})


@_scenario
def _bitmap_ebusy() -> Conformance:
    s = _Script(2)
    std, hyp, vendor = "KVM_REG_ARM_STD_BMAP", "KVM_REG_ARM_STD_HYP_BMAP", \
        "KVM_REG_ARM_VENDOR_HYP_BMAP"
    s.set_reg(0, std, 0x3, note="same value")
    s.set_reg(1, hyp, 0, note="PV time off, before the first run")
    s.get_reg(0, hyp, 0, note="VM-wide")
    s.set_reg(0, vendor, 0x1)
    s.set_reg(0, std, 0x4, errno="EINVAL", note="a bit the host does not know")
    s.set_reg(0, hyp, 0x2, errno="EINVAL")
    s.no_dispatch(1, pc=0, pstate=EL1H, note="a dispatch check is a run")
    s.set_reg(0, std, 0x1, errno="EBUSY", note="changed after the first run")
    s.set_reg(1, hyp, 0x1, errno="EBUSY")
    s.set_reg(0, vendor, 0x3, errno="EBUSY")
    s.set_reg(0, std, 0x4, errno="EINVAL", note="unknown bits are EINVAL before EBUSY")
    s.set_reg(0, std, 0x3, note="the same value is accepted")
    s.set_reg(1, vendor, 0x1)
    s.get_reg(1, std, 0x3)
    s.get_reg(1, hyp, 0)
    s.get_reg(0, vendor, 0x1)
    s.call(0, "VERSION", ret=VERSION_1_1_KVM, note="SDEI still on")
    s.migrate(note="the destination VM has not run yet")
    s.get_reg(1, hyp, 0, note="restored")
    s.get_reg(1, vendor, 0x1)
    s.set_reg(0, hyp, 0x1, note="writable again until the destination runs")
    s.call(1, "PE_UNMASK", ret=SUCCESS)
    s.set_reg(0, hyp, 0x0, errno="EBUSY")
    return s.build(
        "bitmap-ebusy",
        "feature bitmaps: VM-wide, unknown bits EINVAL, any change after the first run EBUSY "
        "(the same value allowed), writable on a migration destination until it runs",
        {"KVM_REG_ARM_STD_BMAP": 0x3, "vcpu1:KVM_REG_ARM_STD_HYP_BMAP": 0x1,
         "KVM_REG_ARM_VENDOR_HYP_BMAP": 0x1, "vcpu1:SDEI_VCPU_STATE": 0})


# =============================================================================================
# Migration in the middle of a handler
# =============================================================================================

@_scenario
def _migrate_normal_handler() -> Conformance:
    s = _Script(2)
    _arm(s, 1, EV0, 0x10000, 0x77)
    s.call(0, "EVENT_SIGNAL", EV0, 1, ret=SUCCESS)
    s.cpu(1, pc=0x8000, pstate=0x8000_0005, sp=0x9000, vbar_el1=0x100000, elr_el1=0xE1,
          spsr_el1=0x3C5, x={0: 0x50, 1: 0x51, 2: 0x52, 3: 0x53, 17: 0x5F, 30: 0x3030})
    s.dispatch(1, EV0, pc=0x10000, pstate=0x8000_03C5, x1=0x77, x2=0x8000, x3=0x8000_0005)
    s.migrate(note="the normal handler is running on vCPU 1")
    s.get_reg(1, "SDEI_EVENT_STATE(0)", 7)
    s.get_reg(1, "SDEI_CONTEXT(0, 0)", 0x50)
    s.get_reg(1, "SDEI_CONTEXT(0, 18)", 0x8000)
    s.get_reg(1, "SDEI_CONTEXT(0, 19)", 0x8000_0005)
    s.get_reg(1, "SDEI_EVENT_EP_ARG(0)", 0x77)
    s.call(1, "EVENT_CONTEXT", 3, ret=0x53)
    s.complete(1, "EVENT_COMPLETE", 0, x=(0x50, 0x51, 0x52, 0x53))
    s.no_dispatch(1, pc=0x8000, pstate=0x8000_0005)
    s.call(0, "EVENT_SIGNAL", EV0, 1, ret=SUCCESS, note="the registration survived")
    s.dispatch(1, EV0, pc=0x10000, pstate=0x8000_03C5, x1=0x77, x2=0x8000, x3=0x8000_0005)
    return s.build(
        "migrate-normal-handler",
        "migration while a normal handler runs: state, context, CPU registers (SP, VBAR, "
        "ELR, SPSR, x30) survive; CONTEXT and COMPLETE work on the destination",
        {"vcpu1:SDEI_EVENT_STATE(0)": 7, "vcpu1:SDEI_VCPU_STATE": 0,
         "vcpu0:SDEI_VCPU_STATE": 1, "vcpu1:cpu.x17": 0x5F, "vcpu1:cpu.x30": 0x3030,
         "vcpu1:cpu.sp": 0x9000, "vcpu1:cpu.vbar_el1": 0x100000, "vcpu1:cpu.elr_el1": 0xE1,
         "vcpu1:cpu.spsr_el1": 0x3C5, "vcpu1:SDEI_CONTEXT(0, 18)": 0x8000})


@_scenario
def _migrate_nested() -> Conformance:
    s = _Script()
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0xA, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    _arm(s, 0, EV1, 0x20000, 0xB)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1000, x={0: 0x100, 1: 0x101, 2: 0x102, 3: 0x103})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0xA, x2=0x1000, x3=EL1H)
    s.cpu(0, pc=0x10040, x={0: 0x200, 1: 0x201, 2: 0x202, 3: 0x203})
    s.inject(0, EV1, ok=True)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0xB, x2=0x10040, x3=EL1H_DAIF)
    s.migrate(note="both handlers running")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 7)
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 7)
    s.get_reg(0, "SDEI_CONTEXT(1, 18)", 0x10040)
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0x1000)
    s.call(0, "EVENT_CONTEXT", 2, ret=0x202)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x200, 0x201, 0x202, 0x203))
    s.migrate(note="back in the normal handler")
    s.no_dispatch(0, pc=0x10040, pstate=EL1H_DAIF)
    s.call(0, "EVENT_CONTEXT", 2, ret=0x102)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x100, 0x101, 0x102, 0x103))
    s.no_dispatch(0, pc=0x1000, pstate=EL1H)
    return s.build(
        "migrate-nested",
        "migration with a critical handler nested on a normal one, and again after the "
        "critical one completed: both contexts restored on the destination",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_STATE(1)": 3, "SDEI_CONTEXT(0, 18)": 0,
         "SDEI_CONTEXT(1, 18)": 0, "SDEI_VCPU_STATE": 0, "cpu.pc": 0x1000})


@_scenario
def _migrate_unregister_pending() -> Conformance:
    s = _Script()
    _arm(s, 0, EV0, 0x10000, 0x44)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1100, x={0: 0x40, 1: 0x41, 2: 0x42, 3: 0x43})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x44, x2=0x1100, x3=EL1H)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING)
    s.migrate(note="unregister-pending")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b100)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0)
    s.call(0, "EVENT_STATUS", EV0, ret=4)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING)
    s.call(0, "EVENT_CONTEXT", 1, ret=0x41)
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x7000, x=(0x40, 0x41, 0x42, 0x43))
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=INVALID)
    return s.build(
        "migrate-unregister-pending",
        "migration of an unregister-pending handler: state (0,0,1) and context survive, "
        "UNREGISTER still PENDING, COMPLETE_AND_RESUME finishes the unregistration",
        {"SDEI_EVENT_STATE(0)": 0, "SDEI_CONTEXT(0, 0)": 0, "cpu.pc": 0x7000,
         "cpu.elr_el1": 0x1100, "cpu.spsr_el1": EL1H})


@_scenario
def _migrate_relative() -> Conformance:
    s = _Script()
    s.cpu(0, vbar_el1=0x200000)
    s.call(0, "EVENT_REGISTER", EV0, 0xA00, 0x99, 2, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="masked: pending")
    s.migrate(note="relative, pending, masked")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b11011)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0xA00)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.cpu(0, pc=0x1230)
    s.dispatch(0, EV0, pc=0x200A00, pstate=EL1H_DAIF, x1=0x99, x2=0x1230, x3=EL1H,
               note="VBAR_EL1 came across with the core registers")
    s.migrate(note="relative handler running")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b10111)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.cpu(0, vbar_el1=0x300000)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x300A00, pstate=EL1H_DAIF, x1=0x99, x2=0x1230, x3=EL1H)
    return s.build(
        "migrate-relative",
        "migration of a relative-mode event while pending and while its handler runs: "
        "RELATIVE, offset and VBAR_EL1 survive; entry = VBAR_EL1 at dispatch + offset",
        {"SDEI_EVENT_STATE(0)": 0b10111, "SDEI_EVENT_EP_ADDR(0)": 0xA00,
         "cpu.vbar_el1": 0x300000, "cpu.pc": 0x300A00})


@_scenario
def _migrate_masked() -> Conformance:
    s = _Script(2)
    _arm(s, 0, EV0, 0x10000, 0x21)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x4440)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x21, x2=0x4440, x3=EL1H)
    s.call(0, "PE_MASK", ret=1, note="masked inside the handler")
    s.call(1, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.migrate(note="masked vCPU in a handler with a trigger pending")
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1111)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x4440, pstate=EL1H, note="still masked")
    s.migrate(note="masked, pending, idle")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.call(0, "PE_MASK", ret=0, note="the mask came across")
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x21, x2=0x4440, x3=EL1H)
    return s.build(
        "migrate-masked",
        "migration of a masked vCPU inside a handler and then idle with a pending trigger: "
        "mask and PENDING survive, delivery only after PE_UNMASK",
        {"vcpu0:SDEI_VCPU_STATE": 0, "vcpu0:SDEI_EVENT_STATE(0)": 7,
         "vcpu1:SDEI_VCPU_STATE": 1})


@_scenario
def _migrate_pending_critical() -> Conformance:
    s = _Script()
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 0x5A, 0, 0, ret=SUCCESS)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.inject(0, EV1, ok=True, note="registered, disabled: pending")
    s.migrate()
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1001)
    s.no_dispatch(0, pc=0, pstate=EL1H)
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0x5A, x2=0, x3=EL1H)
    s.migrate(note="critical handler running, no normal one")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b111)
    s.get_reg(0, "SDEI_CONTEXT(1, 19)", EL1H)
    s.get_reg(0, "SDEI_CONTEXT(0, 19)", 0)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    return s.build(
        "migrate-pending-critical",
        "migration of a pending critical event on a disabled registration, then of a "
        "running critical handler alone",
        {"SDEI_EVENT_STATE(1)": 3, "SDEI_CONTEXT(1, 19)": 0})


# =============================================================================================
# A Linux guest
# =============================================================================================

_LINUX_VBAR: Final = 0xFFFF_8000_0801_0000
_LINUX_ENTRY: Final = 0xFFFF_8000_0802_0000  # __sdei_asm_handler


def _linux_arg(cpu: int) -> int:
    return 0xFFFF_0000_7F00_0000 + 0x10000 * cpu  # the per-CPU registered-event pointer


@_scenario
def _linux_boot() -> Conformance:
    n = 4
    s = _Script(n)
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


# =============================================================================================
# Entry PSTATE with SCTLR_EL1, and the feature gate over state written through ONE_REG
# =============================================================================================

SCTLR_NO_SPAN: Final = 0x0045_0078
"""KVM's reset SCTLR_EL1 0x00C50078 with SPAN (bit 23) clear."""
SCTLR_SPAN_DSSBS: Final = 0x1000_00C5_0078
"""KVM's reset SCTLR_EL1 with DSSBS (bit 44) set."""
SCTLR_NO_SPAN_DSSBS: Final = 0x1000_0045_0078


@_scenario
def _entry_pstate_sctlr() -> Conformance:
    # AArch64.TakeException to EL1: EL1h + DAIF (0x3C5); NZCV (31:28), DIT (24), PAN (22)
    # kept; PAN (0x40_0000) set when SPAN is 0; SSBS (0x1000) = DSSBS; UAO, TCO, SS, IL,
    # BTYPE and the rest 0. AArch32 SPSRs keep NZCV, DIT, PAN at the same bits.
    s = _Script()
    _arm(s, 0, EV0, 0x10000, 0x51)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1000, pstate=0x0080_1005, sctlr_el1=SCTLR_NO_SPAN,
          x={0: 0xC0, 1: 0xC1, 2: 0xC2, 3: 0xC3},
          note="SPAN 0, DSSBS 0; interrupted EL1h with UAO (23) and SSBS (12) set")
    s.dispatch(0, EV0, pc=0x10000, pstate=0x0040_03C5, x1=0x51, x2=0x1000, x3=0x0080_1005,
               note="PAN set (SPAN 0), UAO 0, SSBS 0 (DSSBS 0)")
    s.cpu(0, sctlr_el1=SCTLR_SPAN_DSSBS, note="the handler sets SPAN and DSSBS")
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x2000, x=(0xC0, 0xC1, 0xC2, 0xC3))
    s.no_dispatch(0, pc=0x2000, pstate=0x0000_13C5, x0=0xC0,
                  note="SCTLR_EL1 of the COMPLETE_AND_RESUME: PAN kept (clear), SSBS set")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x3000, pstate=0xF1C0_0030,
          note="AArch32 User with NZCV, DIT (24), AArch32 SSBS (23), PAN (22), T (5)")
    s.dispatch(0, EV0, pc=0x10000, pstate=0xF140_13C5, x1=0x51, x2=0x3000, x3=0xF1C0_0030,
               note="NZCV, DIT, PAN kept; SSBS from DSSBS; AArch32 SSBS and T dropped")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x3000, pstate=0xF1C0_0030, x0=0)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pstate=0x6000_0010, sctlr_el1=SCTLR_NO_SPAN_DSSBS,
          note="AArch32 User with Z, C; SPAN 0, DSSBS 1")
    s.migrate(note="SCTLR_EL1 travels as a system register")
    s.get_reg(0, "SCTLR_EL1", SCTLR_NO_SPAN_DSSBS)
    s.dispatch(0, EV0, pc=0x10000, pstate=0x6040_13C5, x1=0x51, x2=0x3000, x3=0x6000_0010,
               note="on the destination: PAN set (SPAN 0), SSBS set (DSSBS 1)")
    return s.build(
        "entry-pstate-sctlr",
        "handler-entry and resume PSTATE follow SCTLR_EL1 at that moment (SPAN 0 sets PAN, "
        "SSBS = DSSBS, UAO 0), AArch32 sources keep NZCV/DIT/PAN only, SCTLR_EL1 migrates",
        {"SDEI_EVENT_STATE(0)": 7, "SDEI_CONTEXT(0, 19)": 0x6000_0010, "cpu.pc": 0x10000,
         "cpu.pstate": 0x6040_13C5, "cpu.elr_el1": 0x1000, "cpu.spsr_el1": 0x0080_1005,
         "SCTLR_EL1": SCTLR_NO_SPAN_DSSBS})


@_scenario
def _feature_gate_off_written_state() -> Conformance:
    s = _Script()
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1, note="SDEI (bit 1) off before the first run")
    s.set_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0x10000)
    s.set_reg(0, "SDEI_EVENT_STATE(0)", 0b1011, note="registered, enabled, pending")
    s.set_reg(0, "SDEI_VCPU_STATE", 0, note="unmasked")
    s.no_dispatch(0, pc=0, pstate=EL1H, note="gate off: nothing is dispatched")
    s.inject(0, EV0, ok=False, note="gate off: nothing is injected (on, it would merge)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011, note="still pending, not running")
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x7, errno="EINVAL",
              note="unknown bit 2: EINVAL, checked before the EBUSY of a run VM")
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x3, errno="EBUSY", note="the VM has run")
    s.migrate()
    s.no_dispatch(0, pc=0, pstate=EL1H, note="the gate migrates with the state")
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0)
    return s.build(
        "feature-gate-off-written-state",
        "KVM_REG_ARM_STD_BMAP bit 1 clear with a deliverable event written through ONE_REG: "
        "no dispatch, no injection, before and after migration; unknown bits EINVAL first",
        {"KVM_REG_ARM_STD_BMAP": 0x1, "SDEI_VCPU_STATE": 0, "SDEI_EVENT_STATE(0)": 0b1011,
         "SDEI_EVENT_EP_ADDR(0)": 0x10000, "cpu.pc": 0, "cpu.pstate": EL1H})


# -- the collection ---------------------------------------------------------------------------

SCENARIOS: Final[tuple[Conformance, ...]] = tuple(build() for build in _BUILDERS)
"""Every conformance scenario, in a stable order (the vector numbering follows it)."""

BY_NAME: Final[Mapping[str, Conformance]] = MappingProxyType({c.name: c for c in SCENARIOS})
if len(BY_NAME) != len(SCENARIOS):
    raise AssertionError("conformance scenario names must be unique")


def markdown_list() -> str:
    """The scenario table of docs/scenarios.md (a test keeps the document equal to it)."""
    rows = ["| # | scenario | vCPUs | steps | covers |", "|---|---|---|---|---|"]
    for i, c in enumerate(SCENARIOS):
        rows.append(f"| {i + 1:02d} | `{c.name}` | {c.scenario['vcpus']} | "
                    f"{len(c.scenario['steps'])} | {c.doc} |")
    return "\n".join(rows) + "\n"


# -- checking ---------------------------------------------------------------------------------

_FINAL_KEY = re.compile(r"^(?:vcpu(\d+):)?(.+)$")


def _fmt(v: object) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and not -10 <= v <= 9:
        return f"{v} ({v:#x})" if v >= 0 else str(v)
    return repr(v) if not isinstance(v, str) else v


def describe_step(step: Mapping[str, Any]) -> str:
    """A short human description of a scenario step (for messages)."""
    if "migrate" in step:
        return "migrate"
    v = step.get("vcpu")
    for action in ("call", "dispatch", "inject", "set_reg", "get_reg", "cpu"):
        if action in step:
            what = step[action]
            if action == "call":
                name = what if isinstance(what, str) else f"{what:#x}"
                args = ", ".join(str(a) if 0 <= a <= 9 else f"{a:#x}"
                                 for a in step.get("args", ()))
                return f"vCPU {v} call {name}({args})"
            if action in ("set_reg", "get_reg"):
                rid = what["id"] if isinstance(what, dict) else what
                try:
                    label = reg_name(int(rid, 0) if isinstance(rid, str) else int(rid))
                except ValueError:
                    label = str(rid)
                return f"vCPU {v} {action} {label}"
            if action == "inject":
                return f"vCPU {v} inject {what:#x}"
            return f"vCPU {v} {action}"
    return "step"


def _same(got: object, want: object) -> bool:
    # bool is an int in Python; JSON true must not match 1, nor null match 0.
    return type(got) is type(want) and got == want


def check(conf: Conformance, result: Mapping[str, Any]) -> list[str]:
    """Mismatches between a replay ``result`` and the expectations, one message each naming
    the scenario, the step (index and what it does) or final register, the field, got and
    want. Empty when the result conforms."""
    out: list[str] = []
    if result.get("format") != "sdei-state/result/1":
        out.append(f"{conf.name}: result format {result.get('format')!r}, "
                   "want 'sdei-state/result/1'")
    steps = result.get("steps")
    doc_steps = conf.scenario["steps"]
    if not isinstance(steps, list) or len(steps) != len(doc_steps):
        got = len(steps) if isinstance(steps, list) else steps
        out.append(f"{conf.name}: result has {got} steps, want {len(doc_steps)}")
        return out
    for i, want in sorted(conf.expect.items()):
        got_step = steps[i]
        where = f"{conf.name}: step {i} ({describe_step(doc_steps[i])})"
        if not isinstance(got_step, dict):
            out.append(f"{where}: result is {got_step!r}, not an object")
            continue
        for field, w in want.items():
            if field not in got_step:
                out.append(f"{where}: {field} missing, want {_fmt(w)}")
            elif not _same(got_step[field], w):
                out.append(f"{where}: {field} = {_fmt(got_step[field])}, want {_fmt(w)}")
        if not want and got_step != {}:
            out.append(f"{where}: result {got_step!r}, want {{}}")
    final = result.get("final")
    if not isinstance(final, list):
        out.append(f"{conf.name}: result has no final state")
        return out
    for key, w in conf.final_expect.items():
        got_v, label = _final_value(final, key)
        if isinstance(got_v, _Missing):
            out.append(f"{conf.name}: final {key}: {got_v.why}, want {_fmt(w)}")
        elif not _same(got_v, w):
            out.append(f"{conf.name}: final {label} = {_fmt(got_v)}, want {_fmt(w)}")
    return out


@dataclass(frozen=True, slots=True)
class _Missing:
    why: str


def _final_value(final: Sequence[Any], key: str) -> tuple[object, str]:
    m = _FINAL_KEY.match(key)
    assert m is not None
    vcpu = int(m.group(1) or 0)
    name = m.group(2)
    if not 0 <= vcpu < len(final) or not isinstance(final[vcpu], dict):
        return _Missing(f"no vCPU {vcpu} in the result"), key
    entry = final[vcpu]
    label = f"vCPU {vcpu} {name}"
    if name.startswith("cpu."):
        field = name[4:]
        cpu = entry.get("cpu", {})
        if field.startswith("x") and field[1:].isdigit():
            xs = cpu.get("x", [])
            n = int(field[1:])
            return (xs[n] if n < len(xs) else _Missing(f"cpu.x has no x{n}")), label
        return (cpu[field] if field in cpu else _Missing(f"cpu has no {field!r}")), label
    reg_id = REG_IDS.get(name)
    if reg_id is None:
        try:
            reg_id = int(name, 0)
        except ValueError:
            return _Missing(f"unknown register name {name!r}"), key
    hex_id = f"{reg_id:#018x}"
    regs = entry.get("registers", {})
    if hex_id not in regs:
        return _Missing(f"register {hex_id} not listed by vCPU {vcpu}"), label
    return regs[hex_id], f"{label} ({hex_id})"


def run_one(conf: Conformance) -> tuple[dict[str, Any], list[str]]:
    """Replay a conformance scenario on simulated vCPUs; (result, mismatch messages)."""
    from . import scenario
    from .errors import SdeiStateError

    try:
        result = scenario.run(conf.scenario)
    except SdeiStateError as e:
        return {}, [f"{conf.name}: replay failed: {e}"]
    return result, check(conf, result)


def validate_final_keys(conf: Conformance) -> list[str]:
    """Problems with the ``final_expect`` keys themselves (unknown names, vCPU out of range)."""
    out: list[str] = []
    for key in conf.final_expect:
        m = _FINAL_KEY.match(key)
        assert m is not None
        vcpu, name = int(m.group(1) or 0), m.group(2)
        if vcpu >= conf.scenario["vcpus"]:
            out.append(f"{conf.name}: final key {key!r}: vCPU {vcpu} out of range")
        if name.startswith("cpu."):
            if name[4:] not in CPU_KEYS:
                out.append(f"{conf.name}: final key {key!r}: unknown CPU field")
        elif name not in REG_IDS:
            out.append(f"{conf.name}: final key {key!r}: unknown register name")
    return out
