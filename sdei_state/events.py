"""The static table of KVM's SDEI events (DESIGN section 3).

The set is fixed when the library is written: there is no API that adds an event, and the
table is a tuple of frozen values, so nothing downstream can grow it. The index of an event is
its position here; the register ABI (SDEI_EVENT_STATE(i), ...) is laid out by that index.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from .spec import EventType, Priority


@dataclass(frozen=True, slots=True)
class Event:
    """One SDEI event KVM offers a guest."""

    index: int
    number: int
    name: str
    type: EventType
    priority: Priority
    signalable: bool
    """True if EVENT_SIGNAL may raise it (only event 0)."""


SW_SIGNALED: Final = Event(0, 0x00000000, "SW_SIGNALED", EventType.PRIVATE, Priority.NORMAL, True)
ASYNC_PF: Final = Event(1, 0x40400000, "ASYNC_PF", EventType.PRIVATE, Priority.CRITICAL, False)

EVENTS: Final[tuple[Event, ...]] = (SW_SIGNALED, ASYNC_PF)
"""All events, by index."""

_BY_NUMBER: Final = MappingProxyType({e.number: e for e in EVENTS})


def by_number(number: int) -> Event | None:
    """The event with this (full 64-bit) event number, or None. Upper bits set never match."""
    return _BY_NUMBER.get(number)

