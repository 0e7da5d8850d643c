"""A tiny assembler: a word buffer at a fixed base address with labels and fixups.

Guest programs are written as Python calls (``asm.emit(a64.hvc(0))``, ``asm.b("loop")``);
PC-relative forms and 64-bit address loads may name a label defined later, and
``assemble()`` resolves them into an immutable ``Image``. The assembler records which ranges
hold instructions, so checks and listings never try to decode data.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final

from . import a64
from .a64 import Cond, EncodeError
from .disasm import disassemble

Target = str | int
"""A label name, or an absolute address."""


class AsmError(EncodeError):
    """A program that cannot be assembled: unknown or duplicate label, overlap, range."""


class _Fix(Enum):
    B = "b"
    BL = "bl"
    B_COND = "b.cond"
    CBZ = "cbz"
    CBNZ = "cbnz"
    ADR = "adr"
    LDR_LIT = "ldr (literal)"
    MOV64 = "mov64"
    QUAD = "quad"


@dataclass(frozen=True, slots=True)
class _Fixup:
    kind: _Fix
    at: int  # address of the (first) word to patch
    target: Target
    minus: Target | None = None  # MOV64: value = target - minus + addend
    addend: int = 0
    reg: int = 0
    cond: int = 0


@dataclass(frozen=True)
class Image:
    """Assembled guest code and data, to be copied to guest memory at ``base``."""

    base: int
    data: bytes
    symbols: Mapping[str, int] = field(default_factory=dict)
    """Label -> absolute address (a read-only mapping)."""
    code: tuple[tuple[int, int], ...] = ()
    """[start, end) address ranges that hold instructions (not data or padding)."""

    @property
    def end(self) -> int:
        """First address past the image."""
        return self.base + len(self.data)

    def contains(self, address: int) -> bool:
        """True if ``address`` lies inside the image."""
        return self.base <= address < self.end

    def is_code(self, address: int) -> bool:
        """True if ``address`` is an instruction (4-byte aligned, inside a code range)."""
        return address % 4 == 0 and any(lo <= address < hi for lo, hi in self.code)

    def word(self, address: int) -> int:
        """The 32-bit little-endian word at ``address`` (4-byte aligned, inside the image)."""
        if address % 4 or not self.base <= address <= self.end - 4:
            raise ValueError(f"no word at {address:#x} in image {self.base:#x}..{self.end:#x}")
        return int.from_bytes(self.data[address - self.base:address - self.base + 4], "little")

    def code_words(self) -> Iterator[tuple[int, int]]:
        """(address, word) of every instruction, in address order."""
        for lo, hi in self.code:
            for a in range(lo, hi, 4):
                yield a, self.word(a)

    def symbol(self, name: str) -> int:
        """The address of a label; KeyError naming it if unknown."""
        try:
            return self.symbols[name]
        except KeyError:
            raise KeyError(f"no symbol {name!r} in the image") from None

    def labels_at(self, address: int) -> list[str]:
        """The labels defined at ``address``, sorted."""
        return sorted(n for n, a in self.symbols.items() if a == address)

    def listing(self) -> str:
        """Disassembly of the code ranges with labels, one instruction per line."""
        out: list[str] = []
        for a, w in self.code_words():
            out.extend(f"{n}:" for n in self.labels_at(a))
            out.append(f"  {a:#010x}:  {w:08x}  {disassemble(w, a)}")
        return "\n".join(out)


MOV64_WORDS: Final = 4


def _is_u(v: object, bits: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << bits


class Asm:
    """Assemble instructions and data at consecutive addresses from ``base``."""

    def __init__(self, base: int) -> None:
        if not isinstance(base, int) or base < 0 or base % 4:
            raise AsmError(f"base = {base!r} is not a 4-byte aligned address")
        self.base = base
        self._buf = bytearray()
        self._labels: dict[str, int] = {}
        self._fixups: list[_Fixup] = []
        self._code: list[tuple[int, int]] = []

    @property
    def pc(self) -> int:
        """The address the next word goes to."""
        return self.base + len(self._buf)

    # -- placement --------------------------------------------------------------------------

    def label(self, name: str) -> int:
        """Define ``name`` at the current address and return that address."""
        if not isinstance(name, str) or not name:
            raise AsmError(f"label name {name!r} is not a non-empty string")
        if name in self._labels:
            raise AsmError(f"label {name!r} defined twice ({self._labels[name]:#x}, {self.pc:#x})")
        self._labels[name] = self.pc
        return self.pc

    def org(self, address: int, *, why: str = "") -> None:
        """Pad with zero bytes up to ``address``; refuse to move backwards (an overlap)."""
        if address < self.pc:
            what = f" for {why}" if why else ""
            raise AsmError(f"org {address:#x}{what}: already at {self.pc:#x} "
                           f"({self.pc - address:#x} bytes too many before it)")
        self._buf.extend(bytes(address - self.pc))

    def align(self, boundary: int) -> None:
        """Pad with zero bytes to a multiple of ``boundary`` (a power of two)."""
        if boundary <= 0 or boundary & (boundary - 1):
            raise AsmError(f"align {boundary}: not a power of two")
        self.org(-(-self.pc // boundary) * boundary)

    # -- instructions -----------------------------------------------------------------------

    def emit(self, *words: int | Iterable[int]) -> int:
        """Append instruction words (ints, or iterables such as ``mov_imm64`` results).
        Returns the address of the first one."""
        if self.pc % 4:
            raise AsmError(f"instruction at unaligned address {self.pc:#x}")
        start = self.pc
        for w in words:
            for word in (w,) if isinstance(w, int) else w:
                if not _is_u(word, 32):
                    raise AsmError(f"instruction word {word!r} at {self.pc:#x} is not a u32")
                self._buf += word.to_bytes(4, "little")
        self._mark_code(start, self.pc)
        return start

    def _mark_code(self, lo: int, hi: int) -> None:
        if lo == hi:
            return
        if self._code and self._code[-1][1] == lo:
            self._code[-1] = (self._code[-1][0], hi)
        else:
            self._code.append((lo, hi))

    def _fixup(self, kind: _Fix, target: Target, words: int = 1, *, minus: Target | None = None,
               addend: int = 0, reg: int = 0, cond: int = 0) -> int:
        for t in (target, minus):
            if t is not None and (not isinstance(t, str | int) or isinstance(t, bool)):
                raise AsmError(f"{kind.value}: target {t!r} is not a label or an address")
        at = self.emit([0] * words)
        self._fixups.append(_Fixup(kind, at, target, minus, addend, reg, cond))
        return at

    def b(self, target: Target) -> int:
        """``b target``."""
        return self._fixup(_Fix.B, target)

    def bl(self, target: Target) -> int:
        """``bl target``."""
        return self._fixup(_Fix.BL, target)

    def b_cond(self, cond: Cond, target: Target) -> int:
        """``b.<cond> target``."""
        a64.b_cond(cond, 0)  # checks cond now, where the mistake is
        return self._fixup(_Fix.B_COND, target, cond=int(cond))

    def cbz(self, rt: int, target: Target) -> int:
        """``cbz xt, target``."""
        a64.cbz(rt, 0)
        return self._fixup(_Fix.CBZ, target, reg=rt)

    def cbnz(self, rt: int, target: Target) -> int:
        """``cbnz xt, target``."""
        a64.cbnz(rt, 0)
        return self._fixup(_Fix.CBNZ, target, reg=rt)

    def adr(self, rd: int, target: Target) -> int:
        """``adr xd, target`` (within +-1 MiB)."""
        a64.adr(rd, 0)
        return self._fixup(_Fix.ADR, target, reg=rd)

    def ldr_literal(self, rt: int, target: Target) -> int:
        """``ldr xt, target`` (a 64-bit literal within +-1 MiB)."""
        a64.ldr_literal(rt, 0)
        return self._fixup(_Fix.LDR_LIT, target, reg=rt)

    def mov_imm(self, rd: int, value: int) -> int:
        """xd = value, with the shortest ``mov_imm64`` sequence."""
        return self.emit(a64.mov_imm64(rd, value))

    def mov_addr(self, rd: int, target: Target, *, minus: Target | None = None,
                 addend: int = 0) -> int:
        """xd = address of ``target`` (minus that of ``minus``, plus ``addend``), as four
        fixed words because the value is known only after layout."""
        a64.mov_imm64_fixed(rd, 0)
        return self._fixup(_Fix.MOV64, target, MOV64_WORDS, minus=minus, addend=addend, reg=rd)

    # -- data -------------------------------------------------------------------------------

    def words(self, *values: int) -> int:
        """Append 32-bit data words (not decoded as instructions)."""
        start = self.pc
        for v in values:
            if not _is_u(v, 32):
                raise AsmError(f"data word {v!r} at {self.pc:#x} is not a u32")
            self._buf += v.to_bytes(4, "little")
        return start

    def quad(self, *values: int) -> int:
        """Append 64-bit little-endian data values."""
        start = self.pc
        for v in values:
            if not _is_u(v, 64):
                raise AsmError(f"data quad {v!r} at {self.pc:#x} is not a u64")
            self._buf += struct.pack("<Q", v)
        return start

    def quad_addr(self, target: Target) -> int:
        """Append a 64-bit data value holding the address of ``target``."""
        start = self.pc
        self._buf += bytes(8)
        self._fixups.append(_Fixup(_Fix.QUAD, start, target))
        return start

    def bytes(self, data: bytes) -> int:
        """Append raw data bytes."""
        start = self.pc
        self._buf += bytes(data)
        return start

    # -- output -----------------------------------------------------------------------------

    def address(self, target: Target, *, at: int | None = None) -> int:
        """The address of a label (or an address itself); AsmError if the label is unknown."""
        if isinstance(target, int):
            return target
        try:
            return self._labels[target]
        except KeyError:
            where = f" (used at {at:#x})" if at is not None else ""
            raise AsmError(f"undefined label {target!r}{where}") from None

    def assemble(self) -> Image:
        """Resolve every fixup and return the image. The assembler may go on afterwards."""
        buf = bytearray(self._buf)
        for f in self._fixups:
            words = self._resolve(f)
            off = f.at - self.base
            for n, w in enumerate(words):
                if f.kind is _Fix.QUAD:
                    buf[off:off + 8] = struct.pack("<Q", w)
                else:
                    buf[off + 4 * n:off + 4 * n + 4] = w.to_bytes(4, "little")
        return Image(self.base, bytes(buf), MappingProxyType(dict(self._labels)),
                     tuple(self._code))

    def _resolve(self, f: _Fixup) -> tuple[int, ...]:
        dest = self.address(f.target, at=f.at)
        off = dest - f.at
        try:
            if f.kind is _Fix.MOV64:
                base = 0 if f.minus is None else self.address(f.minus, at=f.at)
                return a64.mov_imm64_fixed(f.reg, (dest - base + f.addend) & a64.U64_MASK)
            if f.kind is _Fix.QUAD:
                return (dest,)
            return (_PCREL[f.kind](f, off),)
        except EncodeError as e:
            msg = f"{f.kind.value} at {f.at:#x} to {f.target!r} ({dest:#x}): {e}"
            raise AsmError(msg) from None


_PCREL: Final[Mapping[_Fix, Callable[[_Fixup, int], int]]] = {
    _Fix.B: lambda f, off: a64.b(off),
    _Fix.BL: lambda f, off: a64.bl(off),
    _Fix.B_COND: lambda f, off: a64.b_cond(f.cond, off),
    _Fix.CBZ: lambda f, off: a64.cbz(f.reg, off),
    _Fix.CBNZ: lambda f, off: a64.cbnz(f.reg, off),
    _Fix.ADR: lambda f, off: a64.adr(f.reg, off),
    _Fix.LDR_LIT: lambda f, off: a64.ldr_literal(f.reg, off),
}
