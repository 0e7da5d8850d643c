"""vGICv3 save/restore (``sdei_state.migration.vgic``) on a fake device: the table's order
rules, exact round trips over any state, refusals that write nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vgic_fake import FakeVgic

from sdei_state.errors import BlobError, RestoreError
from sdei_state.kvm import vgic as uapi
from sdei_state.migration.vgic import VgicState, restore_vgic, save_vgic
from sdei_state.migration.vgic_table import GICD_TYPER_LPIS, VGIC_REGS, Role, Scope, accesses
from sdei_state.vmm.gic import GicLayout

MPIDRS = (0x8000_0000, 0x8000_0001)
LAYOUT = GicLayout.default(2, nr_irqs=96)


def _source(seed_values: dict[str, int] | None = None, pri_bits: int = 7,
            ident: dict[str, int] | None = None) -> FakeVgic:
    src = FakeVgic(LAYOUT, MPIDRS, pri_bits=pri_bits, ident=ident)
    for key, a in src.table.items():
        if a.reg.role is Role.STATE and seed_values and a.name in seed_values:
            src.values[key] = seed_values[a.name]
    return src


def test_table_expansion_counts_and_names() -> None:
    acc = accesses(96, MPIDRS)
    names = [a.name for a in acc]
    assert len(names) == len(set(names)), "every attribute has its own name"
    assert names[0] == "GICD_IIDR"
    # 64 SPIs: 2 words of each 1-bit array, 4 of ICFGR, 16 of IPRIORITYR, 2 x 64 of IROUTER.
    assert sum(n.startswith("GICD_ISENABLER") for n in names) == 2
    assert sum(n.startswith("GICD_ICFGR") for n in names) == 4
    assert sum(n.startswith("GICD_IPRIORITYR") for n in names) == 16
    assert sum(n.startswith("GICD_IROUTER") for n in names) == 128
    assert "GICD_IROUTER32[63:32] (INTID 32)" in names
    assert "GICD_ISENABLER1 (INTID 32-63)" in names
    assert "GICR_IPRIORITYR7 (INTID 28-31) of vCPU 1" in names
    assert "line levels of INTID 64-95" in names
    assert "ICC_AP1R3_EL1 of vCPU 0" in names
    by_name = {a.name: a for a in acc}
    a = by_name["GICR_ISENABLER0 (INTID 0-31) of vCPU 1"]
    assert a.attr == uapi.regs_attr(MPIDRS[1], 0x1_0100)
    assert a.clear_attr == uapi.regs_attr(MPIDRS[1], 0x1_0180)
    assert by_name["ICC_SRE_EL1 of vCPU 0"].attr == uapi.sysreg_attr(MPIDRS[0], 3, 0, 12, 12, 5)
    assert by_name["ICC_SRE_EL1 of vCPU 0"].width == 64
    assert {a.width for a in acc if a.group != uapi.GRP_CPU_SYSREGS} == {32}
    for bad in (32, 100, 2048):
        with pytest.raises(ValueError):
            accesses(bad, MPIDRS)


def test_round_trip_and_write_order() -> None:
    seed = {a.name: (i * 0x01010101 + 7) & 0xFFFF_FFFF
            for i, a in enumerate(accesses(96, MPIDRS)) if a.width == 32}
    seed.update({"ICC_SRE_EL1 of vCPU 0": 7, "ICC_SRE_EL1 of vCPU 1": 7,
                 "ICC_CTLR_EL1 of vCPU 0": 6 << 8, "ICC_CTLR_EL1 of vCPU 1": 6 << 8,
                 "ICC_PMR_EL1 of vCPU 1": 0xF0, "ICC_AP1R3_EL1 of vCPU 1": 0x8000_0000})
    lpis = {"GICD_TYPER": GICD_TYPER_LPIS}  # with LPIs, the LPI base registers travel too
    src = _source(seed, ident=lpis)
    state = save_vgic(src, MPIDRS)
    dst = FakeVgic(LAYOUT, MPIDRS, ident=lpis)
    n = restore_vgic(dst, state, MPIDRS)
    assert n == sum(1 for name, _ in state.named() if "TYPER" not in name and "IIDR" not in
                    name.replace("GICD_IIDR", "") and "PIDR2" not in name)
    assert save_vgic(dst, MPIDRS) == state
    assert not state.diff(save_vgic(dst, MPIDRS))

    writes = [name for name, _ in dst.log]
    assert writes[0] == "GICD_IIDR", "GICD_IIDR before any other register (arm-vgic-v3.rst)"
    dist = [w for w in writes if w.startswith(("GICD", "clear GICD", "line levels of INTID 6",
                                               "line levels of INTID 3"))]
    assert dist[-1] == "GICD_CTLR", "the distributor is enabled last"

    def pos(prefix: str) -> list[int]:
        return [i for i, w in enumerate(writes) if w.startswith(prefix)]

    assert max(pos("GICD_ICFGR")) < min(pos("GICD_ISPENDR")), "config before pending"
    assert max(pos("line levels of INTID 32")) < min(pos("GICD_ISPENDR"))
    for v in ("0", "1"):
        sre, ctlr = pos("ICC_SRE_EL1 of vCPU " + v), pos("ICC_CTLR_EL1 of vCPU " + v)
        sysregs = [i for i in pos("ICC_") if writes[i].endswith("vCPU " + v)]
        assert sre[0] == min(sysregs), "ICC_SRE_EL1 first of the CPU interface"
        aprs = [i for i in sysregs if writes[i].startswith("ICC_AP")]
        assert ctlr[0] < min(aprs), "ICC_CTLR_EL1 (PRIbits) before the active priorities"
        ctlr_r = [i for i in pos("GICR_CTLR") if writes[i].endswith("vCPU " + v)]
        bases = [i for i in pos("GICR_P") if writes[i].endswith("vCPU " + v)]
        assert max(bases) < ctlr_r[0], "PROPBASER/PENDBASER before GICR_CTLR"
    for i, w in enumerate(writes):
        if w.startswith("clear "):
            assert writes[i + 1] == w[len("clear "):], "a clear twin right before its set"


def test_restore_over_a_dirty_destination() -> None:
    state = save_vgic(_source({"GICD_ISENABLER1 (INTID 32-63)": 0x5,
                               "GICR_ISACTIVER0 (INTID 0-31) of vCPU 0": 0x10}), MPIDRS)
    dst = FakeVgic(LAYOUT, MPIDRS, pri_bits=7)
    for key, a in dst.table.items():
        if a.reg.role is Role.STATE and a.width == 32:
            dst.values[key] = 0xFFFF_FFFF  # everything enabled, pending, active
    restore_vgic(dst, state, MPIDRS)
    assert save_vgic(dst, MPIDRS) == state


def test_lpi_base_registers_only_with_lpis() -> None:
    names = [n for n, _ in save_vgic(_source(), MPIDRS).named()]
    assert not any(n.startswith(("GICR_PROPBASER", "GICR_PENDBASER")) for n in names)
    names = [n for n, _ in save_vgic(_source(ident={"GICD_TYPER": GICD_TYPER_LPIS}),
                                     MPIDRS).named()]
    assert "GICR_PENDBASER[63:32] of vCPU 1" in names


def test_optional_active_priority_registers() -> None:
    state = save_vgic(_source(pri_bits=5), MPIDRS)
    names = [n for n, _ in state.named()]
    assert "ICC_AP0R0_EL1 of vCPU 0" in names and "ICC_AP0R1_EL1 of vCPU 0" not in names
    restore_vgic(FakeVgic(LAYOUT, MPIDRS, pri_bits=7), state, MPIDRS)


def test_refusals_write_nothing() -> None:
    state = save_vgic(_source(), MPIDRS)
    other = GicLayout(LAYOUT.dist_base + 0x1_0000 * 0x100, LAYOUT.redist_base, 2, 96)
    cases = [
        (FakeVgic(other, MPIDRS), MPIDRS, "dist_base"),
        (FakeVgic(GicLayout.default(2, nr_irqs=128), MPIDRS), MPIDRS, "nr_irqs"),
        (FakeVgic(LAYOUT, (1, 2)), (1, 2), "MPIDRs"),
        (FakeVgic(LAYOUT, MPIDRS, ident={"GICD_TYPER2": 0x100}), MPIDRS, "GICD_TYPER2"),
        (FakeVgic(LAYOUT, MPIDRS, ident={"GICR_TYPER[31:0] of vCPU 1": 0x110}), MPIDRS,
         "GICR_TYPER"),
    ]
    for dst, mp, what in cases:
        with pytest.raises(RestoreError, match=f"nothing written.*{what}"):
            restore_vgic(dst, state, mp)
        assert dst.log == [], what


def test_kernel_refusal_names_register_and_count() -> None:
    src = _source({"ICC_SRE_EL1 of vCPU 1": 0})  # SRE clear: KVM answers EINVAL
    state = save_vgic(src, MPIDRS)
    with pytest.raises(RestoreError, match=r"ICC_SRE_EL1 of vCPU 1 = 0x0.*EINVAL") as ei:
        restore_vgic(FakeVgic(LAYOUT, MPIDRS), state, MPIDRS)
    assert ei.value.written > 0


def test_state_refuses_what_no_gic_held() -> None:
    state = save_vgic(_source(), MPIDRS)
    vals = list(state.values)
    with pytest.raises(BlobError, match="not a register"):
        VgicState(LAYOUT, MPIDRS, (*vals, (uapi.GRP_DIST_REGS, 0x9999, 0)))
    with pytest.raises(BlobError, match="out of restore order"):
        VgicState(LAYOUT, MPIDRS, (vals[1], vals[0], *vals[2:]))
    with pytest.raises(BlobError, match="lacks GICD_IIDR"):
        VgicState(LAYOUT, MPIDRS, tuple(vals[1:]))
    g, a, _ = vals[0]
    with pytest.raises(BlobError, match="GICD_IIDR = 4294967296 is not a u32"):
        VgicState(LAYOUT, MPIDRS, ((g, a, 1 << 32), *vals[1:]))
    with pytest.raises(BlobError, match="MPIDRs"):
        VgicState(LAYOUT, MPIDRS[:1], tuple(vals))
    with pytest.raises(BlobError, match="share one affinity"):
        VgicState(LAYOUT, (5, 5), tuple(vals))


def test_every_table_row_is_documented_in_order() -> None:
    dist = [r.name for r in VGIC_REGS if r.scope is Scope.DIST]
    assert dist[0] == "GICD_IIDR" and dist[-1] == "GICD_CTLR"
    cpu = [r.name for r in VGIC_REGS if r.group == uapi.GRP_CPU_SYSREGS]
    assert cpu[:2] == ["ICC_SRE_EL1", "ICC_CTLR_EL1"]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_state_round_trips(data: st.DataObject) -> None:
    acc = accesses(LAYOUT.nr_irqs, MPIDRS)
    seed = {a.name: data.draw(st.integers(0, (1 << a.width) - 1), label=a.name)
            for a in acc if a.reg.role is Role.STATE and a.group != uapi.GRP_CPU_SYSREGS}
    state = save_vgic(_source(seed), MPIDRS)
    dst = FakeVgic(LAYOUT, MPIDRS)
    restore_vgic(dst, state, MPIDRS)
    assert save_vgic(dst, MPIDRS) == state
