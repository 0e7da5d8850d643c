"""The real-KVM replay backends, where no arm64 KVM is needed: the stub's memory, the VMM's
register view, injection through the register ABI, the agreement check, the CLI's refusal.

The backends themselves run in the lab (the ``replay`` selftest suite on ``--kernel sdei``
and on the Debian kernel)."""

from __future__ import annotations

import json
import platform
import struct
from pathlib import Path
from typing import Any

import pytest

from sdei_state import cli, scenario
from sdei_state.cpu import CpuReg
from sdei_state.errors import ScenarioError
from sdei_state.guest.disasm import disassemble
from sdei_state.regs import firmware
from sdei_state.regs import sdei as sdei_regs
from sdei_state.scenario import agreement, kvm_replay, kvm_stub
from sdei_state.selftest import all_suites, backends, core
from sdei_state.vcpu.sim import SimVm
from sdei_state.vmm import in_kernel


def test_stub_memory_is_hvc_and_tables_alias_every_address() -> None:
    mem = kvm_stub.memory_image()
    assert len(mem) == kvm_stub.MEM_SIZE
    words = set(struct.unpack_from(f"<{kvm_stub.BLOCK // 4}I", mem))
    assert words == {kvm_stub.HVC}
    assert "hvc" in str(disassemble(kvm_stub.HVC, 0))
    assert kvm_stub.HVC & 0xFFFF == 0xDE02  # T32 udf #2
    l0, l1, l2 = (struct.unpack_from("<512Q", mem, kvm_stub.TABLES + 4096 * n)
                  for n in range(3))
    assert set(l0) == {kvm_stub.TABLES + 4096 | 3} and set(l1) == {kvm_stub.TABLES + 8192 | 3}
    (block,) = set(l2)
    assert block & 3 == 1 and block >> 21 << 21 & (1 << 48) - 1 == 0  # a block at PA 0
    assert block >> 6 & 3 == 3 and block >> 10 & 1  # read-only at EL0/EL1 (EL1 may execute)
    assert not block >> 53 & 3  # neither PXN nor UXN


def test_forwarded_ranges_leave_out_kvm_and_sdei() -> None:
    ends = [0, *(e for r in kvm_stub.FORWARDED for e in r), 1 << 32]
    gaps = [(a, b) for a, b in zip(ends[::2], ends[1::2], strict=True) if a != b]
    assert gaps == [(0x8000_0000, 0x8001_0000), (0xC000_0000, 0xC001_0000),
                    (0xC400_0020, 0xC400_0040)]


def test_stub_regs_hide_the_vmm_bits() -> None:
    v = SimVm(1).vcpus[0]
    sctlr = kvm_stub.SCTLR_EL1
    start = v.get_reg(sctlr)
    regs = kvm_stub.StubRegs(v, {sctlr: 1})
    assert v.get_reg(sctlr) == start | 1 and regs.get_reg(sctlr) == start
    regs.set_reg(sctlr, 0x450078)
    assert v.get_reg(sctlr) == 0x450079 and regs.get_regs([sctlr]) == [0x450078]
    regs.set_reg(sctlr, 0x450079)
    assert regs.get_reg(sctlr) == 0x450079 and regs.real(sctlr) == 0x450079


def test_stub_regs_refused_write_changes_nothing() -> None:
    v = SimVm(1).vcpus[0]
    rid = sdei_regs.VCPU_STATE_ID
    regs = kvm_stub.StubRegs(v, {rid: 1})
    regs.set_reg(rid, 0)
    assert regs.get_reg(rid) == 0 and v.get_reg(rid) == 1  # the vCPU stays masked
    with pytest.raises(Exception, match="EINVAL"):
        regs.set_reg(rid, 1 << 5)  # a RES0 bit
    assert regs.get_reg(rid) == 0 and v.get_reg(rid) == 1


def _registered(vcpu: Any, index: int) -> None:
    vcpu.set_reg(sdei_regs.ep_addr_id(index), 0x1000)
    vcpu.set_reg(sdei_regs.event_state_id(index), 1)


def test_inject_pending_follows_the_model() -> None:
    sim = SimVm(1)
    v = sim.vcpus[0]
    assert not in_kernel.inject_pending(v, 0)  # not registered
    assert not in_kernel.inject_pending(v, 7)  # no such event
    _registered(v, 0)
    assert in_kernel.inject_pending(v, 0)
    assert v.get_reg(sdei_regs.event_state_id(0)) == 1 | 1 << 3
    model = SimVm(1)
    _registered(model.vcpus[0], 0)
    assert model.vcpus[0].inject(0) and model.vcpus[0].state == v.state


def test_inject_pending_refused_with_the_gate_off() -> None:
    v = SimVm(1).vcpus[0]
    _registered(v, 1)
    v.set_reg(firmware.STD_BMAP, v.get_reg(firmware.STD_BMAP) & ~(1 << firmware.STD_BIT_SDEI))
    assert not in_kernel.inject_pending(v, 0x40400000)
    assert not SimVm(1).vcpus[0].inject(0x40400000)


def test_agreement_of_sim_with_itself_and_a_difference_named() -> None:
    from sdei_state.scenario.conformance import SCENARIOS

    docs = [(c.name, c.scenario) for c in SCENARIOS[:5]]
    out = agreement.agree(docs, None, SimVm)
    assert (out.scenarios, out.mismatches) == (5, []) and out.steps > 20
    assert out.summary("sim", "sim").endswith(f"{out.steps} steps, 0 mismatches")

    class Off(SimVm):  # a backend whose calls leave x1 = 1 (replay serves through hvc)
        def __init__(self, n: int) -> None:
            super().__init__(n)
            hvc = self.machine.hvc

            def wrong(vcpu: int, cpu: Any) -> Any:
                out = hvc(vcpu, cpu)
                cpu[CpuReg.X1] = 1
                return out

            self.machine.hvc = wrong  # type: ignore[method-assign]

    bad = agreement.agree(docs[:1], None, Off)
    assert len(bad.mismatches) == 1 and "step 1: " in bad.mismatches[0]


def test_comparable_leaves_out_firmware_registers() -> None:
    doc = {"format": scenario.SCENARIO_FORMAT, "vcpus": 1,
           "steps": [{"vcpu": 0, "call": "VERSION"}]}
    res = scenario.run(doc)
    kept = agreement.comparable(res)["final"][0]["registers"]
    assert f"{firmware.PSCI_VERSION:#018x}" in res["final"][0]["registers"]
    assert f"{firmware.PSCI_VERSION:#018x}" not in kept
    assert f"{sdei_regs.VCPU_STATE_ID:#018x}" in kept and len(kept) == 37 + 47 + 2


def test_kvm_backends_refuse_a_host_that_is_not_arm64(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    for b in ("kvm-provider", "kvm-kernel"):
        with pytest.raises(ScenarioError, match=f"backend {b} needs arm64 KVM; this host"):
            kvm_replay.vm_factory(b)
    with pytest.raises(ScenarioError, match="one of sim, kvm-provider, kvm-kernel"):
        kvm_replay.vm_factory("qemu")
    assert kvm_replay.vm_factory("sim") is SimVm


def test_cli_replay_backend_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"format": scenario.SCENARIO_FORMAT, "vcpus": 1,
                             "steps": [{"vcpu": 0, "call": "VERSION"}]}))
    assert cli.main(["replay", "--backend", "kvm-kernel", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs arm64 KVM; this host is x86_64" in err
    assert cli.main(["replay", "--backend", "sim", str(f)]) == 0


def test_replay_and_cost_suites_skip_on_the_simulated_backend() -> None:
    be = backends.SimBackend("not arm64")
    chosen = [s for s in all_suites(be) if s.name in ("replay", "cost")]
    assert [s.name for s in chosen] == ["replay", "cost"]
    results = list(core.run_suites(chosen, be, be.missing))
    assert len(results) == 3
    assert all(r.outcome is core.Outcome.SKIP and "not arm64" in r.message for r in results)


def test_scenarios_not_compared_exist_and_say_why() -> None:
    from sdei_state.scenario.conformance import BY_NAME
    from sdei_state.selftest.replay_suite import NOT_COMPARED, _conformance

    assert set(NOT_COMPARED) <= set(BY_NAME) and all(NOT_COMPARED.values())
    names = [n for n, _ in _conformance()]
    assert len(names) == len(BY_NAME) - len(NOT_COMPARED)
    assert not set(names) & set(NOT_COMPARED)
