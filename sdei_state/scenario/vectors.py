"""Migration round-trip vectors: every conformance scenario, its full result and final blob.

``vectors/NN-name.json`` holds ``{"format": "sdei-state/vector/1", "name", "scenario",
"result", "blob"}`` and ``vectors/NN-name.blob`` the binary migration blob of the final VM
(``migration.save_vm(vm.vcpus).to_bytes()``). ``verify`` replays each vector and demands the
same result and the same blob bytes, restores the blob into a fresh simulated VM and saves it
again (same bytes), and checks the hand-written conformance expectations. ``regenerate``
rewrites the directory from ``conformance.SCENARIOS``; it is deliberate, never automatic.

Files are deterministic (sorted keys, fixed indentation, trailing newline), so generating
twice gives identical bytes and a diff of a regenerated vector shows exactly what changed.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import SdeiStateError
from . import conformance
from .conformance import Conformance
from .format import parse
from .replay import Runner

VECTOR_FORMAT: Final = "sdei-state/vector/1"
_VECTOR_FILE: Final = re.compile(r"^(\d{2})-([a-z0-9][a-z0-9-]*)\.(json|blob)$")
_MAX_DIFFS: Final = 8
"""Differences listed per vector before the rest are counted (keeps a report readable)."""


class VectorError(SdeiStateError):
    """The vectors directory cannot be used (absent, not a directory)."""


@dataclass(frozen=True, slots=True)
class VectorReport:
    """The outcome of verifying one vector: its name and what is wrong (empty if nothing)."""

    name: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a scenario produces on simulated vCPUs: the result document and the final blob."""

    result: dict[str, Any]
    blob: bytes


# -- naming and locations ---------------------------------------------------------------------

def vector_name(index: int, conf: Conformance) -> str:
    """``NN-name`` of the vector of ``SCENARIOS[index]`` (numbered from 01)."""
    return f"{index + 1:02d}-{conf.name}"


def expected_vectors() -> dict[str, Conformance]:
    """Vector name -> conformance scenario, in ``SCENARIOS`` order."""
    return {vector_name(i, c): c for i, c in enumerate(conformance.SCENARIOS)}


def default_dir() -> Path:
    """``vectors/`` next to the package directory (the checked-in vectors of a source tree)."""
    return Path(__file__).resolve().parents[2] / "vectors"


def resolve_dir(directory: str | os.PathLike[str] | None) -> Path:
    """The vectors directory to use; ``VectorError`` naming the path when it is absent."""
    if directory is None:
        d = default_dir()
        if not d.is_dir():
            raise VectorError(f"no vectors directory at {d} (not a source tree? pass --dir)")
        return d
    d = Path(directory)
    if not d.is_dir():
        raise VectorError(f"vectors directory {d} does not exist or is not a directory")
    return d


# -- replay and rendering ---------------------------------------------------------------------

def replay_and_save(doc: Mapping[str, Any]) -> Replayed:
    """Run a scenario document; its result and the blob of the VM it ends with."""
    from ..migration import save_vm

    runner = Runner(parse(doc))
    result = runner.run()
    return Replayed(result, save_vm(runner.vm.vcpus).to_bytes())


_WIDTH: Final = 100


def _pretty(value: object, indent: int = 0) -> str:
    """Deterministic JSON for review: sorted keys; an object or a list of objects goes one
    entry per line when it does not fit ``_WIDTH``; a list of numbers always stays on one
    line. So a changed step or register is one changed line in a diff."""
    flat = json.dumps(value, sort_keys=True, ensure_ascii=True)
    if not isinstance(value, (dict, list)) or indent + len(flat) <= _WIDTH:
        return flat
    if isinstance(value, list) and not any(isinstance(e, (dict, list)) for e in value):
        return flat
    pad = " " * (indent + 1)
    if isinstance(value, dict):
        lines = [f"{pad}{json.dumps(k)}: {_pretty(value[k], indent + 1)}" for k in sorted(value)]
        return "{\n" + ",\n".join(lines) + "\n" + " " * indent + "}"
    lines = [pad + _pretty(e, indent + 1) for e in value]
    return "[\n" + ",\n".join(lines) + "\n" + " " * indent + "]"


def _dump(obj: object) -> str:
    return _pretty(obj) + "\n"


def render(name: str, conf: Conformance, rep: Replayed) -> bytes:
    """The bytes of ``NN-name.json``."""
    doc = {"format": VECTOR_FORMAT, "name": name, "scenario": conf.scenario,
           "result": rep.result, "blob": f"{name}.blob"}
    return _dump(doc).encode("ascii")


def _canonical(obj: object) -> str:
    return json.dumps(obj, sort_keys=True)


# -- regenerate -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Regenerated:
    """What ``regenerate`` did: vectors written (name, json bytes, blob bytes), files removed,
    and conformance failures that stopped it (then nothing was written)."""

    written: tuple[tuple[str, int, int], ...] = ()
    removed: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


def regenerate(directory: str | os.PathLike[str]) -> Regenerated:
    """Rewrite every vector in ``directory`` from ``conformance.SCENARIOS`` and remove stale
    vector files (``NN-name.json``/``.blob`` of no current scenario). Refuses, writing nothing,
    if any scenario misses its conformance expectations: vectors must never bless a result
    the spec forbids."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    refused: list[str] = []
    for name, conf in expected_vectors().items():
        rep = replay_and_save(conf.scenario)
        refused.extend(conformance.check(conf, rep.result))
        files[f"{name}.json"] = render(name, conf, rep)
        files[f"{name}.blob"] = rep.blob
    if refused:
        return Regenerated(refused=tuple(refused))
    written: list[tuple[str, int, int]] = []
    for name in expected_vectors():
        j, b = files[f"{name}.json"], files[f"{name}.blob"]
        _write(d / f"{name}.json", j)
        _write(d / f"{name}.blob", b)
        written.append((name, len(j), len(b)))
    removed: list[str] = []
    for p in sorted(d.iterdir()):
        if _VECTOR_FILE.match(p.name) and p.name not in files and p.is_file():
            p.unlink()
            removed.append(p.name)
    return Regenerated(tuple(written), tuple(removed))


def _write(path: Path, data: bytes) -> None:
    # Write then rename, so an interrupted run never leaves a half-written vector.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# -- verify -----------------------------------------------------------------------------------

def verify(directory: str | os.PathLike[str]) -> list[VectorReport]:
    """Verify every vector of ``directory`` against a fresh replay and the conformance
    expectations; one report per expected vector, plus one per stale vector file."""
    d = Path(directory)
    expected = expected_vectors()
    reports = [VectorReport(name, tuple(_verify_one(d, name, conf)))
               for name, conf in expected.items()]
    stale = sorted({m.group(1) + "-" + m.group(2)
                    for p in d.iterdir() if (m := _VECTOR_FILE.match(p.name))} - set(expected))
    for name in stale:
        reports.append(VectorReport(name, (
            f"{name}: stale vector: no conformance scenario has this name and number "
            "(run `sdei-state vectors generate` to remove it)",)))
    return reports


def _verify_one(d: Path, name: str, conf: Conformance) -> list[str]:
    jpath = d / f"{name}.json"
    if not jpath.is_file():
        return [f"{name}: missing {jpath} (run `sdei-state vectors generate`)"]
    try:
        doc = json.loads(jpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return [f"{name}: {jpath.name} is not readable JSON: {e}"]
    if not isinstance(doc, dict):
        return [f"{name}: {jpath.name} is not a JSON object"]
    out: list[str] = []
    for key, want in (("format", VECTOR_FORMAT), ("name", name), ("blob", f"{name}.blob")):
        if doc.get(key) != want:
            out.append(f"{name}: field {key!r} is {doc.get(key)!r}, want {want!r}")
    unknown = sorted(set(doc) - {"format", "name", "scenario", "result", "blob"})
    if unknown:
        out.append(f"{name}: unknown field {unknown[0]!r}")
    stored_scn, stored_res = doc.get("scenario"), doc.get("result")
    if _canonical(stored_scn) != _canonical(conf.scenario):
        diffs = _diff("scenario", stored_scn, conf.scenario,
                      names=("the vector", "the conformance scenario"))
        out.append(f"{name}: the scenario differs from conformance scenario {conf.name!r} "
                   f"({'; '.join(diffs[:3])}); regenerate deliberately if that is intended")
    if not isinstance(stored_scn, dict) or not isinstance(stored_res, dict):
        out.append(f"{name}: 'scenario' and 'result' must be JSON objects")
        return out
    try:
        rep = replay_and_save(stored_scn)
    except SdeiStateError as e:
        out.append(f"{name}: replaying the scenario failed: {e}")
        return out
    diffs = _diff("result", rep.result, stored_res)
    out.extend(f"{name}: {m}" for m in diffs)
    out.extend(conformance.check(conf, stored_res))
    bpath = d / f"{name}.blob"
    try:
        stored_blob = bpath.read_bytes()
    except OSError as e:
        out.append(f"{name}: cannot read {bpath}: {e.strerror}")
        return out
    if stored_blob != rep.blob:
        out.append(f"{name}: {bpath.name}: {_blob_diff(stored_blob, rep.blob)}")
    out.extend(f"{name}: {bpath.name}: {m}"
               for m in _round_trip(stored_blob, stored_scn.get("vcpus")))
    return out


def _round_trip(data: bytes, nvcpus: object) -> list[str]:
    """Restore ``data`` into a fresh simulated VM and save it again: the bytes must match."""
    from ..migration import Blob, restore_vm, save_vm
    from ..vcpu.sim import SimVm

    if isinstance(nvcpus, bool) or not isinstance(nvcpus, int) or nvcpus < 1:
        return [f"scenario 'vcpus' is {nvcpus!r}, cannot build a VM to restore into"]
    try:
        blob = Blob.from_bytes(data)
        vm = SimVm(nvcpus)
        restore_vm(vm.vcpus, blob)
        again = save_vm(vm.vcpus).to_bytes()
    except SdeiStateError as e:
        return [f"restoring into a fresh VM failed: {e}"]
    if again != data:
        return [f"restore then save differs: {_blob_diff(again, data)}"]
    return []


def _blob_field(data: bytes, offset: int) -> str:
    """Which field of a blob ``offset`` falls in (header, id table entry, vCPU value, CRC)."""
    from ..migration import blob as layout
    from ..regs import ids

    hs = layout.HEADER_SIZE
    if offset < hs:
        return "header"
    try:
        nr_regs, nr_vcpus = struct.unpack_from("<II", data, 12)
    except struct.error:
        return "header"
    table_end = hs + 8 * nr_regs
    rows_end = table_end + 8 * nr_regs * nr_vcpus
    if offset < table_end:
        k = (offset - hs) // 8
        return f"register id table entry {k}"
    if offset < rows_end:
        k = (offset - table_end) // 8
        vcpu, r = divmod(k, nr_regs) if nr_regs else (0, 0)
        (reg_id,) = struct.unpack_from("<Q", data, hs + 8 * r)
        return f"vCPU {vcpu} value of {ids.short_name(reg_id)} ({reg_id:#018x})"
    return "CRC32"


def _blob_diff(got: bytes, want: bytes) -> str:
    """Where two blobs first differ, naming the field (``got`` is the file under test)."""
    n = min(len(got), len(want))
    first = next((i for i in range(n) if got[i] != want[i]), None)
    if first is None:
        return f"{len(got)} bytes, the replay gives {len(want)} (one is a prefix of the other)"
    return (f"byte {first} ({_blob_field(want, first)}) is {got[first]:#04x}, the replay "
            f"gives {want[first]:#04x}")


def _diff(path: str, got: object, want: object, out: list[str] | None = None,
          names: tuple[str, str] = ("the replay", "the vector")) -> list[str]:
    """Differences between two JSON values, as ``path: <a> gives X, <b> has Y`` messages,
    ``names`` = (a, b) naming where ``got`` and ``want`` come from."""
    a, b = names
    acc: list[str] = [] if out is None else out
    if len(acc) > _MAX_DIFFS:
        return acc
    if isinstance(got, dict) and isinstance(want, dict):
        for k in sorted(set(got) | set(want), key=str):
            sub = f"{path}.{k}"
            if k not in want:
                acc.append(f"{sub}: {a} has it, {b} does not")
            elif k not in got:
                acc.append(f"{sub}: {b} has it, {a} does not")
            else:
                _diff(sub, got[k], want[k], acc, names)
    elif isinstance(got, list) and isinstance(want, list):
        if len(got) != len(want):
            acc.append(f"{path}: {a} has {len(got)} entries, {b} {len(want)}")
        for i, (g, w) in enumerate(zip(got, want, strict=False)):
            _diff(f"{path}[{i}]", g, w, acc, names)
    elif type(got) is not type(want) or got != want:
        acc.append(f"{path}: {a} gives {_show(got)}, {b} has {_show(want)}")
    if out is None and len(acc) > _MAX_DIFFS:
        extra = len(acc) - _MAX_DIFFS
        return [*acc[:_MAX_DIFFS], f"{path}: ... and more differences ({extra}+ not shown)"]
    return acc


def _show(v: object) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and v > 9:
        return f"{v} ({v:#x})"
    return json.dumps(v) if not isinstance(v, (dict, list)) else type(v).__name__


# -- command-line entry points ----------------------------------------------------------------

def _line(report: VectorReport) -> str:
    if report.ok:
        return f"ok    {report.name}"
    shown = "; ".join(p.removeprefix(f"{report.name}: ") for p in report.problems[:4])
    more = len(report.problems) - 4
    return f"FAIL  {report.name}: {shown}" + (f"; ... ({more} more)" if more > 0 else "")


def main_verify(directory: str | os.PathLike[str] | None = None) -> int:
    """``sdei-state vectors verify``: one line per vector and a summary. Exit status 0 when
    all pass, 1 when any fails, 2 when the directory is unusable."""
    try:
        d = resolve_dir(directory)
    except VectorError as e:
        print(f"sdei-state: {e}", file=sys.stderr)
        return 2
    reports = verify(d)
    for r in reports:
        print(_line(r))
    failed = sum(not r.ok for r in reports)
    print(f"{len(reports)} vectors in {d}: {len(reports) - failed} ok, {failed} failed")
    return 1 if failed else 0


def main_generate(directory: str | os.PathLike[str] | None = None) -> int:
    """``sdei-state vectors generate``: rewrite the vectors; one line per vector, a summary.
    Exit status 0 on success, 1 when a scenario misses its expectations (nothing written), 2
    when the directory is unusable. A directory given explicitly is created if absent."""
    try:
        d = resolve_dir(directory) if directory is None else Path(directory)
        g = regenerate(d)
    except (VectorError, OSError) as e:
        print(f"sdei-state: {e}", file=sys.stderr)
        return 2
    if g.refused:
        for p in g.refused:
            print(f"conformance: {p}")
        print(f"refused: {len(g.refused)} conformance mismatches; nothing written to {d}")
        return 1
    for name, nj, nb in g.written:
        print(f"wrote {name}.json ({nj} bytes), {name}.blob ({nb} bytes)")
    for f in g.removed:
        print(f"removed stale {f}")
    print(f"{len(g.written)} vectors written to {d}, {len(g.removed)} stale files removed")
    return 0
