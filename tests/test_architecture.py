"""The package's layering, checked (docs/architecture.md draws it).

The layers, innermost first, are declared once here; a module may import its own layer and any
layer before it. ``guest/`` (the AArch64 CPU) stands beside the model and uses nothing of the
package but itself and ``errors``; ``testing/`` is a tool for users' tests that may use any
layer and that nothing in the package imports; the package's ``__init__`` is the facade that
re-exports the public API. Every import counts: module level, inside functions, under
``TYPE_CHECKING``. Only ``kvm/`` touches cffi. No module is over 500 lines.

Each rule is a function from a package tree to the one-line findings it makes, so the tests
run it on ``sdei_state`` and on small made-up trees where it must find what was planted.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGE: Final = ROOT / "sdei_state"
DOC: Final = ROOT / "docs" / "architecture.md"

LAYERS: Final[tuple[tuple[str, frozenset[str]], ...]] = (
    ("model", frozenset({"spec", "events", "state", "transitions", "affinity", "machine",
                         "call_regs", "cpu", "errors"})),
    ("encoding", frozenset({"regs"})),
    ("bindings", frozenset({"kvm"})),
    ("transports", frozenset({"vcpu"})),
    ("migration", frozenset({"migration"})),
    ("vmm", frozenset({"vmm"})),
    ("scenario", frozenset({"scenario", "linux_guest"})),
    ("selftest", frozenset({"selftest"})),
    ("lab", frozenset({"lab"})),
    ("cli", frozenset({"cli", "__main__"})),
)
"""(layer, the top-level modules and subpackages of sdei_state in it), innermost first."""
LEAF: Final = "guest"
LEAF_MAY_IMPORT: Final = frozenset({LEAF, "errors"})
TOOL: Final = "testing"
FACADE: Final = "__init__"
BINDINGS: Final = "kvm"
BINDINGS_PRIVATE: Final = re.compile(r"^(ffi|_\w+)$")
"""Modules of kvm/ that hold cffi objects: nothing outside kvm/ imports them."""
MAX_LINES: Final = 500
KNOWN_OUTWARD: Final[frozenset[tuple[str, str]]] = frozenset()
"""(module path, layer top) pairs of outward imports tolerated while one is being moved: empty,
and an entry here is a debt to pay, not a permission."""

RANK: Final = {top: rank for rank, (_, tops) in enumerate(LAYERS) for top in tops}
LAYER_OF: Final = {top: layer for layer, tops in LAYERS for top in tops}


@dataclass(frozen=True)
class Module:
    parts: tuple[str, ...]
    """Dotted name below the package: ("vcpu", "sim"); the root __init__ is ()."""
    path: Path
    package: tuple[str, ...]
    """The package a relative import starts from."""

    @property
    def top(self) -> str:
        return self.parts[0] if self.parts else FACADE


@dataclass(frozen=True)
class Import:
    line: int
    text: str
    target: tuple[str, ...]
    """The imported module below the package, e.g. ("kvm", "exits"); () for the package."""
    names: tuple[str, ...]
    """For ``from X import a, b``: a, b (each may itself be a submodule of X)."""
    outside: str | None = None
    """A third-party or standard module imported (``cffi``), else None."""

    def tops(self, submodules: frozenset[str]) -> tuple[str, ...]:
        """The top-level modules of the package this import reaches: a name imported from the
        package itself that is not one of its ``submodules`` comes from the facade."""
        if self.target:
            return (self.target[0],)
        return tuple(n if n in submodules else FACADE for n in self.names)


def modules(root: Path) -> list[Module]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("").parts
        if rel[-1] == "__init__":
            out.append(Module(rel[:-1], path, rel[:-1]))
        else:
            out.append(Module(rel, path, rel[:-1]))
    return out


def where(root: Path, mod: Module, line: int | None = None) -> str:
    rel = f"{root.name}/{mod.path.relative_to(root).as_posix()}"
    return rel if line is None else f"{rel}:{line}"


def imports(mod: Module) -> Iterator[Import]:
    """Every import in one module, relative ones resolved against its package."""
    source = mod.path.read_text()
    for node in ast.walk(ast.parse(source, str(mod.path))):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        # Only for imports: get_source_segment splits the whole source on every call, so
        # taking it for every node made this test take minutes on a loaded host.
        text = " ".join((ast.get_source_segment(source, node) or "").split())
        if isinstance(node, ast.Import):
            for alias in node.names:
                bits = tuple(alias.name.split("."))
                if bits[0] == "sdei_state":
                    yield Import(node.lineno, text, bits[1:], ())
                else:
                    yield Import(node.lineno, text, (), (), outside=bits[0])
        elif isinstance(node, ast.ImportFrom):
            names = tuple(a.name for a in node.names)
            module = tuple(node.module.split(".")) if node.module else ()
            if node.level == 0:
                if module[0] == "sdei_state":
                    yield Import(node.lineno, text, module[1:], names)
                else:
                    yield Import(node.lineno, text, (), names, outside=module[0])
                continue
            up = node.level - 1
            if up > len(mod.package):
                yield Import(node.lineno, text, ("<above the package>",), names)
                continue
            yield Import(node.lineno, text, mod.package[: len(mod.package) - up] + module, names)


def unlayered(root: Path) -> list[str]:
    """Modules in no layer (a new subpackage must be placed in LAYERS and the picture)."""
    known = set(RANK) | {LEAF, TOOL, FACADE}
    return [f"{where(root, m)}: `{m.top}` is in no layer; add it to LAYERS in "
            f"tests/test_architecture.py and to docs/architecture.md"
            for m in modules(root) if m.top not in known]


def _refusal(src: str, dst: str) -> str | None:
    """Why a module of top-level ``src`` may not import top-level ``dst``, or None."""
    if dst == src:
        return None
    if dst == TOOL:
        return f"nothing in the package imports the {TOOL}/ kit (it is for users' tests)"
    if src == LEAF:
        return None if dst in LEAF_MAY_IMPORT else (
            f"{LEAF}/ stands beside the model and may import only {sorted(LEAF_MAY_IMPORT)}")
    if src in (FACADE, TOOL) or dst == LEAF:
        return None
    if dst == FACADE:
        return None if RANK.get(src) == len(LAYERS) - 1 else (
            "only the command line imports the package's facade (it re-exports every layer)")
    if dst not in RANK:
        return f"`{dst}` is in no layer"
    if RANK[dst] > RANK[src]:
        return (f"{LAYER_OF[src]} (layer {RANK[src] + 1}) may not import {LAYER_OF[dst]} "
                f"(layer {RANK[dst] + 1}): imports point inward")
    return None


def outward_imports(root: Path) -> list[str]:
    """Imports that point outward, or into the test kit, or out of guest/'s leaf."""
    out = []
    mods = modules(root)
    submodules = frozenset(m.top for m in mods)
    for mod in mods:
        for imp in imports(mod):
            if imp.outside is not None:
                continue
            for dst in imp.tops(submodules):
                why = _refusal(mod.top, dst)
                known = (mod.path.relative_to(root).as_posix(), dst) in KNOWN_OUTWARD
                if why is not None and not known:
                    out.append(f"{where(root, mod, imp.line)}: `{imp.text}`: {why}")
    return out


def _is_ffi(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "ffi") or (
        isinstance(node, ast.Attribute) and node.attr == "ffi")


def _ffi_lines(tree: ast.AST) -> list[int]:
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.expr) and _is_ffi(n)]


def cffi_outside_bindings(root: Path) -> list[str]:
    """cffi reached from outside kvm/: importing cffi, importing kvm's cffi-holding modules
    (``kvm.ffi``, ``kvm._*``), or naming an ``ffi`` object (``x.backend.ffi.new(...)``)."""
    out = []
    for mod in modules(root):
        if mod.top == BINDINGS:
            continue
        for imp in imports(mod):
            private = imp.target[:1] == (BINDINGS,) and any(
                BINDINGS_PRIVATE.match(p) for p in (*imp.target[1:], *(
                    imp.names if len(imp.target) == 1 else ())))
            if imp.outside == "cffi" or private:
                out.append(f"{where(root, mod, imp.line)}: `{imp.text}`: only {BINDINGS}/ "
                           "touches cffi; use the bindings' typed API")
        tree = ast.parse(mod.path.read_text(), str(mod.path))
        out += [f"{where(root, mod, line)}: uses a cffi `ffi` object: only {BINDINGS}/ "
                "touches cffi" for line in _ffi_lines(tree)]
    return out


def oversized(root: Path) -> list[str]:
    out = []
    for mod in modules(root):
        n = len(mod.path.read_text().splitlines())
        if n > MAX_LINES:
            out.append(f"{where(root, mod)}: {n} lines (> {MAX_LINES}); split it along its jobs")
    return out


# -- the package ----------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    assert unlayered(PACKAGE) == []


def test_imports_point_inward() -> None:
    assert outward_imports(PACKAGE) == []


def test_only_the_bindings_touch_cffi() -> None:
    assert cffi_outside_bindings(PACKAGE) == []


def test_no_module_over_the_limit() -> None:
    assert oversized(PACKAGE) == []


def test_the_picture_names_every_layer() -> None:
    """docs/architecture.md's picture (its first text block) names every layer's modules."""
    text = DOC.read_text()
    m = re.search(r"```text\n(.*?)```", text, re.S)
    assert m is not None, "docs/architecture.md has no text picture of the layers"
    words = set(re.findall(r"[A-Za-z_]+", m.group(1)))
    names = {top for _, tops in LAYERS for top in tops if not top.startswith("__")}
    missing = sorted((names | {LEAF, TOOL}) - words)
    assert missing == [], f"docs/architecture.md's picture does not name {missing}"


def test_the_doc_names_only_what_exists() -> None:
    """Every dotted name of the package the doc uses (``vmm.loop.VcpuLoop``,
    ``sdei_state.regs``) resolves: a module, or an attribute of one."""
    tops = "|".join(sorted({m.top for m in modules(PACKAGE)} - {FACADE}))
    found = set(re.findall(rf"(?<![\w.])(?:sdei_state\.)?((?:{tops})(?:\.\w+)+)", DOC.read_text()))
    assert len(found) > 10
    gone = []
    for dotted in sorted(found):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(["sdei_state", *parts[:cut]]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                gone.append(dotted)
            break
        else:
            gone.append(dotted)
    assert gone == [], f"docs/architecture.md names what the package does not have: {gone}"


# -- the checker, on made-up trees ----------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "sdei_state"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CLEAN: Final = {
    "__init__.py": "from .machine import Machine\nfrom .selftest import run\n",
    "errors.py": "class E(Exception): ...\n",
    "machine.py": "from . import state\nfrom .state import S\n",
    "state.py": "from .errors import E\n",
    "regs/__init__.py": "from ..state import S\nfrom . import ids\n",
    "kvm/ffi.py": "import cffi\nffi = cffi.FFI()\n",
    "kvm/vcpu.py": "from .ffi import ffi\nfrom ..regs import ids\n",
    "vcpu/sim.py": ("from ..kvm import Vcpu\nfrom ..guest.a64 import b\n"
                    "from sdei_state.regs import ids\n"),
    "guest/a64.py": "from ..errors import E\nfrom .asm import x\n",
    "selftest/__init__.py": ("def run():\n    from ..vmm import loop\n"
                             "    from ..kvm.exits import Exit\n"),
    "testing/__init__.py": "from ..selftest import run\nfrom ..cli import main\n",
    "cli/__init__.py": "from ..lab import boot\n",
    "__main__.py": "from .cli import main\n",
}


def test_checker_passes_a_clean_tree(tmp_path: Path) -> None:
    root = _tree(tmp_path, CLEAN)
    assert unlayered(root) == []
    assert outward_imports(root) == []
    assert cffi_outside_bindings(root) == []
    assert oversized(root) == []


@pytest.mark.parametrize("rel,text,found", [
    ("state.py", "from .regs.ids import reg_size\n", "`from .regs.ids import reg_size`: model"),
    ("regs/ids.py", "def f():\n    from ..kvm import Vcpu\n", "encoding (layer 2) may not import "
     "bindings (layer 3)"),
    ("vcpu/sim.py", "if TYPE_CHECKING:\n    import sdei_state.selftest.core\n",
     "`import sdei_state.selftest.core`: transports"),
    ("machine.py", "from . import cli\n", "`from . import cli`: model"),
    ("kvm/vm.py", "from ..testing import fixtures\n",
     "nothing in the package imports the testing/"),
    ("guest/asm.py", "from ..machine import affinity_of\n", "guest/ stands beside the model"),
    ("lab/qemu.py", "from ...cli import main\n", "<above the package>"),
    ("scenario/replay.py", "from .. import __version__\n", "only the command line imports the"),
])
def test_checker_finds_an_outward_import(tmp_path: Path, rel: str, text: str, found: str) -> None:
    root = _tree(tmp_path, {**CLEAN, rel: text})
    got = outward_imports(root)
    assert len(got) == 1 and got[0].startswith(f"sdei_state/{rel}:") and found in got[0], got


def test_checker_finds_a_module_in_no_layer(tmp_path: Path) -> None:
    got = unlayered(_tree(tmp_path, {**CLEAN, "tools/x.py": "", "helpers.py": ""}))
    assert [g.split(":")[0] for g in got] == ["sdei_state/helpers.py", "sdei_state/tools/x.py"]


@pytest.mark.parametrize("text,found", [
    ("import cffi\n", "`import cffi`"),
    ("from cffi import FFI\n", "`from cffi import FFI`"),
    ("from ..kvm.ffi import backend\n", "`from ..kvm.ffi import backend`"),
    ("from ..kvm import ffi\n", "`from ..kvm import ffi`"),
    ("from sdei_state.kvm._fd import check\n", "`from sdei_state.kvm._fd import check`"),
    ("def f(v):\n    return v.backend.ffi.new('int *')\n", "uses a cffi `ffi` object"),
    ("def f(ffi):\n    return ffi.cast('int', 0)\n", "uses a cffi `ffi` object"),
])
def test_checker_finds_cffi_outside_the_bindings(tmp_path: Path, text: str, found: str) -> None:
    root = _tree(tmp_path, {**CLEAN, "vmm/provider.py": text})
    got = cffi_outside_bindings(root)
    assert got and all(g.startswith("sdei_state/vmm/provider.py:") for g in got), got
    assert any(found in g for g in got), got


def test_checker_finds_an_oversized_module(tmp_path: Path) -> None:
    lines = "x = 0\n" * MAX_LINES
    root = _tree(tmp_path, {**CLEAN, "state.py": lines, "spec.py": lines + "y = 1\n"})
    assert oversized(root) == [f"sdei_state/spec.py: {MAX_LINES + 1} lines (> {MAX_LINES}); "
                               "split it along its jobs"]
