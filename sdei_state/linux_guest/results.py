"""The console lines of the nested guest, parsed: the module's round results and per-CPU
counters, the init script's markers, and Linux's own SDEI probe line.

Formats (``module/sdei_test.c``, ``init.sh``)::

    sdei-test: iteration=<n> round=<name> result=pass|fail <key=value ...>
    sdei-test: cpu=<n> signalled=<n> entered=<n> critical=<n>
    sdei-test: done passed=<n> failed=<n>
    sdei-test: unload disable=<rc>,<rc> unregister=<rc>,<rc>
    guest-dmesg: ... sdei: SDEIv1.1 (0x<vendor>) detected in firmware.
    guest-dmesg: ... CPU features: detected: Kernel page table isolation (KPTI)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

_KV: Final = re.compile(r"(\w+)=(\S+)")
ROUND: Final = re.compile(r"sdei-test: iteration=(\d+) round=(\w+) result=(pass|fail)(.*)$")
CPU: Final = re.compile(r"sdei-test: cpu=(\d+) signalled=(\d+) entered=(\d+) critical=(\d+)")
DONE: Final = re.compile(r"sdei-test: done passed=(\d+) failed=(\d+)")
UNLOAD: Final = re.compile(r"sdei-test: unload disable=(-?\d+),(-?\d+) "
                           r"unregister=(-?\d+),(-?\d+)")
DETECTED: Final = re.compile(r"sdei: SDEIv(\d+)\.(\d+) \((0x[0-9a-f]+)\) detected in firmware")


@dataclass(frozen=True)
class Round:
    iteration: int
    name: str
    passed: bool
    detail: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.name}#{self.iteration}" if self.iteration else self.name


@dataclass(frozen=True)
class CpuCounters:
    cpu: int
    signalled: int
    entered: int
    critical: int


@dataclass
class GuestResults:
    rounds: list[Round] = field(default_factory=list)
    cpus: list[CpuCounters] = field(default_factory=list)
    done: tuple[int, int] | None = None
    unload: tuple[int, int, int, int] | None = None
    detected: tuple[int, int, int] | None = None
    """(major, minor, vendor) from Linux's SDEI probe message."""
    kpti: bool = False
    """Linux runs with page-table isolation: SDEI entry goes through its trampoline."""


def parse(lines: Iterable[str]) -> GuestResults:
    r = GuestResults()
    for ln in lines:
        if m := ROUND.search(ln):
            r.rounds.append(Round(int(m.group(1)), m.group(2), m.group(3) == "pass",
                                  dict(_KV.findall(m.group(4)))))
        elif m := CPU.search(ln):
            r.cpus.append(CpuCounters(*(int(g) for g in m.groups())))
        elif m := DONE.search(ln):
            r.done = (int(m.group(1)), int(m.group(2)))
        elif m := UNLOAD.search(ln):
            a, b, c, d = (int(g) for g in m.groups())
            r.unload = (a, b, c, d)
        elif m := DETECTED.search(ln):
            r.detected = (int(m.group(1)), int(m.group(2)), int(m.group(3), 16))
        elif "Kernel page table isolation (KPTI)" in ln:
            r.kpti = True
    return r
