"""DEN0054C (SDEI v1.1) constants: function ids, return codes, selectors, flags, version fields.

Values are the spec's (Arm DEN 0054C, chapter 5) and match upstream
``include/uapi/linux/arm_sdei.h`` plus the two v1.1 calls that header lacks (EVENT_SIGNAL,
FEATURES). See docs/state-machine.md for where implementations differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, IntFlag
from types import MappingProxyType
from typing import Final

FN_BASE: Final = 0xC4000020
"""SMC64 id of SDEI_VERSION; the SDEI block is FN_BASE..FN_LAST (SMCCC owner 4, Standard)."""
FN_LAST: Final = 0xC400003F
FN_COUNT: Final = FN_LAST - FN_BASE + 1  # 32: the range a VMM forwards with the SMCCC filter
SMC32_BIT: Final = 1 << 30  # clear in an SMC32 id: 0x84000020 is the SMC32 twin of 0xC4000020


class Function(IntEnum):
    """SDEI function ids (SMC64 fast calls). Names are the spec's without the ``SDEI_`` prefix."""

    VERSION = 0xC4000020
    EVENT_REGISTER = 0xC4000021
    EVENT_ENABLE = 0xC4000022
    EVENT_DISABLE = 0xC4000023
    EVENT_CONTEXT = 0xC4000024
    EVENT_COMPLETE = 0xC4000025
    EVENT_COMPLETE_AND_RESUME = 0xC4000026
    EVENT_UNREGISTER = 0xC4000027
    EVENT_STATUS = 0xC4000028
    EVENT_GET_INFO = 0xC4000029
    EVENT_ROUTING_SET = 0xC400002A
    PE_MASK = 0xC400002B
    PE_UNMASK = 0xC400002C
    INTERRUPT_BIND = 0xC400002D
    INTERRUPT_RELEASE = 0xC400002E
    EVENT_SIGNAL = 0xC400002F
    FEATURES = 0xC4000030
    PRIVATE_RESET = 0xC4000031
    SHARED_RESET = 0xC4000032


ARITY: Final[Mapping[int, int]] = MappingProxyType({
    Function.VERSION: 0,
    Function.EVENT_REGISTER: 4,  # event, entry point, argument, flags (see below)
    Function.EVENT_ENABLE: 1,
    Function.EVENT_DISABLE: 1,
    Function.EVENT_CONTEXT: 1,
    Function.EVENT_COMPLETE: 0,  # the status argument is not acted on (see below)
    Function.EVENT_COMPLETE_AND_RESUME: 1,
    Function.EVENT_UNREGISTER: 1,
    Function.EVENT_STATUS: 1,
    Function.EVENT_GET_INFO: 2,
    Function.EVENT_ROUTING_SET: 0,  # every event is private: INVALID_PARAMETERS for any x1
    Function.PE_MASK: 0,
    Function.PE_UNMASK: 0,
    Function.INTERRUPT_BIND: 1,
    Function.INTERRUPT_RELEASE: 0,  # nothing can be bound: INVALID_PARAMETERS whatever x1 is
    Function.EVENT_SIGNAL: 2,
    Function.FEATURES: 1,
    Function.PRIVATE_RESET: 0,
    Function.SHARED_RESET: 0,
})
"""How many of x1..x5, in order, the result of each function depends on: what a VMM serving a
call has to read (any other id: none). DEN0054C gives some functions more parameters than this
model acts on with KVM's event table: REGISTER's routing affinity (x5) matters only for shared
events, ROUTING_SET and INTERRUPT_RELEASE (all arguments) only for shared or bound
ones, and COMPLETE's status has no effect (DESIGN section 5). Unregistered ids read nothing."""


class Ret(IntEnum):
    """Return codes (DEN0054C Table 6). Non-negative values are success."""

    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    DENIED = -3
    PENDING = -5
    OUT_OF_RESOURCE = -10


class Info(IntEnum):
    """EVENT_GET_INFO selectors (§5.1.10)."""

    EV_TYPE = 0
    EV_SIGNALED = 1
    EV_PRIORITY = 2
    EV_ROUTING_MODE = 3
    EV_ROUTING_AFF = 4


class EventType(IntEnum):
    PRIVATE = 0
    SHARED = 1


class Priority(IntEnum):
    """Priority class; also the index of the class's saved context (0 normal, 1 critical)."""

    NORMAL = 0
    CRITICAL = 1


class RoutingMode(IntEnum):
    RM_ANY = 0
    RM_PE = 1


class RegisterFlags(IntFlag):
    """EVENT_REGISTER ``flags`` (x4). Bits[63:2] are reserved and must be zero."""

    RM_PE = 1 << 0
    RELATIVE = 1 << 1


REGISTER_FLAGS_VALID: Final = int(RegisterFlags.RM_PE | RegisterFlags.RELATIVE)


class Status(IntFlag):
    """EVENT_STATUS result bits; also bits[2:0] of the SDEI_EVENT_STATE register."""

    REGISTERED = 1 << 0
    ENABLED = 1 << 1
    RUNNING = 1 << 2


class Feature(IntEnum):
    """SDEI_FEATURES selectors (§5.1.17)."""

    BIND_SLOTS = 0
    RELATIVE_MODE = 1


class CompleteStatus(IntEnum):
    """EVENT_COMPLETE status argument."""

    EV_HANDLED = 0
    EV_FAILED = 1


VERSION_MAJOR_SHIFT: Final = 48
VERSION_MAJOR_MASK: Final = 0x7FFF
VERSION_MINOR_SHIFT: Final = 32
VERSION_MINOR_MASK: Final = 0xFFFF
VERSION_VENDOR_SHIFT: Final = 0
VERSION_VENDOR_MASK: Final = 0xFFFFFFFF

KVM_VENDOR: Final = 0x564BCAA9
"""Vendor field of SDEI_VERSION: ARM_SMCCC_VENDOR_HYP_UID_KVM_REG_2, as the KVM series used."""

CONTEXT_REGS: Final = 18
"""EVENT_CONTEXT exposes the interrupted x0..x17."""

INTID_PPI_FIRST: Final = 16
INTID_SPI_LAST: Final = 1019


def make_version(major: int, minor: int, vendor: int) -> int:
    """Encode an SDEI_VERSION result."""
    if not 0 <= major <= VERSION_MAJOR_MASK:
        raise ValueError(f"major version {major} does not fit bits[62:48]")
    if not 0 <= minor <= VERSION_MINOR_MASK:
        raise ValueError(f"minor version {minor} does not fit bits[47:32]")
    if not 0 <= vendor <= VERSION_VENDOR_MASK:
        raise ValueError(f"vendor field {vendor:#x} does not fit bits[31:0]")
    return (major << VERSION_MAJOR_SHIFT) | (minor << VERSION_MINOR_SHIFT) | vendor


def split_version(value: int) -> tuple[int, int, int]:
    """(major, minor, vendor) of an SDEI_VERSION result."""
    return (
        (value >> VERSION_MAJOR_SHIFT) & VERSION_MAJOR_MASK,
        (value >> VERSION_MINOR_SHIFT) & VERSION_MINOR_MASK,
        value & VERSION_VENDOR_MASK,
    )


VERSION_1_1_KVM: Final = make_version(1, 1, KVM_VENDOR)


def function_by_name(name: str) -> Function:
    """A function id by its spec name without prefix (``EVENT_REGISTER``); KeyError if unknown."""
    key = name.upper().removeprefix("SDEI_")
    return Function[key]


def in_sdei_block(function_id: int) -> bool:
    """True for any id in the SMC64 SDEI block 0xC4000020-0xC400003F, assigned or not."""
    return FN_BASE <= function_id <= FN_LAST
