"""The generated C header and docs tables: current, self-contained, and what C sees."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sdei_state.regs import cheader
from sdei_state.regs.sdei import (
    CONTEXT_R_PSTATE,
    SDEI_REGS,
    SdeiReg,
    SdeiRegKind,
    check_value,
)

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "cdefs" / "sdei_state_abi.h"
DOC = ROOT / "docs" / "abi.md"
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def test_checked_in_header_is_current() -> None:
    assert HEADER.read_text() == cheader.header_text(), \
        "run: python -m sdei_state.regs.cheader"


def test_docs_contain_the_current_tables() -> None:
    doc = DOC.read_text()
    assert cheader.markdown_tables() in doc
    assert cheader.replace_generated(doc, cheader.markdown_tables()) == doc, \
        "run: python -m sdei_state.regs.cheader"


def test_check_mode_on_the_repository() -> None:
    assert cheader.main(["--check"]) == 0


def test_write_and_check_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = tmp_path / "h" / "abi.h"
    doc = tmp_path / "abi.md"
    doc.write_text(f"intro\n{cheader.DOC_BEGIN}\nold\n{cheader.DOC_END}\nrest\n")
    args = ["--header", str(header), "--docs", str(doc)]
    assert cheader.main([*args, "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert not header.exists()
    assert cheader.main(args) == 0
    assert header.read_text() == cheader.header_text()
    assert doc.read_text().startswith("intro\n") and doc.read_text().endswith("rest\n")
    assert "old" not in doc.read_text()
    assert cheader.main([*args, "--check"]) == 0
    doc.write_text("no markers\n")
    assert cheader.main(args) == 2
    assert "markers" in capsys.readouterr().err


def test_header_is_self_contained_and_names_are_unique() -> None:
    text = cheader.header_text()
    assert "#include" not in text
    assert text.startswith("/* SPDX-License-Identifier")
    names = [m.name.split("(")[0] for m in cheader.macros()]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) for n in names)
    defined = re.findall(r"^#define (\w+)", text, re.M)
    assert defined[0] == cheader.GUARD and defined[1:] == names


def test_derived_check_macros() -> None:
    values = {m.name: m.value for m in cheader.macros()}
    # Spec facts, written out: legal (Reg,Ena,Run) states {0,1,3,4,5,7}; ENABLED, PENDING and
    # RELATIVE need REGISTERED; modes EL0t, EL1t, EL1h, AArch32 User.
    assert values["KVM_REG_ARM_SDEI_EVENT_STATE_LEGAL_STATUS"] == sum(
        1 << s for s in (0, 1, 3, 4, 5, 7))
    assert values["KVM_REG_ARM_SDEI_EVENT_STATE_NEEDS_REGISTERED"] == 0b11010
    assert values["KVM_REG_ARM_SDEI_CONTEXT_PSTATE_M_ALLOWED"] == sum(
        1 << m for m in (0b00000, 0b00100, 0b00101, 0b10000))
    assert values["KVM_REG_ARM_SDEI_NR_REGS"] == 47
    assert values["KVM_REG_ARM_SDEI_VCPU_STATE_RESET"] == 1
    assert values["KVM_SDEI_EVENT_ASYNC_PF_NUM"] == 0x40400000


# --- compiled C ----------------------------------------------------------------------------

_C_CHECK = r"""
static int sdei_value_ok(int kind, unsigned long long v)
{
    switch (kind) {
    case 0:
        return !(v & KVM_REG_ARM_SDEI_VCPU_STATE_RES0);
    case 1:
        return !(v & KVM_REG_ARM_SDEI_EVENT_STATE_RES0) &&
               ((KVM_REG_ARM_SDEI_EVENT_STATE_LEGAL_STATUS >>
                 (v & KVM_REG_ARM_SDEI_EVENT_STATE_STATUS_MASK)) & 1) &&
               (!(v & KVM_REG_ARM_SDEI_EVENT_STATE_NEEDS_REGISTERED) ||
                (v & KVM_REG_ARM_SDEI_EVENT_STATE_REGISTERED));
    case 2:
        return !(v & KVM_REG_ARM_SDEI_EVENT_EP_ADDR_RES0);
    case 3:
        return (int)((KVM_REG_ARM_SDEI_CONTEXT_PSTATE_M_ALLOWED >>
                      ((v & KVM_REG_ARM_SDEI_CONTEXT_PSTATE_M_MASK) >>
                       KVM_REG_ARM_SDEI_CONTEXT_PSTATE_M_SHIFT)) & 1);
    default:
        return 1;
    }
}
"""


def _check_kind(reg: SdeiReg) -> int:
    if reg.kind is SdeiRegKind.VCPU_STATE:
        return 0
    if reg.kind is SdeiRegKind.EVENT_STATE:
        return 1
    if reg.kind is SdeiRegKind.EP_ADDR:
        return 2
    if reg.kind is SdeiRegKind.CONTEXT and reg.r == CONTEXT_R_PSTATE:
        return 3
    return 4


def _probe_values() -> list[int]:
    rng = random.Random(0x5DE1)
    edges = {*range(64), *(1 << b for b in range(64)), (1 << 64) - 1, (1 << 64) - 4, 0x3C5,
             0x3C9, 0x600003C5}
    return sorted(edges | {rng.getrandbits(64) for _ in range(200)}
                  | {rng.getrandbits(64) & ~0x1F | rng.getrandbits(5) for _ in range(200)})


def _program(values: list[int]) -> str:
    lines = ["#include <stdio.h>", '#include "sdei_state_abi.h"', _C_CHECK,
             "static const unsigned long long probe[] = {"]
    lines += [f"    0x{v:x}ULL," for v in values]
    lines += ["};", "int main(void)", "{", "    unsigned i;"]
    for m in cheader.macros():
        if m.value is not None:
            lines.append(f'    printf("%s %llu\\n", "{m.name}", (unsigned long long)({m.name}));')
    for reg in SDEI_REGS:
        call = cheader.c_call(reg)
        lines.append(f'    printf("%s %llu\\n", "{call}", (unsigned long long)({call}));')
    kinds = sorted({_check_kind(r) for r in SDEI_REGS})
    for k in kinds:
        lines += ["    for (i = 0; i < sizeof(probe) / sizeof(probe[0]); i++)",
                  f'        printf("ok {k} %llx %d\\n", probe[i], sdei_value_ok({k}, probe[i]));']
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


@pytest.mark.skipif(CC is None, reason="no C compiler (cc, gcc or clang) on PATH")
def test_c_program_sees_the_python_values(tmp_path: Path) -> None:
    assert CC is not None
    (tmp_path / "sdei_state_abi.h").write_text(HEADER.read_text())
    values = _probe_values()
    (tmp_path / "probe.c").write_text(_program(values))
    exe = tmp_path / "probe"
    build = subprocess.run(
        [CC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o", str(exe),
         str(tmp_path / "probe.c")],
        capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    seen: dict[str, int] = {}
    verdicts: dict[tuple[int, int], bool] = {}
    for line in out.splitlines():
        if line.startswith("ok "):
            _, kind, probe, res = line.split()
            verdicts[(int(kind), int(probe, 16))] = res == "1"
        else:
            name, value = line.rsplit(" ", 1)
            seen[name] = int(value)
    for m in cheader.macros():
        if m.value is not None:
            assert seen[m.name] == m.value, m.name
    for reg in SDEI_REGS:
        assert seen[cheader.c_call(reg)] == reg.id, reg.name
        assert seen[cheader.c_name(reg)] == reg.id, reg.name
    # The C check built from the header's macros accepts exactly what Python accepts.
    for reg in SDEI_REGS:
        k = _check_kind(reg)
        for v in values:
            assert verdicts[(k, v)] == (check_value(reg.id, v) is None), (reg.name, hex(v))
