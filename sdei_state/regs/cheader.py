"""Render the SDEI register declarations for readers outside Python.

Two renderings of the same declarations (the register families of ``sdei_block``, the layouts
of ``sdei_decl``, the event table): ``cdefs/sdei_state_abi.h``, C macros a kernel or C VMM can
include (no other header needed), and the generated tables of ``docs/abi.md``. Nothing here is
typed in by hand, so neither can drift from the code.

``python -m sdei_state.regs.cheader`` rewrites both; ``--check`` only reports whether they are
current (exit status 1 if not).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..events import EVENTS
from ..state import MODE_NAMES
from .sdei_block import (
    CONTEXT_NR,
    CONTEXT_R_PC,
    CONTEXT_R_PSTATE,
    FAMILIES,
    SDEI_FIRST_REGNO,
    SDEI_LAST_REGNO,
    Family,
    Scope,
    SdeiRegKind,
    room,
)
from .sdei_decl import (
    CONTEXT_PC_LAYOUT,
    CONTEXT_PSTATE_LAYOUT,
    CONTEXT_X_LAYOUT,
    EP_ADDR_LAYOUT,
    EP_ARG_LAYOUT,
    EVENT_STATE_LAYOUT,
    LAYOUTS,
    VCPU_STATE_LAYOUT,
)
from .sdei_layout import RegLayout
from .sdei_table import ID_BASE, SDEI_REGS, SdeiReg

PREFIX: Final = "KVM_REG_ARM_SDEI"
GUARD: Final = "SDEI_STATE_ABI_H"

LAYOUT_PREFIX: Final = {
    VCPU_STATE_LAYOUT: f"{PREFIX}_VCPU_STATE",
    EVENT_STATE_LAYOUT: f"{PREFIX}_EVENT_STATE",
    EP_ADDR_LAYOUT: f"{PREFIX}_EVENT_EP_ADDR",
    EP_ARG_LAYOUT: f"{PREFIX}_EVENT_EP_ARG",
    CONTEXT_X_LAYOUT: f"{PREFIX}_CONTEXT_X",
    CONTEXT_PC_LAYOUT: f"{PREFIX}_CONTEXT_PC",
    CONTEXT_PSTATE_LAYOUT: f"{PREFIX}_CONTEXT_PSTATE",
}
"""The C name prefix of each layout's field macros."""

_FAMILY_MACRO: Final = {
    SdeiRegKind.VCPU_STATE: f"{PREFIX}_VCPU_STATE",
    SdeiRegKind.EVENT_STATE: f"{PREFIX}_EVENT_STATE",
    SdeiRegKind.EP_ADDR: f"{PREFIX}_EVENT_EP_ADDR",
    SdeiRegKind.EP_ARG: f"{PREFIX}_EVENT_EP_ARG",
    SdeiRegKind.CONTEXT: f"{PREFIX}_CONTEXT",
}


def c_call(reg: SdeiReg) -> str:
    """The function-like macro call naming ``reg``: ``KVM_REG_ARM_SDEI_CONTEXT(1, 19)``."""
    base = _FAMILY_MACRO[reg.kind]
    if reg.kind is SdeiRegKind.VCPU_STATE:
        return base
    if reg.kind is SdeiRegKind.CONTEXT:
        return f"{base}({reg.cls:d}, {reg.r})"
    return f"{base}({reg.event_index})"


def c_name(reg: SdeiReg) -> str:
    """The expanded object-like macro of ``reg``: ``KVM_REG_ARM_SDEI_CONTEXT_1_19``."""
    base = _FAMILY_MACRO[reg.kind]
    if reg.kind is SdeiRegKind.VCPU_STATE:
        return base
    if reg.kind is SdeiRegKind.CONTEXT:
        return f"{base}_{reg.cls:d}_{reg.r}"
    return f"{base}_{reg.event_index}"


def _u64(v: int) -> str:
    return f"0x{v:016x}ULL"


@dataclass(frozen=True, slots=True)
class Macro:
    """One ``#define``; ``value`` is what the C preprocessor must produce (None for
    function-like macros, whose expansions are checked through every register instead)."""

    name: str
    body: str
    value: int | None
    comment: str = ""


def _needs_registered(layout: RegLayout) -> int:
    """EVENT_STATE: the flags that are legal only together with REGISTERED, derived from the
    declaration's rule outcomes (ENABLED, PENDING, RELATIVE)."""
    reg = layout.by_attr["registered"].mask
    out = 0
    for f in layout.fields:
        if (f.kind == "flag" and f.mask != reg and layout.problem(f.mask) is not None
                and layout.problem(f.mask | reg) is None):
            out |= f.mask
    # The whole rule is "none of these without REGISTERED": prove it on every combination.
    for v in range(1 << 5):
        legal = layout.problem(v) is None
        if legal != (not (v & out) or bool(v & reg)):
            raise AssertionError("EVENT_STATE rules are not 'needs REGISTERED' rules")
    return out


def _legal_status_bitmap(layout: RegLayout) -> int:
    """Bit s set iff (REGISTERED, ENABLED, RUNNING) = s (bits[2:0]) is a legal handler state."""
    return sum(1 << s for s in range(8) if layout.problem(s) is None)


def _allowed_modes_bitmap() -> int:
    """Bit m set iff PSTATE.M[4:0] = m is accepted in a saved context."""
    return sum(1 << m for m in range(32) if CONTEXT_PSTATE_LAYOUT.problem(m) is None)


_FAMILY_NOTE: Final = {
    Scope.EVENT: "i: event index (KVM_SDEI_EVENT_*)",
    Scope.CLASS: "c: class (0 normal, 1 critical); r: 0..17 x0..x17, 18 PC, 19 PSTATE",
}


def _family_macro(f: Family) -> Macro:
    """The id macro of a family, from its base, stride and scope: ``..._CONTEXT(c, r)``."""
    base = _FAMILY_MACRO[f.kind]
    body = f"0x{f.base:04x}"
    if f.scope is Scope.VCPU:
        return Macro(base, f"{PREFIX}_REG({body})", None)
    arg = "i" if f.scope is Scope.EVENT else "c"
    stride = "" if f.stride == 1 else (
        f"{f.stride} * " if f.stride < 10 else f"0x{f.stride:02x} * ")
    body += f" + {stride}({arg})"
    if f.width > 1:
        return Macro(f"{base}({arg}, r)", f"{PREFIX}_REG({body} + (r))", None,
                     _FAMILY_NOTE[f.scope])
    note = _FAMILY_NOTE[f.scope] if f.kind is SdeiRegKind.EVENT_STATE else ""
    return Macro(f"{base}({arg})", f"{PREFIX}_REG({body})", None, note)


def _layout_macros(layout: RegLayout) -> list[Macro]:
    p = LAYOUT_PREFIX[layout]
    out: list[Macro] = []
    for f in layout.fields:
        if f.kind == "res0":
            out.append(Macro(f"{p}_RES0", _u64(f.mask), f.mask, f"{f.bits} RES0: {f.doc}"))
        elif f.width == 64:
            continue  # a whole-register value has no field to extract
        elif f.kind == "flag":
            out.append(Macro(f"{p}_{f.name}_SHIFT", str(f.lsb), f.lsb))
            out.append(Macro(f"{p}_{f.name}", _u64(f.mask), f.mask, f"{f.bits}: {f.doc}"))
        else:
            out.append(Macro(f"{p}_{f.name}_SHIFT", str(f.lsb), f.lsb))
            out.append(Macro(f"{p}_{f.name}_MASK", _u64(f.mask), f.mask, f"{f.bits}: {f.doc}"))
    return out


def _items() -> list[Macro | str]:
    """The header's content in order: macros, and section titles (str)."""
    out: list[Macro | str] = [
        "Ids",
        Macro(f"{PREFIX}_FW_BASE", _u64(ID_BASE), ID_BASE,
              "KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW (= KVM_REG_ARM_FW_REG(0))"),
        Macro(f"{PREFIX}_REG(regno)", f"({PREFIX}_FW_BASE | ((regno) & 0xffffULL))", None,
              "the id of an SDEI firmware regno"),
        Macro(f"{PREFIX}_REGNO_FIRST", f"0x{SDEI_FIRST_REGNO:04x}", SDEI_FIRST_REGNO,
              "the regno block taken by SDEI"),
        Macro(f"{PREFIX}_REGNO_LAST", f"0x{SDEI_LAST_REGNO:04x}", SDEI_LAST_REGNO),
        Macro(f"{PREFIX}_NR_REGS", str(len(SDEI_REGS)), len(SDEI_REGS),
              "registers per vCPU, all U64"),
        *(_family_macro(f) for f in FAMILIES),
        Macro(f"{PREFIX}_CONTEXT_R_PC", str(CONTEXT_R_PC), CONTEXT_R_PC),
        Macro(f"{PREFIX}_CONTEXT_R_PSTATE", str(CONTEXT_R_PSTATE), CONTEXT_R_PSTATE),
        Macro(f"{PREFIX}_CONTEXT_NR", str(CONTEXT_NR), CONTEXT_NR, "registers per class"),
        "The same ids, expanded (name suffixes are the macro arguments)",
    ]
    out += [Macro(c_name(reg), _u64(reg.id), reg.id)
            for reg in SDEI_REGS if reg.kind is not SdeiRegKind.VCPU_STATE]
    for layout in LAYOUTS:
        out.append(f"{layout.title}\n   {layout.summary}")
        out.extend(_layout_macros(layout))
    out.append("Reset values (every vCPU, at creation and on vCPU reset)")
    reset = {reg.layout: reg.reset for reg in SDEI_REGS}
    for layout in LAYOUTS:
        out.append(Macro(f"{LAYOUT_PREFIX[layout]}_RESET", _u64(reset[layout]), reset[layout]))
    need = _needs_registered(EVENT_STATE_LAYOUT)
    status = _legal_status_bitmap(EVENT_STATE_LAYOUT)
    modes = _allowed_modes_bitmap()
    out += [
        "Value checks (KVM_SET_ONE_REG fails with EINVAL otherwise; RES0 bits are checked too)",
        Macro(f"{PREFIX}_EVENT_STATE_STATUS_MASK", _u64(7), 7,
              "bits[2:0]: exactly the SDEI_EVENT_STATUS result"),
        Macro(f"{PREFIX}_EVENT_STATE_LEGAL_STATUS", _u64(status), status,
              "bit s set: bits[2:0] = s is one of the six legal handler states"),
        Macro(f"{PREFIX}_EVENT_STATE_NEEDS_REGISTERED", _u64(need), need,
              "flags that are refused without REGISTERED"),
        Macro(f"{PREFIX}_CONTEXT_PSTATE_M_ALLOWED", _u64(modes), modes,
              "bit m set: PSTATE.M[4:0] = m may be restored ("
              + ", ".join(MODE_NAMES[m] for m in range(32) if modes >> m & 1) + ")"),
        "The static event table",
        Macro("KVM_SDEI_NR_EVENTS", str(len(EVENTS)), len(EVENTS)),
    ]
    for ev in EVENTS:
        out += [
            Macro(f"KVM_SDEI_EVENT_{ev.name}", str(ev.index), ev.index,
                  f"event {ev.index}: {ev.priority.name.lower()} priority, "
                  f"SDEI_CONTEXT class {int(ev.priority)}"),
            Macro(f"KVM_SDEI_EVENT_{ev.name}_NUM", _u64(ev.number), ev.number),
            Macro(f"KVM_SDEI_EVENT_{ev.name}_PRIORITY", str(int(ev.priority)), int(ev.priority)),
        ]
    return out


def macros() -> list[Macro]:
    """Every macro of the header, in order."""
    return [m for m in _items() if isinstance(m, Macro)]


def header_text() -> str:
    """The whole of ``cdefs/sdei_state_abi.h``."""
    lines = [
        "/* SPDX-License-Identifier: Apache-2.0 */",
        "/*",
        " * sdei-state: the SDEI firmware pseudo-register ABI (proposed, not allocated upstream).",
        " * GENERATED by `python -m sdei_state.regs.cheader` from the declarations in",
        " * sdei_state/regs/sdei_block.py (families) and sdei_decl.py (layouts); do not edit.",
        " * See docs/abi.md.",
        " *",
        " * Every register is KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW | regno, per vCPU,",
        " * accessed with KVM_{GET,SET}_ONE_REG on the vCPU fd. Self-contained: no other header.",
        " */",
        f"#ifndef {GUARD}",
        f"#define {GUARD}",
    ]
    width = max(len(m.name) for m in macros()) + 1
    for item in _items():
        if isinstance(item, str):
            lines += ["", "/* --- " + item.replace("\n", "\n *") + " */"]
            continue
        if item.comment:
            lines.append(f"/* {item.comment} */")
        lines.append(f"#define {item.name.ljust(width)}{item.body}")
    lines += ["", f"#endif /* {GUARD} */", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Markdown for docs/abi.md
# --------------------------------------------------------------------------------------------

DOC_BEGIN: Final = "<!-- BEGIN GENERATED by python -m sdei_state.regs.cheader: do not edit -->"
DOC_END: Final = "<!-- END GENERATED -->"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_tables() -> str:
    """The generated tables of docs/abi.md (events, register list, field layouts)."""
    out: list[str] = []
    out += ["### Register families", "",
            "| family | regno | instances |", "|---|---|---|"]
    for fam in FAMILIES:
        many = {Scope.VCPU: "1", Scope.EVENT: f"one per event (room for {room(Scope.EVENT)})",
                Scope.CLASS: f"{fam.width} per priority class (room for {room(Scope.CLASS)}): "
                             f"r = 0..{CONTEXT_R_PC - 1} x0..x{CONTEXT_R_PC - 1}, "
                             f"{CONTEXT_R_PC} PC, {CONTEXT_R_PSTATE} PSTATE"}[fam.scope]
        out.append(f"| `{fam.signature}` | `{fam.formula}` | {many} |")
    out += ["", "### Events", "",
            "| index | event number | name | priority (context class) |", "|---|---|---|---|"]
    for ev in EVENTS:
        out.append(f"| {ev.index} | `{ev.number:#010x}` | {ev.name} | "
                   f"{ev.priority.name.lower()} ({int(ev.priority)}) |")
    out += ["", "### Registers", "",
            f"{len(SDEI_REGS)} registers per vCPU, ascending by id (the order `restore()` "
            "writes them in). Every id is `KVM_REG_ARM_FW_REG(regno)`.", "",
            "| id | regno | name | C macro | layout | reset |", "|---|---|---|---|---|---|"]
    for reg in SDEI_REGS:
        out.append(f"| `{reg.id:#018x}` | `{reg.regno:#06x}` | `{reg.name}` | "
                   f"`{c_call(reg)}` | {_md_escape(reg.layout.title)} | `{reg.reset:#x}` |")
    out += ["", "### Field layouts", ""]
    for layout in LAYOUTS:
        out += [f"#### {layout.title}", "", layout.summary, "",
                "| bits | field | meaning |", "|---|---|---|"]
        for f in layout.fields:
            out.append(f"| {f.bits} | {f.name} | {_md_escape(f.doc)} |")
        out.append("")
    status = _legal_status_bitmap(EVENT_STATE_LAYOUT)
    need = _needs_registered(EVENT_STATE_LAYOUT)
    modes = _allowed_modes_bitmap()
    names = [f.name for f in EVENT_STATE_LAYOUT.fields if f.mask & need & ~7]
    out += [
        "### Value checks on KVM_SET_ONE_REG (EINVAL)", "",
        "| register | refused when |", "|---|---|",
        *(f"| {layout.title} | any of {layout.res0[0].bits} set |"
          for layout in LAYOUTS if layout.res0),
        "| SDEI_EVENT_STATE | bits[2:0] not one of "
        + ", ".join(f"`{s:03b}`" for s in range(8) if status >> s & 1)
        + " (bit order RUNNING ENABLED REGISTERED); " + " or ".join(names)
        + " without REGISTERED |",
        "| SDEI_CONTEXT(c, 19) | M[4:0] not one of "
        + ", ".join(f"`{m:#07b}` {MODE_NAMES[m]}" for m in range(32) if modes >> m & 1)
        + " (the other PSTATE bits are stored as given) |",
        "",
    ]
    return "\n".join(out)


def replace_generated(doc: str, tables: str) -> str:
    """``doc`` with the text between the GENERATED markers replaced by ``tables``."""
    try:
        start = doc.index(DOC_BEGIN) + len(DOC_BEGIN)
        end = doc.index(DOC_END, start)
    except ValueError:
        raise ValueError(f"the document lacks the markers {DOC_BEGIN!r} ... {DOC_END!r}") from None
    return doc[:start] + "\n\n" + tables + "\n" + doc[end:]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

ROOT: Final = Path(__file__).resolve().parents[2]
HEADER_PATH: Final = ROOT / "cdefs" / "sdei_state_abi.h"
DOC_PATH: Final = ROOT / "docs" / "abi.md"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or ``--check``) the C header and the generated part of docs/abi.md."""
    ap = argparse.ArgumentParser(prog="python -m sdei_state.regs.cheader", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if a file is not what the declarations give")
    ap.add_argument("--header", type=Path, default=HEADER_PATH, help="C header path")
    ap.add_argument("--docs", type=Path, default=DOC_PATH, help="markdown file with markers")
    args = ap.parse_args(argv)
    stale: list[str] = []
    wanted = {args.header: header_text()}
    try:
        doc = args.docs.read_text()
        wanted[args.docs] = replace_generated(doc, markdown_tables())
    except (OSError, ValueError) as e:
        print(f"{args.docs}: {e}", file=sys.stderr)
        return 2
    for path, text in wanted.items():
        try:
            current = path.read_text()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python -m sdei_state.regs.cheader): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
