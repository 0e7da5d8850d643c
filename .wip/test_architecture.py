"""The package's layering, checked: every import points inward (docs/architecture.md).

The layers, innermost first, and the packages in each are declared once here and drawn in
docs/architecture.md; a test below checks that the picture there names the same packages.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sdei_state"
DOC = PACKAGE.parent / "docs" / "architecture.md"

# (layer, top-level modules or subpackages of sdei_state), innermost first. A module may import
# its own layer and any layer listed before it.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("model", frozenset({"spec", "events", "state", "machine", "cpu", "errors"})),
    ("encoding", frozenset({"regs"})),
    ("bindings", frozenset({"kvm"})),
    ("transports", frozenset({"vcpu"})),
    ("migration", frozenset({"migration"})),
    ("vmm", frozenset({"vmm"})),
    ("scenario", frozenset({"scenario"})),
    ("selftest", frozenset({"selftest"})),
    ("lab", frozenset({"lab"})),
    ("cli", frozenset({"cli", "__main__"})),
)
# The AArch64 CPU (encoder, assembler, interpreter) stands beside the model: anything may use
# it, and it uses nothing of the package but its own modules and the error base.
LEAF = "guest"
LEAF_MAY_IMPORT = frozenset({"guest", "errors"})
# The package's front door re-exports the public API from every layer.
FACADE = "__init__"
MAX_LINES = 500
CDATA = re.compile(r"\bffi\.(new|cast|buffer|from_buffer|addressof|string)\b|\bkvm_run\b")

RANK = {top: rank for rank, (_, tops) in enumerate(LAYERS) for top in tops}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        yield ".".join(rel.parts), path


def top_of(dotted: str) -> str:
    return dotted.split(".", 1)[0]


def imports(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level part of sdei_state) for every import of the package in one module."""
    parts = name.split(".")
    package = parts if path.name == "__init__.py" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                if node.module:
                    yield node.lineno, top_of(".".join([*base, node.module]) or node.module)
                elif base:
                    yield node.lineno, base[0]
                else:  # ``from . import x, y`` at the package root
                    for alias in node.names:
                        yield node.lineno, alias.name
            elif node.module and node.module.split(".")[0] == "sdei_state":
                rest = node.module.split(".")[1:]
                if rest:
                    yield node.lineno, rest[0]
                else:
                    for alias in node.names:
                        yield node.lineno, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bits = alias.name.split(".")
                if bits[0] == "sdei_state" and len(bits) > 1:
                    yield node.lineno, bits[1]


def test_every_module_has_a_layer() -> None:
    unknown = sorted({top_of(n) for n, _ in modules()} - set(RANK) - {LEAF, FACADE})
    assert not unknown, f"modules with no layer (add them to LAYERS and docs/architecture.md): {unknown}"


def test_imports_point_inward() -> None:
    outward = []
    for name, path in modules():
        src = top_of(name)
        if src == FACADE or (src not in RANK and src != LEAF):
            continue  # test_every_module_has_a_layer reports it
        for line, dst in imports(name, path):
            if dst == src:
                continue
            if src == LEAF:
                ok = dst in LEAF_MAY_IMPORT
            elif dst == LEAF:
                ok = True
            else:
                ok = dst in RANK and RANK[dst] <= RANK[src]
            if not ok:
                outward.append(f"sdei_state/{path.relative_to(PACKAGE)}:{line} imports {dst}")
    assert not outward, "imports that point outward:\n" + "\n".join(outward)


def test_no_cdata_outside_the_bindings() -> None:
    leaks = [
        f"sdei_state/{path.relative_to(PACKAGE)}:{i}: {text.strip()}"
        for name, path in modules() if top_of(name) != "kvm"
        for i, text in enumerate(path.read_text().splitlines(), 1) if CDATA.search(text)
    ]
    assert not leaks, "cffi cdata outside sdei_state/kvm/:\n" + "\n".join(leaks)


@pytest.mark.parametrize("name,path", list(modules()), ids=[n for n, _ in modules()])
def test_module_size(name: str, path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"sdei_state/{path.relative_to(PACKAGE)} has {n} lines (> {MAX_LINES})"


def test_the_picture_names_every_layer() -> None:
    text = DOC.read_text()
    missing = [top for _, tops in LAYERS for top in sorted(tops)
               if top != "__main__" and f"{top}" not in text] + (
        [] if LEAF in text else [LEAF])
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_checker_sees_an_outward_import(tmp_path: Path) -> None:
    """The checker itself: an outward import in a made-up module is reported."""
    bad = tmp_path / "machine.py"
    bad.write_text("from .selftest import core\nfrom sdei_state.kvm import Vcpu\n")
    got = [dst for _, dst in imports("machine", bad)]
    assert got == ["selftest", "kvm"]
    assert all(RANK[d] > RANK["machine"] for d in got)
