"""The CPU-context interface that hypercalls, dispatch and completion read and write.

The state machine never touches a vCPU directly: it reads and writes these registers through a
``CpuRegs`` object. ``MemoryCpu`` keeps them in memory (the simulated vCPU); the userspace
provider implements the same protocol over KVM_{GET,SET}_ONE_REG, batching each read or write
into one call, which is why the protocol works on several registers at once rather than one.
``read`` gives the same shape ``write`` takes, ``{CpuReg: value}``, so ``cpu.write(cpu.read(regs))``
puts back what was read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import IntEnum
from typing import Any, Final, Protocol, runtime_checkable

from .state import RESET_SCTLR_EL1, U64_MAX, Mode


class CpuReg(IntEnum):
    """The registers the SDEI machine uses. X0..X30 are numbered 0..30 so CpuReg(n) is xn."""

    X0 = 0
    X1 = 1
    X2 = 2
    X3 = 3
    X4 = 4
    X5 = 5
    X6 = 6
    X7 = 7
    X8 = 8
    X9 = 9
    X10 = 10
    X11 = 11
    X12 = 12
    X13 = 13
    X14 = 14
    X15 = 15
    X16 = 16
    X17 = 17
    X18 = 18
    X19 = 19
    X20 = 20
    X21 = 21
    X22 = 22
    X23 = 23
    X24 = 24
    X25 = 25
    X26 = 26
    X27 = 27
    X28 = 28
    X29 = 29
    X30 = 30
    SP = 31
    PC = 32
    PSTATE = 33
    ELR_EL1 = 34
    SPSR_EL1 = 35
    VBAR_EL1 = 36
    SCTLR_EL1 = 37

    @property
    def key(self) -> str:
        """The scenario/JSON name: ``x0`` .. ``x30``, ``sp``, ``pc``, ``pstate``, ``elr_el1`` ..."""
        return f"x{self.value}" if self.value <= 30 else self.name.lower()


GPRS: Final = tuple(CpuReg(n) for n in range(31))
CONTEXT_GPRS: Final = GPRS[:18]
CALL_ARGS: Final = (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.X4, CpuReg.X5)
RESET_PSTATE: Final = int(Mode.EL1H)
"""All registers reset to 0 except PSTATE, which starts at EL1h, and SCTLR_EL1, which starts at
KVM's reset value (DESIGN section 7)."""


@runtime_checkable
class CpuRegs(Protocol):
    """Read and write a vCPU's registers. Values are unsigned 64-bit."""

    def read(self, regs: Sequence[CpuReg]) -> dict[CpuReg, int]:
        """``{reg: value}`` for each of ``regs``, in the order asked (a register asked twice
        appears once): the shape ``write`` takes, so ``write(read(regs))`` changes nothing."""
        ...

    def write(self, values: Mapping[CpuReg, int]) -> None:
        """Write every register in ``values`` (``read`` gives such a mapping)."""
        ...


class TupleReadCpu:
    """The base of the library's own ``CpuRegs``: ``_values`` reads, ``read`` keys the values
    by register. The model's per-exit paths take the tuple itself (``read_values``): a dict
    per read made the userspace provider's own time per SDEI exit about a tenth longer."""

    __slots__ = ()

    _values: Callable[[Sequence[CpuReg]], tuple[int, ...]]
    """The values of ``regs``, in order (a register asked twice, twice): each subclass reads
    its own registers here. Checked when a subclass is defined, not by an ABC, so
    ``read_values``'s isinstance test stays a plain type check."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not callable(getattr(cls, "_values", None)):
            raise TypeError(f"{cls.__name__}: a TupleReadCpu must define _values(regs)")

    write: Callable[[Mapping[CpuReg, int]], None]
    """Every subclass is a ``CpuRegs``: it checks and writes a mapping here."""

    def read(self, regs: Sequence[CpuReg]) -> dict[CpuReg, int]:
        return dict(zip(regs, self._values(regs), strict=True))

    def _write_values(self, regs: tuple[CpuReg, ...], values: tuple[int, ...]) -> None:
        """Write the model's own ``values`` to ``regs`` (``write_values``). By default through
        ``write``; a subclass may take them as they are, since the model made them."""
        self.write(dict(zip(regs, values, strict=True)))


def read_values(cpu: CpuRegs, regs: Sequence[CpuReg]) -> tuple[int, ...]:
    """The values of ``regs`` in order, for the model's hot paths: the
    library's own ``CpuRegs`` give their tuple (no dict is built); any other, through ``read``."""
    if isinstance(cpu, TupleReadCpu):
        return cpu._values(regs)
    got = cpu.read(regs)
    return tuple(got[r] for r in regs)


def write_values(cpu: CpuRegs, regs: tuple[CpuReg, ...], values: tuple[int, ...]) -> None:
    """Write ``values[i]`` to ``regs[i]``, for the model's hot paths. The values are the model's
    own: results it computed as u64 and contexts it read from the vCPU or accepted through a
    checked constructor, so the library's own ``CpuRegs`` store them without judging each
    again (issue 12: no re-validation inside the machine's own transitions). Any other
    ``CpuRegs`` gets them through ``write``. The result equals ``write(dict(zip(regs,
    values)))``, which ``tests/test_cpu_regs.py`` proves for each library ``CpuRegs``."""
    if isinstance(cpu, TupleReadCpu):
        cpu._write_values(regs, values)
    else:
        cpu.write(dict(zip(regs, values, strict=True)))


def plain_u64s(values: Iterable[object]) -> bool:
    """True if every value is a plain ``int`` (no bool, no subclass) in 0 .. 2**64 - 1: the
    usual case of a write, judged without a message; a caller walks the values with its own
    checks (which name the bad one) only when this is False. A loop: on CPython 3.11 it beats
    ``map(type)`` with ``min`` and ``max`` in C (three iterators) for the handful of registers
    a call writes, and for a restore's forty."""
    for v in values:  # noqa: SIM110 (all() over a generator costs a frame per value)
        if type(v) is not int or v < 0 or v > U64_MAX:
            return False
    return True


_SP: Final = CpuReg.SP  # a module constant: a member read through its class costs ~0.14 us


class MemoryCpu(TupleReadCpu):
    """An in-memory vCPU register file (the simulated vCPU's core registers)."""

    __slots__ = ("_r",)

    def __init__(self, values: Mapping[CpuReg, int] | None = None) -> None:
        self._r = [0] * len(CpuReg)
        self._r[CpuReg.PSTATE] = RESET_PSTATE
        self._r[CpuReg.SCTLR_EL1] = RESET_SCTLR_EL1
        if values:
            self.write(values)

    def _values(self, regs: Sequence[CpuReg]) -> tuple[int, ...]:
        return tuple(map(self._r.__getitem__, regs))

    def _write_values(self, regs: tuple[CpuReg, ...], values: tuple[int, ...]) -> None:
        if _SP in regs:  # a subclass may bank SP (``BankedCpu``): its write knows how
            self.write(dict(zip(regs, values, strict=True)))
            return
        r = self._r
        for reg, v in zip(regs, values, strict=True):
            r[reg] = v

    def write(self, values: Mapping[CpuReg, int]) -> None:
        if not plain_u64s(values.values()):  # any other value is walked, naming a bad one
            self._check(values)
        r = self._r
        for reg in values:
            r[reg] = values[reg]

    @staticmethod
    def _check(values: Mapping[CpuReg, int]) -> None:
        for reg, v in values.items():
            if not 0 <= v <= U64_MAX:
                raise ValueError(f"{CpuReg(reg).key} = {v!r} is not an unsigned 64-bit value")

    def __getitem__(self, reg: CpuReg) -> int:
        return self._r[reg]

    def __setitem__(self, reg: CpuReg, value: int) -> None:
        self.write({reg: value})

    def snapshot(self) -> dict[CpuReg, int]:
        return {reg: self._r[reg] for reg in CpuReg}

    def as_json(self) -> dict[str, object]:
        """The ``cpu`` object of a scenario result (DESIGN section 7): SCTLR_EL1 is input only."""
        r = self._r
        return {
            "x": r[:31],
            "sp": r[CpuReg.SP],
            "pc": r[CpuReg.PC],
            "pstate": r[CpuReg.PSTATE],
            "elr_el1": r[CpuReg.ELR_EL1],
            "spsr_el1": r[CpuReg.SPSR_EL1],
            "vbar_el1": r[CpuReg.VBAR_EL1],
        }

    def __repr__(self) -> str:
        nz = ", ".join(f"{reg.key}={v:#x}" for reg, v in zip(CpuReg, self._r, strict=True) if v)
        return f"MemoryCpu({nz})"


def reg_by_key(key: str) -> CpuReg:
    """``x7`` / ``pc`` / ``vbar_el1`` -> CpuReg; KeyError naming the key if unknown."""
    k = key.lower()
    if k.startswith("x") and k[1:].isdigit() and 0 <= int(k[1:]) <= 30:
        return CpuReg(int(k[1:]))
    try:
        return CpuReg[k.upper()]
    except KeyError:
        raise KeyError(f"unknown CPU register {key!r}") from None
