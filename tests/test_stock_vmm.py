"""The stock-vmm suite's host-side pieces: QEMU's migration stream parser, the QMP client,
the QEMU layer's dependency closure, the kernel-SDEI-off vCPU view, and the suite's skips
and opt-in."""

from __future__ import annotations

import json
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

from sdei_state.lab import debs, qemu_layer
from sdei_state.regs import firmware
from sdei_state.regs import sdei as sdei_regs
from sdei_state.selftest import all_suites, run_suites, select
from sdei_state.selftest.backends import SimBackend
from sdei_state.selftest.core import Outcome
from sdei_state.selftest.qemu_stream import StreamError, cpu_sections
from sdei_state.selftest.qmp import Qmp, QmpError
from sdei_state.vcpu.sim import SimVm
from sdei_state.vmm.in_kernel import KernelSdeiOff

IDS = (0x603000000013C000, 0x603000000013C600, *sdei_regs.SDEI_REG_IDS, 0x6030000000160000)


def _cpu_section(instance: int, ids: tuple[int, ...], values: tuple[int, ...],
                 prefix: bytes = b"\x00" * 37) -> bytes:
    head = bytes([4]) + struct.pack(">I", 7 + instance) + b"\x03cpu" + struct.pack(
        ">II", instance, 22)
    body = struct.pack(">i", len(ids)) + struct.pack(f">{len(ids)}Q", *ids)
    return head + prefix + body + struct.pack(f">{len(values)}Q", *values) + b"\x00" * 9


def _stream(*sections: bytes) -> bytes:
    # a RAM-like section with a decoy: "\x03cpu" in guest data, not a section header
    ram = bytes([1]) + struct.pack(">I", 2) + b"\x03ram" + b"\x03cpu" + b"\x55" * 64
    return b"QEVM" + struct.pack(">I", 3) + ram + b"".join(sections) + bytes([0x1F])


def test_the_parser_finds_each_vcpus_register_list() -> None:
    v0 = tuple(range(len(IDS)))
    v1 = tuple(1000 + i for i in range(len(IDS)))
    # a non-ascending run of ids before the arrays must not be taken for them
    decoy = struct.pack(">i", 2) + struct.pack(">QQ", IDS[1], IDS[0])
    got = cpu_sections(_stream(_cpu_section(1, IDS, v1), _cpu_section(0, IDS, v0, decoy)))
    assert [c.vcpu for c in got] == [0, 1]
    assert got[0].ids == IDS and got[0].values == v0 and got[1].values == v1
    assert all(r in got[1].as_dict() for r in sdei_regs.SDEI_REG_IDS)


@pytest.mark.parametrize(("data", "why"), [
    (b"QEVX" + struct.pack(">I", 3), "not a QEMU migration stream"),
    (b"QEVM" + struct.pack(">I", 2), "not a QEMU migration stream"),
    (_stream(), "no cpu section"),
    (b"QEVM" + struct.pack(">I", 3) + _cpu_section(0, (1, 2), (3, 4)), "no cpu section"),
])
def test_the_parser_refuses_what_is_not_a_stream_with_register_lists(data: bytes,
                                                                     why: str) -> None:
    with pytest.raises(StreamError, match=why):
        cpu_sections(data)


def _qmp_server(path: Path, replies: list[list[dict[str, Any]]],
                seen: list[dict[str, Any]]) -> None:
    """Answers each request with its list of messages."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        f = conn.makefile("rwb")
        f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        f.flush()
        for messages in replies:
            seen.append(json.loads(f.readline()))
            f.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
            f.flush()
        f.close()
        conn.close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()


def test_qmp_client_negotiates_keeps_events_and_reports_errors(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    sock = tmp_path / "q.sock"
    _qmp_server(sock, [[{"return": {}}],
                       [{"event": "STOP"},  # an event before the reply is kept aside
                        {"error": {"class": "GenericError", "desc": "no such thing"}}]], seen)
    q = Qmp(sock, timeout=5)
    try:
        with pytest.raises(QmpError, match="migrate: no such thing"):
            q.command("migrate", uri="exec:cat > /dev/null")
        assert q.events == [{"event": "STOP"}]
        assert seen == [{"execute": "qmp_capabilities"},
                        {"execute": "migrate", "arguments": {"uri": "exec:cat > /dev/null"}}]
    finally:
        q.close()


def test_qmp_client_names_a_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(QmpError, match="QMP socket"):
        Qmp(tmp_path / "none.sock", timeout=0.3)


def test_dependency_names_take_the_first_alternative_without_versions() -> None:
    assert qemu_layer.dependency_names(
        "libc6 (>= 2.34), libfdt1 (>= 1.6.1), libgcc-s1 | libgcc1, python3:any, "
        "qemu-system-data (>> 1:7.2+dfsg~)") == [
        "libc6", "libfdt1", "libgcc-s1", "python3", "qemu-system-data"]


def test_closure_skips_the_userspace_and_the_packages_not_followed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    deps = {"qemu-system-arm": "libc6, libglib2.0-0, qemu-system-common (= 1)",
            "libglib2.0-0": "libc6, libffi8, libpcre2-8-0", "libpcre2-8-0": "libc6",
            "device-tree-compiler": "libfdt1, libyaml-0-2", "libfdt1": "", "libyaml-0-2": ""}
    asked: list[list[str]] = []

    def resolve(names: list[str], arch: str = "arm64") -> list[debs.Pkg]:
        asked.append(list(names))
        return [debs.Pkg(n, "1", "arm64", deps[n]) for n in names]

    monkeypatch.setattr(debs, "resolve", resolve)
    got = qemu_layer.closure(qemu_layer.ROOTS, frozenset({"libc6", "libffi8"}))
    assert [p.name for p in got] == sorted(
        ["qemu-system-arm", "device-tree-compiler", "libglib2.0-0", "libpcre2-8-0", "libfdt1",
         "libyaml-0-2"])
    assert len(asked) == 3  # one apt-cache call per level


def test_kernel_sdei_off_hides_the_kernels_sdei_block_and_clears_the_gate() -> None:
    vm = SimVm(1)
    view = KernelSdeiOff(vm.vcpus[0])  # type: ignore[arg-type]
    assert not set(view.reg_list()) & set(sdei_regs.SDEI_REG_IDS)
    assert set(view.reg_list()) == set(vm.vcpus[0].reg_list()) - set(sdei_regs.SDEI_REG_IDS)
    assert vm.vcpus[0].get_reg(firmware.STD_BMAP) & 2
    view.gate_off()
    assert not vm.vcpus[0].get_reg(firmware.STD_BMAP) & 2
    assert vm.vcpus[0].get_reg(firmware.STD_BMAP) & 1  # the other bits stay


def test_the_suite_is_opt_in_and_skips_with_reasons_off_the_lab() -> None:
    be = SimBackend("not arm64")
    assert "stock-vmm" not in [s.name for s in all_suites(be)]
    chosen = select(all_suites(be, ["stock-vmm"]), ["stock-vmm"], ())
    results = list(run_suites(chosen, be, be.missing))
    assert len(results) == 32  # 21 + the 11 linux-* cases
    assert all(r.outcome is Outcome.SKIP and r.message for r in results), results
    assert any("needs real arm64 KVM" in r.message for r in results)


def test_held_round_reads_the_round_and_checks_the_context() -> None:
    from sdei_state.selftest.stock_qemu import held_round, pattern

    ctx = {sdei_regs.SDEI_REG_BY_NAME[f"SDEI_CONTEXT(0, {r})"].id: pattern(7, r)
           for r in range(18)}
    regs = {**ctx, sdei_regs.event_state_id(0): 0x7}
    assert held_round(regs) == (7, [])
    assert held_round({**regs, sdei_regs.event_state_id(0): 0x3}) is None  # not running
    other = sdei_regs.SDEI_REG_BY_NAME["SDEI_CONTEXT(0, 4)"].id
    assert held_round({**regs, other: 0x1234}) is None  # some other user of event 0
    x9 = sdei_regs.SDEI_REG_BY_NAME["SDEI_CONTEXT(0, 9)"].id
    n, bad = held_round({**regs, x9: 0}) or (0, [])
    assert n == 7 and bad == [f"SDEI_CONTEXT(0, 9) = 0x0, the guest loaded {pattern(7, 9):#x}"]


def test_with_qemu_is_a_lab_option_that_reaches_the_config(tmp_path: Path) -> None:
    from sdei_state import lab

    a = lab._parser().parse_args(["run", "--kernel", "sdei", "--with-qemu", "--cache",
                                  str(tmp_path), "--", "true"])
    assert lab._config(a).with_qemu
    a = lab._parser().parse_args(["run", "--cache", str(tmp_path), "--", "true"])
    assert not lab._config(a).with_qemu
