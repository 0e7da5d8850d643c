"""Preflight: the migration rules of DESIGN section 4 against described and real (simulated)
destinations. Expected levels, versions and bits are written out from the upstream rules."""

from __future__ import annotations

import pytest
from conftest import SimVmFactory

from sdei_state.cpu import CpuReg
from sdei_state.errors import RestoreError
from sdei_state.migration import (
    Blob,
    Destination,
    PreflightReport,
    VcpuRegisters,
    droppable_value,
    infer_host,
    preflight,
    restore_vm,
    save_vm,
)
from sdei_state.migration.preflight import check_vcpu
from sdei_state.regs import firmware
from sdei_state.regs.firmware import HostFirmware, PsciVersion
from sdei_state.regs.sdei import SDEI_REG_IDS
from sdei_state.vcpu.transport import HostFacts, RegTransport, host_facts

PSCI, WA1, WA2, WA3 = (0x6030_0000_0014_0000 + n for n in range(4))
STD, STD_HYP, VENDOR, VENDOR_2 = (0x6030_0000_0016_0000 + n for n in range(4))
SDEI_VCPU_STATE = 0x6030_0000_0014_0100
EP_ADDR_0 = 0x6030_0000_0014_0120
PC = 0x6030_0000_0010_0040
PSTATE = 0x6030_0000_0010_0042
VBAR = 0x6030_0000_0013_C600


def host(name: str = "test", *, psci: PsciVersion = PsciVersion.V1_1,
         wa: tuple[int, int, int] | None = (2, 0, 0),
         bitmaps: dict[int, int] | None = None) -> HostFirmware:
    bm = {STD: 0x3, STD_HYP: 0x1, VENDOR: 0x3} if bitmaps is None else bitmaps
    levels = () if wa is None else tuple(zip((WA1, WA2, WA3), wa, strict=True))
    return HostFirmware(name, psci, levels, tuple(bm.items()))


def blob_of(values: dict[int, int], vcpus: int = 1) -> Blob:
    ids = tuple(values)
    return Blob(ids, tuple(tuple(values.values()) for _ in range(vcpus)))


def dest(h: HostFirmware, extra: tuple[int, ...] = (), **kw: object) -> Destination:
    return Destination(frozenset((PC, *h.reg_ids, *extra)), h, **kw)  # type: ignore[arg-type]


def problems(report: PreflightReport) -> list[tuple[int | None, int | None]]:
    return [(p.vcpu, p.reg_id) for p in report.problems]


# -- verdicts on simulated VMs -----------------------------------------------------------


def test_same_host_is_ok(sim_vm: SimVmFactory) -> None:
    src = sim_vm(2)
    src.vcpus[0].call("EVENT_REGISTER", [0, 0x1000, 0, 0, 0])
    report = preflight(save_vm(src.vcpus), sim_vm(2).vcpus)
    assert report.ok and report.verdict == "ok"
    assert report.problems == () and report.dropped == () and report.added == ()
    assert report.as_json() == {"verdict": "ok", "problems": [], "dropped": [], "added": []}


def test_sdei_state_cannot_go_to_a_stock_kernel(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1)
    src.vcpus[0].set_reg(PSCI, 0x10001)
    src.vcpus[0].call("EVENT_REGISTER", [0, 0x1000, 0, 0, 0])
    report = preflight(save_vm(src.vcpus), sim_vm(1, host=firmware.HOST_LINUX_6_12).vcpus)
    assert report.verdict == "refused"
    assert (None, STD) in problems(report)  # bit 1 (SDEI) unknown there
    assert (0, 0x6030_0000_0014_0110) in problems(report)  # EVENT_STATE(0) = REGISTERED
    assert (0, EP_ADDR_0) in problems(report)
    text = str(report)
    assert "SDEI_EVENT_EP_ADDR(0) (0x6030000000140120)" in text
    assert "reset value 0x0, saved 0x1000" in text


def test_idle_sdei_with_the_gate_off_drops_to_a_stock_kernel(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1)
    src.vcpus[0].set_reg(STD, 0x1)  # the VMM turned SDEI off before the guest ran
    src.vcpus[0].call("VERSION")  # NOT_SUPPORTED, and the VM has run
    blob = save_vm(src.vcpus)
    dst = sim_vm(1, host=firmware.HOST_LINUX_6_12)
    report = preflight(blob, dst.vcpus)
    assert report.ok, str(report)
    assert report.dropped == SDEI_REG_IDS
    assert "dropped (destination lacks them, saved at reset value): 47" in str(report)
    restore_vm(dst.vcpus, blob)
    assert dst.vcpus[0].get_reg(STD) == 0x1


def test_a_stock_source_goes_to_an_sdei_host_with_reset_sdei_state(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1, host=firmware.HOST_LINUX_6_12)
    blob = save_vm(src.vcpus)
    dst = sim_vm(1)
    report = preflight(blob, dst.vcpus)
    assert report.ok and report.added == SDEI_REG_IDS
    dst.vcpus[0].set_reg(SDEI_VCPU_STATE, 0)
    restore_vm(dst.vcpus, blob)
    assert dst.vcpus[0].get_reg(STD) == 0x1  # SDEI off, as on the source
    assert dst.vcpus[0].get_reg(SDEI_VCPU_STATE) == 0  # not in the blob: left as it was


# -- missing registers -------------------------------------------------------------------


def test_droppable_values() -> None:
    assert droppable_value(SDEI_VCPU_STATE) == 1
    assert all(droppable_value(r) == (1 if r == SDEI_VCPU_STATE else 0) for r in SDEI_REG_IDS)
    assert droppable_value(VENDOR_2) == 0
    assert droppable_value(WA1) == droppable_value(WA2) == droppable_value(WA3) == 0
    for never in (PSCI, STD, STD_HYP, VENDOR, PC, VBAR, 0x6030_0000_0014_0004):
        assert droppable_value(never) is None


@pytest.mark.parametrize(("value", "ok"), [(0, True), (1, False), (2, False)])
def test_vendor_hyp_bmap_2_backward_migration(value: int, ok: bool) -> None:
    h612 = host(bitmaps={STD: 0x1, STD_HYP: 0x1, VENDOR: 0x3})
    blob = blob_of({PC: 0, PSCI: 0x10001, WA1: 2, WA2: 0, WA3: 0, STD: 0x1, STD_HYP: 0x1,
                    VENDOR: 0x3, VENDOR_2: value})
    report = preflight(blob, dest(h612))
    assert report.ok == ok
    assert report.dropped == ((VENDOR_2,) if ok else ())
    if not ok:
        assert problems(report) == [(0, VENDOR_2)]


def test_a_register_without_reset_value_is_never_dropped() -> None:
    blob = blob_of({PC: 0, VBAR: 0, PSCI: 0x10001})
    report = preflight(blob, dest(host()))
    assert problems(report) == [(0, VBAR)]
    assert "cannot be dropped" in str(report)


def test_a_destination_without_workaround_3_needs_not_avail() -> None:
    old = HostFirmware("old", PsciVersion.V1_0, ((WA1, 1), (WA2, 0)), ())
    ok = preflight(blob_of({PC: 0, WA1: 1, WA3: 0}), dest(old))
    assert ok.ok and ok.dropped == (WA3,)
    bad = preflight(blob_of({PC: 0, WA1: 1, WA3: 1}), dest(old))
    assert problems(bad) == [(0, WA3)]


def test_drop_is_per_register_for_every_vcpu() -> None:
    old = HostFirmware("old", PsciVersion.V1_0, ((WA1, 1), (WA2, 0)), ())
    blob = Blob((PC, WA3), ((0, 0), (0, 1)))
    report = preflight(blob, dest(old))
    assert problems(report) == [(1, WA3)]
    assert report.dropped == ()  # dropped for the whole VM or not at all
    # VENDOR_HYP_BMAP_2 is VM-wide: differing rows are refused as such.
    report = preflight(Blob((PC, VENDOR_2), ((0, 0), (0, 2))), dest(host()))
    assert problems(report)[0] == (None, VENDOR_2)


# -- workarounds -------------------------------------------------------------------------


@pytest.mark.parametrize(("reg", "saved", "host_level", "ok"), [
    (WA1, 0, 0, True), (WA1, 1, 1, True), (WA1, 1, 2, True), (WA1, 2, 1, False),
    (WA1, 1, 0, False), (WA1, 3, 2, False), (WA1, 0x11, 2, False),
    (WA3, 2, 1, False), (WA3, 1, 2, True), (WA3, 0, 0, True),
    # WA2 narrows: NOT_AVAIL/UNKNOWN -> NOT_AVAIL (0), AVAIL/NOT_REQUIRED -> NOT_REQUIRED (3).
    (WA2, 0, 0, True), (WA2, 1, 0, True), (WA2, 2, 0, False), (WA2, 3, 0, False),
    (WA2, 2, 3, True), (WA2, 3, 3, True), (WA2, 0x12, 3, True), (WA2, 0x13, 3, False),
    (WA2, 0x10, 3, False),
])
def test_workaround_levels_must_be_at_least_as_safe(
    reg: int, saved: int, host_level: int, ok: bool
) -> None:
    levels = {WA1: 2, WA2: 3, WA3: 2} | {reg: host_level}
    h = host(wa=(levels[WA1], levels[WA2], levels[WA3]))
    report = preflight(blob_of({PC: 0, reg: saved}), dest(h))
    assert report.ok == ok
    if not ok:
        assert problems(report) == [(0, reg)]


def test_workaround_problem_explains() -> None:
    report = preflight(blob_of({PC: 0, WA3: 2}), dest(host(wa=(2, 0, 1))))
    assert "needs host level >= 2" in str(report) and "less safe" in str(report)


# -- PSCI --------------------------------------------------------------------------------


@pytest.mark.parametrize(("saved", "psci_max", "psci_0_2", "ok"), [
    (0x10001, PsciVersion.V1_1, True, True),
    (0x10000, PsciVersion.V1_1, True, True),
    (0x2, PsciVersion.V1_1, True, True),
    (0x10003, PsciVersion.V1_1, True, False),
    (0x10002, PsciVersion.V1_3, True, True),
    (0x1, PsciVersion.V1_1, True, False),
    (0x1, PsciVersion.V1_1, False, True),
    (0x10001, PsciVersion.V1_1, False, False),
    (0x10004, PsciVersion.V1_3, True, False),
])
def test_psci_version_must_be_accepted(
    saved: int, psci_max: PsciVersion, psci_0_2: bool, ok: bool
) -> None:
    report = preflight(blob_of({PC: 0, PSCI: saved}), dest(host(psci=psci_max),
                                                           psci_0_2=psci_0_2))
    assert report.ok == ok
    if not ok:
        assert problems(report) == [(None, PSCI)]


# -- bitmaps -----------------------------------------------------------------------------


def test_unknown_bitmap_bits_are_refused() -> None:
    h = host(bitmaps={STD: 0x1, STD_HYP: 0x1, VENDOR: 0x3})
    report = preflight(blob_of({PC: 0, STD: 0x3, STD_HYP: 0x3, VENDOR: 0x3}), dest(h))
    assert problems(report) == [(None, STD), (None, STD_HYP)]
    assert "bits 0x2 of 0x3 are unknown" in str(report)


def test_bitmap_change_after_the_destination_ran() -> None:
    h = host()
    blob = blob_of({PC: 0, STD: 0x1})
    ran = dest(h, has_run=True, current=((STD, 0x3),))
    assert problems(preflight(blob, ran)) == [(None, STD)]
    same = dest(h, has_run=True, current=((STD, 0x1),))
    assert preflight(blob, same).ok
    assert preflight(blob, dest(h, current=((STD, 0x3),))).ok  # not yet run


def test_vm_wide_registers_must_agree_across_vcpus() -> None:
    blob = Blob((PC, STD, PSCI), ((0, 0x3, 0x10001), (0, 0x1, 0x10001)))
    report = preflight(blob, dest(host()))
    assert problems(report) == [(None, STD)]
    assert "different values across vCPUs (0x1, 0x3)" in str(report)


# -- the VM ------------------------------------------------------------------------------


def test_vcpu_count_must_match(sim_vm: SimVmFactory) -> None:
    report = preflight(save_vm(sim_vm(2).vcpus), sim_vm(1).vcpus)
    assert problems(report) == [(None, None)]
    assert "2 vCPU(s), the destination has 1" in str(report)
    assert preflight(save_vm(sim_vm(2).vcpus), dest(firmware.HOST_SDEI, (
        *sim_vm(1).reg_ids,))).ok  # a description without a count accepts any


def test_unreadable_destination(sim_vm: SimVmFactory) -> None:
    report = preflight(save_vm(sim_vm(1).vcpus), sim_vm(1, initialized=False).vcpus)
    assert not report.ok and "cannot read the destination" in str(report)


def test_the_sdei_block_is_validated_per_vcpu(sim_vm: SimVmFactory) -> None:
    blob = save_vm(sim_vm(2).vcpus)
    rows = [list(r) for r in blob.rows]
    rows[1][blob.reg_ids.index(EP_ADDR_0)] = 0x1000  # entry point of an unregistered event
    bad = Blob(blob.reg_ids, tuple(tuple(r) for r in rows))
    report = preflight(bad, sim_vm(2).vcpus)
    assert problems(report) == [(1, EP_ADDR_0)]
    assert "vCPU 1: SDEI_EVENT_EP_ADDR(0) (0x6030000000140120)" in str(report)
    assert report.as_json()["problems"][0]["name"] == "SDEI_EVENT_EP_ADDR(0)"


# -- describing a destination ------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(firmware.PRESETS))
def test_infer_host_from_a_fresh_vcpu(preset: str, sim_vm: SimVmFactory) -> None:
    h = firmware.PRESETS[preset]
    inferred = infer_host(sim_vm(1, host=h).vcpus[0])
    assert (inferred.psci_max, inferred.wa_levels, inferred.bitmaps) == (
        h.psci_max, h.wa_levels, h.bitmaps)


def test_destination_of_vcpus_reads_without_writing(sim_vm: SimVmFactory) -> None:
    vm = sim_vm(3)
    vm.vcpus[0].call("VERSION")
    d = Destination.of_vcpus(vm.vcpus)
    assert d.reg_ids == frozenset(vm.reg_ids) and d.host is firmware.HOST_SDEI
    assert d.nr_vcpus == 3 and d.has_run and d.psci_0_2
    assert dict(d.current) == {PSCI: 0x10001, STD: 0x3, STD_HYP: 0x1, VENDOR: 0x3}
    with pytest.raises(ValueError, match="no vCPU"):
        Destination.of_vcpus([])


class _Bare:
    """A transport over a simulated vCPU that declares no HostFacts, as a real vCPU."""

    def __init__(self, inner: RegTransport) -> None:
        self.reg_list, self.get_reg, self.set_reg = inner.reg_list, inner.get_reg, inner.set_reg
        self.get_regs, self.set_regs = inner.get_regs, inner.set_regs


def test_destination_takes_host_facts_only_from_what_declares_them(sim_vm: SimVmFactory) -> None:
    h = firmware.HOST_LINUX_6_1
    vm = sim_vm(1, host=h, psci_0_2=False)
    vm.vcpus[0].call("VERSION")
    facts: HostFacts = vm.vcpus[0]  # SimVcpu declares the protocol (mypy checks it here)
    assert isinstance(facts, HostFacts)
    d = Destination.of_vcpus(vm.vcpus)
    assert (d.host, d.psci_0_2, d.has_run) == (h, False, True)
    bare = _Bare(vm.vcpus[0])
    assert not isinstance(bare, HostFacts)
    d = Destination.of_vcpus([bare])
    assert (d.host.name, d.psci_0_2, d.has_run) == ("destination (inferred)", True, False)


def test_host_facts_answers_as_isinstance_does(sim_vm: SimVmFactory) -> None:
    """The fast check preflight uses agrees with typing's isinstance on what declares the
    facts (as properties or as plain attributes) and on what lacks any one of them."""

    class Partial:
        host, psci_0_2 = firmware.HOST_LINUX_6_1, True  # no has_run

    class Plain:
        def __init__(self) -> None:
            self.host, self.psci_0_2, self.has_run = firmware.HOST_LINUX_6_1, True, False

    sim = sim_vm(1).vcpus[0]
    for obj, declares in ((sim, True), (Plain(), True), (_Bare(sim), False),
                          (Partial(), False), (object(), False)):
        assert isinstance(obj, HostFacts) is declares
        assert (host_facts(obj) is obj) is declares


# -- values that do not fit their register ---------------------------------------------------


def test_values_are_checked_against_their_register_width() -> None:
    v0 = 0x6040_0000_0010_0054  # fp_regs.vregs[0], U128
    fpsr = 0x6020_0000_0010_00D4  # fp_regs.fpsr, U32
    d = dest(host(), extra=(v0, fpsr))
    ok, _, _ = check_vcpu({PC: 1, v0: (1 << 128) - 1, fpsr: 0xFFFF_FFFF}, d, 0)
    assert ok == []
    saved: dict[int, object] = {PC: 1 << 64, v0: 1 << 128, fpsr: 1 << 32, PSCI: "1"}
    found, _, _ = check_vcpu(saved, d, 2)  # type: ignore[arg-type]
    assert [(p.vcpu, p.reg_id) for p in found] == [(2, PC), (2, v0), (2, fpsr), (2, PSCI)]
    assert [p.reason for p in found] == [
        "saved value 18446744073709551616 is not an unsigned 64-bit value",
        "saved value a 129-bit value does not fit its 16-byte register",
        "saved value 0x100000000 does not fit its 4-byte register",
        "saved value '1' is not an unsigned 64-bit value",
    ]
    (bad_id,), _, _ = check_vcpu({"PC": 0}, d)  # type: ignore[dict-item]
    assert bad_id.reg_id is None and "'PC' is not a register id" in bad_id.reason


# PSTATE modes Linux 6.12 set_core_reg() refuses for an AArch64-EL1 vCPU without nested
# virtualization: EL2t/h, EL3t/h, reserved, AArch32 other than User.
@pytest.mark.parametrize(("pstate", "ok"), [
    (0x5, True), (0x0, True), (0x4, True), (0x10, True), (0x6000_03C5, True),
    (0x8, False), (0x9, False), (0xC, False), (0xD, False), (0x1, False), (0x3C9, False),
    (0x13, False), (0x1F, False), (0x1A, False),
])
def test_a_core_pstate_the_destination_refuses_is_reported(pstate: int, ok: bool) -> None:
    h = host()
    report = preflight(blob_of({PC: 0x1000, PSTATE: pstate}, 2), dest(h, (PSTATE,)))
    assert report.ok is ok
    if not ok:
        assert problems(report) == [(0, PSTATE), (1, PSTATE)]
        assert f"{pstate:#x}" in str(report) and "set_core_reg" in str(report)


def test_restore_refuses_a_saved_el2_pstate_before_writing_anything(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1)
    src.vcpus[0].cpu.write({CpuReg.PSTATE: 0x9, CpuReg.X0: 7})  # at EL2h, as a nested guest
    blob = save_vm(src.vcpus)
    dst = sim_vm(1)
    before = dst.vcpus[0].get_regs(dst.reg_ids)
    with pytest.raises(RestoreError) as e:
        restore_vm(dst.vcpus, blob)
    assert "PSTATE" in str(e.value) and "0x9" in str(e.value)
    assert dst.vcpus[0].get_regs(dst.reg_ids) == before


# -- a saved vCPU and the same values as a plain mapping are judged alike ---------------------


def test_a_vcpu_registers_and_a_plain_mapping_get_the_same_verdict(sim_vm: SimVmFactory) -> None:
    """check_vcpu judges a VcpuRegisters through a plan cached per register table and any
    other mapping register by register: the problems, their order, the dropped and the added
    registers are the same, and a second call (the plan from the cache) agrees too."""
    src = sim_vm(1)
    saved = save_vm(src.vcpus).vcpu(0)
    values = saved.as_dict()
    values[PSTATE] = 0x9  # EL2h: refused by set_core_reg()
    values[WA1] = 2  # a level the destination host (WA1 at 1) cannot promise
    values[SDEI_VCPU_STATE] = 0b10  # RES0 bit
    values[EP_ADDR_0] = 0x1000  # an entry point of an unregistered event
    ids = tuple(values)
    skipped = ids[5]  # a core register the saved set lacks: the destination's value stays
    lacks = dest(host(wa=(1, 0, 0)), (PSTATE, *SDEI_REG_IDS, *ids))
    reg_ids = tuple(r for r in ids if r != skipped)
    regs = VcpuRegisters(reg_ids, tuple(values[r] for r in reg_ids))
    plain = {r: values[r] for r in reg_ids}
    for d in (lacks, dest(host(wa=(1, 0, 0)), (PSTATE, *SDEI_REG_IDS))):
        want = check_vcpu(plain, d, 3)
        assert want[0], "the values must have problems for the test to compare them"
        for _ in range(2):
            got = check_vcpu(regs, d, 3)
            assert [str(p) for p in got[0]] == [str(p) for p in want[0]]
            assert got[1:] == want[1:]
    found = [p.reg_id for p in check_vcpu(regs, lacks, 3)[0]]
    own = [r for r in found if r not in SDEI_REG_IDS]  # per register, in the saved order
    assert PSTATE in own and len(own) >= 2 and own == sorted(own, key=reg_ids.index)
    assert found == [*own, SDEI_VCPU_STATE, EP_ADDR_0]  # then the SDEI block as a whole
    assert skipped in check_vcpu(regs, lacks, 3)[2]
