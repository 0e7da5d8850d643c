"""The migration vectors: the checked-in ones verify, generation is deterministic and equal to
them, and any tampering (a blob byte, a result value, the scenario, missing or stale files)
fails with a message naming the vector and the field."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from sdei_state.migration import blob as blob_layout
from sdei_state.scenario import conformance, vectors

CHECKED_IN = vectors.default_dir()
NAMES = list(vectors.expected_vectors())


@pytest.fixture()
def copy_dir(tmp_path: Path) -> Path:
    d = tmp_path / "vectors"
    shutil.copytree(CHECKED_IN, d)
    return d


def _text(reports: list[vectors.VectorReport]) -> str:
    """Every problem of every report, one per line (for a failure message)."""
    return "\n".join(p for r in reports for p in r.problems)


def _failures(reports: list[vectors.VectorReport]) -> dict[str, tuple[str, ...]]:
    return {r.name: r.problems for r in reports if not r.ok}


def test_checked_in_vectors_verify() -> None:
    reports = vectors.verify(CHECKED_IN)
    assert [r.name for r in reports] == NAMES
    assert _failures(reports) == {}, _text(reports)
    assert len(NAMES) == len(conformance.SCENARIOS) >= 30
    assert NAMES[0] == f"01-{conformance.SCENARIOS[0].name}"


def test_regenerate_reproduces_the_checked_in_files_byte_for_byte(tmp_path: Path) -> None:
    g = vectors.regenerate(tmp_path)
    assert g.refused == () and g.removed == ()
    assert [w[0] for w in g.written] == NAMES
    produced = sorted(p.name for p in tmp_path.iterdir())
    assert produced == sorted(p.name for p in CHECKED_IN.iterdir() if p.suffix in (".json",
                                                                                  ".blob"))
    for name in produced:
        assert (tmp_path / name).read_bytes() == (CHECKED_IN / name).read_bytes(), name
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    vectors.regenerate(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first


def test_vector_files_are_canonical_and_complete() -> None:
    name = NAMES[6]
    doc = json.loads((CHECKED_IN / f"{name}.json").read_text())
    assert sorted(doc) == ["blob", "format", "name", "result", "scenario"]
    assert doc["format"] == vectors.VECTOR_FORMAT and doc["name"] == name
    assert doc["blob"] == f"{name}.blob"
    assert doc["scenario"] == conformance.BY_NAME[name[3:]].scenario
    assert doc["result"]["format"] == "sdei-state/result/1"
    text = (CHECKED_IN / f"{name}.json").read_text()
    assert text.endswith("}\n") and text.isascii()
    data = (CHECKED_IN / f"{name}.blob").read_bytes()
    assert data.startswith(blob_layout.MAGIC)


def test_a_tampered_blob_byte_is_named(copy_dir: Path) -> None:
    name = next(n for n in NAMES if n.endswith("-handler-states"))
    path = copy_dir / f"{name}.blob"
    data = bytearray(path.read_bytes())
    # Flip bit 0 of the first byte of the last value of vCPU 0's row: the blob's last
    # register before the CRC.
    offset = len(data) - blob_layout.CRC_SIZE - 8
    data[offset] ^= 1
    path.write_bytes(bytes(data))
    failures = _failures(vectors.verify(copy_dir))
    assert list(failures) == [name]
    problems = failures[name]
    assert any(p.startswith(f"{name}: {name}.blob: byte {offset} (vCPU 0 value of ")
               for p in problems), problems
    assert any("restoring into a fresh VM failed" in p and "CRC" in p.upper()
               for p in problems), problems


def test_a_tampered_result_value_is_named(copy_dir: Path) -> None:
    name = next(n for n in NAMES if n.endswith("-nested-critical"))
    path = copy_dir / f"{name}.json"
    doc = json.loads(path.read_text())
    conf = conformance.BY_NAME["nested-critical"]
    i = next(i for i, s in enumerate(conf.scenario["steps"]) if s.get("dispatch"))
    doc["result"]["steps"][i]["x2"] += 8
    path.write_text(json.dumps(doc))
    failures = _failures(vectors.verify(copy_dir))
    assert list(failures) == [name]
    want = conf.expect[i]["x2"]
    assert failures[name] == (
        f"{name}: result.steps[{i}].x2: the replay gives {want} ({want:#x}), the vector has "
        f"{want + 8} ({want + 8:#x})",
        f"nested-critical: step {i} (vCPU 0 dispatch): x2 = {want + 8} ({want + 8:#x}), "
        f"want {want} ({want:#x})",
    )


def test_a_tampered_final_register_is_named(copy_dir: Path) -> None:
    name = NAMES[0]
    path = copy_dir / f"{name}.json"
    doc = json.loads(path.read_text())
    doc["result"]["final"][0]["registers"]["0x6030000000140100"] = 0
    path.write_text(json.dumps(doc))
    problems = _failures(vectors.verify(copy_dir))[name]
    assert problems[0] == (f"{name}: result.final[0].registers.0x6030000000140100: the replay "
                           "gives 1, the vector has 0")
    assert any("final vCPU 0 SDEI_VCPU_STATE" in p for p in problems)


def test_a_changed_scenario_is_reported(copy_dir: Path) -> None:
    name = NAMES[1]
    path = copy_dir / f"{name}.json"
    doc = json.loads(path.read_text())
    doc["scenario"]["steps"][0]["args"] = [0, 2]
    path.write_text(json.dumps(doc))
    problems = _failures(vectors.verify(copy_dir))[name]
    assert problems[0].startswith(
        f"{name}: the scenario differs from conformance scenario 'get-info' "
        "(scenario.steps[0].args[1]: the vector gives 2, the conformance scenario has 0)")


def test_missing_stale_and_unreadable_files(copy_dir: Path) -> None:
    (copy_dir / f"{NAMES[2]}.json").unlink()
    (copy_dir / f"{NAMES[3]}.blob").unlink()
    (copy_dir / f"{NAMES[4]}.json").write_text("{not json")
    (copy_dir / "99-retired.json").write_text("{}")
    (copy_dir / "notes.txt").write_text("not a vector")
    failures = _failures(vectors.verify(copy_dir))
    assert sorted(failures) == sorted([NAMES[2], NAMES[3], NAMES[4], "99-retired"])
    assert failures[NAMES[2]][0].startswith(f"{NAMES[2]}: missing ")
    assert "cannot read" in failures[NAMES[3]][0]
    assert "is not readable JSON" in failures[NAMES[4]][0]
    assert "stale vector" in failures["99-retired"][0]


def test_a_blob_from_another_vector_is_refused(copy_dir: Path) -> None:
    one, two = NAMES[0], next(n for n in NAMES if n.endswith("-masked-vcpu"))
    shutil.copy(copy_dir / f"{one}.blob", copy_dir / f"{two}.blob")
    problems = _failures(vectors.verify(copy_dir))[two]
    assert any(f"{two}.blob: " in p for p in problems)
    assert any("restoring into a fresh VM failed" in p for p in problems), problems


def test_regenerate_removes_only_stale_vector_files(tmp_path: Path) -> None:
    (tmp_path / "99-retired.json").write_text("{}")
    (tmp_path / "99-retired.blob").write_bytes(b"")
    (tmp_path / "README").write_text("kept")
    g = vectors.regenerate(tmp_path)
    assert g.removed == ("99-retired.blob", "99-retired.json")
    assert (tmp_path / "README").read_text() == "kept"
    assert not list(tmp_path.glob("*.tmp"))


def test_regenerate_refuses_a_scenario_that_misses_its_expectations(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = conformance.SCENARIOS[0]
    wrong = replace(conf, expect={**conf.expect, 1: {"x0": 12345}})
    monkeypatch.setattr(conformance, "SCENARIOS", (wrong, *conformance.SCENARIOS[1:]))
    g = vectors.regenerate(tmp_path)
    assert g.written == ()
    assert g.refused == ("version-features: step 1 (vCPU 0 call VERSION()): x0 = "
                         f"{conformance.VERSION_1_1_KVM} ({conformance.VERSION_1_1_KVM:#x}), "
                         "want 12345 (0x3039)",)
    assert list(tmp_path.iterdir()) == []


# -- the command-line entry points ------------------------------------------------------------

def test_main_verify_prints_one_line_per_vector_and_a_summary(
        copy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vectors.main_verify(copy_dir) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [f"ok    {n}" for n in NAMES]
    assert lines[-1] == f"{len(NAMES)} vectors in {copy_dir}: {len(NAMES)} ok, 0 failed"
    data = bytearray((copy_dir / f"{NAMES[5]}.blob").read_bytes())
    data[0] ^= 0xFF
    (copy_dir / f"{NAMES[5]}.blob").write_bytes(bytes(data))
    assert vectors.main_verify(copy_dir) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(NAMES) + 1
    assert lines[5].startswith(f"FAIL  {NAMES[5]}: {NAMES[5]}.blob: byte 0 (header) is ")
    assert lines[-1].endswith(f"{len(NAMES) - 1} ok, 1 failed")


def test_main_entry_points_name_a_missing_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope"
    assert vectors.main_verify(missing) == 2
    assert capsys.readouterr().err == (f"sdei-state: vectors directory {missing} does not "
                                       "exist or is not a directory\n")
    monkeypatch.setattr(vectors, "default_dir", lambda: missing)
    assert vectors.main_verify() == 2
    assert str(missing) in capsys.readouterr().err
    assert vectors.main_generate() == 2
    assert f"no vectors directory at {missing}" in capsys.readouterr().err


def test_main_generate_creates_an_explicit_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "new" / "vectors"
    assert vectors.main_generate(target) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(NAMES) + 1
    assert lines[0].startswith(f"wrote {NAMES[0]}.json (")
    assert lines[-1] == f"{len(NAMES)} vectors written to {target}, 0 stale files removed"
    assert _failures(vectors.verify(target)) == {}


def test_result_diff_is_bounded() -> None:
    a = {"steps": [{"x0": i} for i in range(50)]}
    b = copy.deepcopy(a)
    for s in b["steps"]:
        s["x0"] += 1
    msgs = vectors._diff("result", a, b)
    assert len(msgs) == 9
    assert msgs[-1].startswith("result: ... and more differences")
