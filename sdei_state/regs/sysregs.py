"""Names of the AArch64 system registers a VMM meets in ``KVM_GET_REG_LIST``.

Pure data: ``(name, op0, op1, CRn, CRm, op2)`` as in the Arm ARM and the kernel's
``arch/arm64/include/asm/sysreg.h``. The table covers what a current kernel lists for a vCPU
(the blessed lists of the ``get-reg-list`` selftest: base, PMU, SVE, pointer authentication,
EL2) plus the common ones around them; a register missing here still decodes and prints as
``ARM64_SYS_REG(op0, op1, CRn, CRm, op2)``, it only has no name.

Registers KVM exposes as *core* registers (``ELR_EL1``, ``SPSR_EL1``, ``SP_EL0``, ``SP_EL1``,
``FPSR``, ``FPCR``) are deliberately absent: ``KVM_GET_REG_LIST`` never lists them as system
registers, and ``ids`` resolves those names to the core ids.

Two timer ids are KVM's own: uapi ``asm/kvm.h`` warns that ``KVM_REG_ARM_TIMER_CVAL`` and
``KVM_REG_ARM_TIMER_CNT`` "are not defined with the appropriate register encodings. Their
values have been accidentally swapped. As this is set API, the definitions here must be used".
So ``ARM64_SYS_REG(3, 3, 14, 3, 2)`` (architecturally CNTV_CVAL_EL0) holds the virtual
*counter*, and ``ARM64_SYS_REG(3, 3, 14, 0, 2)`` (architecturally CNTVCT_EL0) the compare
value. They are named by the KVM macros, and the architectural names of those two encodings
are refused by ``ids.parse`` with an explanation (``AMBIGUOUS``) rather than guessed.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

Encoding = tuple[int, int, int, int, int]
"""(op0, op1, CRn, CRm, op2)."""

_FIXED: Final[tuple[tuple[str, int, int, int, int, int], ...]] = (
    # Debug (op0 = 2)
    ("OSDTRRX_EL1", 2, 0, 0, 0, 2),
    ("MDCCINT_EL1", 2, 0, 0, 2, 0),
    ("MDSCR_EL1", 2, 0, 0, 2, 2),
    ("OSDTRTX_EL1", 2, 0, 0, 3, 2),
    ("OSECCR_EL1", 2, 0, 0, 6, 2),
    ("MDRAR_EL1", 2, 0, 1, 0, 0),
    ("OSLAR_EL1", 2, 0, 1, 0, 4),
    ("OSLSR_EL1", 2, 0, 1, 1, 4),
    ("OSDLR_EL1", 2, 0, 1, 3, 4),
    ("DBGPRCR_EL1", 2, 0, 1, 4, 4),
    ("DBGCLAIMSET_EL1", 2, 0, 7, 8, 6),
    ("DBGCLAIMCLR_EL1", 2, 0, 7, 9, 6),
    ("DBGAUTHSTATUS_EL1", 2, 0, 7, 14, 6),
    ("MDCCSR_EL0", 2, 3, 0, 1, 0),
    ("DBGDTR_EL0", 2, 3, 0, 4, 0),
    ("DBGDTRRX_EL0", 2, 3, 0, 5, 0),
    ("DBGVCR32_EL2", 2, 4, 0, 7, 0),
    # Identification
    ("MIDR_EL1", 3, 0, 0, 0, 0),
    ("MPIDR_EL1", 3, 0, 0, 0, 5),
    ("REVIDR_EL1", 3, 0, 0, 0, 6),
    ("ID_PFR0_EL1", 3, 0, 0, 1, 0),
    ("ID_PFR1_EL1", 3, 0, 0, 1, 1),
    ("ID_DFR0_EL1", 3, 0, 0, 1, 2),
    ("ID_AFR0_EL1", 3, 0, 0, 1, 3),
    ("ID_MMFR0_EL1", 3, 0, 0, 1, 4),
    ("ID_MMFR1_EL1", 3, 0, 0, 1, 5),
    ("ID_MMFR2_EL1", 3, 0, 0, 1, 6),
    ("ID_MMFR3_EL1", 3, 0, 0, 1, 7),
    ("ID_ISAR0_EL1", 3, 0, 0, 2, 0),
    ("ID_ISAR1_EL1", 3, 0, 0, 2, 1),
    ("ID_ISAR2_EL1", 3, 0, 0, 2, 2),
    ("ID_ISAR3_EL1", 3, 0, 0, 2, 3),
    ("ID_ISAR4_EL1", 3, 0, 0, 2, 4),
    ("ID_ISAR5_EL1", 3, 0, 0, 2, 5),
    ("ID_MMFR4_EL1", 3, 0, 0, 2, 6),
    ("ID_ISAR6_EL1", 3, 0, 0, 2, 7),
    ("MVFR0_EL1", 3, 0, 0, 3, 0),
    ("MVFR1_EL1", 3, 0, 0, 3, 1),
    ("MVFR2_EL1", 3, 0, 0, 3, 2),
    ("ID_PFR2_EL1", 3, 0, 0, 3, 4),
    ("ID_DFR1_EL1", 3, 0, 0, 3, 5),
    ("ID_MMFR5_EL1", 3, 0, 0, 3, 6),
    ("ID_AA64PFR0_EL1", 3, 0, 0, 4, 0),
    ("ID_AA64PFR1_EL1", 3, 0, 0, 4, 1),
    ("ID_AA64PFR2_EL1", 3, 0, 0, 4, 2),
    ("ID_AA64ZFR0_EL1", 3, 0, 0, 4, 4),
    ("ID_AA64SMFR0_EL1", 3, 0, 0, 4, 5),
    ("ID_AA64FPFR0_EL1", 3, 0, 0, 4, 7),
    ("ID_AA64DFR0_EL1", 3, 0, 0, 5, 0),
    ("ID_AA64DFR1_EL1", 3, 0, 0, 5, 1),
    ("ID_AA64DFR2_EL1", 3, 0, 0, 5, 2),
    ("ID_AA64AFR0_EL1", 3, 0, 0, 5, 4),
    ("ID_AA64AFR1_EL1", 3, 0, 0, 5, 5),
    ("ID_AA64ISAR0_EL1", 3, 0, 0, 6, 0),
    ("ID_AA64ISAR1_EL1", 3, 0, 0, 6, 1),
    ("ID_AA64ISAR2_EL1", 3, 0, 0, 6, 2),
    ("ID_AA64ISAR3_EL1", 3, 0, 0, 6, 3),
    ("ID_AA64MMFR0_EL1", 3, 0, 0, 7, 0),
    ("ID_AA64MMFR1_EL1", 3, 0, 0, 7, 1),
    ("ID_AA64MMFR2_EL1", 3, 0, 0, 7, 2),
    ("ID_AA64MMFR3_EL1", 3, 0, 0, 7, 3),
    ("ID_AA64MMFR4_EL1", 3, 0, 0, 7, 4),
    ("CCSIDR_EL1", 3, 1, 0, 0, 0),
    ("CLIDR_EL1", 3, 1, 0, 0, 1),
    ("CCSIDR2_EL1", 3, 1, 0, 0, 2),
    ("GMID_EL1", 3, 1, 0, 0, 4),
    ("AIDR_EL1", 3, 1, 0, 0, 7),
    ("CSSELR_EL1", 3, 2, 0, 0, 0),
    ("CTR_EL0", 3, 3, 0, 0, 1),
    ("DCZID_EL0", 3, 3, 0, 0, 7),
    # EL1 system control, translation, exceptions
    ("SCTLR_EL1", 3, 0, 1, 0, 0),
    ("ACTLR_EL1", 3, 0, 1, 0, 1),
    ("CPACR_EL1", 3, 0, 1, 0, 2),
    ("SCTLR2_EL1", 3, 0, 1, 0, 3),
    ("RGSR_EL1", 3, 0, 1, 0, 5),
    ("GCR_EL1", 3, 0, 1, 0, 6),
    ("ZCR_EL1", 3, 0, 1, 2, 0),
    ("TRFCR_EL1", 3, 0, 1, 2, 1),
    ("SMPRI_EL1", 3, 0, 1, 2, 4),
    ("SMCR_EL1", 3, 0, 1, 2, 6),
    ("TTBR0_EL1", 3, 0, 2, 0, 0),
    ("TTBR1_EL1", 3, 0, 2, 0, 1),
    ("TCR_EL1", 3, 0, 2, 0, 2),
    ("TCR2_EL1", 3, 0, 2, 0, 3),
    ("APIAKEYLO_EL1", 3, 0, 2, 1, 0),
    ("APIAKEYHI_EL1", 3, 0, 2, 1, 1),
    ("APIBKEYLO_EL1", 3, 0, 2, 1, 2),
    ("APIBKEYHI_EL1", 3, 0, 2, 1, 3),
    ("APDAKEYLO_EL1", 3, 0, 2, 2, 0),
    ("APDAKEYHI_EL1", 3, 0, 2, 2, 1),
    ("APDBKEYLO_EL1", 3, 0, 2, 2, 2),
    ("APDBKEYHI_EL1", 3, 0, 2, 2, 3),
    ("APGAKEYLO_EL1", 3, 0, 2, 3, 0),
    ("APGAKEYHI_EL1", 3, 0, 2, 3, 1),
    ("AFSR0_EL1", 3, 0, 5, 1, 0),
    ("AFSR1_EL1", 3, 0, 5, 1, 1),
    ("ESR_EL1", 3, 0, 5, 2, 0),
    ("TFSR_EL1", 3, 0, 5, 6, 0),
    ("TFSRE0_EL1", 3, 0, 5, 6, 1),
    ("FAR_EL1", 3, 0, 6, 0, 0),
    ("PAR_EL1", 3, 0, 7, 4, 0),
    ("PMINTENSET_EL1", 3, 0, 9, 14, 1),
    ("PMINTENCLR_EL1", 3, 0, 9, 14, 2),
    ("PMMIR_EL1", 3, 0, 9, 14, 6),
    ("MAIR_EL1", 3, 0, 10, 2, 0),
    ("PIRE0_EL1", 3, 0, 10, 2, 2),
    ("PIR_EL1", 3, 0, 10, 2, 3),
    ("POR_EL1", 3, 0, 10, 2, 4),
    ("AMAIR_EL1", 3, 0, 10, 3, 0),
    ("VBAR_EL1", 3, 0, 12, 0, 0),
    ("DISR_EL1", 3, 0, 12, 1, 1),
    ("CONTEXTIDR_EL1", 3, 0, 13, 0, 1),
    ("TPIDR_EL1", 3, 0, 13, 0, 4),
    ("ACCDATA_EL1", 3, 0, 13, 0, 5),
    ("SCXTNUM_EL1", 3, 0, 13, 0, 7),
    ("CNTKCTL_EL1", 3, 0, 14, 1, 0),
    # EL0: SME state, PMU, thread ids, timers
    ("SVCR", 3, 3, 4, 2, 2),
    ("PMCR_EL0", 3, 3, 9, 12, 0),
    ("PMCNTENSET_EL0", 3, 3, 9, 12, 1),
    ("PMCNTENCLR_EL0", 3, 3, 9, 12, 2),
    ("PMOVSCLR_EL0", 3, 3, 9, 12, 3),
    ("PMSWINC_EL0", 3, 3, 9, 12, 4),
    ("PMSELR_EL0", 3, 3, 9, 12, 5),
    ("PMCEID0_EL0", 3, 3, 9, 12, 6),
    ("PMCEID1_EL0", 3, 3, 9, 12, 7),
    ("PMCCNTR_EL0", 3, 3, 9, 13, 0),
    ("PMXEVTYPER_EL0", 3, 3, 9, 13, 1),
    ("PMXEVCNTR_EL0", 3, 3, 9, 13, 2),
    ("PMUSERENR_EL0", 3, 3, 9, 14, 0),
    ("PMOVSSET_EL0", 3, 3, 9, 14, 3),
    ("POR_EL0", 3, 3, 10, 2, 4),
    ("TPIDR_EL0", 3, 3, 13, 0, 2),
    ("TPIDRRO_EL0", 3, 3, 13, 0, 3),
    ("TPIDR2_EL0", 3, 3, 13, 0, 5),
    ("SCXTNUM_EL0", 3, 3, 13, 0, 7),
    ("CNTFRQ_EL0", 3, 3, 14, 0, 0),
    ("CNTPCT_EL0", 3, 3, 14, 0, 1),  # = KVM_REG_ARM_PTIMER_CNT
    ("KVM_REG_ARM_TIMER_CVAL", 3, 3, 14, 0, 2),  # CNTVCT_EL0's encoding, see module doc
    ("CNTP_TVAL_EL0", 3, 3, 14, 2, 0),
    ("CNTP_CTL_EL0", 3, 3, 14, 2, 1),  # = KVM_REG_ARM_PTIMER_CTL
    ("CNTP_CVAL_EL0", 3, 3, 14, 2, 2),  # = KVM_REG_ARM_PTIMER_CVAL
    ("CNTV_TVAL_EL0", 3, 3, 14, 3, 0),
    ("CNTV_CTL_EL0", 3, 3, 14, 3, 1),  # = KVM_REG_ARM_TIMER_CTL
    ("KVM_REG_ARM_TIMER_CNT", 3, 3, 14, 3, 2),  # CNTV_CVAL_EL0's encoding, see module doc
    ("PMCCFILTR_EL0", 3, 3, 14, 15, 7),
    # EL2 (nested virtualisation; also the AArch32 state KVM keeps in EL2 encodings)
    ("VPIDR_EL2", 3, 4, 0, 0, 0),
    ("VMPIDR_EL2", 3, 4, 0, 0, 5),
    ("SCTLR_EL2", 3, 4, 1, 0, 0),
    ("ACTLR_EL2", 3, 4, 1, 0, 1),
    ("SCTLR2_EL2", 3, 4, 1, 0, 3),
    ("HCR_EL2", 3, 4, 1, 1, 0),
    ("MDCR_EL2", 3, 4, 1, 1, 1),
    ("CPTR_EL2", 3, 4, 1, 1, 2),
    ("HSTR_EL2", 3, 4, 1, 1, 3),
    ("HFGRTR_EL2", 3, 4, 1, 1, 4),
    ("HFGWTR_EL2", 3, 4, 1, 1, 5),
    ("HFGITR_EL2", 3, 4, 1, 1, 6),
    ("HACR_EL2", 3, 4, 1, 1, 7),
    ("ZCR_EL2", 3, 4, 1, 2, 0),
    ("TRFCR_EL2", 3, 4, 1, 2, 1),
    ("HCRX_EL2", 3, 4, 1, 2, 2),
    ("SMCR_EL2", 3, 4, 1, 2, 6),
    ("TTBR0_EL2", 3, 4, 2, 0, 0),
    ("TTBR1_EL2", 3, 4, 2, 0, 1),
    ("TCR_EL2", 3, 4, 2, 0, 2),
    ("TCR2_EL2", 3, 4, 2, 0, 3),
    ("VTTBR_EL2", 3, 4, 2, 1, 0),
    ("VTCR_EL2", 3, 4, 2, 1, 2),
    ("VNCR_EL2", 3, 4, 2, 2, 0),
    ("DACR32_EL2", 3, 4, 3, 0, 0),
    ("HDFGRTR_EL2", 3, 4, 3, 1, 4),
    ("HDFGWTR_EL2", 3, 4, 3, 1, 5),
    ("HAFGRTR_EL2", 3, 4, 3, 1, 6),
    ("SPSR_EL2", 3, 4, 4, 0, 0),
    ("ELR_EL2", 3, 4, 4, 0, 1),
    ("IFSR32_EL2", 3, 4, 5, 0, 1),
    ("AFSR0_EL2", 3, 4, 5, 1, 0),
    ("AFSR1_EL2", 3, 4, 5, 1, 1),
    ("ESR_EL2", 3, 4, 5, 2, 0),
    ("VSESR_EL2", 3, 4, 5, 2, 3),
    ("FPEXC32_EL2", 3, 4, 5, 3, 0),
    ("TFSR_EL2", 3, 4, 5, 6, 0),
    ("FAR_EL2", 3, 4, 6, 0, 0),
    ("HPFAR_EL2", 3, 4, 6, 0, 4),
    ("MAIR_EL2", 3, 4, 10, 2, 0),
    ("PIRE0_EL2", 3, 4, 10, 2, 2),
    ("PIR_EL2", 3, 4, 10, 2, 3),
    ("POR_EL2", 3, 4, 10, 2, 4),
    ("AMAIR_EL2", 3, 4, 10, 3, 0),
    ("VBAR_EL2", 3, 4, 12, 0, 0),
    ("VDISR_EL2", 3, 4, 12, 1, 1),
    ("CONTEXTIDR_EL2", 3, 4, 13, 0, 1),
    ("TPIDR_EL2", 3, 4, 13, 0, 2),
    ("CNTVOFF_EL2", 3, 4, 14, 0, 3),
    ("CNTHCTL_EL2", 3, 4, 14, 1, 0),
    ("CNTHP_CTL_EL2", 3, 4, 14, 2, 1),
    ("CNTHP_CVAL_EL2", 3, 4, 14, 2, 2),
    ("CNTHV_CTL_EL2", 3, 4, 14, 3, 1),
    ("CNTHV_CVAL_EL2", 3, 4, 14, 3, 2),
    ("SP_EL2", 3, 6, 4, 1, 0),
)


def _generated() -> tuple[tuple[str, int, int, int, int, int], ...]:
    """The numbered families: breakpoint/watchpoint pairs and PMU event counters."""
    out: list[tuple[str, int, int, int, int, int]] = []
    for n in range(16):  # DBG{B,W}{V,C}Rn_EL1: op0=2, CRm=n, op2 4..7
        out += [
            (f"DBGBVR{n}_EL1", 2, 0, 0, n, 4),
            (f"DBGBCR{n}_EL1", 2, 0, 0, n, 5),
            (f"DBGWVR{n}_EL1", 2, 0, 0, n, 6),
            (f"DBGWCR{n}_EL1", 2, 0, 0, n, 7),
        ]
    for n in range(31):  # sysreg.h: CRm = 0b10nn (counters) / 0b11nn (types), op2 = n & 7
        out.append((f"PMEVCNTR{n}_EL0", 3, 3, 14, 0x8 | (n >> 3), n & 7))
        out.append((f"PMEVTYPER{n}_EL0", 3, 3, 14, 0xC | (n >> 3), n & 7))
    return tuple(out)


SYSREGS: Final[tuple[tuple[str, int, int, int, int, int], ...]] = _FIXED + _generated()
"""Every named register: (name, op0, op1, CRn, CRm, op2)."""

NAME_BY_ENCODING: Final[MappingProxyType[Encoding, str]] = MappingProxyType(
    {(o0, o1, n, m, o2): name for name, o0, o1, n, m, o2 in SYSREGS}
)
ENCODING_BY_NAME: Final[MappingProxyType[str, Encoding]] = MappingProxyType(
    {name: (o0, o1, n, m, o2) for name, o0, o1, n, m, o2 in SYSREGS}
)

ALIASES: Final[MappingProxyType[str, str]] = MappingProxyType(
    {
        # uapi asm/kvm.h macros for the timer registers whose encodings are architectural
        "KVM_REG_ARM_TIMER_CTL": "CNTV_CTL_EL0",
        "KVM_REG_ARM_PTIMER_CTL": "CNTP_CTL_EL0",
        "KVM_REG_ARM_PTIMER_CVAL": "CNTP_CVAL_EL0",
        "KVM_REG_ARM_PTIMER_CNT": "CNTPCT_EL0",
        "TIMER_CTL": "CNTV_CTL_EL0",
        "TIMER_CNT": "KVM_REG_ARM_TIMER_CNT",
        "TIMER_CVAL": "KVM_REG_ARM_TIMER_CVAL",
        "PTIMER_CTL": "CNTP_CTL_EL0",
        "PTIMER_CVAL": "CNTP_CVAL_EL0",
        "PTIMER_CNT": "CNTPCT_EL0",
    }
)
"""Other accepted names -> the table name."""

_SWAP = (
    "KVM swaps the virtual counter and compare-value encodings (uapi asm/kvm.h: 'accidentally "
    "swapped ... set API'); say KVM_REG_ARM_TIMER_CNT (ARM64_SYS_REG(3, 3, 14, 3, 2), the "
    "counter) or KVM_REG_ARM_TIMER_CVAL (ARM64_SYS_REG(3, 3, 14, 0, 2), the compare value)"
)
AMBIGUOUS: Final[MappingProxyType[str, str]] = MappingProxyType(
    {"CNTVCT_EL0": _SWAP, "CNTV_CVAL_EL0": _SWAP}
)
"""Names that would silently pick the wrong KVM register; ``ids.parse`` refuses them with this."""


def _check_table() -> None:
    # Import-time guard: a typo in the table must not give two names one encoding.
    if len(NAME_BY_ENCODING) != len(SYSREGS) or len(ENCODING_BY_NAME) != len(SYSREGS):
        raise AssertionError("sysregs: duplicate name or encoding in SYSREGS")
    for name, *fields in SYSREGS:
        o0, o1, n, m, o2 = fields
        if not (0 <= o0 <= 3 and 0 <= o1 <= 7 and 0 <= n <= 15 and 0 <= m <= 15 and 0 <= o2 <= 7):
            raise AssertionError(f"sysregs: {name} has a field out of range")


_check_table()
