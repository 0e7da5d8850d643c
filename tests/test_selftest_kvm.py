"""The KVM side of ``sdei-state selftest`` on any host, with the kernel played by a fake.

``FakeKvm`` stands in for ``sdei_state.kvm.Kvm``: its vCPUs run guest code on the simulated
guest (``vmm.GuestVcpu``: typed exits, ``immediate_exit``) and keep their registers the way
KVM does (core and system registers, the upstream firmware registers of a ``SimVm``, a
counter that ticks). Like KVM it leaves PC at a
doorbell store until the next ``KVM_RUN`` (or one with ``immediate_exit``) completes it, answers
PSCI_VERSION itself, forwards the SDEI range as ``KVM_EXIT_HYPERCALL`` once the SMCCC filter
is installed, and, as a 6.1 kernel, may have no filter at all. Its in-kernel variant serves
SDEI itself and lists the DESIGN section 4 registers. So the probe, both KVM engines, the
migration path and the suites run here exactly as in the lab; the lab runs them on real KVM.
"""

from __future__ import annotations

import errno
import os
import platform
from types import SimpleNamespace
from typing import Any

import pytest

from sdei_state.errors import KvmError
from sdei_state.guest.layout import LAYOUT, Layout
from sdei_state.kvm import HypercallExit, SystemEventExit
from sdei_state.kvm.exits import Exit, ExitReason
from sdei_state.regs import firmware
from sdei_state.regs.ids import sys_reg
from sdei_state.selftest import all_suites
from sdei_state.selftest.core import CheckFailed, Outcome, run_suites
from sdei_state.selftest.host import Driver, HostError, simulate
from sdei_state.selftest.kvm_backend import (
    NO_FILTER,
    NO_IN_KERNEL,
    KvmBackend,
    probe_kvm,
)
from sdei_state.selftest.programs.catalog import PROGRAMS, vcpu_layout
from sdei_state.selftest.runner_kvm import KvmEngine, run_on_kvm
from sdei_state.selftest.scenarios import checked
from sdei_state.selftest.sdei_suites import SCENARIOS
from sdei_state.selftest.sim_engine import GuestCpuTransport
from sdei_state.selftest.trace import Dispatched, Served, compare
from sdei_state.spec import FN_BASE, in_sdei_block
from sdei_state.vcpu.sim import SimVm
from sdei_state.vmm import GuestVcpu

CNTPCT = sys_reg(3, 3, 14, 0, 1)
PSCI_RANGE = range(0x8400_0000, 0x8400_0020)
NOT_SUPPORTED = (1 << 64) - 1


class FakeMem:
    def __init__(self, slot: int, gpa: int, size: int) -> None:
        self.slot, self.guest_phys_addr, self.size = slot, gpa, size
        self.buf = bytearray(size)

    def write(self, offset: int, data: bytes) -> None:
        self.buf[offset:offset + len(data)] = data

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.buf[offset:offset + length])


class FakeVcpu(GuestVcpu):
    """One vCPU of the fake kernel (see the module docstring)."""

    def __init__(self, vm: FakeVm, index: int) -> None:
        self.vm = vm
        slot = vm.memory[index] if index < len(vm.memory) else (
            vm.memory[0] if vm.memory else None)
        super().__init__(LAYOUT if slot is None else _layout_at(slot.guest_phys_addr), index)
        if slot is not None:
            self.guest.mem = slot.buf
        self._counter = 0x1000

    @property
    def regs(self) -> GuestCpuTransport:
        return GuestCpuTransport(self.vm.sim.vcpus[self.index], self.guest)

    def init(self, features: Any = ()) -> None:
        pass

    def reg_list(self) -> tuple[int, ...]:
        return (*self.regs.reg_list(), CNTPCT)

    def get_regs(self, reg_ids: Any) -> list[int]:
        out = []
        for r in reg_ids:
            if r == CNTPCT:
                self._counter += 0x40  # it ticks between any two reads
                out.append(self._counter)
            else:
                out.append(self.regs.get_reg(r))
        return out

    def get_reg(self, reg_id: int) -> int:
        return self.get_regs([reg_id])[0]

    def set_regs(self, items: Any) -> None:
        for r, v in items:
            if r == CNTPCT:
                self._counter = v
            else:
                self.regs.set_reg(r, v)

    def set_reg(self, reg_id: int, value: int) -> None:
        self.set_regs([(reg_id, value)])

    def run(self, immediate_exit: bool = False) -> Exit:
        """KVM_RUN of the fake kernel: what ``GuestVcpu`` does, plus the calls the kernel
        answers itself and, in-kernel, the dispatch on entry."""
        if self._store_pc is not None:  # KVM completes the store on the next KVM_RUN
            self.guest.pc, self._store_pc = self._store_pc + 4, None
        if immediate_exit or self.immediate_exit:
            raise KvmError(errno.EINTR, "KVM_RUN")
        self.vm.sim.machine.has_run = True
        while True:
            if self.vm.in_kernel:
                self.vm.sim.machine.dispatch(self.index, self.cpu)
            ex = super().run()
            if isinstance(ex, HypercallExit) and not (
                    self.vm.filter is not None and ex.nr in self.vm.filter):
                self.hypercall(ex.nr)
                continue
            return ex

    def hypercall(self, fid: int) -> None:
        """What the fake kernel answers itself (PSCI; SDEI when it has it in-kernel)."""
        g = self.guest
        if fid in PSCI_RANGE:
            ret = self.get_reg(firmware.PSCI_VERSION) if fid == 0x8400_0000 else NOT_SUPPORTED
        elif self.vm.in_kernel:
            self.vm.sim.machine.hvc(self.index, self.cpu)
            return
        else:
            ret = NOT_SUPPORTED
        g.x[0:4] = [ret, 0, 0, 0]


def _layout_at(gpa: int) -> Layout:
    k = (gpa - LAYOUT.base) // LAYOUT.mem_size
    return vcpu_layout(k)


class FakeVm:
    def __init__(self, kvm: FakeKvm) -> None:
        self.kvm = kvm
        self.memory: list[FakeMem] = []
        self.vcpus: list[FakeVcpu] = []
        self.filter: range | None = None
        self.in_kernel = kvm.in_kernel
        self._sim: SimVm | None = None

    @property
    def sim(self) -> SimVm:
        if self._sim is None:  # the VM-wide state, sized when the first vCPU is created
            host = firmware.HOST_SDEI if self.in_kernel else firmware.HOST_LINUX_6_12
            self._sim = SimVm(max(1, len(self.memory)), host=host)
        return self._sim

    def __enter__(self) -> FakeVm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.kvm.closed_vms += 1

    def add_memory(self, slot: int, gpa: int, size: int) -> FakeMem:
        m = FakeMem(slot, gpa, size)
        self.memory.append(m)
        return m

    def create_vcpu(self, index: int = 0) -> FakeVcpu:
        self.sim  # noqa: B018 - fixes the vCPU count
        v = self.kvm.vcpu_class(self, index)
        self.vcpus.append(v)
        return v

    def has_device_attr(self, group: int, attr: int) -> None:
        if not self.kvm.has_filter:
            raise KvmError(errno.EINVAL, "KVM_HAS_DEVICE_ATTR")

    def set_smccc_filter(self, base: int, nr: int, action: Any) -> None:
        self.has_device_attr(0, 0)
        if self.sim.machine.has_run:
            raise KvmError(errno.EBUSY, "KVM_SET_DEVICE_ATTR")
        self.filter = range(base, base + nr)


class FakeKvm:
    def __init__(self, *, has_filter: bool = True, in_kernel: bool = False,
                 vcpu_class: type[FakeVcpu] = FakeVcpu) -> None:
        self.has_filter, self.in_kernel, self.vcpu_class = has_filter, in_kernel, vcpu_class
        self.backend = SimpleNamespace(mode="fake")
        self.closed_vms = 0

    def create_vm(self) -> FakeVm:
        return FakeVm(self)

    def check_extension(self, cap: int) -> int:
        return 1

    def close(self) -> None:
        pass


def backend(kvm: FakeKvm) -> KvmBackend:
    features = {"kvm"}
    reasons = {"in-kernel-sdei": "no in-kernel SDEI (fake)"}
    if kvm.in_kernel:  # the kernel serves SDEI: the sdei suites run in-kernel
        features |= {"in-kernel-sdei", "sdei"}
        reasons = {}
    elif kvm.has_filter:
        features |= {"sdei", "smccc-filter"}
    else:
        reasons["sdei"] = NO_FILTER.format(err="EINVAL")
    return KvmBackend(kvm, frozenset(features), reasons, "fake")  # type: ignore[arg-type]


def results(be: KvmBackend, names: tuple[str, ...]) -> dict[str, list[Any]]:
    chosen = [s for s in all_suites(be) if s.name in names]
    out: dict[str, list[Any]] = {}
    for r in run_suites(chosen, be, be.missing):
        out.setdefault(r.suite, []).append(r)
    return out


def failures(res: dict[str, list[Any]]) -> list[tuple[str, str, str]]:
    return [(r.suite, r.case, r.message) for rs in res.values() for r in rs
            if r.outcome is not Outcome.PASS]


# -- the probe ---------------------------------------------------------------------------

@pytest.fixture
def arm64_host(monkeypatch: pytest.MonkeyPatch) -> None:
    real_exists = os.path.exists
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(os.path, "exists", lambda p: p == "/dev/kvm" or real_exists(p))


@pytest.mark.parametrize(("kernel", "features", "reasons"), [
    (FakeKvm(), {"kvm", "smccc-filter", "sdei"},
     {"in-kernel-sdei": NO_IN_KERNEL.format(first=0x6030000000140100)}),
    (FakeKvm(has_filter=False), {"kvm"},
     {"sdei": "KVM_ARM_VM_SMCCC_FILTER not supported by this kernel (Linux 6.4+ needed): "
              "KVM_HAS_DEVICE_ATTR gave EINVAL"}),
    (FakeKvm(in_kernel=True), {"kvm", "smccc-filter", "in-kernel-sdei", "sdei"}, {}),
])
def test_probe_features_and_reasons(arm64_host: None, monkeypatch: pytest.MonkeyPatch,
                                    kernel: FakeKvm, features: set[str],
                                    reasons: dict[str, str]) -> None:
    import sdei_state.kvm

    monkeypatch.setattr(sdei_state.kvm, "Kvm", lambda: kernel)
    be, why = probe_kvm()
    assert why == "" and isinstance(be, KvmBackend)
    assert be.features == frozenset(features)
    for feature, reason in reasons.items():
        assert be.missing(frozenset({feature})) == reason
    assert be.missing(frozenset({"kvm"})) is None
    assert be.name.startswith("arm64 KVM (Linux ") and "cffi fake mode" in be.name
    for reason in reasons.values():
        assert reason in be.reasons.values()
    assert be.missing(frozenset({"sdei"})) == reasons.get("sdei")
    assert NO_IN_KERNEL.format(first=0x6030000000140100) == (
        "the kernel lists no SDEI registers (0x6030000000140100...): no in-kernel SDEI, "
        "as upstream")


def test_probe_reports_an_unusable_kvm(arm64_host: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import sdei_state.kvm

    class Broken(FakeKvm):
        def create_vm(self) -> FakeVm:
            raise KvmError(errno.ENOMEM, "KVM_CREATE_VM")

    monkeypatch.setattr(sdei_state.kvm, "Kvm", lambda: Broken())
    assert probe_kvm() == (None, "/dev/kvm opens but a VM cannot be used: KVM_CREATE_VM: "
                                 "ENOMEM (Cannot allocate memory)")


def test_probe_off_arm64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    assert probe_kvm() == (None, "this host is riscv64, not arm64")


# -- the suites through the KVM engines -----------------------------------------------------

SDEI = ("sdei-calls", "sdei-dispatch", "migration")


def test_userspace_provider_engine_passes_every_sdei_suite() -> None:
    be = backend(FakeKvm())
    res = results(be, (*SDEI, "sdei-in-kernel"))
    assert failures({k: v for k, v in res.items() if k != "sdei-in-kernel"}) == []
    assert all(r.outcome is Outcome.SKIP for r in res["sdei-in-kernel"])
    notes = be.memo["notes"]
    # The fake kernel's CNTPCT_EL0 ticks between SET and GET, as a real one does: restore_vm
    # leaves the counters out of its read-back, so every migration goes through it plainly.
    assert len(notes) == 4 and all("migrated" in n for n in notes)


def test_in_kernel_engine_passes_every_sdei_suite() -> None:
    """On a kernel that serves SDEI the sdei suites run in their in-kernel form (nothing
    skips), and each case shares its run with its sdei-in-kernel twin."""
    be = backend(FakeKvm(in_kernel=True))
    res = results(be, (*SDEI, "sdei-in-kernel"))
    assert failures(res) == []
    assert len(res["sdei-in-kernel"]) == 19
    assert all(len(res[name]) > 0 for name in SDEI)
    runs = [v for k, v in be.memo.items() if k.startswith("scenario:")]
    assert runs and all(r.engine == "arm64 KVM, in-kernel SDEI" for r in runs)
    assert not any(k.endswith(":default") for k in be.memo)


def test_without_the_filter_sdei_suites_skip_and_firmware_runs() -> None:
    be = backend(FakeKvm(has_filter=False))
    res = results(be, (*SDEI, "firmware-registers"))
    for name in SDEI:
        assert {(r.outcome, r.message) for r in res[name]} == {
            (Outcome.SKIP, NO_FILTER.format(err="EINVAL"))}
    fw = {r.case: r for r in res["firmware-registers"]}
    # The fake lists only what GuestCpu holds, so the blessed sublists are real KVM's business;
    # the firmware rules are the simulated vCPU's, which follow upstream's.
    for case in ("values-decode", "unknown-regno-enoent", "invalid-psci-einval",
                 "legal-psci-accepted", "bitmap-unknown-bit-einval",
                 "workaround-above-host-einval", "bitmap-change-after-run-ebusy",
                 "psci-version-reaches-guest", "save-restore-between-vms",
                 "restore-refused-names-register"):
        assert fw[case].outcome is Outcome.PASS, (case, fw[case].message)
    assert fw["reg-list-base"].outcome is Outcome.FAIL
    assert "blessed registers not listed: KVM_REG_ARM64" in fw["reg-list-base"].message


class _KernelCorruptsX20(FakeVcpu):
    """A kernel bug: x20 changes whenever the vCPU leaves on a forwarded hypercall (x0..x17
    would be hidden by COMPLETE restoring the context; x20 is never restored)."""

    def run(self, immediate_exit: bool = False) -> Exit:
        ex = super().run(immediate_exit)
        if isinstance(ex, HypercallExit):
            self.guest.x[20] ^= 0x10
        return ex


def test_a_kernel_that_changes_a_register_is_caught() -> None:
    be = backend(FakeKvm(vcpu_class=_KernelCorruptsX20))
    with pytest.raises(CheckFailed, match="arm64 KVM \\+ userspace provider differs from the "
                                          "reference model: final x20: 0x10, the model "
                                          "predicts 0x0"):
        checked(be, SCENARIOS["dispatch-complete"], lambda _o: None)


class _ExitsOnShutdown(FakeVcpu):
    def run(self, immediate_exit: bool = False) -> Exit:
        super().run(immediate_exit)
        return SystemEventExit(ExitReason.SYSTEM_EVENT, 1, (0,))


def test_an_exit_the_program_cannot_cause_is_named() -> None:
    kvm = FakeKvm(vcpu_class=_ExitsOnShutdown)
    prog = SCENARIOS["dispatch-complete"].build()[0]
    eng = KvmEngine(kvm, [prog])  # type: ignore[arg-type]
    with pytest.raises(HostError, match="vCPU 0: unexpected exit SystemEventExit"):
        Driver(eng, [prog]).run(0)


def test_doorbells_are_completed_before_the_next_dispatch() -> None:
    kvm = FakeKvm()
    prog = SCENARIOS["dispatch-complete"].build()[0]
    eng = KvmEngine(kvm, [prog])  # type: ignore[arg-type]
    assert not Driver(eng, [prog]).run(0, until=lambda _b: True)  # the first doorbell
    vcpu = eng.vcpus[0]
    assert isinstance(vcpu, FakeVcpu) and vcpu._store_pc is None  # completed at once
    assert eng.vm.filter == range(FN_BASE, FN_BASE + 32)
    assert kvm.closed_vms == 0
    eng.close()
    assert kvm.closed_vms == 1


@pytest.mark.parametrize("name", ["calls", "nested", "relative-vbar-switch"])
def test_run_on_kvm_is_simulate_on_the_fake_kernel(name: str) -> None:
    prog = PROGRAMS[name]()
    ref = simulate(prog)
    got = run_on_kvm(FakeKvm(), prog)  # type: ignore[arg-type]
    assert got.finished and got.engine == "arm64 KVM + userspace provider"
    seen = [t for t in ref.trace if not isinstance(t, Served) or in_sdei_block(t.function_id)]
    assert list(got.trace) == seen
    assert compare(ref, got, lambda t: not isinstance(t, Served) or in_sdei_block(t.function_id)) \
        == []
    inkernel = run_on_kvm(FakeKvm(in_kernel=True), prog, in_kernel=True)  # type: ignore[arg-type]
    assert inkernel.trace == tuple(t for t in ref.trace if not isinstance(t, Served | Dispatched))
