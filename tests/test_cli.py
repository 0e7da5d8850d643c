"""The ``sdei-state`` command: outputs, JSON forms, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from sdei_state.cli import main
from sdei_state.migration import Blob, save_vm
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
    assert rc == 0 and "2 vCPU(s), 91 registers each" in out
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
