"""The userspace provider over a stock kernel, with the kernel played by the simulated vCPU.

The stock kernel is ``SimVm(host=HOST_LINUX_6_12)``: it lists no SDEI registers and its
STD_BMAP knows only bit 0, like upstream. ``ScriptedKernelVcpu`` adds what the provider needs
of a real vCPU (``run(immediate_exit=...)`` returning the next exit, the ``immediate_exit``
flag); the guest's SDEI calls are the exits the SMCCC filter would produce, with x0..x5 loaded
as the guest would have them. The real-KVM version of these checks runs in the arm64 lab.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable, Iterable

import pytest

from sdei_state.cpu import CpuReg, MemoryCpu
from sdei_state.errors import KvmError, RegError
from sdei_state.events import ASYNC_PF, SW_SIGNALED
from sdei_state.kvm.exits import Exit, ExitReason, HypercallExit, MmioExit
from sdei_state.migration import restore_vm, save_vm
from sdei_state.regs import firmware, sdei
from sdei_state.spec import Function, Ret
from sdei_state.vcpu.sim import SimVcpu, SimVm
from sdei_state.vmm import ProviderError, SdeiProvider
from sdei_state.vmm.provider import FILTER_BASE, FILTER_NR

EP = 0x4000_1000


class ScriptedKernelVcpu:
    """A stock-kernel vCPU whose guest makes the calls in ``script`` (one per KVM_RUN)."""

    def __init__(self, sim: SimVcpu) -> None:
        self.sim = sim
        self.immediate_exit = False
        self.script: deque[tuple[int, tuple[int, ...]] | str | Callable[[], None]] = deque()
        self.entries: list[int] = []  # PC at each KVM_RUN entry
        self.mmio_unfinished = False

    @property
    def cpu(self) -> MemoryCpu:
        return self.sim.cpu

    def reg_list(self) -> tuple[int, ...]:
        return self.sim.reg_list()

    def get_reg(self, reg_id: int) -> int:
        return self.sim.get_reg(reg_id)

    def set_reg(self, reg_id: int, value: int) -> None:
        self.sim.set_reg(reg_id, value)

    def get_regs(self, reg_ids: Iterable[int]) -> list[int]:
        return self.sim.get_regs(list(reg_ids))

    def set_regs(self, items: Iterable[tuple[int, int]]) -> None:
        self.sim.set_regs(list(items))

    def run(self, immediate_exit: bool = False) -> Exit:
        if self.mmio_unfinished:  # KVM completes the access first: PC moves past the store
            self.sim.cpu[CpuReg.PC] += 4
            self.mmio_unfinished = False
        self.entries.append(self.sim.cpu[CpuReg.PC])
        if immediate_exit or self.immediate_exit:
            raise KvmError(errno.EINTR, "KVM_RUN")
        step = self.script.popleft()
        if callable(step):  # what happens while the guest runs; then a kick's EINTR
            step()
            raise KvmError(errno.EINTR, "KVM_RUN")
        if isinstance(step, str):  # "mmio": the guest rings a doorbell
            self.mmio_unfinished = True
            return MmioExit(int(ExitReason.MMIO), 0x1000_0000, b"\0" * 8, True)
        fid, args = step
        # The guest loaded x0..x5 and executed HVC; KVM exits with PC past it.
        self.sim.cpu.write({CpuReg.X0: fid, **{CpuReg(i + 1): a for i, a in enumerate(args)},
                            CpuReg.PC: self.sim.cpu[CpuReg.PC] + 4})
        return HypercallExit(int(ExitReason.HYPERCALL), fid, (0,) * 6, 0)


class FilterVm:
    def __init__(self, err: int | None = None) -> None:
        self.filters: list[tuple[int, int, int]] = []
        self.err = err

    def set_smccc_filter(self, base: int, nr: int, action: object) -> None:
        if self.err is not None:
            raise KvmError(self.err, "KVM_SET_DEVICE_ATTR(SMCCC_FILTER)")
        self.filters.append((base, nr, int(action)))  # type: ignore[call-overload]


def _setup(n: int = 2) -> tuple[SdeiProvider, list[ScriptedKernelVcpu], SimVm]:
    stock = SimVm(n, host=firmware.HOST_LINUX_6_12)
    kernel = [ScriptedKernelVcpu(v) for v in stock.vcpus]
    provider = SdeiProvider(n)
    vm = FilterVm()
    provider.install(vm)
    assert vm.filters == [(0xC4000020, 32, 2)] and (FILTER_BASE, FILTER_NR) == (0xC4000020, 32)
    for i, k in enumerate(kernel):
        provider.attach(i, k, k.cpu)
    return provider, kernel, stock


def _call(p: SdeiProvider, k: ScriptedKernelVcpu, i: int, fn: Function,
          *args: int) -> int:
    k.script.append((int(fn), args))
    k.script.append("mmio")
    exit_ = p.run(i)
    assert isinstance(exit_, MmioExit)
    x0 = k.cpu[CpuReg.X0]
    return x0 - (1 << 64) if x0 >> 63 else x0


def test_filter_missing_is_a_clear_error() -> None:
    with pytest.raises(ProviderError, match=r"6\.4"):
        SdeiProvider(1).install(FilterVm(errno.EINVAL))
    with pytest.raises(ProviderError, match="already run"):
        SdeiProvider(1).install(FilterVm(errno.EBUSY))


def test_calls_dispatch_and_complete_through_exits() -> None:
    p, k, _ = _setup()
    assert _call(p, k[0], 0, Function.VERSION) == 0x0001_0001_564B_CAA9
    assert _call(p, k[0], 0, Function.EVENT_REGISTER, 0, EP, 42, 0, 0) == Ret.SUCCESS
    assert _call(p, k[0], 0, Function.EVENT_ENABLE, 0) == Ret.SUCCESS
    assert _call(p, k[0], 0, Function.PE_UNMASK) == Ret.SUCCESS
    k[0].cpu.write({CpuReg.X4: 0x44, CpuReg.X17: 0x1717})
    # Stopped at a doorbell store (MMIO exit): the handler must interrupt the instruction
    # after it, not replay the store or start late.
    interrupted_pc = k[0].cpu[CpuReg.PC] + 4
    # vCPU 1 signals vCPU 0 (MPIDR with RES1 bit 31): pending there, kicked before entry.
    assert _call(p, k[1], 1, Function.EVENT_SIGNAL, 0, 1 << 31) == Ret.SUCCESS
    # The next entry of vCPU 0 enters the handler; the guest there calls COMPLETE.
    k[0].script.append((int(Function.EVENT_COMPLETE), (0,)))
    k[0].script.append("mmio")
    p.run(0)
    assert k[0].entries[-3:-1] == [interrupted_pc, EP]  # store completed, then the handler
    assert k[0].entries[-1] == interrupted_pc  # COMPLETE went back to the interrupted PC
    assert k[0].cpu[CpuReg.X4] == 0x44 and k[0].cpu[CpuReg.X17] == 0x1717
    assert p.machine.state(0).event(SW_SIGNALED).status == 0b011


def test_kick_sets_immediate_exit_for_another_thread() -> None:
    p, k, _ = _setup()
    p.loop(0).thread = -1  # vCPU 0 runs on another thread (not this one)
    _call(p, k[1], 1, Function.VERSION)
    for fn, a in ((Function.EVENT_REGISTER, (0, EP, 0, 0, 0)), (Function.EVENT_ENABLE, (0,))):
        assert p.machine.call(0, fn, a, k[0].cpu).ret == Ret.SUCCESS
    assert _call(p, k[1], 1, Function.EVENT_SIGNAL, 0, 0) == Ret.SUCCESS
    assert k[0].immediate_exit and p.kicks == 1
    # The vCPU thread clears it at its next entry check and runs.
    k[0].script.extend(["mmio"])
    p.run(0)
    assert not k[0].immediate_exit


def test_stop_request_returns_from_run_and_loses_no_event() -> None:
    """A stop asked while vCPU 0 is inside KVM_RUN, together with a signal for it: run()
    returns None instead of swallowing the EINTR; the event stays pending and the next run()
    takes it exactly once."""
    p, k, _ = _setup()
    for fn, a in ((Function.EVENT_REGISTER, (0, EP, 42, 0, 0)), (Function.EVENT_ENABLE, (0,)),
                  (Function.PE_UNMASK, ())):
        assert _call(p, k[0], 0, fn, *a) == Ret.SUCCESS

    def meanwhile() -> None:  # another thread signals vCPU 0 and asks it to stop
        assert p.machine.call(1, Function.EVENT_SIGNAL, (0, 1 << 31), k[1].cpu).ret == 0
        p.request_stop(0)

    k[0].script.append(meanwhile)
    assert p.run(0) is None
    es = p.machine.state(0).event(SW_SIGNALED)
    assert es.pending and not es.running
    assert EP not in k[0].entries
    k[0].script.extend([(int(Function.EVENT_COMPLETE), (0,)), "mmio"])
    assert isinstance(p.run(0), MmioExit)  # the stop was consumed: run() goes on
    assert k[0].entries.count(EP) == 1
    es = p.machine.state(0).event(SW_SIGNALED)
    assert not es.pending and not es.running


def test_stop_requested_before_run_finishes_the_last_mmio_first() -> None:
    p, k, _ = _setup(1)
    _call(p, k[0], 0, Function.VERSION)  # ends at a doorbell store KVM has not completed
    pc = k[0].cpu[CpuReg.PC]
    p.request_stop(0)
    assert p.run(0) is None
    assert k[0].cpu[CpuReg.PC] == pc + 4 and not k[0].mmio_unfinished  # saved state is whole
    assert not k[0].immediate_exit


def test_register_view_matches_in_kernel_encoding() -> None:
    """The provider's registers over a stock kernel equal an in-kernel SimVm's, for the same
    guest history: the SDEI block, and STD_BMAP with bit 1."""
    p, k, _ = _setup(1)
    inkernel = SimVm(1, host=firmware.HOST_SDEI)
    steps = [(Function.EVENT_REGISTER, (0, EP, 7, 2, 0)), (Function.EVENT_ENABLE, (0,)),
             (Function.EVENT_REGISTER, (int(ASYNC_PF.number), EP + 0x100, 9, 0, 0)),
             (Function.EVENT_ENABLE, (int(ASYNC_PF.number),)), (Function.PE_UNMASK, ())]
    for fn, a in steps:
        _call(p, k[0], 0, fn, *a)
        inkernel.vcpus[0].call(fn, a)
    view = p.vcpu(0)
    assert set(sdei.SDEI_REG_IDS) <= set(view.reg_list())
    assert view.get_regs(sdei.SDEI_REG_IDS) == inkernel.vcpus[0].get_regs(sdei.SDEI_REG_IDS)
    assert view.get_reg(firmware.STD_BMAP) == inkernel.vcpus[0].get_reg(firmware.STD_BMAP) == 3
    # The stock kernel itself never saw bit 1.
    assert k[0].get_reg(firmware.STD_BMAP) == 1


def test_sdei_bit_gate_and_ebusy() -> None:
    p, k, _ = _setup(1)
    view = p.vcpu(0)
    view.set_reg(firmware.STD_BMAP, 1)  # SDEI off before the first run
    assert not p.machine.enabled
    assert _call(p, k[0], 0, Function.VERSION) == Ret.NOT_SUPPORTED
    with pytest.raises(RegError) as ei:
        view.set_reg(firmware.STD_BMAP, 3)
    assert ei.value.errno == errno.EBUSY and "SDEI" in str(ei.value)
    view.set_reg(firmware.STD_BMAP, 1)  # the same value is accepted after the run


def test_std_bmap_unknown_bits_are_einval_before_ebusy() -> None:
    """Upstream kvm_arm_set_fw_reg_bmap(): unknown bits EINVAL first, then EBUSY after the
    first run; a refused write changes nothing, in the kernel or in the provider."""
    p, k, stock = _setup(1)
    view = p.vcpu(0)
    assert _call(p, k[0], 0, Function.VERSION) == 0x0001_0001_564B_CAA9  # the VM has run
    for value in (0x4, 0x5, 0x7, 1 << 63):  # bit 2 and bit 63 are unknown to every host
        with pytest.raises(RegError) as ei:
            view.set_reg(firmware.STD_BMAP, value)
        assert ei.value.errno == errno.EINVAL, hex(value)
    with pytest.raises(RegError) as ei:
        view.set_reg(firmware.STD_BMAP, 0x1)  # only the SDEI bit changes: EBUSY
    assert ei.value.errno == errno.EBUSY
    # The scripted kernel never entered KVM_RUN, so it would accept a change of bit 0; the
    # provider refuses the SDEI bit and puts the kernel's value back.
    assert not stock.has_run
    with pytest.raises(RegError) as ei:
        view.set_reg(firmware.STD_BMAP, 0x0)
    assert ei.value.errno == errno.EBUSY
    assert k[0].get_reg(firmware.STD_BMAP) == 1 and view.get_reg(firmware.STD_BMAP) == 3
    assert p.machine.enabled


def test_gate_off_nothing_is_dispatched_or_injected() -> None:
    """DESIGN section 4: with STD_BMAP bit 1 clear, state written through the provider's
    registers (registered, enabled, pending, unmasked) is never dispatched or injected."""
    p, k, _ = _setup(1)
    view = p.vcpu(0)
    view.set_regs([(firmware.STD_BMAP, 1), (sdei.ep_addr_id(0), EP),
                   (sdei.event_state_id(0), 0b1011), (sdei.VCPU_STATE_ID, 0)])
    before = k[0].sim.get_regs(k[0].sim.reg_list())
    assert p.before_run(0) is None
    assert p.inject(0, SW_SIGNALED.number) is False
    assert k[0].sim.get_regs(k[0].sim.reg_list()) == before
    assert view.get_reg(sdei.event_state_id(0)) == 0b1011


def test_invalid_sdei_write_is_einval_and_changes_nothing() -> None:
    p, _, _ = _setup(1)
    view = p.vcpu(0)
    before = view.get_regs(sdei.SDEI_REG_IDS)
    with pytest.raises(RegError) as ei:
        view.set_reg(sdei.event_state_id(0), 0b010)  # ENABLED without REGISTERED
    assert ei.value.errno == errno.EINVAL and "SDEI_EVENT_STATE(0)" in str(ei.value)
    assert view.get_regs(sdei.SDEI_REG_IDS) == before


def test_migration_between_provider_vms_mid_handler() -> None:
    """Stop a provider VM inside a handler, save everything, restore into a new provider VM,
    complete there: the registers equal the source completing itself."""
    p, k, _ = _setup(1)
    for fn, a in ((Function.EVENT_REGISTER, (0, EP, 5, 0, 0)), (Function.EVENT_ENABLE, (0,)),
                  (Function.PE_UNMASK, ())):
        _call(p, k[0], 0, fn, *a)
    p.complete_exit(0)  # finish the doorbell store before stopping
    k[0].cpu.write({CpuReg.X5: 0x55, CpuReg.PC: 0x4000_0800})
    assert p.inject(0, 0)
    assert p.before_run(0) is SW_SIGNALED
    blob = save_vm([p.vcpu(0)])
    q, kq, _ = _setup(1)
    restore_vm([q.vcpu(0)], blob)
    assert q.machine.state(0) == p.machine.state(0)
    for prov, kern in ((p, k[0]), (q, kq[0])):
        kern.script.append((int(Function.EVENT_COMPLETE), (0,)))
        kern.script.append("mmio")
        prov.run(0)
    assert save_vm([q.vcpu(0)]) == save_vm([p.vcpu(0)])
    assert kq[0].cpu[CpuReg.PC] == 0x4000_0800 and kq[0].cpu[CpuReg.X5] == 0x55


def test_attach_refuses_in_kernel_sdei() -> None:
    inkernel = SimVm(1, host=firmware.HOST_SDEI)
    with pytest.raises(ProviderError, match="in-kernel"):
        SdeiProvider(1).attach(0, ScriptedKernelVcpu(inkernel.vcpus[0]))


def test_a_batch_of_sdei_writes_stops_at_the_refused_one_and_keeps_the_earlier() -> None:
    """Consecutive SDEI writes are applied as one state change, yet in KVM's order: a refused
    one is EINVAL, the writes before it stay (SDEI and kernel alike), none after it is made."""
    p, k, _ = _setup(1)
    view = p.vcpu(0)
    pc = view.reg_list()[32]  # a kernel core register (x0-x30, sp, pc)
    ep, arg, state = sdei.ep_addr_id(0), sdei.ep_arg_id(0), sdei.event_state_id(0)
    old_pc = view.get_reg(pc)
    with pytest.raises(RegError) as ei:
        view.set_regs([(pc, 0x1234), (ep, 0x8000), (arg, 7), (state, 0b010), (pc, 0x5678)])
    assert ei.value.errno == errno.EINVAL and ei.value.reg_id == state
    assert view.get_regs([pc, ep, arg, state]) == [0x1234, 0x8000, 7, 0]
    assert old_pc != 0x1234
    view.set_regs([(ep, 0x9000), (state, 0b011), (arg, 9), (pc, 0x5678)])
    assert view.get_regs([pc, ep, arg, state]) == [0x5678, 0x9000, 9, 0b011]
    assert k[0].sim.get_reg(pc) == 0x5678
