"""Guest memory: save and restore of the contents of a VM's memslots, as the VMM registered
them (``Vm.add_memory``: slot, guest-physical address, size).

A saved region keeps only its non-zero pages, as runs of whole 4 KiB pages (``PAGE``): a guest
touches a small part of its RAM, and a fresh destination's anonymous memory reads as zeros,
so a page of zeros needs neither room in the blob nor a write (writing it would make the host
allocate it). Restore writes the runs and clears whatever the destination holds in between,
reading the gaps first (a read of untouched anonymous memory maps the shared zero page; it
allocates nothing), so it never depends on the destination being fresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from ..errors import BlobError, RestoreError

PAGE: Final = 4096
"""The granularity of zero elision (not the guest's page size, which the blob need not know)."""
_CHUNK: Final = 512 * PAGE  # read 2 MiB at a time: one comparison in C per chunk of zeros
_ZERO_CHUNK: Final = bytes(_CHUNK)
_ZERO_PAGE: Final = bytes(PAGE)


class GuestRam(Protocol):
    """One memslot's memory (``sdei_state.kvm.GuestMemory`` has this shape)."""

    slot: int
    guest_phys_addr: int
    size: int

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class MemoryRegion:
    """One memslot's saved contents: where it is, and its non-zero runs ``(offset, bytes)``
    (page-aligned, whole pages, ascending, not touching: adjacent runs are one run)."""

    slot: int
    guest_phys_addr: int
    size: int
    runs: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        for name in ("slot", "guest_phys_addr", "size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BlobError(f"memory region: {name} = {v!r} is not a non-negative integer")
        where = f"memory slot {self.slot}"
        if self.slot >= 1 << 32 or self.guest_phys_addr + self.size > 1 << 64:
            raise BlobError(f"{where}: slot or [{self.guest_phys_addr:#x}, +{self.size:#x}) "
                            "out of range")
        if self.size % PAGE or self.guest_phys_addr % PAGE or not self.size:
            raise BlobError(f"{where}: address {self.guest_phys_addr:#x} and size "
                            f"{self.size:#x} must be non-zero multiples of {PAGE:#x}")
        end = -1
        for i, run in enumerate(self.runs):
            if not (isinstance(run, tuple) and len(run) == 2 and isinstance(run[0], int)
                    and isinstance(run[1], bytes)):
                raise BlobError(f"{where}: run {i} is not an (offset, bytes) pair")
            off, data = run
            if off % PAGE or not data or len(data) % PAGE:
                raise BlobError(f"{where}: run {i} at {off:#x} of {len(data):#x} bytes is not "
                                f"whole {PAGE:#x}-byte pages")
            if off <= end:
                raise BlobError(f"{where}: run {i} at {off:#x} is not after the previous run "
                                "(runs ascend and do not touch)")
            if off + len(data) > self.size:
                raise BlobError(f"{where}: run {i} [{off:#x}, +{len(data):#x}) is outside the "
                                f"region's {self.size:#x} bytes")
            end = off + len(data)

    @property
    def stored(self) -> int:
        """Bytes of contents carried (the non-zero pages)."""
        return sum(len(d) for _, d in self.runs)

    def contents(self) -> bytes:
        """The whole region as bytes (zeros between the runs)."""
        out = bytearray(self.size)
        for off, data in self.runs:
            out[off:off + len(data)] = data
        return bytes(out)

    @classmethod
    def of_bytes(cls, slot: int, guest_phys_addr: int, data: bytes) -> MemoryRegion:
        """A region holding ``data`` (its non-zero pages as runs)."""
        return cls(slot, guest_phys_addr, len(data), _runs(lambda o, n: data[o:o + n],
                                                            len(data)))


def _runs(read: _Reader, size: int) -> tuple[tuple[int, bytes], ...]:
    runs: list[tuple[int, bytes]] = []
    start: int | None = None
    parts: list[bytes] = []
    for base in range(0, size, _CHUNK):
        chunk = read(base, min(_CHUNK, size - base))
        if chunk == _ZERO_CHUNK[:len(chunk)]:
            if start is not None:
                runs.append((start, b"".join(parts)))
                start, parts = None, []
            continue
        for p in range(0, len(chunk), PAGE):
            page = chunk[p:p + PAGE]
            if page == _ZERO_PAGE:
                if start is not None:
                    runs.append((start, b"".join(parts)))
                    start, parts = None, []
            else:
                if start is None:
                    start = base + p
                parts.append(page)
    if start is not None:
        runs.append((start, b"".join(parts)))
    return tuple(runs)


class _Reader(Protocol):
    def __call__(self, offset: int, length: int) -> bytes: ...


def save_memory(ram: GuestRam) -> MemoryRegion:
    """One memslot's contents (its non-zero pages). The vCPUs must be stopped."""
    return MemoryRegion(ram.slot, ram.guest_phys_addr, ram.size, _runs(ram.read, ram.size))


def memory_problems(saved: Sequence[MemoryRegion], dest: Sequence[GuestRam]) -> list[str]:
    """Why ``saved`` cannot be restored into ``dest``: the memslots must be the same (slot,
    address, size), in the same order. Empty when they are."""
    want = [(r.slot, r.guest_phys_addr, r.size) for r in saved]
    have = [(m.slot, m.guest_phys_addr, m.size) for m in dest]
    if want == have:
        return []
    shown = [", ".join(f"slot {s} [{a:#x}, +{n:#x})" for s, a, n in x) or "none"
             for x in (have, want)]
    return [f"memory: the destination's memslots are {shown[0]}, the saved VM's {shown[1]}"]


def restore_memory(saved: Sequence[MemoryRegion], dest: Sequence[GuestRam]) -> int:
    """Write each saved region into the destination memslot of the same slot and place, and
    clear whatever non-zero pages the destination has between the runs. Refuses (nothing
    written) unless the memslots match. Returns the bytes written."""
    problems = memory_problems(saved, dest)
    if problems:
        raise RestoreError(f"memory restore refused, nothing written: {problems[0]}")
    written = 0
    for region, ram in zip(saved, dest, strict=True):
        pos = 0
        for off, data in (*region.runs, (region.size, b"")):
            written += _clear(ram, pos, off)
            if data:
                ram.write(off, data)
                written += len(data)
            pos = off + len(data)
    return written


def _clear(ram: GuestRam, start: int, end: int) -> int:
    """Zero the non-zero pages of [start, end); the bytes written."""
    written = 0
    for base in range(start, end, _CHUNK):
        n = min(_CHUNK, end - base)
        chunk = ram.read(base, n)
        if chunk == _ZERO_CHUNK[:n]:
            continue
        for p in range(0, n, PAGE):
            if chunk[p:p + PAGE] != _ZERO_PAGE:
                ram.write(base + p, _ZERO_PAGE)
                written += PAGE
    return written
