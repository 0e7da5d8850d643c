"""The guest console as the VMM keeps it: every byte to a sink (a file, stdout), and the
complete lines in memory for whoever waits for one (the linux-guest suite waits for the
module's result lines)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Final

MAX_LINES: Final = 50_000
"""Lines kept; later ones still reach the sink (bounded memory for a chatty guest)."""
MAX_LINE: Final = 4096


class Console:
    """Bytes in (``write``, the UART's sink), lines out (``lines``, ``wait_for``)."""

    def __init__(self, sink: Callable[[bytes], None] | None = None) -> None:
        self.sink = sink
        self.lines: list[str] = []
        self.times: list[float] = []
        """``time.monotonic()`` when each kept line completed."""
        self.dropped = 0
        self._partial = bytearray()
        self._cond = threading.Condition()

    def write(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink(data)
        with self._cond:
            for b in data:
                if b != 0x0A:
                    if len(self._partial) < MAX_LINE:
                        self._partial.append(b)
                    continue
                line = self._partial.decode(errors="replace").rstrip("\r")
                self._partial.clear()
                if len(self.lines) < MAX_LINES:
                    self.lines.append(line)
                    self.times.append(time.monotonic())
                else:
                    self.dropped += 1
                self._cond.notify_all()

    def find(self, pattern: str) -> tuple[int, re.Match[str]] | None:
        """(index, match) of the first kept line matching ``pattern``."""
        rx = re.compile(pattern)
        with self._cond:
            for i, ln in enumerate(self.lines):
                if m := rx.search(ln):
                    return i, m
        return None

    def wait_for(self, pattern: str, timeout: float, stop: threading.Event | None = None,
                 start: int = 0) -> re.Match[str] | None:
        """The first line from line ``start`` on (kept or to come) matching ``pattern``;
        None after ``timeout`` seconds or once ``stop`` is set."""
        rx = re.compile(pattern)
        i, waited, step = start, 0.0, 0.1
        with self._cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        return m
                if waited >= timeout or (stop is not None and stop.is_set()):
                    return None
                self._cond.wait(step)
                waited += step

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)
