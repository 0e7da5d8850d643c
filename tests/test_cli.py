"""The ``sdei-state`` command: outputs, JSON forms, and one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdei_state import __version__
from sdei_state.cli import build_parser, main
from sdei_state.cli.common import MAX_INPUT_BYTES, MAX_VCPUS
from sdei_state.migration import Blob, blob_json, save_vm
from sdei_state.regs import sdei
from sdei_state.spec import Function
from sdei_state.vcpu.sim import SimVm


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _blob_file(tmp_path: Path, name: str, *, running: bool) -> Path:
    vm = SimVm(2)
    v = vm.vcpus[0]
    v.call(Function.EVENT_REGISTER, (0, 0x10000, 7, 0, 0))
    v.call(Function.EVENT_ENABLE, (0,))
    v.call(Function.PE_UNMASK)
    if running:
        v.inject(0)
        v.dispatch()
    p = tmp_path / name
    p.write_bytes(save_vm(vm.vcpus).to_bytes())
    return p


def test_regs_lists_the_block_and_firmware(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "regs", "--json")
    assert rc == 0
    doc = json.loads(out)
    names = [r["name"] for r in doc["registers"]]
    assert names[:7] == ["PSCI_VERSION", "SMCCC_ARCH_WORKAROUND_1", "SMCCC_ARCH_WORKAROUND_2",
                         "SMCCC_ARCH_WORKAROUND_3", "STD_BMAP", "STD_HYP_BMAP",
                         "VENDOR_HYP_BMAP"]
    assert names[7:] == [r.name for r in sdei.SDEI_REGS]
    by_name = {r["name"]: r for r in doc["registers"]}
    assert by_name["SDEI_VCPU_STATE"]["reset"] == 1
    assert by_name["SDEI_VCPU_STATE"]["id"] == "0x6030000000140100"
    assert by_name["STD_BMAP"]["reset"] == 3  # TRNG + SDEI on the sdei host preset
    rc, out, _ = run(capsys, "regs")
    assert rc == 0 and "SDEI_CONTEXT(1, 19)" in out and "[check only, not stored]" in out


def test_decode_ids_names_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "decode", "0x6030000000140110", "VBAR_EL1", "--value", "0xb",
                     "--json")
    assert rc == 0
    a, b = json.loads(out)
    assert a["name"] == "SDEI_EVENT_STATE(0)" and a["meaning"] == "REGISTERED|ENABLED|PENDING"
    assert a["problem"] is None
    assert b["id"] == "0x603000000013c600" and b["macro"] == "ARM64_SYS_REG(3, 0, 12, 0, 0)"
    rc, out, _ = run(capsys, "decode", "SDEI_EVENT_STATE(0)", "--value", "2")
    assert rc == 0 and "SET would give EINVAL" in out
    rc, out, _ = run(capsys, "decode", "0x6030000000150000")
    assert rc == 1 and "invalid: SVE ZREG is U2048" in out


def test_decode_unknown_name_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "decode", "NOT_A_REGISTER")
    assert rc == 2 and out == ""
    assert err.startswith("sdei-state: 'NOT_A_REGISTER': ") and err.count("\n") == 1


def test_blob_show_diff_preflight(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    idle = _blob_file(tmp_path, "idle.blob", running=False)
    busy = _blob_file(tmp_path, "busy.blob", running=True)
    rc, out, _ = run(capsys, "blob", "show", str(busy))
    assert rc == 0 and "2 vCPU(s), 93 registers each" in out
    assert "SDEI_EVENT_STATE(0)" in out and "REGISTERED|ENABLED|RUNNING" in out
    rc, out, _ = run(capsys, "blob", "show", str(busy), "--json")
    shown = json.loads(out)
    assert rc == 0 and Blob.from_json(out) == Blob.from_bytes(busy.read_bytes())
    assert shown["format"] == "sdei-state/blob/1" and "0x6030000000140100" in shown["registers"]
    rc, out, _ = run(capsys, "blob", "diff", str(idle), str(idle))
    assert rc == 0 and out.strip() == "identical"
    rc, out, _ = run(capsys, "blob", "diff", str(idle), str(busy), "--json")
    diff = json.loads(out)
    assert rc == 1 and not diff["equal"]
    changed = {d["name"] for d in diff["differences"]}
    assert {"SDEI_EVENT_STATE(0)", "SDEI_CONTEXT(0, 19)", "pc"} <= changed
    rc, out, _ = run(capsys, "blob", "preflight", str(busy))
    assert rc == 0 and "ok" in out
    # A stock 6.12 destination lacks the SDEI registers, and this blob's are not at reset.
    rc, out, _ = run(capsys, "blob", "preflight", str(busy), "--host", "6.12", "--json")
    report = json.loads(out)
    assert rc == 1 and report["verdict"] == "refused"
    assert any(p["name"] == "SDEI_EVENT_STATE(0)" and "reset" in p["reason"]
               for p in report["problems"])


def test_blob_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _blob_file(tmp_path, "good.blob", running=False).read_bytes()
    bad = tmp_path / "bad.blob"
    bad.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    rc, _, err = run(capsys, "blob", "show", str(bad))
    assert rc == 2 and err.startswith(f"sdei-state: {bad}: ") and "CRC" in err
    rc, _, err = run(capsys, "blob", "show", str(tmp_path / "missing.blob"))
    assert rc == 2 and "No such file" in err
    good_path = tmp_path / "good.blob"
    rc, _, err = run(capsys, "blob", "preflight", str(good_path), "--vcpus", "-1")
    assert rc == 2 and err == ("sdei-state: blob preflight: argument --vcpus: '-1' is not an "
                               "integer 0..4096 (0: as many as the blob) (see sdei-state blob "
                               "preflight --help)\n")
    rc, _, err = run(capsys, "blob", "preflight", str(good_path), "--host", "nope")
    assert rc == 2 and err.startswith("sdei-state: --host 'nope': one of 6.12")


def test_replay_from_stdin_and_errors(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import io

    def stdin(text: str) -> io.TextIOWrapper:
        return io.TextIOWrapper(io.BytesIO(text.encode()))

    doc = {"format": "sdei-state/scenario/1", "vcpus": 1,
           "steps": [{"vcpu": 0, "call": "VERSION"}]}
    monkeypatch.setattr("sys.stdin", stdin(json.dumps(doc)))
    rc, out, _ = run(capsys, "replay", "-")
    result = json.loads(out)
    assert rc == 0 and result["steps"] == [{"x0": 0x0001_0001_564B_CAA9, "x1": 0, "x2": 0,
                                            "x3": 0}]
    doc["steps"] = [{"vcpu": 3, "call": "VERSION"}]
    monkeypatch.setattr("sys.stdin", stdin(json.dumps(doc)))
    rc, out, err = run(capsys, "replay", "-")
    assert rc == 2 and out == "" and err == "sdei-state: step 0: vcpu 3 out of range 0..0\n"
    monkeypatch.setattr("sys.stdin", stdin("{not json"))
    rc, _, err = run(capsys, "replay", "-")
    assert rc == 2 and err.startswith("sdei-state: stdin: bad JSON at line 1")


def test_generated_scenario_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "scenario", "generate", "--steps", "300", "--seed", "3")
    assert rc == 0
    path = tmp_path / "gen.json"
    path.write_text(out)
    rc, out, _ = run(capsys, "replay", str(path))
    result = json.loads(out)
    assert rc == 0 and len(result["steps"]) == 300 and len(result["final"]) == 4


def test_selftest_on_the_simulated_backend(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    rc, out, _ = run(capsys, "selftest", "--backend", "sim", "--suite", "model-conformance")
    assert rc == 0
    assert "backend: simulated vCPU (reference model)" in out
    assert " 0 failed" in out
    junit = tmp_path / "r.xml"
    rc, out, _ = run(capsys, "selftest", "--backend", "sim", "--suite", "model-conformance",
                     "--format", "junit", "-o", str(junit))
    assert rc == 0 and junit.read_text().startswith("<?xml")
    rc, _, err = run(capsys, "selftest", "--suite", "nope")
    assert rc == 2 and err.startswith("sdei-state: unknown suite 'nope' (have: model-conf")
    assert err.count("\n") == 1


def test_selftest_where_nothing_can_run_is_a_kselftest_skip(
        capsys: pytest.CaptureFixture[str]) -> None:
    if platform.machine() in ("aarch64", "arm64"):
        pytest.skip("this host may have arm64 KVM")
    rc, out, err = run(capsys, "selftest", "--format", "tap", "--backend", "kvm")
    lines = out.splitlines()
    assert rc == 4 and err == ""
    assert lines[:2] == ["TAP version 13", f"1..0 # SKIP --backend kvm: this host is "
                                           f"{platform.machine()}, not arm64"]
    rc, out, _ = run(capsys, "selftest", "--backend", "sim", "--suite", "firmware-registers")
    assert rc == 4 and "0 passed, 0 failed, 18 skipped" in out


def test_selftest_tap_json_and_exit_status_0(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "selftest", "--backend", "sim", "--format", "tap",
                     "--case", "sdei-calls/*", "--case", "firmware-registers/values-decode")
    lines = out.splitlines()
    assert rc == 0 and lines[:2] == ["TAP version 13", "1..4"]
    assert lines[3].startswith("ok 1 firmware-registers/values-decode # SKIP needs real arm64")
    assert lines[4] == "ok 2 sdei-calls/version-and-features"
    assert lines[-1] == "# Totals: pass:3 fail:0 xfail:0 xpass:0 skip:1 error:0"
    rc, out, _ = run(capsys, "selftest", "--backend", "sim", "--format", "json",
                     "--suite", "sdei-calls")
    doc = json.loads(out)
    assert rc == 0 and doc["totals"] == {"pass": 3, "fail": 0, "skip": 0}
    assert [c["name"] for c in doc["cases"]] == [
        "version-and-features", "calls-outside-a-handler", "calls-smc-conduit"]


def test_selftest_list_and_selection_errors(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "selftest", "--list", "--suite", "migration", "--case", "*nested*")
    assert rc == 0 and out == "migration/nested-handlers\n"
    rc, out, err = run(capsys, "selftest", "--list", "--suite", "stress", "--case", "nope")
    assert rc == 2 and out == "" and err == (
        "sdei-state: unknown case 'nope' (have: signals-4-vcpu-threads, "
        "signals-8-vcpu-threads)\n")
    with pytest.raises(SystemExit) as e:
        main(["selftest", "--help"])
    assert e.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 every case that ran passed, 1 a case failed, 4 nothing" in help_text
    assert "{text,tap,json,junit}" in help_text


# -- the command as a whole: version, help, one JSON style, bounded input ------------------


def test_version_and_python_dash_m(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"sdei-state {__version__}\n"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    for module in ("sdei_state", "sdei_state.cli"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                              text=True, env=env, cwd=root, timeout=60, check=False)
        assert (proc.returncode, proc.stdout) == (0, f"sdei-state {__version__}\n")


def _parsers(p: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield p.prog, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_and_subcommand_has_help() -> None:
    parsers = dict(_parsers(build_parser()))
    assert {"sdei-state blob preflight", "sdei-state scenario generate",
            "sdei-state vectors verify", "sdei-state lab"} <= set(parsers)
    for prog, p in parsers.items():
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {c.dest: c.help for c in action._choices_actions}
                assert set(helps) == set(action.choices) and all(helps.values()), prog
            else:
                assert action.help, f"{prog} {action.option_strings or action.dest}: no help"


def test_json_outputs_share_one_style(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    blob = _blob_file(tmp_path, "b.blob", running=True)
    scen = tmp_path / "s.json"
    scen.write_text('{"format": "sdei-state/scenario/1", "vcpus": 1, "steps": []}')
    for argv in (["regs", "--json"], ["decode", "x0", "--json"],
                 ["blob", "show", str(blob), "--json"], ["blob", "diff", str(blob), str(blob),
                                                         "--json"],
                 ["blob", "preflight", str(blob), "--json"], ["replay", str(scen)],
                 ["scenario", "generate", "--steps", "3"],
                 ["selftest", "--backend", "sim", "--suite", "sdei-calls", "--format", "json"]):
        rc, out, _ = run(capsys, *argv)
        assert rc == 0 and out == json.dumps(json.loads(out), indent=2) + "\n", argv


def test_blob_show_json_is_a_blob_every_command_reads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = _blob_file(tmp_path, "b.blob", running=True)
    rc, out, _ = run(capsys, "blob", "show", str(binary), "--json")
    as_json = tmp_path / "b.json"
    as_json.write_text(out)
    assert rc == 0 and Blob.from_json(out).to_bytes() == binary.read_bytes()
    rc, again, _ = run(capsys, "blob", "show", str(as_json), "--json")
    assert rc == 0 and again == out
    rc, text, _ = run(capsys, "blob", "show", str(as_json))
    assert rc == 0 and "REGISTERED|ENABLED|RUNNING" in text
    assert run(capsys, "blob", "preflight", str(as_json))[0] == 0
    assert run(capsys, "blob", "diff", str(as_json), str(binary))[1].strip() == "identical"
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (the test extra) is "
                                                          "not installed")
    jsonschema.Draft202012Validator(blob_json.schema()).validate(json.loads(out))


@pytest.mark.parametrize(("argv", "message"), [
    (["decode", "SDEI_EVENT_STATE(0)", "--value", "-1"],
     "--value '-1': not an unsigned integer"),
    (["decode", "SDEI_EVENT_STATE(0)", "--value", str(1 << 64)],
     "--value 0x10000000000000000: wider than SDEI_EVENT_STATE(0) (0x6030000000140110), "
     "a 8-byte register"),
    (["decode", "x0", "--value", "\u0661"], "--value '\u0661': not an unsigned integer"),
    (["decode", "0x\u0666030000000140110"], "register ids and names are ASCII"),
    (["decode", "SDEI_EVENT_STATE(\u0660)"], "register ids and names are ASCII"),
    (["decode", "x" * 201], "201 characters; a register id or name has at most 200"),
    (["scenario", "generate", "--steps", "1000001"],
     "argument --steps: '1000001' is not an integer 0..1000000"),
    (["scenario", "generate", "--vcpus", "\u0662"], "argument --vcpus: '\u0662' is not an"),
    (["blob", "show"], "blob show: the following arguments are required: file"),
    (["regs", "--bogus"], "unrecognized arguments: --bogus"),
    (["lab", "status", "--smp", "x"], "lab status: argument --smp: invalid int value: 'x'"),
])
def test_mistakes_are_one_line_exit_2(argv: list[str], message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, *argv)
    assert (rc, out) == (2, "") and err.startswith("sdei-state: ") and err.count("\n") == 1
    assert message in err


def test_decode_accepts_values_that_fit(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "decode", "SDEI_EVENT_STATE(0)", "--value", hex((1 << 64) - 1),
                     "--json")
    assert rc == 0 and json.loads(out)[0]["value"] == (1 << 64) - 1


def test_sizes_are_checked_before_allocating(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(MAX_INPUT_BYTES + 1)
    for cmd in (["blob", "show"], ["replay"]):
        rc, _, err = run(capsys, *cmd, str(big))
        assert rc == 2 and err == f"sdei-state: {big}: larger than 16 MiB, the most a " \
                                  "command reads\n"
    many = tmp_path / "many.blob"
    many.write_bytes(Blob((0x6030_0000_0010_0000,), ((0,),) * (MAX_VCPUS + 1)).to_bytes())
    rc, _, err = run(capsys, "blob", "preflight", str(many))
    assert rc == 2 and err == (f"sdei-state: {many}: 4097 vCPUs; a simulated destination has "
                               "at most 4096 (give --vcpus)\n")
    assert run(capsys, "blob", "preflight", str(many), "--vcpus", "2")[0] == 1  # count differs
    scen = tmp_path / "s.json"
    scen.write_text('{"format": "sdei-state/scenario/1", "vcpus": 1048576, "steps": []}')
    rc, _, err = run(capsys, "replay", str(scen))
    assert rc == 2 and err.endswith("'vcpus' is 1048576; replay simulates at most 4096 vCPUs\n")


def test_files_that_are_not_text_or_not_there(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.json"
    f.write_bytes(b'{"format": "\xff"}')
    assert run(capsys, "replay", str(f))[2] == (f"sdei-state: {f}: not UTF-8 text (byte 0xff "
                                                "at offset 12)\n")
    assert run(capsys, "replay", str(tmp_path))[2] == f"sdei-state: {tmp_path}: Is a directory\n"
    nl = tmp_path / "a\nb"
    assert run(capsys, "blob", "show", str(nl))[2] == (f"sdei-state: {tmp_path}/a\\nb: No such "
                                                       "file or directory\n")


def test_vmm_help_states_the_machine_limits_of_the_layout() -> None:
    """``vmm``'s help writes the limits out (importing the layout would slow every command's
    start), so it is checked against them here."""
    from sdei_state.cli import build_parser
    from sdei_state.vmm.reference import layout

    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub.choices["vmm"]._actions}
    assert f"1..{layout.MAX_VCPUS}" in helps["vcpus"]
    assert f"{layout.MIN_RAM >> 20}..{layout.MAX_RAM >> 20}" in helps["mem"]


@pytest.mark.parametrize(("argv", "says"), [
    (("--kernel", "/nonexistent/Image"), "--kernel /nonexistent/Image: No such file"),
    (("--kernel", "README.md", "--mem", "3"), "memory 3145728 bytes: expected a multiple"),
    (("--kernel", "README.md", "--vcpus", "124"), "vcpus 124: expected 1..123"),
    (("--kernel", "README.md", "--vcpus", "x"), "argument --vcpus: 'x' is not an integer"),
    (("--initrd", "x"), "the following arguments are required: --kernel"),
])
def test_vmm_refuses_bad_input_in_one_line(capsys: pytest.CaptureFixture[str],
                                           argv: tuple[str, ...], says: str) -> None:
    rc, out, err = run(capsys, "vmm", *argv)
    assert (rc, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("sdei-state: ") and says in err, err


def test_vmm_refuses_an_image_larger_than_the_guest_ram(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    big = tmp_path / "Image"
    with big.open("wb") as f:
        f.truncate((64 << 20) + 1)
    rc, _, err = run(capsys, "vmm", "--kernel", str(big), "--mem", "64")
    assert rc == 2 and "larger than the guest's RAM (64 MiB, --mem)" in err, err
