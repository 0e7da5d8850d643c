"""Print and parse arm64 register ids the way a kernel engineer writes them.

``describe`` prints an id the way the kernel's ``get-reg-list`` selftest does, with the name as
a C comment; ``parse`` reads that output back, and also short names, macro expressions and
numbers. The names of the SDEI block come from its declaration (``sdei_block``).
"""

from __future__ import annotations

import difflib
import re
from types import MappingProxyType
from typing import Final

from ..errors import set_register_namer
from ..state import U64_MAX
from . import sysregs
from .id_codec import (
    KVM_REG_ARM64_SVE_VLS,
    compose,
    demux_ccsidr,
    fw_feat_bmap_reg,
    fw_reg,
    norm_name,
    sve_ffr,
    sve_preg,
    sve_zreg,
    sys_reg,
    try_decode,
)
from .id_layout import (
    CORE_BY_KEY,
    FW_FEAT_BMAP_NAMES,
    FW_NAMES,
    KVM_ARM64_SVE_NUM_PREGS,
    KVM_ARM64_SVE_NUM_ZREGS,
    KVM_REG_ARM64,
    KVM_REG_ARM_DEMUX_ID_CCSIDR,
    CoreRegId,
    Group,
    RegSize,
    SveRegId,
)
from .sdei_block import SLOTS


def describe(reg_id: int) -> str:
    """One printer line, as the kernel's get-reg-list prints ids, with the name as a comment:

    ``KVM_REG_ARM_FW_REG(0)  /* PSCI_VERSION */``,
    ``ARM64_SYS_REG(3, 0, 12, 0, 0)  /* VBAR_EL1 */``,
    ``KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.regs[0])``.

    Core and SVE lines carry no comment (the member already names the register) except
    ``spsr[i]``, whose comment gives the mode. Never raises for an int: a malformed id prints
    as hex with the reason (``0x...  /* invalid: ... */``), so error messages can always name
    what they were given. ``parse`` reads every line back.
    """
    if isinstance(reg_id, bool) or not isinstance(reg_id, int) or not 0 <= reg_id <= U64_MAX:
        return f"{reg_id!r}  /* invalid: not an unsigned 64-bit register id */"
    r = try_decode(reg_id)
    if isinstance(r, str):
        return f"{reg_id:#018x}  /* invalid: {r} */"
    name = r.name
    if isinstance(r, CoreRegId):
        return f"{r.expr}  /* {name} */" if r.member.member.startswith("spsr") else r.expr
    if isinstance(r, SveRegId) or name is None:
        return r.expr
    return f"{r.expr}  /* {name} */"


def short_name(reg_id: int) -> str:
    """The register's short name: ``PSCI_VERSION``, ``SDEI_EVENT_STATE(0)``, ``VBAR_EL1``,
    ``x0``, ``CCSIDR(1)``, ``Z3``; the macro expression when it has no name
    (``ARM64_SYS_REG(3, 0, 0, 3, 3)``); the hex id when it is malformed. ``parse`` inverts it."""
    if isinstance(reg_id, bool) or not isinstance(reg_id, int) or not 0 <= reg_id <= U64_MAX:
        return repr(reg_id)
    r = try_decode(reg_id)
    if isinstance(r, str):
        return f"{reg_id:#018x}"
    return r.name or r.expr


def name_of(reg_id: int) -> str | None:
    """The short name of a well-formed id, or None when it has none (or is malformed)."""
    if isinstance(reg_id, bool) or not isinstance(reg_id, int) or not 0 <= reg_id <= U64_MAX:
        return None
    r = try_decode(reg_id)
    return None if isinstance(r, str) else r.name


# --- parsing ---------------------------------------------------------------------------------


def _named_ids() -> dict[str, int]:
    pairs: list[tuple[str, int]] = [
        (key, compose(c.size, Group.CORE, c.offset)) for key, c in CORE_BY_KEY.items()
    ]
    pairs += [(name, sys_reg(*enc)) for name, enc in sysregs.ENCODING_BY_NAME.items()]
    pairs += [(a, sys_reg(*sysregs.ENCODING_BY_NAME[t])) for a, t in sysregs.ALIASES.items()]
    for regno, name in FW_NAMES.items():
        pairs += [(name, fw_reg(regno)), ("KVM_REG_ARM_" + name, fw_reg(regno))]
    for regno, name in FW_FEAT_BMAP_NAMES.items():
        bmap = fw_feat_bmap_reg(regno)
        pairs += [(name, bmap), ("KVM_REG_ARM_" + name, bmap)]
    pairs += [(f"Z{n}", sve_zreg(n)) for n in range(KVM_ARM64_SVE_NUM_ZREGS)]
    pairs += [(f"P{n}", sve_preg(n)) for n in range(KVM_ARM64_SVE_NUM_PREGS)]
    pairs += [("FFR", sve_ffr()), ("SVE_VLS", KVM_REG_ARM64_SVE_VLS)]
    pairs += [("KVM_REG_ARM64_SVE_VLS", KVM_REG_ARM64_SVE_VLS)]
    out: dict[str, int] = {}
    for key, reg_id in pairs:
        if out.setdefault(key, reg_id) != reg_id:  # import-time guard against a clash
            raise AssertionError(f"ids: name {key} given to two registers")
    return out


_NAMED: Final = MappingProxyType(_named_ids())
"""Normalised (upper-case, no blanks) name -> id, SDEI names excepted (``_SDEI_NAMED``)."""

_SDEI_NAMED: Final = MappingProxyType({norm_name(s.name): fw_reg(s.regno) for s in SLOTS})
"""Normalised SDEI register name -> id."""

_CONSTANTS: Final = MappingProxyType(
    {"KVM_REG_ARM64": KVM_REG_ARM64, "KVM_REG_ARM_DEMUX_ID_CCSIDR": KVM_REG_ARM_DEMUX_ID_CCSIDR}
    | {s.macro: s.bits for s in RegSize}
    | {g.macro: g.bits for g in Group}
)
"""Macro names that are parts of an id, for ``|`` expressions."""

_CALL = re.compile(r"^([A-Z0-9_]+)\((.*)\)$")
_SYSREG_ASM = re.compile(r"^S([0-3])_([0-7])_C([0-9]|1[0-5])_C([0-9]|1[0-5])_([0-7])$")


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None


def _args(arg_text: str, count: int, macro: str) -> list[int]:
    parts = [p for p in arg_text.split(",")] if arg_text else []
    if len(parts) != count:
        raise ValueError(f"{macro}() takes {count} argument(s), got {len(parts)}")
    return [_int(p, f"{macro}() argument") for p in parts]


def _call_value(macro: str, arg_text: str) -> int | None:
    """Value of a function-like macro or call-style name, None if ``macro`` is not one."""
    if macro == "KVM_REG_ARM_CORE_REG":
        c = CORE_BY_KEY.get(arg_text)
        if c is None:
            raise ValueError(f"KVM_REG_ARM_CORE_REG({arg_text.lower()}): not a struct kvm_regs "
                             "member (regs.regs[0..30], regs.sp, regs.pc, regs.pstate, sp_el1, "
                             "elr_el1, spsr[0..4], fp_regs.vregs[0..31], fp_regs.fpsr/fpcr)")
        return c.offset
    if macro == "ARM64_SYS_REG":
        return sys_reg(*_args(arg_text, 5, macro))
    if macro == "KVM_REG_ARM_FW_REG":
        return fw_reg(*_args(arg_text, 1, macro))
    if macro == "KVM_REG_ARM_FW_FEAT_BMAP_REG":
        return fw_feat_bmap_reg(*_args(arg_text, 1, macro))
    if macro == "KVM_REG_ARM64_SVE_ZREG":
        return sve_zreg(*_args(arg_text, 2, macro))
    if macro == "KVM_REG_ARM64_SVE_PREG":
        return sve_preg(*_args(arg_text, 2, macro))
    if macro == "KVM_REG_ARM64_SVE_FFR":
        return sve_ffr(*_args(arg_text, 1, macro))
    if macro == "CCSIDR":
        return demux_ccsidr(*_args(arg_text, 1, "CCSIDR"))
    return None


def _lookup(term: str, original: str) -> tuple[int, bool] | None:
    """(value, is_plain_number) of one normalised ``|`` operand, None if it names nothing.
    ValueError for a name that is a trap or a macro with bad arguments."""
    if term[:1].isdigit() or term[:1] in "+-":
        value = _int(term, f"{original.strip()!r}")
        if not 0 <= value <= U64_MAX:
            raise ValueError(f"{original.strip()!r}: {term.lower()} is not an unsigned "
                             "64-bit register id")
        return value, True
    if term in sysregs.AMBIGUOUS:
        raise ValueError(f"{term} is ambiguous for KVM: {sysregs.AMBIGUOUS[term]}")
    if term in _NAMED:
        return _NAMED[term], False
    if term in _CONSTANTS:
        return _CONSTANTS[term], False
    if term in _SDEI_NAMED:
        return _SDEI_NAMED[term], False
    m = _SYSREG_ASM.match(term)
    if m:
        return sys_reg(*(int(g) for g in m.groups())), False
    m = _CALL.match(term)
    if m:
        try:
            called = _call_value(m.group(1), m.group(2))
        except ValueError as e:
            raise ValueError(f"{original.strip()!r}: {e}") from None
        if called is not None:
            return called, False
    return None


def _term(term: str, original: str) -> tuple[int, bool]:
    if not term:
        raise ValueError(f"{original.strip()!r}: empty operand in a '|' expression")
    found = _lookup(term, original)
    if found is None:
        raise ValueError(_unknown_message(term, original))
    return found


def _unknown_message(term: str, original: str) -> str:
    pool = list(_NAMED) + list(_SDEI_NAMED)
    close = difflib.get_close_matches(term, pool, n=3, cutoff=0.75)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (f"unknown register {original.strip()!r}: expected a register name (VBAR_EL1, x0, "
            f"PSCI_VERSION, SDEI_EVENT_STATE(0), ...), a macro expression "
            f"(ARM64_SYS_REG(3, 0, 12, 0, 0), KVM_REG_ARM_FW_REG(0), ...) or a number{hint}")


def _split_comment(text: str) -> tuple[str, str | None]:
    if "/*" not in text:
        return text, None
    expr, _, rest = text.partition("/*")
    comment, closed, tail = rest.partition("*/")
    if not closed or tail.strip(" \t,"):
        raise ValueError(f"{text!r}: malformed /* comment */")
    return expr, comment.strip()


def parse(text: str) -> int:
    """A register id from text; ValueError names what is wrong.

    Accepts: short names, case-insensitive (``VBAR_EL1``, ``x0``, ``pc``, ``pstate``,
    ``SP_EL0``, ``PSCI_VERSION``, ``KVM_REG_ARM_STD_BMAP``, ``SDEI_EVENT_STATE(0)``,
    ``CCSIDR(2)``, ``Z0``, ``S3_0_C12_C0_0``); every line ``describe`` prints, including its
    ``/* name */`` comment (which must not name a different register) and a trailing comma;
    ``|`` expressions of the uapi macros (``KVM_REG_ARM64 | KVM_REG_SIZE_U64 |
    KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.pc)``); numbers (``0x6030000000140000``,
    ``0x6030_0000_0014_0000``, decimal).

    A name or expression must build a well-formed id (``decode_id`` accepts it). A plain number is
    returned as given, well-formed or not, so that tests can name ids KVM must refuse; use
    ``decode_id`` to validate it.
    """
    if not isinstance(text, str):
        raise ValueError(f"register must be given as text, not {type(text).__name__}")
    expr, comment = _split_comment(text)
    expr = expr.strip().rstrip(",").strip()
    if not expr:
        raise ValueError(f"{text!r}: no register given")
    terms = [norm_name(t) for t in expr.split("|")]
    values = [_term(t, text) for t in terms]
    reg_id = 0
    for v, _ in values:
        reg_id |= v
    if not (len(values) == 1 and values[0][1]):
        reason = try_decode(reg_id)
        if isinstance(reason, str):
            raise ValueError(f"{text.strip()!r} builds {reg_id:#018x}, which is not a valid "
                             f"arm64 register id: {reason}")
    if comment:
        _check_comment(comment, reg_id, text)
    return reg_id


def _check_comment(comment: str, reg_id: int, text: str) -> None:
    # A comment naming a register must agree with the expression; free text is ignored.
    try:
        found = _lookup(norm_name(comment), comment) if comment[:1].isalpha() else None
    except ValueError:
        return
    named = found[0] if found is not None else None
    if named is not None and named != reg_id:
        raise ValueError(f"{text.strip()!r}: the comment names {short_name(named)} "
                         f"({named:#018x}) but the expression is {short_name(reg_id)} "
                         f"({reg_id:#018x})")


set_register_namer(describe)  # RegError messages print ids the way ``describe`` does
