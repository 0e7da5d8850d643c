"""Architectural names the A64 encoder, decoder and interpreter share (Arm ARM, DDI 0487):
register numbers, condition codes, system-register keys, and the error a bad operand raises."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ..errors import SdeiStateError

XZR: Final = 31
"""Register 31 where an instruction reads it as the zero register."""
SP: Final = 31
"""Register 31 where an instruction reads it as the stack pointer."""
LR: Final = 30

U32_MAX: Final = 0xFFFFFFFF
U64_MASK: Final = (1 << 64) - 1


class EncodeError(SdeiStateError, ValueError):
    """An operand an instruction cannot encode; the message names instruction and operand."""


class Cond(IntEnum):
    """Condition codes of ``b.cond`` (Arm ARM C1.2.4)."""

    EQ = 0
    NE = 1
    CS = 2
    CC = 3
    MI = 4
    PL = 5
    VS = 6
    VC = 7
    HI = 8
    LS = 9
    GE = 10
    LT = 11
    GT = 12
    LE = 13
    AL = 14
    NV = 15
    HS = 2  # aliases: unsigned higher-or-same / lower
    LO = 3


def check_int(insn: str, operand: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodeError(f"{insn}: {operand} = {value!r} is not an integer")


def sysreg(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """The 16-bit system-register key ``op0:op1:CRn:CRm:op2`` (as Linux's ``sys_reg()``)."""
    for name, v, hi in (("op0", op0, 3), ("op1", op1, 7), ("CRn", crn, 15), ("CRm", crm, 15),
                        ("op2", op2, 7)):
        check_int("sysreg", name, v)
        if not 0 <= v <= hi:
            raise EncodeError(f"sysreg: {name} = {v} is outside 0..{hi}")
    if op0 < 2:
        raise EncodeError(f"sysreg: op0 = {op0} is not a register access (must be 2 or 3)")
    return op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2


class SysReg(IntEnum):
    """The system registers the guest programs read or write, keyed by ``sysreg()``."""

    MIDR_EL1 = sysreg(3, 0, 0, 0, 0)
    MPIDR_EL1 = sysreg(3, 0, 0, 0, 5)
    SCTLR_EL1 = sysreg(3, 0, 1, 0, 0)
    SPSR_EL1 = sysreg(3, 0, 4, 0, 0)
    ELR_EL1 = sysreg(3, 0, 4, 0, 1)
    SP_EL0 = sysreg(3, 0, 4, 1, 0)
    SPSEL = sysreg(3, 0, 4, 2, 0)
    CURRENTEL = sysreg(3, 0, 4, 2, 2)
    NZCV = sysreg(3, 3, 4, 2, 0)
    DAIF = sysreg(3, 3, 4, 2, 1)
    ESR_EL1 = sysreg(3, 0, 5, 2, 0)
    FAR_EL1 = sysreg(3, 0, 6, 0, 0)
    VBAR_EL1 = sysreg(3, 0, 12, 0, 0)
    TPIDR_EL1 = sysreg(3, 0, 13, 0, 4)
    TPIDR_EL0 = sysreg(3, 3, 13, 0, 2)
    TPIDRRO_EL0 = sysreg(3, 3, 13, 0, 3)
    CNTFRQ_EL0 = sysreg(3, 3, 14, 0, 0)
    CNTVCT_EL0 = sysreg(3, 3, 14, 0, 2)


READ_ONLY: Final = frozenset({SysReg.MIDR_EL1, SysReg.MPIDR_EL1, SysReg.CURRENTEL,
                              SysReg.CNTVCT_EL0})
"""Registers ``msr`` may not write (the write encoding is UNDEFINED)."""


def sysreg_name(key: int) -> str:
    """GNU name of a system register key: ``vbar_el1``, or ``s3_0_c12_c0_0`` if unnamed."""
    try:
        return SysReg(key).name.lower()
    except ValueError:
        return (f"s{key >> 14 & 3}_{key >> 11 & 7}_c{key >> 7 & 15}_c{key >> 3 & 15}"
                f"_{key & 7}")
