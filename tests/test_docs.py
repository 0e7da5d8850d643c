"""Every fenced block of README.md and docs/*.md runs, or says why it cannot.

A block's language says what it is:

- ``python``: executed in a fresh namespace, in a temporary working directory. A block preceded
  by ``<!-- docs: continue -->`` continues the namespace of the file's previous python block (the
  chain runs as one test).
- ``sh`` / ``bash`` / ``console``: run by bash in a temporary directory, every command checked
  for exit status 0, or for the status its trailing comment declares (``# exit status 4``).
  ``sdei-state`` is ``python -m sdei_state.cli`` of this tree (a PATH shim: the console script
  is not installed in a development venv); ``python``/``python3`` are this interpreter.
- ``json``: parsed (a duplicate key is an error). A document with a ``format`` the package
  publishes a JSON Schema for (``sdei_state/schemas/*.schema.json``) is validated against it;
  a scenario is replayed and a blob shown by the command line, so the library accepts it too.
- ``c``: compiled (``cc -fsyntax-only -Werror`` against ``cdefs/``) as the body of a function
  of a VMM holding ``int vcpu_fd`` and ``__u64 status``.
- ``text`` (output, transcripts, API summaries) and ``mermaid`` (diagrams) are not code.

Markers, HTML comments on the lines just above the fence (invisible when rendered):

- ``<!-- docs: lab -->``: needs arm64 KVM. Marked ``lab_docs``: ``pytest tests/test_docs.py -m
  lab_docs`` runs only those, e.g. inside the lab:
  ``python -m sdei_state.lab run -- python3 -m pytest tests/test_docs.py -m lab_docs``.
  Elsewhere they skip with the reason.
- ``<!-- docs: synopsis -->``: an sh block of command forms (``[--opt A|B]``, ``NAME...``), not
  commands: each line's command must answer ``--help`` and list every option and choice shown.
- ``<!-- docs: not-runnable REASON -->``: cannot run anywhere automatically (installs the
  project, needs root, is a skeleton); counted, and the reason is required.

``test_block_census`` prints the counts (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent
DOCS: Final = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SCHEMAS: Final = ROOT / "sdei_state" / "schemas"
RUN_TIMEOUT: Final = 300  # seconds for one block: the slowest (a selftest) takes about 10

SHELLS: Final = frozenset({"sh", "bash", "console"})
NOT_CODE: Final = frozenset({"text", "mermaid"})
KNOWN_LANGS: Final = SHELLS | NOT_CODE | {"python", "json", "c"}
DIRECTIVES: Final = frozenset({"continue", "lab", "synopsis", "not-runnable"})

_FENCE: Final = re.compile(r"^(\s*)```(\S*)\s*$")
_MARK: Final = re.compile(r"^<!--\s*docs:\s*([a-z-]+)\s*(.*?)\s*-->\s*$")
_STATUS: Final = re.compile(r"#.*\bexit status (\d+)\b")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    """1-based line of the opening fence."""
    lang: str
    text: str
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        """One of: here, lab, not-runnable, not-code."""
        if self.lang in NOT_CODE:
            return "not-code"
        if "not-runnable" in self.marks:
            return "not-runnable"
        return "lab" if "lab" in self.marks else "here"


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of one Markdown file with the markers just above each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start, indent = i, len(m.group(1))
        end = next((j for j in range(i + 1, len(lines)) if re.match(r"^\s*```\s*$", lines[j])),
                   None)
        if end is None:
            raise AssertionError(f"{path.relative_to(ROOT)}:{i + 1}: unclosed code fence")
        marks: dict[str, str] = {}
        k = start - 1
        while k >= 0 and (mark := _MARK.match(lines[k].strip())) is not None:
            marks[mark.group(1)] = mark.group(2)
            k -= 1
        body = "\n".join(ln[indent:] for ln in lines[start + 1:end])
        out.append(Block(path, start + 1, m.group(2), body + "\n", marks))
        i = end + 1
    return out


ALL_BLOCKS: Final = [b for p in DOCS for b in parse_blocks(p)]


def _chains() -> Iterator[list[Block]]:
    """Python blocks grouped so that a ``continue`` block runs after the ones it continues."""
    for path in DOCS:
        chain: list[Block] = []
        for b in (b for b in ALL_BLOCKS if b.path == path and b.lang == "python"):
            if "continue" in b.marks and chain:
                chain.append(b)
                continue
            if chain:
                yield chain
            chain = [b]
        if chain:
            yield chain


def _arm64_kvm() -> str | None:
    """None if arm64 KVM is usable here, else why not."""
    if platform.machine() not in ("aarch64", "arm64"):
        return f"needs arm64 KVM (run it in the lab job); this host is {platform.machine()}"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "needs arm64 KVM (run it in the lab job); /dev/kvm is not usable here"
    return None


def _params(blocks: list[list[Block]]) -> list[Any]:
    out = []
    for chain in blocks:
        head = chain[0]
        if any(b.kind == "not-runnable" for b in chain):
            continue
        lab = any(b.kind == "lab" for b in chain)
        marks = [pytest.mark.lab_docs] if lab else []
        out.append(pytest.param(chain, id=head.where, marks=marks))
    return out


def _skip_unless_here(chain: list[Block]) -> None:
    if any(b.kind == "lab" for b in chain) and (why := _arm64_kvm()) is not None:
        pytest.skip(why)


# -- environment --------------------------------------------------------------------------------


@pytest.fixture
def shim(tmp_path: Path) -> dict[str, str]:
    """An environment where ``sdei-state``, ``python`` and ``python3`` are this tree's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = shlex.quote(sys.executable)
    for name, target in (("sdei-state", f"{exe} -m sdei_state.cli"), ("python", exe),
                         ("python3", exe)):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {target} "$@"\n', encoding="utf-8")
        script.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, check=False)


def shell_commands(text: str) -> list[tuple[str, int]]:
    """The commands of an sh block (continuation lines joined, comments and blanks dropped),
    each with the exit status it declares (0 unless ``# exit status N``)."""
    out: list[tuple[str, int]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw[2:] if raw.startswith("$ ") else raw
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        status = _STATUS.search(line)
        out.append((line, int(status.group(1)) if status else 0))
    return out


def _script(commands: list[tuple[str, int]]) -> str:
    """One bash script that runs the commands in order and stops at the first unexpected
    status, naming the command."""
    parts = ["set -o pipefail"]
    for n, (cmd, want) in enumerate(commands, 1):
        parts += [cmd, f"rc=$?; if [ $rc -ne {want} ]; then echo \"docs: command {n} "
                       f"exited $rc, not {want}: \"{shlex.quote(cmd)} >&2; exit 99; fi"]
    return "\n".join(parts) + "\n"


# -- the tests ----------------------------------------------------------------------------------


def test_every_block_has_a_known_language_and_known_markers() -> None:
    bad = [f"{b.where}: language {b.lang!r} (tag it one of {sorted(KNOWN_LANGS)})"
           for b in ALL_BLOCKS if b.lang not in KNOWN_LANGS]
    bad += [f"{b.where}: unknown marker {m!r}" for b in ALL_BLOCKS for m in b.marks
            if m not in DIRECTIVES]
    bad += [f"{b.where}: not-runnable needs a reason" for b in ALL_BLOCKS
            if "not-runnable" in b.marks and not b.marks["not-runnable"]]
    bad += [f"{b.where}: synopsis marks an sh block" for b in ALL_BLOCKS
            if "synopsis" in b.marks and b.lang not in SHELLS]
    bad += [f"{b.where}: continue marks a python block after another" for b in ALL_BLOCKS
            if "continue" in b.marks and b.lang != "python"]
    assert not bad, "\n".join(bad)


def test_block_census() -> None:
    """The counts the documentation promises: every code block runs here or in the lab job,
    or names why it cannot."""
    census = Counter(b.kind for b in ALL_BLOCKS)
    reasons = [f"  {b.where}: {b.marks['not-runnable']}" for b in ALL_BLOCKS
               if b.kind == "not-runnable"]
    print(f"\ndoc blocks: {census['here']} run here, {census['lab']} in the lab job, "
          f"{census['not-runnable']} not runnable, {census['not-code']} not code (text, "
          "diagrams)", *reasons, sep="\n")
    code = census["here"] + census["lab"] + census["not-runnable"]
    assert census["here"] > census["not-runnable"], "most code blocks must run here"
    assert code == sum(1 for b in ALL_BLOCKS if b.lang not in NOT_CODE)


@pytest.mark.parametrize("chain", _params(list(_chains())))
def test_python_block(chain: list[Block], tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    _skip_unless_here(chain)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for b in chain:
        exec(compile(b.text, b.where, "exec"), namespace)  # the block is the test


_SHELL_BLOCKS: Final = [[b] for b in ALL_BLOCKS
                        if b.lang in SHELLS and "synopsis" not in b.marks]


@pytest.mark.parametrize("chain", _params(_SHELL_BLOCKS))
def test_shell_block(chain: list[Block], tmp_path: Path, shim: dict[str, str]) -> None:
    _skip_unless_here(chain)
    (block,) = chain
    commands = shell_commands(block.text)
    assert commands, f"{block.where}: an sh block without a command"
    done = _run(["bash", "-c", _script(commands)], shim, tmp_path)
    assert done.returncode == 0, f"{block.where}:\n{done.stderr[-3000:]}"


_WORD: Final = re.compile(r"^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*$")
_OPTION: Final = re.compile(r"(--[a-z][a-z0-9-]*)(?:[ =]([a-z0-9.-]+(?:\|[a-z0-9.-]+)+))?")


def synopsis_checks(line: str) -> list[tuple[list[str], list[str]]]:
    """For one synopsis line: each command (subcommand alternatives expanded) with the options
    and choices its ``--help`` must show."""
    words = shlex.split(line.split("#")[0])
    if words[0].startswith("python") and words[1].endswith(".py"):
        prog = words[:2]
    elif words[0].startswith("python") and words[1] == "-m":
        prog = words[:3]
    else:
        prog = words[:1]
    words = words[len(prog):]
    subs: list[list[str]] = [[]]
    for w in words:
        if not _WORD.match(w):
            break
        subs = [[*s, alt] for s in subs for alt in w.split("|")]
    wanted = []
    for opt, choices in _OPTION.findall(line):
        wanted.append(opt)
        wanted += choices.split("|") if choices else []
    return [(prog + s, wanted) for s in subs]


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.where) for b in ALL_BLOCKS if "synopsis" in b.marks])
def test_synopsis_block(block: Block, shim: dict[str, str]) -> None:
    lines: list[str] = []
    for line in block.text.splitlines():  # an indented line continues the form above it
        if line[:1].isspace() and lines:
            lines[-1] += " " + line.strip()
        elif line.strip() and not line.startswith("#"):
            lines.append(line)
    assert lines, f"{block.where}: an empty synopsis"
    for line in lines:
        for cmd, wanted in synopsis_checks(line):
            done = _run([*cmd, "--help"], shim, ROOT)
            assert done.returncode == 0, f"{block.where}: {' '.join(cmd)} --help: {done.stderr}"
            missing = [w for w in wanted if w not in done.stdout]
            assert not missing, f"{block.where}: `{' '.join(cmd)} --help` lacks {missing}"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    assert not dup, f"duplicate key(s) {dup}"
    return dict(pairs)


def _schema_for(fmt: str) -> dict[str, Any] | None:
    for path in sorted(SCHEMAS.glob("*.schema.json")) if SCHEMAS.is_dir() else ():
        schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if schema.get("properties", {}).get("format", {}).get("const") == fmt:
            return schema
    return None


_CLI_CHECK: Final = {"sdei-state/scenario/1": ["replay"], "sdei-state/blob/1": ["blob", "show"]}
"""The command that must accept a document of each format (the library's own loader)."""


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.where) for b in ALL_BLOCKS if b.lang == "json"])
def test_json_block(block: Block, tmp_path: Path, shim: dict[str, str]) -> None:
    doc = json.loads(block.text, object_pairs_hook=_no_duplicate_keys)
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if not isinstance(fmt, str):
        return
    schema = _schema_for(fmt)
    if schema is not None:
        try:
            import jsonschema  # type: ignore[import-untyped]
        except ImportError:
            pass  # the loader below still checks it; the schema tests skip with the reason
        else:
            jsonschema.Draft202012Validator(schema).validate(doc)
    command = _CLI_CHECK.get(fmt)
    if command is None:
        assert schema is not None or fmt.startswith("sdei-state/"), f"unknown format {fmt!r}"
        return
    (tmp_path / "doc.json").write_text(block.text, encoding="utf-8")
    done = _run(["sdei-state", *command, "doc.json"], shim, tmp_path)
    assert done.returncode == 0, f"{block.where}: sdei-state {' '.join(command)}: {done.stderr}"


_C_PRELUDE: Final = "#include <linux/kvm.h>\n#include <sys/ioctl.h>\n"


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.where) for b in ALL_BLOCKS if b.lang == "c"])
def test_c_block(block: Block, tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) on this host")
    if not Path("/usr/include/linux/kvm.h").exists():
        pytest.skip("no kernel uapi headers (/usr/include/linux/kvm.h)")
    lines = block.text.splitlines()
    top = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if not ln.startswith("#")]
    src = tmp_path / "block.c"
    src.write_text(_C_PRELUDE + "\n".join(top) + "\nvoid docs_block(int vcpu_fd);\n"
                   "void docs_block(int vcpu_fd)\n{\n\t__u64 status = 0;\n"
                   + "\n".join(body) + "\n(void)status;\n}\n", encoding="utf-8")
    done = _run([cc, "-fsyntax-only", "-Wall", "-Werror", f"-I{ROOT / 'cdefs'}", str(src)],
                dict(os.environ), tmp_path)
    assert done.returncode == 0, f"{block.where}:\n{done.stderr}"


# -- docs stand on their own ------------------------------------------------------------------

_PRIVATE_PATH: Final = re.compile(
    r"(?<![\w.])(/work/|/tmp/|/home/|/root/|/Users/)\S*|\.\./shared\b|\bshared/DESIGN\b"
    r"|\bDESIGN(?:\.md|'s| sections?)\b|\bSDEI\.md\b")
_LINK: Final = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_docs_reference_only_what_the_repository_has() -> None:
    """No path of one machine (``/work/...``, ``/tmp/venv``), no document outside the
    repository (the design notes, ``../shared``), and every relative link resolves inside it."""
    bad = []
    for path in DOCS:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{n}"
            bad += [f"{where}: {m.group(0)!r}" for m in _PRIVATE_PATH.finditer(line)]
            for target in _LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue  # a URL
                resolved = (path.parent / target).resolve()
                if not resolved.is_relative_to(ROOT) or not resolved.exists():
                    bad.append(f"{where}: link {target!r} is not a file of the repository")
    assert not bad, "\n".join(bad)


def test_the_reference_check_catches_what_it_must() -> None:
    for line in ("cd /work/main && pytest", "/tmp/venv/bin/python", "see ../shared/notes",
                 "DESIGN section 5", "SDEI.md 3"):
        assert _PRIVATE_PATH.search(line), line
    for line in ("/dev/kvm", "`/usr/lib/python3/dist-packages`", "docs/abi.md", "a/tmp/b"):
        assert not _PRIVATE_PATH.search(line), line


def test_shell_commands_and_synopsis_parsing() -> None:
    assert shell_commands("a \\\n  b  # exit status 4\n# c\n\n$ d\n") == [
        ("a    b  # exit status 4", 4), ("d", 0)]
    assert synopsis_checks("sdei-state blob show|diff [--json] FILE") == [
        (["sdei-state", "blob", "show"], ["--json"]), (["sdei-state", "blob", "diff"], ["--json"])]
    assert synopsis_checks("sdei-state selftest [--backend auto|sim]") == [
        (["sdei-state", "selftest"], ["--backend", "auto", "sim"])]
    assert synopsis_checks("python bench/run.py [--quick]") == [
        (["python", "bench/run.py"], ["--quick"])]
