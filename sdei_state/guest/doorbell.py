"""The doorbell protocol: how a guest program reports progress to the host.

The guest rings a doorbell with one plain 64-bit store ``str xt, [xn, #8*code]`` where xn
holds ``layout.doorbell`` (0x10000000 by default, outside every memslot). KVM cannot complete
the store itself, so the vCPU exits with KVM_EXIT_MMIO: ``phys_addr = doorbell + 8*code``,
``len = 8``, ``is_write = 1`` and ``data`` = the stored register, little-endian. The code says
which point of the program was reached; what the data holds is fixed per kind (``BellKind``).

Only the unsigned-offset ``str`` form is used: KVM can emulate an MMIO access only when the
fault syndrome is valid (ISV), which excludes writeback and pair forms. Codes::

    0x000 + i           MAIN_CALL(i)        main's call i returned;        data = x0 (result)
    0x100               IDLE                main's idle loop, each turn;    data = x0
    0x101               RESUMED             the resume stub was entered;    data = ELR_EL1
    0x180 + j           RESUME_CALL(j)      the resume stub's call j;       data = x0
    0x200 + 0x100*s     HANDLER_ENTRY(s)    handler slot s entered;         data = x0 on entry
    0x201 + 0x100*s + j HANDLER_CALL(s, j)  its call j returned;            data = x0
    0x2FE + 0x100*s     HANDLER_EXIT(s)     about to complete;              data = x1 (status or
                                                                            resume address)
    0x2FF + 0x100*s     COMPLETE_RETURNED(s) the completion call returned   data = x0 (error)
                                            (it never should); rung forever
    0xF00 + v           FAULT(v)            exception vector v (0..15);     data = ESR_EL1;
                                            rung forever
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from ..errors import SdeiStateError
from .layout import MAX_MAIN_CALLS, MAX_RECORD_CALLS, MAX_SLOTS, Layout

IDLE_CODE: Final = 0x100
RESUMED_CODE: Final = 0x101
RESUME_CALL_BASE: Final = 0x180
HANDLER_BASE: Final = 0x200
HANDLER_STRIDE: Final = 0x100
ENTRY_OFF, CALL_OFF, EXIT_OFF, RETURNED_OFF = 0x00, 0x01, 0xFE, 0xFF
FAULT_BASE: Final = 0xF00
MAX_CODE: Final = 0xFFF


class BellError(SdeiStateError, ValueError):
    """An MMIO exit that is not a doorbell of the protocol (names address, length, data)."""


class BellKind(Enum):
    """What a doorbell reports; the value is a short description of its data."""

    MAIN_CALL = "x0 after main's call"
    IDLE = "x0 in the idle loop"
    RESUMED = "ELR_EL1 at the resume stub"
    RESUME_CALL = "x0 after the resume stub's call"
    HANDLER_ENTRY = "x0 on handler entry"
    HANDLER_CALL = "x0 after the handler's call"
    HANDLER_EXIT = "x1 of the completion call"
    COMPLETE_RETURNED = "x0 returned by a completion call"
    FAULT = "ESR_EL1 of an unexpected exception"

    @property
    def terminal(self) -> bool:
        """The guest is stuck ringing this bell: the run has failed."""
        return self in (BellKind.COMPLETE_RETURNED, BellKind.FAULT)


def _check(kind: BellKind, name: str, v: int, limit: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < limit:
        raise BellError(f"{kind.name}: {name} = {v!r} outside 0..{limit - 1}")


def bell_code(kind: BellKind, slot: int = 0, index: int = 0) -> int:
    """The code of a doorbell (``slot`` for handler kinds, ``index`` for calls and FAULT)."""
    if kind is BellKind.MAIN_CALL:
        _check(kind, "index", index, MAX_MAIN_CALLS)
        return index
    if kind is BellKind.IDLE:
        return IDLE_CODE
    if kind is BellKind.RESUMED:
        return RESUMED_CODE
    if kind is BellKind.RESUME_CALL:
        _check(kind, "index", index, MAX_RECORD_CALLS)
        return RESUME_CALL_BASE + index
    if kind is BellKind.FAULT:
        _check(kind, "index", index, 16)
        return FAULT_BASE + index
    _check(kind, "slot", slot, MAX_SLOTS)
    base = HANDLER_BASE + HANDLER_STRIDE * slot
    if kind is BellKind.HANDLER_CALL:
        _check(kind, "index", index, MAX_RECORD_CALLS)
        return base + CALL_OFF + index
    return base + {BellKind.HANDLER_ENTRY: ENTRY_OFF, BellKind.HANDLER_EXIT: EXIT_OFF,
                   BellKind.COMPLETE_RETURNED: RETURNED_OFF}[kind]


@dataclass(frozen=True, slots=True)
class Bell:
    """One doorbell ring as the host saw it."""

    kind: BellKind
    slot: int = 0
    index: int = 0
    data: int = 0

    @property
    def code(self) -> int:
        """The doorbell code of this ring."""
        return bell_code(self.kind, self.slot, self.index)

    def __str__(self) -> str:
        where = {BellKind.MAIN_CALL: f"({self.index})", BellKind.RESUME_CALL: f"({self.index})",
                 BellKind.FAULT: f"({self.index})",
                 BellKind.HANDLER_CALL: f"({self.slot}, {self.index})"}.get(
            self.kind, f"({self.slot})" if self.kind.name.startswith(("HANDLER", "COMPLETE"))
            else "")
        return f"{self.kind.name}{where} data={self.data:#x}"


def parse_code(code: int, data: int = 0) -> Bell:
    """The doorbell a code stands for; BellError if the code is not assigned."""
    if not isinstance(code, int) or not 0 <= code <= MAX_CODE:
        raise BellError(f"doorbell code {code!r} outside 0..{MAX_CODE:#x}")
    if code < MAX_MAIN_CALLS:
        return Bell(BellKind.MAIN_CALL, index=code, data=data)
    if code == IDLE_CODE:
        return Bell(BellKind.IDLE, data=data)
    if code == RESUMED_CODE:
        return Bell(BellKind.RESUMED, data=data)
    if RESUME_CALL_BASE <= code < RESUME_CALL_BASE + MAX_RECORD_CALLS:
        return Bell(BellKind.RESUME_CALL, index=code - RESUME_CALL_BASE, data=data)
    if FAULT_BASE <= code < FAULT_BASE + 16:
        return Bell(BellKind.FAULT, index=code - FAULT_BASE, data=data)
    slot, off = divmod(code - HANDLER_BASE, HANDLER_STRIDE)
    if code >= HANDLER_BASE and slot < MAX_SLOTS:
        if off == ENTRY_OFF:
            return Bell(BellKind.HANDLER_ENTRY, slot, data=data)
        if off == EXIT_OFF:
            return Bell(BellKind.HANDLER_EXIT, slot, data=data)
        if off == RETURNED_OFF:
            return Bell(BellKind.COMPLETE_RETURNED, slot, data=data)
        if off - CALL_OFF < MAX_RECORD_CALLS:
            return Bell(BellKind.HANDLER_CALL, slot, off - CALL_OFF, data=data)
    raise BellError(f"doorbell code {code:#x} is not assigned")


def parse_mmio(layout: Layout, phys_addr: int, data: bytes | int, length: int = 8,
               is_write: bool = True) -> Bell:
    """Decode a KVM_EXIT_MMIO (address, data, length, direction) as a doorbell; BellError
    naming the field if it is not one (a read, a wrong length, an address outside the window)."""
    what = f"MMIO {'write' if is_write else 'read'} of {length} bytes at {phys_addr:#x}"
    if not is_write:
        raise BellError(f"{what}: doorbells are writes")
    if length != 8:
        raise BellError(f"{what}: doorbells are 8-byte stores")
    off = phys_addr - layout.doorbell
    if not 0 <= off < layout.doorbell_span:
        raise BellError(f"{what}: outside the doorbell window {layout.doorbell:#x}.."
                        f"{layout.doorbell + layout.doorbell_span:#x}")
    if off % 8:
        raise BellError(f"{what}: not 8-byte aligned in the doorbell window")
    value = int.from_bytes(data[:8], "little") if isinstance(data, bytes | bytearray) else data
    try:
        return parse_code(off // 8, value)
    except BellError as e:
        raise BellError(f"{what}: {e}") from None


def bell_address(layout: Layout, kind: BellKind, slot: int = 0, index: int = 0) -> int:
    """The guest physical address a doorbell's store goes to."""
    return layout.doorbell + 8 * bell_code(kind, slot, index)
